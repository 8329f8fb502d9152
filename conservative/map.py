"""``cv.trace`` and ``cv.Map``: an algorithm's update map as a traced program."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from . import _display
from ._types import as_float_array, as_shape, check_bool, check_tol, size_of
from .dsl import Sym
from .errors import DiscontinuityError, InputError, ShapeError, TracingError, fail_message
from .enclose import as_box, enclose_program, possible_pieces
from .evaluate import evaluate
from .graph import Builder, Program, user_source
from .interpreter import all_finite
from .jacobian import jacobian_set, pullback, value_and_jvp
from .rules import input_p
from .sets import JacobianSet

__all__ = ["trace", "Map"]


def trace(fn: Callable, state_shape, param_shape=()) -> "Map":
    """Trace ``fn(x, theta)`` over symbolic arrays into a :class:`Map`.

    Parameters
    ----------
    fn : callable
        ``fn(x, theta)`` written with ``+ - * / ** @``, indexing, NumPy arrays and the ``cv``
        functions (``cv.relu``, ``cv.soft_threshold``, ``cv.where``, ...). It must return an
        array of ``state_shape``: the map ``x_{k+1} = F(x_k, theta)``.
    state_shape, param_shape : int or tuple of int
        Shapes of the state ``x`` and the parameters ``theta`` (``()`` for a scalar).

    Returns
    -------
    Map

    Raises
    ------
    TracingError
        When ``fn`` branches on symbolic values, returns the wrong shape or a non-array.
    DiscontinuityError
        When a ``cv.where`` has branches that disagree on its boundary (found by sampling).

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.trace(lambda x, lam: cv.soft_threshold(x - 0.5 * (x - 1.0), 0.5 * lam), (2,), ())
    >>> F(np.zeros(2), 0.2)
    array([0.4, 0.4])
    >>> F.jacobian(np.zeros(2), 0.2).default
    array([[ 0.5,  0. , -0.5],
           [ 0. ,  0.5, -0.5]])
    """
    call = "cv.trace"
    if not callable(fn):
        raise InputError(fail_message(call, f"fn of type {type(fn).__name__}",
                                      "pass a function fn(x, theta)"))
    state_shape = as_shape(state_shape, name="state_shape", call=call)
    param_shape = as_shape(param_shape, name="param_shape", call=call)
    builder = Builder()
    src = user_source()
    x_node = builder.add(input_p, (), {"shape": state_shape}, state_shape, src,
                         name="x")
    t_node = builder.add(input_p, (), {"shape": param_shape}, param_shape, src,
                         name="theta")
    out = fn(Sym(builder, x_node, state_shape), Sym(builder, t_node, param_shape))
    if not isinstance(out, Sym):
        if isinstance(out, (list, tuple)) and out and all(isinstance(o, Sym) for o in out):
            raise TracingError(fail_message(call, f"fn returning a {type(out).__name__} of "
                                            "symbolic values", "return one array: wrap the "
                                            "parts in cv.stack or cv.concatenate"))
        raise TracingError(fail_message(call, f"fn returning {type(out).__name__}",
                                        "return a symbolic array that depends on x and theta"))
    if out.builder is not builder:
        raise TracingError(fail_message(call, "a result from another trace",
                                        "build the result from this call's x and theta"))
    if out.shape != state_shape:
        raise ShapeError(fail_message(call, f"fn returning shape {out.shape} for state shape "
                                      f"{state_shape}", "return the next state, of the state's "
                                      "shape (an algorithm map x_{k+1} = F(x_k, theta))"))
    F = Map(Program(builder, x_node, t_node, out.node))
    F._sample_where_continuity()
    return F


class Map(_display.Summary):
    """An algorithm's update map ``x_{k+1} = F(x_k, theta)``, traced into a program.

    Build it with :func:`trace`. Call it for values; ask for conservative Jacobians with
    :meth:`jacobian`, for Jacobian-vector products with :meth:`jvp`, and for interval
    enclosures of the Jacobians over boxes with :meth:`enclose`.

    A Map pickles with the standard :mod:`pickle` module: the frozen graph, its constants as
    arrays and each primitive by its registered name. So it can be sent to the workers of a
    ``concurrent.futures`` process pool or a Dask cluster (a primitive written with
    ``conservative.extend`` must be importable there: import its module in the worker).

    Attributes
    ----------
    state_shape, param_shape : tuple of int
    n, m : int
        Sizes of the flattened state and parameters.
    graph : networkx.DiGraph
        The frozen program graph (see ``conservative.graph``).
    program : Program
    """

    def __init__(self, program: Program):
        self.program = program
        self.state_shape = program.shape(program.x_node)
        self.param_shape = program.shape(program.theta_node)
        self.n = size_of(self.state_shape)
        self.m = size_of(self.param_shape)
        self._checked_batches: set = set()         # (x.shape, theta.shape) pairs checked

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_checked_batches"] = set()
        return state

    def __setstate__(self, state: dict):
        self.__dict__.update(state)

    @property
    def graph(self):
        return self.program.graph

    def __str__(self) -> str:
        return "cv.Map\n" + str(self.program)

    # --- summaries ------------------------------------------------------------------------------

    def _counts(self, nonsmooth: bool) -> dict:
        counts: dict = {}
        for step in self.program.steps:
            if step.prim.smooth != nonsmooth:
                counts[step.prim.name] = counts.get(step.prim.name, 0) + 1
        return counts

    def _summary(self, label: str = ""):
        kinks = len(self.program.kink_nodes)
        title = (f"{type(self).__name__}({label}state_shape={self.state_shape}, param_shape="
                 f"{self.param_shape}, {len(self.program.steps)} operations, {kinks} nonsmooth)")
        p = "parameter" if self.m == 1 else "parameters"
        rows = [("map", f"x_(k+1) = F(x_k, theta): n = {self.n} states, m = {self.m} {p}"),
                ("nonsmooth", _display.listed(self._counts(True))),
                ("smooth", _display.listed(self._counts(False))),
                ("defined at", os.path.basename(
                    self.program.graph.nodes[self.program.out_node]["source"]))]
        return title, rows

    def to_dict(self) -> dict:
        """The map's facts as plain Python data (JSON-ready): shapes, sizes and the operations
        of its program by primitive (``str(F)`` prints the program itself).

        Examples
        --------
        >>> import conservative as cv
        >>> cv.trace(lambda x, t: cv.relu(x - t), (3,), ()).to_dict()["nonsmooth"]
        {'relu': 1}
        """
        return {"state_shape": list(self.state_shape), "param_shape": list(self.param_shape),
                "n": self.n, "m": self.m, "operations": len(self.program.steps),
                "nonsmooth": self._counts(True), "smooth": self._counts(False)}

    # --- input handling -------------------------------------------------------------------------

    def point(self, x, theta, *, call: str):
        """The public input gate for one point: ``(x, theta)`` checked and converted once.

        Every function that takes a point of a Map calls this (the name in ``call`` appears in
        its errors): float64 arrays of the state and parameter shapes, finite, no batch axes; a
        plain scalar stands for a one-element array.

        Returns
        -------
        xb : ndarray (1, *state_shape)
        tb : ndarray (1, *param_shape)
            The point with a batch axis of one (what the program's interpreter takes).

        Raises
        ------
        ShapeError, NonFiniteError, InputError
            Wrong shapes, NaN or infinity, complex/bool/object input.

        Examples
        --------
        >>> import conservative as cv
        >>> F = cv.trace(lambda x, t: x * t, (2,), ())
        >>> xb, tb = F.point([1.0, 2.0], 3.0, call="my_function")
        >>> xb.shape, tb.shape
        ((1, 2), (1,))
        """
        xb, tb, _ = self._gate(x, theta, call, allow_batch=False)
        return xb.copy(), tb.copy()     # fresh: callers may keep them, the user's stay theirs

    def _gate(self, x, theta, call: str, allow_batch: bool = True):
        """``(xb, tb, batch)``: the fast path of the input gate.

        float64 arrays (or Python floats) of the shapes this Map takes, or of batch shapes it
        checked before, need one finiteness test each instead of the full conversion; the
        batched views share memory with the input (the interpreter never writes to them).
        Anything else goes through :meth:`_inputs`, which checks and converts it.
        """
        if type(theta) is float:
            theta = np.array(theta)
        if type(x) is float:
            x = np.array(x)
        if type(x) is np.ndarray and type(theta) is np.ndarray and x.dtype == np.float64 \
                and theta.dtype == np.float64 and all_finite(x) and all_finite(theta):
            if x.shape == self.state_shape and theta.shape == self.param_shape:
                return x[None], theta[None], ()
            if allow_batch and (x.shape, theta.shape) in self._checked_batches:
                return self._batched(x, theta, call)
        xb, tb, batch = self._inputs(x, theta, call, allow_batch)
        if batch and type(x) is np.ndarray and type(theta) is np.ndarray:
            self._checked_batches.add((x.shape, theta.shape))
        return xb, tb, batch

    def _inputs(self, x, theta, call: str, allow_batch: bool = True):
        """Check and convert ``(x, theta)`` (shapes, dtypes, finite values, batch axes)."""
        x = as_float_array(_one_element(x, self.state_shape), name="x", call=call,
                           shape=self.state_shape, allow_batch=allow_batch)
        theta = as_float_array(_one_element(theta, self.param_shape), name="theta", call=call,
                               shape=self.param_shape, allow_batch=allow_batch)
        return self._batched(x, theta, call)

    def _batched(self, x, theta, call: str):
        bx = x.shape[:x.ndim - len(self.state_shape)]
        bt = theta.shape[:theta.ndim - len(self.param_shape)]
        try:
            batch = np.broadcast_shapes(bx, bt)
        except ValueError:
            raise ShapeError(fail_message(call, f"batch shapes {bx} (x) and {bt} (theta)",
                                          "pass batch axes that broadcast")) from None
        B = size_of(batch)
        xb = np.broadcast_to(x, batch + self.state_shape).reshape((B,) + self.state_shape)
        # unbatched parameters stay a batch of one: broadcasting does the rest, without copies
        tb = theta[None] if not bt else \
            np.broadcast_to(theta, batch + self.param_shape).reshape((B,) + self.param_shape)
        return xb, tb, batch

    # --- values ---------------------------------------------------------------------------------

    def __call__(self, x, theta):
        """Evaluate ``F(x, theta)``; leading batch axes of ``x`` and ``theta`` broadcast."""
        xb, tb, batch = self._gate(x, theta, "Map.__call__")
        out = evaluate(self.program, xb, tb, call="Map.__call__")
        if not batch:
            return np.array(out[0])
        out = np.broadcast_to(out, (xb.shape[0],) + out.shape[1:])
        return np.array(out.reshape(batch + self.state_shape))

    # --- derivatives ----------------------------------------------------------------------------

    def jacobian(self, x, theta, *, hull: bool = True, tol: float = 0.0,
                 box=None) -> JacobianSet:
        """The conservative Jacobian ``[A B]`` of F at ``(x, theta)``.

        Rows follow the C-order flattening of the state, columns the state then the parameters.

        Parameters
        ----------
        hull : bool
            True: the convex hull of the set of products of the active pieces' Jacobians
            (Clarke-like). False: the finite set itself (what some AD program can output).
        tol : float
            A piece is active when the point is within ``tol`` of its region (use a small
            positive value for points computed in floating point that sit on a kink).
        box : tuple (x_box, theta_box), optional
            A box around the point, each given as in :meth:`enclose`: every piece that may be
            active *somewhere* on the box (decided in interval arithmetic) counts as active,
            and where the box meets a kink the default is the selection made on the kink.
            This is the set of a point known only through an enclosure, such as the exact
            fixed point near a computed one (``cv.fixed_point_enclosure``).

        Returns
        -------
        JacobianSet
            Factored: enumerate with ``.vertices``; ``.A`` and ``.B`` are the blocks.

        Examples
        --------
        >>> import conservative as cv
        >>> F = cv.trace(lambda x, t: cv.relu(x) - cv.relu(-x), (), ())
        >>> js = F.jacobian(0.0, 0.0, hull=True)
        >>> js.A.contains([[2.0]]), js.A.contains([[0.5]]), js.A.contains([[2.5]])
        (True, True, False)
        """
        call = "Map.jacobian"
        hull = check_bool(hull, name="hull", call=call)
        tol = check_tol(tol, call)
        xb, tb = self.point(x, theta, call=call)
        possible = None
        if box is not None:
            if not (isinstance(box, tuple) and len(box) == 2):
                raise InputError(fail_message(call, f"box of type {type(box).__name__}",
                                              "pass box=(x_box, theta_box), each a (lo, hi) "
                                              "pair or a point"))
            x_box = as_box(box[0], self.state_shape, name="box[0]", call=call)
            t_box = as_box(box[1], self.param_shape, name="box[1]", call=call)
            if not (np.all(x_box.contains(xb[0])) and np.all(t_box.contains(tb[0]))):
                raise InputError(fail_message(call, "a box that does not contain the point",
                                              "pass a box around (x, theta)"))
            possible = possible_pieces(self.program, x_box, t_box, tol=float(tol), call=call)
        values = evaluate(self.program, xb, tb, call=call, keep=True)
        return jacobian_set(self.program, values, hull=hull, tol=float(tol), call=call,
                            possible=possible)

    def jvp(self, x, theta, dx=None, dtheta=None):
        """Value and Jacobian-vector product ``A dx + B dtheta`` of the default selection.

        Never forms ``A``: the tangents are pushed through the program (forward mode), so a
        soft-threshold step costs one masked multiply.

        Parameters
        ----------
        x, theta : ndarray
            A point (no batch axes).
        dx : ndarray, shape (*state_shape, T) or None
            Tangents of the state, ``T`` directions (None: zero).
        dtheta : ndarray, shape (*param_shape, T) or None

        Returns
        -------
        value : ndarray (*state_shape)
        tangent : ndarray (*state_shape, T)
        """
        call = "Map.jvp"
        xb, tb, _ = self._gate(x, theta, call, allow_batch=False)   # read only, outputs copied
        seeds, T = {}, None
        for node, t, shape, name in ((self.program.x_node, dx, self.state_shape, "dx"),
                                     (self.program.theta_node, dtheta, self.param_shape,
                                      "dtheta")):
            if t is None:
                continue
            if not _checked_float(t):
                t = as_float_array(t, name=name, call=call)
            if t.shape[:-1] != shape or t.ndim == 0 or (T is not None and t.shape[-1] != T):
                raise ShapeError(fail_message(call, f"{name} of shape {t.shape}",
                                              f"pass shape {shape + ('T',)} with the same T for "
                                              "dx and dtheta"))
            T = t.shape[-1]
            seeds[node] = t[None]
        if T is None:
            raise InputError(fail_message(call, "dx=None and dtheta=None",
                                          "pass at least one tangent"))
        value, out = value_and_jvp(self.program, xb, tb, seeds, call=call)
        full = (1,) + self.state_shape + (T,)
        tangent = np.zeros(full[1:]) if out is None else \
            np.array((out if out.shape == full else np.broadcast_to(out, full))[0])
        return np.array(value[0]), tangent

    def vjp(self, x, theta, cotangent):
        """Value and vector-Jacobian products ``(A^T c, B^T c)`` of the default selection.

        Reverse mode: the cotangent ``c`` of the output is pulled back through the program,
        never forming ``A``.

        Parameters
        ----------
        x, theta : ndarray
            A point (no batch axes).
        cotangent : ndarray, shape state_shape

        Returns
        -------
        value : ndarray (*state_shape)
        ct_x : ndarray (*state_shape)
        ct_theta : ndarray (*param_shape)

        Examples
        --------
        >>> import numpy as np, conservative as cv
        >>> F = cv.trace(lambda x, t: cv.relu(x * t), (2,), ())
        >>> F.vjp(np.array([1.0, -1.0]), 2.0, np.array([1.0, 1.0]))[1:]
        (array([2., 0.]), array(1.))
        """
        call = "Map.vjp"
        xb, tb, _ = self._gate(x, theta, call, allow_batch=False)   # read only, outputs copied
        ct = cotangent if _checked_float(cotangent) and cotangent.shape == self.state_shape \
            else as_float_array(cotangent, name="cotangent", call=call, shape=self.state_shape)
        back = pullback(self.program, xb, tb, call=call)
        ct_x, ct_theta = back(ct[None])
        return np.array(back.value[0]), np.array(ct_x[0]), np.array(ct_theta[0])

    # --- enclosures -----------------------------------------------------------------------------

    def enclose(self, x_box, theta_box, *, tol: float = 0.0, value: bool = False,
                boundaries: list | None = None):
        """Interval enclosure of every conservative Jacobian ``[A B]`` of F over a box.

        Parameters
        ----------
        x_box, theta_box : tuple (lo, hi) of arrays, Interval, or a point array
            The box of states and of parameters (a point is a degenerate box).
        tol : float
            Pieces within ``tol`` of the box count as possibly active.
        value : bool
            Also return the enclosure of ``F`` itself over the box.
        boundaries : list, optional
            Receives the ``cv.where`` nodes whose boundary may meet the box (see
            :func:`conservative.enclose.enclose_program`).

        Returns
        -------
        IntervalMatrix, shape (n, n + m)
            ``.lo`` and ``.hi``: every element of ``F.jacobian(x, theta, hull=True)`` at every
            ``(x, theta)`` in the box lies between them. With ``value=True``, a pair
            ``(Interval of F's values, IntervalMatrix)``.

        Raises
        ------
        UndecidedError
            When an operation's domain cannot be proved over the box (log of an interval
            containing 0, division by an interval containing 0): shrink the box.

        Examples
        --------
        >>> import conservative as cv
        >>> F = cv.trace(lambda x, t: cv.relu(x) * t, (), ())
        >>> M = F.enclose((-1.0, 2.0), (0.5, 1.0))
        >>> M.lo, M.hi      # d/dx in [0, 1] (kink inside the box), d/dt = relu(x) in [0, 2]
        (array([[0., 0.]]), array([[1., 2.]]))
        """
        call = "Map.enclose"
        if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol >= 0):
            raise InputError(fail_message(call, f"tol={tol!r}", "pass a finite tol >= 0"))
        xb = as_box(x_box, self.state_shape, name="x_box", call=call)
        tb = as_box(theta_box, self.param_shape, name="theta_box", call=call)
        val, jac = enclose_program(self.program, xb, tb, tol=float(tol), call=call,
                                   boundaries=boundaries)
        return (val, jac) if value else jac

    # --- continuity of user-defined piecewise maps ----------------------------------------------

    def _sample_where_continuity(self, n_lines: int = 6, seed: int = 0):
        """Look for boundary points of every ``cv.where`` along random lines; check continuity.

        The nodes checked are those whose primitive has a ``branches`` hook (user-defined
        branches, whose agreement is not guaranteed by construction).

        A heuristic complement to the exact check made whenever a boundary point is evaluated:
        it finds jumps at trace time in the common case where the boundary crosses the region
        around the origin.
        """
        program = self.program
        checked = [s for s in program.steps if s.prim.checks_continuity]
        if not checked:
            return
        rng = np.random.default_rng(seed)
        for _ in range(n_lines):
            x0 = rng.normal(size=(1,) + self.state_shape)
            t0 = np.abs(rng.normal(size=(1,) + self.param_shape))
            dx = rng.normal(size=x0.shape)
            ts = np.linspace(-3.0, 3.0, 61)
            xs = x0 + ts.reshape((-1,) + (1,) * len(self.state_shape)) * dx
            try:
                vals = evaluate(program, xs.reshape((-1,) + self.state_shape),
                                np.broadcast_to(t0, (len(ts),) + self.param_shape),
                                call="cv.trace", keep=True)
            except DiscontinuityError:
                raise
            except Exception:  # noqa: BLE001 - points outside the domain say nothing here
                continue
            for step in checked:
                g, a, b = (np.broadcast_to(v, vals[step.node].shape)
                           for v in _branches(step, vals))
                flat_g = g.reshape(len(ts), -1)
                gap = np.abs(a - b).reshape(len(ts), -1)
                scale = 1.0 + np.maximum(np.abs(a), np.abs(b)).reshape(len(ts), -1)
                # a sign change of g between neighbours brackets a boundary point; the branches'
                # gap there must shrink with the bracket (continuity), so compare to the jump in g
                change = np.sign(flat_g[1:]) != np.sign(flat_g[:-1])
                near = np.minimum(gap[1:], gap[:-1]) / scale[1:]
                jump = change & (near > 1e-3) & _bisect_confirms(program, step, xs, t0, ts,
                                                                 change)
                if np.any(jump):
                    raise DiscontinuityError(
                        f"cv.trace: the branches of `{program.expression(step.node)}` (defined at "
                        f"{program.graph.nodes[step.node]['source']}) disagree on the boundary "
                        "of the condition: the map jumps there. Conservative Jacobians exist "
                        "only for continuous piecewise maps; make the two branches agree where "
                        "the condition switches")


def _checked_float(a) -> bool:
    """A float64 array with finite entries: nothing to convert (the fast path of the gate)."""
    return type(a) is np.ndarray and a.dtype == np.float64 and all_finite(a)


def _one_element(value, shape):
    """A plain scalar stands for an array of one element (``theta=1.0`` for shape (1,))."""
    try:
        scalar = np.ndim(value) == 0
    except ValueError:                  # ragged nested lists: as_float_array says so
        return value
    if shape != () and size_of(shape) == 1 and scalar:
        return np.reshape(value, shape)
    return value


def _branches(step, vals):
    """``(g, a, b)`` of a node whose continuity is checked: its primitive's branches hook."""
    return step.prim.branches([vals[i] for i in step.inputs], **step.params)


def _bisect_confirms(program, step, xs, t0, ts, change):
    """Bisect each bracketed boundary crossing and test the branch gap at the crossing."""
    confirm = np.zeros_like(change)
    direction = (xs[1] - xs[0]) / (ts[1] - ts[0])
    base = xs[0] - ts[0] * direction
    shape = program.shape(step.node)

    def parts(t, e):
        vals = evaluate(program, (base + t * direction)[None], t0, call="cv.trace", keep=True)
        return [float(np.broadcast_to(v, (1,) + shape).reshape(-1)[e])
                for v in _branches(step, vals)]

    k_idx, e_idx = np.nonzero(change)
    for k, e in zip(k_idx[:8], e_idx[:8]):
        lo, hi = ts[k], ts[k + 1]
        g_lo = parts(lo, e)[0]
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            g_mid = parts(mid, e)[0]
            if g_mid != 0 and np.sign(g_mid) == np.sign(g_lo):
                lo, g_lo = mid, g_mid
            else:
                hi = mid
        _, a, b = parts(hi, e)
        confirm[k, e] = abs(a - b) > 1e-6 * (1.0 + max(abs(a), abs(b)))
    return confirm
