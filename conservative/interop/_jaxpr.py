"""``cv.from_jax``: a JAX function's jaxpr, translated equation by equation into a cv.Map.

The function is traced once by ``jax.make_jaxpr`` on float64 shapes (64-bit mode switched on
for that trace only), and each equation of the jaxpr is rebuilt with the DSL. Constants
(closed-over arrays, literals, index arithmetic) are computed by JAX itself; only equations
that depend on ``x`` or ``theta`` become nodes. Calls (``jit``, ``closed_call``, ``remat``)
are inlined, and ``custom_jvp`` / ``custom_vjp`` functions (``jax.nn.relu``) by their *primal*
body: a custom derivative rule is one selection at the kink, the conservative Jacobian is the
set. The one exception is JAX's ``logaddexp`` (``jax.nn.softplus``), whose primal body is a
smooth function written with ``max`` and ``abs``: it becomes a smooth composition, without
spurious kinks.
"""

from __future__ import annotations

import re
import warnings
from typing import Callable

import numpy as np

from .._types import as_shape
from ..dsl import Condition, Sym
from ..errors import (ConservativeError, DiscontinuityError, InputError, ShapeError,
                      TracingError, fail_message)
from ..graph import foreign_source
from ..map import Map, trace
from ._translate import Jump, Translator, definition_source, is_symbolic, quote, shape_of

__all__ = ["from_jax"]

_CALL = "cv.from_jax"


def from_jax(fn: Callable, state_shape, param_shape=()) -> Map:
    """Import a JAX function ``fn(x, theta)`` as a :class:`~conservative.Map`.

    ``fn`` is traced by ``jax.make_jaxpr`` on float64 arrays of the given shapes (64-bit mode is
    switched on for this trace only; the global JAX configuration is left as it was), and its
    jaxpr is translated equation by equation into the primitives of ``conservative``. Every
    kink stays a kink: ``max``/``min`` (``jnp.maximum``, ``jax.nn.relu``), ``abs``, ``clamp``
    (``jnp.clip``), ``select_n`` on a comparison (``jnp.where``, checked for continuity),
    ``reduce_max``/``reduce_min``, and ``sign(z) * relu(|z| - t)`` (jaxopt's ``prox_lasso``),
    which becomes one soft-threshold node. ``custom_jvp``/``custom_vjp`` functions are read
    through their primal body, never their custom derivative rule.

    Parameters
    ----------
    fn : callable
        ``fn(x, theta) -> x_next`` written with ``jax.numpy`` / ``jax.lax`` / ``jax.nn``;
        ``x`` has ``state_shape`` and the result must too.
    state_shape, param_shape : int or tuple of int
        Shapes of the state and of the parameters (``()`` for a scalar).

    Returns
    -------
    Map
        Printing it shows, for every node, the line of ``fn`` (or of the library it calls)
        that created the equation.

    Raises
    ------
    TracingError
        For an equation without a conservative translation (the message names the primitive,
        its source line and what to do), for control flow on traced values (``lax.cond``,
        ``while_loop``, ``scan``: pass the one-step map), and for Python control flow on traced
        values inside ``fn``.
    DiscontinuityError
        For a genuinely discontinuous program: ``sign`` or a 0/1 indicator not multiplied by a
        factor vanishing where it jumps, rounding to integers, ``jnp.where`` whose branches
        disagree on the boundary.
    InputError
        When JAX is not installed (``pip install "conservative[jax]"``).

    Examples
    --------
    >>> import numpy as np, jax, jax.numpy as jnp, conservative as cv
    >>> W = np.array([[0.5, -0.2], [0.1, 0.4]])
    >>> F = cv.from_jax(lambda x, t: jax.nn.relu(W @ x + t), (2,), (2,))
    >>> F(np.array([1.0, -1.0]), np.zeros(2))
    array([0.7, 0. ])
    >>> F.jacobian(np.zeros(2), np.zeros(2), hull=False).vertices.shape   # both ReLUs at 0
    (4, 2, 4)
    """
    jax = _require_jax()
    if not callable(fn):
        raise InputError(fail_message(_CALL, f"fn of type {type(fn).__name__}",
                                      "pass a JAX function fn(x, theta)"))
    state_shape = as_shape(state_shape, name="state_shape", call=_CALL)
    param_shape = as_shape(param_shape, name="param_shape", call=_CALL)
    with _x64(jax):
        closed = _make_jaxpr(jax, fn, state_shape, param_shape)
        _warn_narrow_constants(jax, closed.consts)
        reader = _JaxprReader(jax)

        def translated(x, theta):
            outs = reader.run(closed.jaxpr, closed.consts, [x, theta])
            return reader.result(outs[0])

        with foreign_source(definition_source(fn) or "<JAX function>"):
            return trace(translated, state_shape, param_shape)


# --- JAX itself ---------------------------------------------------------------------------------

def _require_jax():
    try:
        import jax
    except ImportError:
        raise InputError(fail_message(_CALL, "a call without JAX installed",
                                      'install it: pip install "conservative[jax]"')) from None
    return jax


def _x64(jax):
    """64-bit mode for the duration of the import only (a context manager)."""
    enable = getattr(jax, "enable_x64", None)           # jax >= 0.8: a config context manager
    if enable is not None:
        return enable(True)
    from jax.experimental import enable_x64             # older JAX
    return enable_x64()


def _make_jaxpr(jax, fn, state_shape, param_shape):
    specs = (jax.ShapeDtypeStruct(state_shape, np.float64),
             jax.ShapeDtypeStruct(param_shape, np.float64))
    try:
        closed = jax.make_jaxpr(fn)(*specs)
    except jax.errors.ConcretizationTypeError as exc:
        raise TracingError(fail_message(
            _CALL, "a function that uses Python control flow (if, while, int(), float()) on "
            f"traced values ({str(exc).splitlines()[0]})", "express the branch with "
            "jnp.where(x > 0, a, b), jnp.maximum, jnp.abs, jnp.clip or jax.nn.relu so that the "
            "kink is recorded; loops belong outside: pass the one-step map")) from None
    except (jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError) \
            as exc:
        raise TracingError(fail_message(
            _CALL, f"a function that converts a traced value to NumPy ({str(exc).splitlines()[0]})",
            "use jax.numpy functions on x and theta (np.asarray/np.* cannot see traced values)")
        ) from None
    except ConservativeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of fn while JAX traces it
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise TracingError(fail_message(
            _CALL, f"a function that jax.make_jaxpr could not trace on float64 arrays of shapes "
            f"{state_shape} and {param_shape} ({type(exc).__name__}: {first})",
            "fn(x, theta) must take two arrays of these shapes and compute with jax.numpy; "
            "check the shapes given to cv.from_jax")) from exc
    outs = closed.out_avals
    if len(outs) != 1:
        raise TracingError(fail_message(_CALL, f"fn returning {len(outs)} arrays",
                                        "return one array, the next state (stack the parts "
                                        "with jnp.concatenate)"))
    aval = outs[0]
    if tuple(aval.shape) != state_shape:
        raise ShapeError(fail_message(_CALL, f"fn returning shape {tuple(aval.shape)} for state "
                                      f"shape {state_shape}", "return the next state, of the "
                                      "state's shape (an algorithm map x_{k+1} = F(x_k, theta))"))
    if np.dtype(aval.dtype).kind != "f":
        raise TracingError(fail_message(_CALL, f"fn returning dtype {aval.dtype}",
                                        "return a floating-point array"))
    return closed


def _warn_narrow_constants(jax, consts):
    """Warn when fn closes over float32 (or narrower) arrays: their rounded values are used.

    ``jnp.asarray(X)`` made while 64-bit mode is off is a float32 array; the import keeps the
    values the JAX function really computes with, which differ from a float64 ``X`` by about
    1e-8 relative (a NumPy array, or an array made under ``jax.enable_x64``, keeps float64).
    """
    jnp = jax.numpy
    narrow = [c for c in consts if jnp.issubdtype(c.dtype, jnp.floating)
              and np.dtype(c.dtype).itemsize < 8]
    if narrow:
        shapes = ", ".join(f"{np.dtype(c.dtype).name}{list(c.shape)}" for c in narrow[:4])
        warnings.warn(fail_message(
            _CALL, f"fn closing over {len(narrow)} lower-precision array(s) ({shapes}), "
            "made while JAX's 64-bit mode was off", "the map uses their rounded values, as JAX "
            "does; close over NumPy arrays (or create them under jax.enable_x64(True)) to keep "
            "float64 data"), UserWarning, stacklevel=3)


def _eqn_source(eqn) -> str:
    """``file:line`` of the user's code that created the equation."""
    try:
        from jax.extend import source_info_util
        summary = source_info_util.summarize(eqn.source_info)
    except Exception:  # noqa: BLE001 - source information is a courtesy, never a failure
        return ""
    match = re.match(r"^(.*?):(\d+)(?::\d+)? \(", summary)
    return f"{match.group(1)}:{match.group(2)}" if match else summary


# --- the reader ---------------------------------------------------------------------------------

_CALLS = ("pjit", "jit", "closed_call", "core_call", "remat", "remat2", "checkpoint",
          "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr")
_CONTROL_FLOW = ("while", "scan", "cond", "fori_loop", "switch")
_SMOOTH = ("exp", "log", "log1p", "expm1", "tanh", "logistic", "sqrt", "rsqrt", "sin", "cos",
           "exp2", "tan", "square")
_COMPARE = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}
_JUMPS = ("floor", "ceil", "round", "rem", "argmax", "argmin", "nextafter", "sign_bit",
          "population_count", "clz")
_IDENTITY = ("copy", "copy_p", "stop_gradient", "optimization_barrier", "reduce_precision")
# pure data movement: each output element is one input element (or a padding value)
_MOVEMENT = {"gather": (0,), "rev": (0,), "tile": (0,), "dynamic_slice": (0,),
             "pad": (0, 1), "dynamic_update_slice": (0, 1), "scatter": (0, 2)}


_UNHANDLED = object()          # a translation step that does not handle the primitive


class _JaxprReader(Translator):
    """Interprets a jaxpr over DSL values (Sym, constants, conditions)."""

    def __init__(self, jax):
        super().__init__(_CALL)
        self.jax = jax
        from jax.extend import core as jcore
        self._Literal, self._DropVar = jcore.Literal, jcore.DropVar
        self._call_source = "<unknown>"

    def _source_of(self, eqn) -> str:
        return _eqn_source(eqn) or self._call_source

    # --- walking --------------------------------------------------------------------------------

    def run(self, jaxpr, consts, args):
        env = {}

        def read(v):
            if isinstance(v, self._Literal):
                return np.asarray(v.val)
            return env[v]

        for var, c in zip(jaxpr.constvars, consts):
            env[var] = np.asarray(c)
        for var, a in zip(jaxpr.invars, args):
            env[var] = a
        for eqn in jaxpr.eqns:
            invals = [read(v) for v in eqn.invars]
            outs = self.equation(eqn, invals)
            if not eqn.primitive.multiple_results:
                outs = [outs]
            for var, val in zip(eqn.outvars, outs):
                if not isinstance(var, self._DropVar):
                    env[var] = val
        return [read(v) for v in jaxpr.outvars]

    def equation(self, eqn, invals):
        name = eqn.primitive.name
        sub = _sub_jaxpr(eqn) if name in _CALLS else None
        if sub is not None:
            smooth = self._known_smooth(eqn, sub, invals)
            if smooth is not None:
                return smooth
            jaxpr, consts = sub
            # equations traced inside library code (jax.nn.relu's body) have no user frame of
            # their own: they inherit the line of the call
            outer, self._call_source = self._call_source, self._source_of(eqn)
            try:
                return self.run(jaxpr, consts, invals)
            finally:
                self._call_source = outer
        if not any(is_symbolic(v) for v in invals):
            return self._fold(eqn, invals)
        source = self._source_of(eqn)
        self.source = source
        try:
            with foreign_source(source):
                return self.translate(eqn, name, invals)
        except ConservativeError as exc:
            if source in str(exc):
                raise
            raise type(exc)(f"{exc}\n  (translating the JAX equation `{name}` at "
                            f"{quote(source)})") from None

    def _fold(self, eqn, invals):
        """An equation of constants: JAX computes it."""
        out = eqn.primitive.bind(*invals, **eqn.params)
        if eqn.primitive.multiple_results:
            return [np.asarray(o) for o in out]
        return np.asarray(out)

    def result(self, out):
        """The translated output: a symbolic array."""
        if isinstance(out, (Jump, Condition)):
            self.source = getattr(out, "source", self.source)
            out = self.array(out, "the result")
        if not isinstance(out, Sym):
            raise TracingError(fail_message(_CALL, "a function whose result does not depend on "
                                            "x and theta", "return the next state computed from "
                                            "x and theta"))
        return out

    # --- calls ----------------------------------------------------------------------------------

    def _known_smooth(self, eqn, sub, invals):
        """JAX's logaddexp (softplus): a smooth primal written with max and abs."""
        if eqn.primitive.name != "custom_jvp_call" or not _is_logaddexp(sub[0]):
            return None
        if not any(is_symbolic(v) for v in invals):
            return None
        source = self._source_of(eqn)
        self.source = source
        with foreign_source(source):
            return [self.logaddexp(invals[0], invals[1])]

    # --- one equation ---------------------------------------------------------------------------

    def translate(self, eqn, name, v):
        for part in (self._elementwise, self._structural):
            out = part(eqn, name, v, eqn.params)
            if out is not _UNHANDLED:
                return out
        raise self.unsupported(f"{name} (JAX primitive)")

    def _elementwise(self, eqn, name, v, p):
        """Arithmetic, comparisons, kinks and smooth functions (``_UNHANDLED`` otherwise)."""
        if name in ("add", "add_any"):
            return self.add(*v)
        if name == "sub":
            return self.sub(*v)
        if name == "mul":
            return self.mul(*v)
        if name == "div":
            return self.div(*v)
        if name == "neg":
            return self.neg(v[0])
        if name == "max":
            return self.maximum(*v)
        if name == "min":
            return self.minimum(*v)
        if name == "abs":
            return self.abs(v[0])
        if name == "sign":
            return self.sign(v[0])
        if name == "clamp":
            return self.clip(v[1], v[0], v[2])
        if name == "select_n":
            return self.select(v[0], v[1:])
        if name in _COMPARE:
            same = eqn.invars[0] is eqn.invars[1] and not isinstance(eqn.invars[0],
                                                                     self._Literal)
            return self.compare(_COMPARE[name], v[0], v[1], same_operand=same)
        if name in ("and", "or", "not"):
            return self.logical(name, *v)
        if name == "is_finite":
            # values of a Map are finite (non-finite ones are refused when evaluated)
            self.array(v[0], "is_finite")
            return np.ones(shape_of(v[0]), bool)
        if name == "integer_pow":
            return self.integer_pow(v[0], p["y"])
        if name == "pow":
            return self.pow(v[0], v[1])
        if name in _SMOOTH:
            return self.smooth(name, v[0])
        if name == "convert_element_type":
            return self._convert(v[0], np.dtype(p["new_dtype"]))
        if name in _IDENTITY:
            return v if eqn.primitive.multiple_results else v[0]
        return _UNHANDLED

    def _structural(self, eqn, name, v, p):
        """Products, reductions, shapes, control flow and jumps (``_UNHANDLED`` otherwise)."""
        if name == "dot_general":
            return self.dot_general(v[0], v[1], *p["dimension_numbers"])
        if name == "reduce_sum":
            return self.sum(v[0], p["axes"])
        if name in ("reduce_max", "reduce_min"):
            return self.reduce_extremum(name[7:], v[0], p["axes"])
        if name == "broadcast_in_dim":
            return self.broadcast_in_dim(v[0], p["shape"], p["broadcast_dimensions"])
        if name == "reshape":
            if p.get("dimensions"):
                raise self.unsupported("reshape with a dimensions permutation")
            return self.reshape(v[0], p["new_sizes"])
        if name in ("squeeze", "expand_dims"):
            return self.reshape(v[0], eqn.outvars[0].aval.shape)
        if name == "transpose":
            return self.transpose(v[0], p["permutation"])
        if name == "slice":
            strides = p["strides"] or (None,) * len(p["start_indices"])
            return self.getitem(v[0], tuple(slice(int(a), int(b), None if s in (None, 1)
                                                  else int(s))
                                            for a, b, s in zip(p["start_indices"],
                                                               p["limit_indices"], strides)))
        if name == "concatenate":
            return self.concatenate(v, p["dimension"])
        if name == "stack":
            axis = int(p["axis"])
            parts = [self.reshape(a, shape_of(a)[:axis] + (1,) + shape_of(a)[axis:]) for a in v]
            return self.concatenate(parts, axis)
        if name == "split":
            axis, start, outs = int(p["axis"]), 0, []
            for size in p["sizes"]:
                index = (slice(None),) * axis + (slice(start, start + int(size)),)
                outs.append(self.getitem(v[0], index))
                start += int(size)
            return outs
        if name in _MOVEMENT:
            return self._movement(eqn, v, _MOVEMENT[name])
        if name == "cumsum":
            return self.cumsum(v[0], int(p["axis"]), bool(p.get("reverse", False)))
        if name == "sort":
            if len(v) != 1:
                raise DiscontinuityError(fail_message(
                    _CALL, f"a sort that carries indices or values along (argsort, "
                    f"sort_key_val, {len(v)} operands) at {quote(self.source)}", "a sorting "
                    "permutation jumps; sort the values alone (jnp.sort(x)), which is Lipschitz"))
            return [self.sort(v[0], int(p["dimension"]))]
        if name in _CONTROL_FLOW:
            return self._control_flow(eqn, name, v)
        if name in _JUMPS:
            raise DiscontinuityError(fail_message(
                _CALL, f"the JAX primitive `{name}` applied to traced values at "
                f"{quote(self.source)}", "it jumps (its value or its index changes "
                "discontinuously); conservative Jacobians exist only for locally Lipschitz maps: "
                "use max/min/abs/relu/clip or where with agreeing branches"))
        return _UNHANDLED

    def _convert(self, value, dtype):
        jnp = self.jax.numpy
        floating = bool(jnp.issubdtype(dtype, jnp.floating))       # bfloat16 included
        if jnp.issubdtype(dtype, jnp.complexfloating):
            raise TracingError(fail_message(
                _CALL, f"a conversion of a traced value to {dtype} at {quote(self.source)}",
                "complex arithmetic has no conservative translation: write the map with real "
                "arrays (real and imaginary parts as separate entries of the state)"))
        if isinstance(value, Condition):
            return Jump("step", value, 1.0, self.source) if floating or dtype.kind in "iu" \
                else value
        if isinstance(value, Jump):
            return value
        if floating:
            return value                      # every value is float64 here
        raise DiscontinuityError(fail_message(
            _CALL, f"a conversion of a traced value to {dtype} at {quote(self.source)}",
            "rounding to integers or booleans jumps; keep the computation in floating point"))

    def _movement(self, eqn, v, data_positions):
        """Gather-like equations: which input element each output element is, computed by JAX."""
        data = [i for i in data_positions if i < len(v)]
        if any(is_symbolic(x) for i, x in enumerate(v) if i not in data):
            raise TracingError(fail_message(
                _CALL, f"`{eqn.primitive.name}` with traced indices at {quote(self.source)}",
                "index with constants (Python ints, slices, NumPy arrays): an index computed "
                "from x selects discontinuously"))

        def apply(labelled):
            args = list(v)
            for i, label in zip(data, labelled):
                args[i] = label
            return np.asarray(eqn.primitive.bind(*args, **eqn.params))

        return self.movement([v[i] for i in data], apply, f"`{eqn.primitive.name}`")

    def _control_flow(self, eqn, name, v):
        if name == "cond" and not is_symbolic(v[0]):
            branch = eqn.params["branches"][int(np.asarray(v[0]))]
            return self.run(branch.jaxpr, branch.consts, v[1:])
        raise TracingError(fail_message(
            _CALL, f"control flow (`{name}`) on traced values at {quote(self.source)}",
            "pass the one-step map: fn(x, theta) should compute one iteration x_{k+1} of the "
            "algorithm, without lax.while_loop / lax.scan / lax.fori_loop / lax.cond on x or "
            "theta; cv.iterate and cv.fixed_point run the loop, and a branch is written with "
            "jnp.where / jnp.maximum so that its kink is recorded"))


def _sub_jaxpr(eqn):
    """``(jaxpr, consts)`` of a call-like equation, or None."""
    p = eqn.params
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = p.get(key)
        if sub is None:
            continue
        if hasattr(sub, "consts") and hasattr(sub, "jaxpr"):
            return sub.jaxpr, sub.consts
        if hasattr(sub, "eqns"):
            return sub, []
    return None


_LOGADDEXP = ("max", "sub", "ne", "add", "abs", "neg", "exp", "log1p", "add", "select_n")


def _is_logaddexp(jaxpr) -> bool:
    """The primal body of ``jnp.logaddexp``: max(a, b) + log1p(exp(-|a - b|)) (NaN guarded)."""
    eqns = jaxpr.eqns
    if tuple(e.primitive.name for e in eqns) != _LOGADDEXP or len(jaxpr.invars) != 2:
        return False
    a, b = jaxpr.invars
    mx, d, nan, plain, ab, ng, ex, lp, total, pick = eqns
    out = lambda eqn: eqn.outvars[0]  # noqa: E731
    return (list(mx.invars) == [a, b] and list(d.invars) == [a, b] and ab.invars[0] is out(d)
            and ng.invars[0] is out(ab) and ex.invars[0] is out(ng) and lp.invars[0] is out(ex)
            and list(total.invars) == [out(mx), out(lp)]
            # the NaN guard: select_n(d != d, total, a + b), and nothing else is returned
            and list(nan.invars) == [out(d), out(d)] and list(plain.invars) == [a, b]
            and list(pick.invars) == [out(nan), out(total), out(plain)]
            and list(jaxpr.outvars) == [out(pick)])
