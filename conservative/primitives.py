"""The primitive registry: one :class:`Primitive` per operation, every rule in one block.

A primitive is an operation the tracer records as one graph node. Its *kind* is its class, and
the class holds what every primitive of that kind does the same way, so that the interpreter
(``conservative.interpreter``) never switches on kinds or names:

:class:`Leaf`
    the program's inputs and constants (read, not computed);
:class:`Smooth`
    elementwise, one smooth piece: ``partials`` and their interval enclosure;
:class:`Nonsmooth`
    elementwise selection functions: affine pieces (``piece_partials``), where each is active
    at a point (``active``, with a tolerance) and on a box (``interval_active``), the
    documented ``default`` and the piece chosen on a kink (``kink_default``);
:class:`Structural`
    linear or smooth non-elementwise operations (matmul, sum, reshape, solve, ...): a ``jvp``,
    its ``transpose`` and an ``interval_jvp``.

Every primitive also has its ``impl`` (batched NumPy, axis 0 is the batch), ``shape_rule``,
``interval`` value rule, ``sympy`` form, printing (``pretty``), the NumPy ufunc names that
dispatch to it (``ufuncs``) and its public spelling in errors (``call``). Rule blocks live in
``conservative/rules/``; a new primitive is written with ``conservative.extend`` (see
``docs/adding_a_primitive.md``). Rule blocks name sympy through :data:`lazy_sympy`, so that
``import conservative`` does not import sympy.

Everything expressible from existing primitives without a new kink is a DSL function
(``conservative.dsl``), not a primitive.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, NamedTuple

import numpy as np

from . import interval as iv
from .errors import DiscontinuityError, InputError, ShapeError, fail_message

__all__ = ["Primitive", "Leaf", "Elementwise", "Smooth", "Nonsmooth", "Structural", "Pieces",
           "PRIMITIVES", "register", "get", "registered", "ufunc_primitive", "lazy_sympy", "infix",
           "use_binder", "combine", "combine_interval", "partials_of_choice",
           "check_branches_agree", "ALL"]


class Pieces(NamedTuple):
    """The smooth pieces of an elementwise nonsmooth primitive at a batch of points.

    Attributes
    ----------
    partials : tuple of tuple of array_like
        ``partials[p][i]`` is the partial derivative of piece ``p`` with respect to input ``i``,
        broadcastable to the output's batched shape.
    active : ndarray of bool, shape (P, *batched_shape)
        ``active[p]`` tells where piece ``p`` is active (its region touches the point, within
        ``tol``). At every element at least one piece is active.
    default : ndarray of int, shape batched_shape
        The documented default selection: the piece whose partials an AD program returns.
    """

    partials: tuple
    active: np.ndarray
    default: np.ndarray


#: "every element": the demand of a node whose whole tangent is needed (a scalar True mask)
ALL = np.True_


def infix(op: str) -> Callable[[list, dict], str]:
    """A printing rule ``(a op b)`` for binary operators (``pretty=infix("+")``)."""
    return lambda args, params: f"({args[0]} {op} {args[1]})"


# Set by ``conservative.dsl`` when it is imported: how ``Primitive.bind`` records a node.
_BINDER: list = []


def use_binder(binder: Callable) -> None:
    """Install the function that applies a primitive to symbolic values (the DSL's ``bind``)."""
    _BINDER[:] = [binder]


@dataclass(frozen=True, eq=False, kw_only=True)
class Primitive:
    """An operation of the DSL, with all its rules (base class of the kinds).

    Attributes
    ----------
    name : str
        Name shown in programs and errors; the key of the registry.
    impl : callable
        ``impl(*values, **params) -> ndarray`` on batched float64 arrays.
    shape_rule : callable
        ``shape_rule(*shapes, **params) -> tuple``.
    interval : callable or None
        ``interval(*intervals, **params) -> Interval``: an enclosure of the value over boxes.
    sympy : callable, "impl" or None
        The sympy form (elementwise: on scalars; structural: ``"impl"`` runs ``impl`` on object
        arrays, or a callable with the impl's signature).
    pretty : callable or None
        ``pretty(args, params) -> str``: how a node prints (default ``name(a, b, k=v)``).
    ufuncs : tuple of str
        Names of the NumPy ufuncs that dispatch to this primitive on symbolic values.
    call : str
        The public spelling named in errors (default ``"cv.<name>"``).
    prepare : callable or None
        ``prepare(consts, **params) -> object``: data computed once per node when the program
        is frozen, from the node's constant inputs (``consts[i]`` is the unbatched value of
        input ``i`` when it is a constant, else None), such as the contiguous transpose of a
        constant matrix. The numeric rules (``impl``, ``jvp``, ``transpose``) then receive it
        as the keyword ``prepared``; interval, sympy and printing rules do not.
    compile : callable or None
        ``compile(prepared, **params) -> callable(*values)``: the value function of one node,
        built once when the program is frozen (default: ``impl`` with the parameters bound);
        for the per-node cost of small calls, e.g. indexing as one ``operator.itemgetter``.
    linear : bool
        The implementation is linear in the inputs and applies to tangents as they are (their
        trailing axis of directions passes through): the tangent of a node whose inputs all
        carry tangents is then its value function on them (add, sub, neg, indexing, sums,
        concatenation). Used by the compiled small calls (``conservative.compiled``).
    doc : str
        What it computes, in plain words.
    """

    name: str
    impl: Callable[..., np.ndarray]
    shape_rule: Callable[..., tuple]
    interval: Callable[..., Any] | None = None
    sympy: Callable[..., Any] | str | None = None
    pretty: Callable[[list, dict], str] | None = None
    ufuncs: tuple = ()
    call: str = ""
    prepare: Callable[..., Any] | None = None
    compile: Callable[..., Callable] | None = None
    linear: bool = False
    doc: str = field(default="", repr=False)

    kind: ClassVar[str] = ""
    smooth: ClassVar[bool] = True
    #: rules a complete block of this kind must give (checked by tests/test_structure.py)
    required: ClassVar[tuple] = ("impl", "shape_rule")
    #: ``prim.pieces is not None`` tells nonsmooth primitives apart (Nonsmooth.pieces)
    pieces = None

    def __post_init__(self):
        if not self.call:
            object.__setattr__(self, "call", f"cv.{self.name}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __reduce__(self):
        # a primitive pickles as its name: unpickling finds the registered block
        return registered, (self.name,)

    def bind(self, *args, **params):
        """Apply the primitive to symbolic (or constant) arguments: a node in the trace."""
        return _BINDER[0](self, *args, call=self.call, **params)

    def show(self, args: list, params: dict) -> str:
        """The printed form of a node with printed arguments ``args``."""
        if self.pretty is not None:
            return self.pretty(args, params)
        extra = [f"{k}={v}" for k, v in params.items()]
        return f"{self.name}({', '.join(list(args) + extra)})"

    # --- what the interpreter asks of every kind (overridden where the kind differs) -------

    def bind_shapes(self, shapes: list, params: dict, call: str):
        """``(input_shapes, output_shape)`` of a node from its arguments' shapes."""
        return list(shapes), self.checked_shape(shapes, params, call)

    def checked_shape(self, shapes, params, call):
        try:
            return tuple(self.shape_rule(*shapes, **params))
        except (ValueError, IndexError, TypeError) as exc:
            raise ShapeError(fail_message(call, "operands of shapes " + ", ".join(map(str, shapes)),
                                          f"fix the shapes ({exc})")) from None

    def linearise(self, vals, out, params, *, tol, with_pieces, possible=None):
        """``(partials, pieces)`` of a node at a point: None for kinds with a tangent rule."""
        return None, None

    def demand(self, need, vals, out, partials, live, params) -> tuple:
        """Which elements of each input's tangent the elements ``need`` of the output's depend
        on (demanded rows, forward mode): ``ALL``, a boolean mask of the input's node shape,
        or None (nothing; also for inputs that are not ``live``). ``need`` is ``ALL`` or a
        mask of the output's node shape. By default an input is needed whole."""
        return tuple(ALL if alive else None for alive in live)

    @property
    def checks_continuity(self) -> bool:
        """True when the pieces are user expressions whose agreement is only checked (where)."""
        return False

    def meets_boundary(self, ivs, tol: float, params: dict) -> bool:
        """Whether a box may meet a boundary whose continuity is only checked (see above)."""
        return False

    def boundary_mask(self, ivs, tol: float, params: dict):
        """The elements where a box may meet such a boundary (bool), or None when there is
        none to meet."""
        return None


@dataclass(frozen=True, eq=False, kw_only=True)
class Leaf(Primitive):
    """The inputs ``x``, ``theta`` and the constants: nodes that are read, never computed."""

    kind: ClassVar[str] = "input"


@dataclass(frozen=True, eq=False, kw_only=True)
class Elementwise(Primitive):
    """Elementwise primitives: inputs broadcast to the output's shape; per-element partials."""

    kind: ClassVar[str] = "elementwise"

    def bind_shapes(self, shapes, params, call):
        try:
            out = np.broadcast_shapes(*shapes)
        except ValueError:
            raise ShapeError(fail_message(call, "operands of shapes " +
                                          ", ".join(str(s) for s in shapes),
                                          "pass operands whose shapes broadcast like NumPy's")
                             ) from None
        return [out] * len(shapes), self.checked_shape([out] * len(shapes), params, call)

    def tangent(self, vals, out, tangents, partials, params, need=ALL):
        """``sum_i d_i t_i``: the chain rule through elementwise partials ``d_i``; only on the
        demanded elements when they are few (the others are left zero: nothing reads them)."""
        idx = _few_needed(need, out, partials, tangents)
        if idx is None:
            return combine(partials, tangents)
        return _combine_on(partials, tangents, idx, out)

    def demand(self, need, vals, out, partials, live, params) -> tuple:
        """An input element is needed where the output's is and its partial is not zero
        (a soft-threshold's tangent needs nothing off its support)."""
        shape = out.shape[1:]
        needs = []
        for alive, d in zip(live, partials):
            if not alive:
                needs.append(None)
            elif not isinstance(d, np.ndarray) or d.ndim == 0:
                needs.append(need if d != 0 else None)
            else:
                nonzero = d[0] != 0 if d.shape[0] == 1 else np.any(d != 0, axis=0)
                if nonzero.shape != shape:
                    nonzero = np.broadcast_to(nonzero, shape)
                needs.append(nonzero if np.ndim(need) == 0 else need & nonzero)
        return tuple(needs)

    def cotangent(self, vals, out, ct, live, partials, params):
        return tuple(ct if type(d) is float and d == 1.0 else ct * d for d in partials)

    def sympy_rule(self, args, params):
        fn = np.frompyfunc(lambda *a: self.sympy(*a, **params), len(args), 1)
        return np.asarray(fn(*np.broadcast_arrays(*args)), dtype=object)


@dataclass(frozen=True, eq=False, kw_only=True)
class Smooth(Elementwise):
    """A smooth elementwise primitive.

    Attributes
    ----------
    partials : callable
        ``partials(values, out, **params) -> tuple``: the partial w.r.t. each input.
    interval_partials : callable
        ``interval_partials(intervals, out, tol, **params) -> tuple``: enclosures of the
        partials over a box (floats or Intervals).
    """

    partials: Callable[..., tuple]
    interval_partials: Callable[..., tuple]

    required: ClassVar[tuple] = ("impl", "shape_rule", "partials", "interval",
                                 "interval_partials", "sympy")

    def linearise(self, vals, out, params, *, tol, with_pieces, possible=None):
        return self.partials(vals, out, **params), None

    def default_tangent(self, vals, out, tangents, params):
        """The output tangent of the default selection (what derivative runs push)."""
        return combine(self.partials(vals, out, **params) if params else
                       self.partials(vals, out), tangents)

    def interval_tangent(self, ivs, out, tangents, tol, params):
        return combine_interval(self.interval_partials(ivs, out, tol, **params), tangents)


@dataclass(frozen=True, eq=False, kw_only=True)
class Nonsmooth(Elementwise):
    """An elementwise selection function: finitely many affine pieces.

    Attributes
    ----------
    piece_partials : tuple
        ``piece_partials[p][i]``: the constant partial of piece ``p`` w.r.t. input ``i``.
    active : callable
        ``active(values, tol, **params) -> tuple`` of boolean arrays, one per piece: where the
        piece is active at the points (its region within ``tol``). At least one everywhere.
    default : callable
        ``default(values, **params) -> int array``: the documented default selection (the
        piece an AD program returns).
    interval_active : callable
        ``interval_active(intervals, tol, **params) -> tuple`` of boolean arrays, one per piece:
        where the piece *may* be active somewhere on the box, decided in interval arithmetic
        (an undecided comparison counts as possible). This is how a result about a point known
        only through an enclosure counts every piece that can be active at the exact point.
    kink_default : callable
        ``kink_default(**params) -> int``: the piece the default takes *on* a kink (relu: the
        zero piece), used when an enclosure of the exact point straddles the kink, so that the
        selection does not depend on which side of it a rounded point fell.
    default_rule : str
        Plain-words statement of the default selection at a kink.
    default_partials : callable or None
        ``default_partials(values, out, **params) -> tuple``: the default's partials computed
        directly (fast; what derivative runs use). None: looked up from ``piece_partials``.
    branches : callable or None
        For pieces that are user expressions (``cv.where``): ``branches(values, **params) ->
        (g, a, b)``, the switching function and the two branches that must agree where
        ``g == 0``. Their continuity is checked where ``g == 0`` is evaluated, sampled at trace
        time, and a box meeting ``g == 0`` is reported (certificates refuse it).
    piece_offsets : tuple or None
        ``piece_offsets[p]``: the constant ``c_p`` with piece ``p`` equal to ``sum_i
        piece_partials[p][i] * input_i + c_p`` exactly (all 0 for relu, abs, max, min, clip and
        soft-threshold: each piece is a signed sum of inputs). None: not declared. The affine
        fixed-point test uses it for elements on a piece whose partials are all zero (their
        value is then exactly ``c_p``, with no interval evaluation).
    """

    piece_partials: tuple
    active: Callable[..., tuple]
    default: Callable[..., np.ndarray]
    interval_active: Callable[..., tuple]
    kink_default: Callable[..., int]
    default_rule: str
    default_partials: Callable[..., tuple] | None = None
    branches: Callable[..., tuple] | None = None
    piece_offsets: tuple | None = None

    smooth: ClassVar[bool] = False
    required: ClassVar[tuple] = ("impl", "shape_rule", "active", "default", "interval",
                                 "interval_active", "kink_default", "sympy")

    def pieces(self, vals, out, tol: float, **params) -> Pieces:
        """The pieces at a batch of points: their partials, activity and the default."""
        if self.branches is not None:
            check_branches_agree(*self.branches(vals, **params))
        active = np.stack(np.broadcast_arrays(*self.active(vals, tol, **params)))
        default = np.asarray(self.default(vals, **params)).astype(np.intp)
        return Pieces(self.piece_partials, active, default)

    def default_tangent(self, vals, out, tangents, params):
        return combine(self.selected_partials(vals, out, params), tangents)

    def selected_partials(self, vals, out, params) -> tuple:
        """The default selection's partials (the direct rule, or looked up per piece)."""
        if self.default_partials is not None:
            return self.default_partials(vals, out, **params)
        table = np.asarray(self.piece_partials, dtype=float)          # (P, inputs)
        choice = np.asarray(self.default(vals, **params)).astype(np.intp)
        return tuple(table[:, i][choice] for i in range(table.shape[1]))

    def linearise(self, vals, out, params, *, tol, with_pieces, possible=None):
        """Partials of the default selection, and the pieces when asked for.

        ``possible`` (boolean (P, *shape), batch of one) counts every piece that may be active
        on a box around the point as active, and where two or more may be the default becomes
        the choice made on the kink.
        """
        if not with_pieces and possible is None:
            return self.selected_partials(vals, out, params), None
        pc = self.pieces(vals, out, tol, **params)
        if possible is not None:
            possible = np.asarray(possible)[:, None]        # (P, 1, *shape)
            on_kink = possible.sum(axis=0) >= 2
            kink = self.kink_default(**params)
            default = np.where(on_kink & possible[kink], kink, pc.default).astype(np.intp)
            pc = Pieces(pc.partials, pc.active | possible, default)
        return partials_of_choice(pc, pc.default, len(vals)), (pc if with_pieces else None)

    def interval_partials(self, ivs, out, tol, **params) -> tuple:
        """Per input, the interval hull of the partials of the pieces that may be active."""
        possible = np.stack(np.broadcast_arrays(*self.interval_active(ivs, tol, **params)))
        hull = []
        for i in range(len(self.piece_partials[0])):
            c = np.array([float(p[i]) for p in self.piece_partials])
            c = c.reshape((-1,) + (1,) * (possible.ndim - 1))
            hull.append(iv.Interval(np.min(np.where(possible, c, np.inf), axis=0),
                                    np.max(np.where(possible, c, -np.inf), axis=0)))
        return tuple(hull)

    def interval_tangent(self, ivs, out, tangents, tol, params):
        """The hull, over the pieces that may be active on the box, of each piece's tangent.

        Tighter than combining the hulls of the partials input by input (which lets the pieces
        mix: for ``where(g > 0, 9 d, d)`` the tangent is in ``[1, 9] dd``, not ``[0, 10] dd``),
        and as sound: at each point the output tangent is one piece's tangent.
        """
        lo = hi = None
        for coeffs, mask in zip(self.piece_partials, self.interval_active(ivs, tol, **params)):
            if not np.any(mask):
                continue
            t = combine_interval(coeffs, tangents)
            if t is None:
                t = iv.Interval(np.zeros(()))
            mask = np.asarray(mask)[..., None]
            t_lo, t_hi = np.where(mask, t.lo, np.inf), np.where(mask, t.hi, -np.inf)
            lo = t_lo if lo is None else np.minimum(lo, t_lo)
            hi = t_hi if hi is None else np.maximum(hi, t_hi)
        return iv.Interval(lo, hi)

    @property
    def checks_continuity(self) -> bool:
        return self.branches is not None

    def meets_boundary(self, ivs, tol, params) -> bool:
        mask = self.boundary_mask(ivs, tol, params)
        return mask is not None and bool(np.any(mask))

    def boundary_mask(self, ivs, tol, params):
        """The elements whose switching function may vanish on the box (bool, broadcast to
        the switching function's shape), or None when the pieces are not user expressions."""
        if self.branches is None:
            return None
        g = self.branches(ivs, **params)[0]
        return (g.lo <= tol) & (g.hi >= -tol)


@dataclass(frozen=True, eq=False, kw_only=True)
class Structural(Primitive):
    """A linear or smooth non-elementwise primitive (shapes, indexing, sums, matmul, solve).

    Attributes
    ----------
    jvp : callable
        ``jvp(values, out, tangents, **params) -> tangent``; tangents carry a trailing axis of
        directions and may be None (zero).
    transpose : callable or None
        ``transpose(values, out, cotangent, live, **params) -> tuple`` of input cotangents (the
        transpose of ``jvp``, for reverse mode). ``live[i]`` tells whether input ``i`` depends
        on the program's inputs (else its cotangent may be None). Cotangents have the batched
        value shapes ``(B, *shape)``.
    interval_jvp : callable or None
        ``interval_jvp(intervals, out, tangents, **params) -> Interval``: the tangent map on
        interval tangents (trailing axis of directions).
    needs : callable or None
        ``needs(need, values, live, **params) -> tuple``: for a mask ``need`` of the output's
        elements, which elements of each input the JVP reads (see :meth:`Primitive.demand`;
        None: every element of every live input).
    jvp_uses_need : bool
        The ``jvp`` takes the keyword ``need`` (a mask of the output's node shape, or ``ALL``)
        and may leave the elements not asked for zero: matmul computes only the demanded rows
        of ``X^T (X J)``.
    """

    jvp: Callable[..., Any]
    transpose: Callable[..., Any] | None = None
    interval_jvp: Callable[..., Any] | None = None
    needs: Callable[..., tuple] | None = None
    jvp_uses_need: bool = False

    kind: ClassVar[str] = "structural"
    required: ClassVar[tuple] = ("impl", "shape_rule", "jvp", "transpose", "interval",
                                 "interval_jvp", "sympy")

    def default_tangent(self, vals, out, tangents, params):
        return self.jvp(vals, out, tangents, **params)

    def tangent(self, vals, out, tangents, partials, params, need=ALL):
        if self.jvp_uses_need:
            return self.jvp(vals, out, tangents, need=need, **params)
        return self.jvp(vals, out, tangents, **params)

    def demand(self, need, vals, out, partials, live, params) -> tuple:
        if self.needs is None or np.ndim(need) == 0:
            return super().demand(need, vals, out, partials, live, params)
        params = {k: v for k, v in params.items() if k != "prepared"}
        return tuple(m if alive else None
                     for alive, m in zip(live, self.needs(need, vals, live, **params)))

    def cotangent(self, vals, out, ct, live, partials, params):
        if self.transpose is None:
            raise NotImplementedError(f"reverse mode is not available through `{self.name}` "
                                      "(no transpose rule); use forward mode")
        return self.transpose(vals, out, ct, live, **params)

    def interval_tangent(self, ivs, out, tangents, tol, params):
        return self.interval_jvp(ivs, out, tangents, **params)

    def sympy_rule(self, args, params):
        # NumPy implementations run on object arrays, unless the block has its own sympy rule
        # (matrix functions, linear solves)
        rule = self.sympy if callable(self.sympy) else self.impl
        return np.asarray(rule(*args, **params), dtype=object)


# --- the chain rule through elementwise partials --------------------------------------------

def combine(partials, tangents):
    """``sum_i d_i * t_i`` for elementwise partials; scalar 0 and ±1 cost no multiplication."""
    acc, own = None, False                      # own: acc is a fresh array, safe to update
    for d, t in zip(partials, tangents):
        if t is None:
            continue
        if type(d) is float or d.ndim == 0:     # a Python float or a 0-d array
            if d == 0.0:
                continue
            if d == 1.0 or d == -1.0:
                if acc is None:
                    acc, own = (t, False) if d == 1.0 else (-t, True)
                else:
                    acc, own = _accumulate(acc, own, t, d == 1.0)
                continue
            term = t * d
        else:
            term = t * d[..., None]
        if acc is None:
            acc, own = term, True
        else:
            acc, own = _accumulate(acc, own, term, True)
    return acc


def _few_needed(need, out, partials, tangents):
    """The elements of a large 1-D node whose tangent can be non-zero and is demanded (some
    partial with a tangent is non-zero there), when at most half are; else None."""
    if out.ndim != 2 or out.shape[1] < 64 or (np.ndim(need) and need.shape != out.shape[1:]):
        return None
    if max((t.shape[-1] for t in tangents if t is not None), default=0) < 16:
        return None                                # a narrow tangent: the plain rule is cheaper
    mask = need if np.ndim(need) else None
    nonzero = np.zeros(out.shape[1:], dtype=bool)
    for d, t in zip(partials, tangents):
        if t is None or ((type(d) is float or np.ndim(d) == 0) and d == 0.0):
            continue
        if type(d) is float or np.ndim(d) != out.ndim:
            nonzero = None                         # a scalar (or unusual) partial: anywhere
            break
        nonzero |= np.any(np.broadcast_to(d, d.shape[:1] + out.shape[1:]) != 0, axis=0)
    if nonzero is not None:
        mask = nonzero if mask is None else mask & nonzero
    if mask is None:
        return None
    idx = np.flatnonzero(mask)
    return idx if 2 * len(idx) <= out.shape[1] else None


def _combine_on(partials, tangents, idx, out):
    """:func:`combine` on the elements ``idx`` of a 1-D node, scattered into zeros."""
    if any(not (type(d) is float or np.ndim(d) == 0 or np.ndim(d) == out.ndim)
           for d in partials) or any(t is not None and t.ndim != 3 for t in tangents):
        return combine(partials, tangents)           # an unusual layout: the plain rule
    part = combine(tuple(d if type(d) is float or np.ndim(d) == 0 else
                         np.broadcast_to(d, d.shape[:1] + out.shape[1:])[:, idx]
                         for d in partials),
                   [None if t is None else t[:, idx] for t in tangents])
    if part is None:
        return None
    full = np.zeros(part.shape[:1] + out.shape[1:] + part.shape[2:], dtype=part.dtype)
    full[:, idx] = part
    return full


def _accumulate(acc, own, term, plus):
    """``acc + term`` (or ``- term``), in place when acc is a fresh array of the result's shape
    and dtype (one n x T temporary less per term of a wide tangent)."""
    if own and acc.shape == np.broadcast_shapes(acc.shape, term.shape) and \
            acc.dtype == np.result_type(acc, term):
        if plus:
            acc += term
        else:
            acc -= term
        return acc, True
    return (acc + term if plus else acc - term), True


def partials_of_choice(pieces: Pieces, choice: np.ndarray, n_inputs: int) -> tuple:
    """Partials of the piece ``choice`` (an int array over the batched shape) per input."""
    out = []
    for i in range(n_inputs):
        stacked = np.stack(np.broadcast_arrays(*[np.asarray(p[i], dtype=float)
                                                 for p in pieces.partials], choice))[:-1]
        out.append(np.take_along_axis(stacked, choice[None].astype(np.intp), axis=0)[0])
    return tuple(out)


def combine_interval(partials, tangents):
    """Enclose ``sum_i d_i * t_i`` (interval or float partials ``d_i``; None tangents are 0)."""
    acc = None
    for di, t in zip(partials, tangents):
        if t is None or (not isinstance(di, iv.Interval) and di == 0.0):
            continue
        term = _scale(di, t)
        acc = term if acc is None else iv.add(acc, term)
    return acc


def _scale(d, t: iv.Interval) -> iv.Interval:
    """Enclose ``d * t`` for a partial ``d`` (float or Interval) and a tangent ``t`` (…, T).

    Partials whose endpoints are all -1, 0 or 1 (sums, differences, the piece hulls of
    relu / abs / soft-threshold / clip / where) multiply exactly in floating point, so the
    four endpoint products need no directed rounding.
    """
    if not isinstance(d, iv.Interval):
        if d == 1.0:
            return t
        if d == -1.0:
            return -t
        return _point_scale(np.asarray(d, dtype=float), t)
    d = d.reshape(d.shape + (1,))
    ends = np.concatenate([d.lo.ravel(), d.hi.ravel()])
    if np.all((ends == 0.0) | (ends == 1.0) | (ends == -1.0)):
        products = (d.lo * t.lo, d.lo * t.hi, d.hi * t.lo, d.hi * t.hi)
        return iv.Interval(np.minimum.reduce(products), np.maximum.reduce(products))
    if np.array_equal(d.lo, d.hi):
        return _point_scale(d.lo, t)
    return iv.multiply(d, t)


def _point_scale(d: np.ndarray, t: iv.Interval) -> iv.Interval:
    """Enclose ``d * t`` for exact reals ``d``: one rounded product per endpoint, then one
    step outward (a round-to-nearest product errs by at most half an ulp, and by less than the
    smallest subnormal when it underflows)."""
    with np.errstate(invalid="ignore"):
        a, b = d * t.lo, d * t.hi
    zero = d == 0                                   # 0 * inf is 0 here, not NaN
    a, b = np.where(zero, 0.0, a), np.where(zero, 0.0, b)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    bad = np.isnan(lo) | np.isnan(hi)              # none for finite d (0 * inf was set to 0)
    return iv.Interval._new(np.where(bad, -np.inf, np.nextafter(lo, -np.inf)),
                            np.where(bad, np.inf, np.nextafter(hi, np.inf)))


# --- continuity of user-defined branches ------------------------------------------------------

_CONTINUITY_RTOL = 1e-8
_CONTINUITY_ATOL = 1e-12


def check_branches_agree(g, a, b):
    """Raise DiscontinuityError where ``g == 0`` but the branches ``a`` and ``b`` differ."""
    a, b = np.broadcast_arrays(a, b)
    on_boundary = np.broadcast_to(g == 0, np.broadcast_shapes(np.shape(g), a.shape))
    gap = np.abs(a - b)
    bad = on_boundary & (gap > _CONTINUITY_ATOL + _CONTINUITY_RTOL * np.maximum(np.abs(a),
                                                                               np.abs(b)))
    if np.any(bad):
        i = np.argwhere(bad)[0]
        raise DiscontinuityError(
            f"cv.where: the two branches differ on the boundary of the condition (at element "
            f"{tuple(int(k) for k in i[1:])}: a = {a[tuple(i)]:.6g}, b = {b[tuple(i)]:.6g}); a "
            "conservative Jacobian exists only for continuous piecewise maps: make the branches "
            "agree where the condition switches, or use cv.maximum / cv.minimum / cv.relu")


# --- the registry -----------------------------------------------------------------------------

PRIMITIVES: dict[str, Primitive] = {}
_BY_UFUNC: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    """Add ``prim`` to the registry (import-time only) and return it.

    Raises
    ------
    InputError
        When a primitive of that name is registered already (names are how programs pickle).
    """
    if prim.name in PRIMITIVES:
        raise InputError(fail_message("register", f"a second primitive named {prim.name!r}",
                                        "give the new primitive a name of its own"))
    PRIMITIVES[prim.name] = prim
    for ufunc in prim.ufuncs:
        _BY_UFUNC[ufunc] = prim
    return prim


def ufunc_primitive(name: str) -> Primitive | None:
    """The primitive that a NumPy ufunc of this name dispatches to on symbolic values."""
    return _BY_UFUNC.get(name)


def get(name: str) -> Primitive:
    """Return the registered primitive called ``name``."""
    return PRIMITIVES[name]


def registered(name: str) -> Primitive:
    """The registered primitive called ``name``, for unpickling (an error says what to do).

    Raises
    ------
    InputError
        When no primitive of that name is registered in this process (a primitive defined
        outside the package: import the module that defines it before unpickling).
    """
    prim = PRIMITIVES.get(name)
    if prim is None:
        raise InputError(fail_message(
            "pickle.loads (a cv.Map)", f"a program using the primitive {name!r}, which is not "
            "registered in this process", "import the module that defines it (with "
            "conservative.extend) before unpickling, in every worker process"))
    return prim


class _SympyName:
    """Stands for ``sympy.<name>`` until it is called; the call imports sympy."""

    __slots__ = ("name", "_target")

    def __init__(self, name: str):
        self.name = name
        self._target = None

    def __call__(self, *args, **kwargs):
        if self._target is None:
            self._target = getattr(importlib.import_module("sympy"), self.name)
        return self._target(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<sympy.{self.name}, imported on first call>"


class _LazySympy:
    """The ``sympy`` module for rule blocks, imported on first use.

    Importing sympy takes longer than importing the rest of the package, and only the sympy
    export (:mod:`conservative.symbolic`) needs it. A rule block writes
    ``from ..primitives import lazy_sympy as sympy`` and uses ``sympy.Abs``, ``sympy.Max``, ...
    as usual: once sympy is imported they are sympy's own objects; before that (when the block
    registers ``sympy=sympy.Abs`` at import time) a stand-in that imports sympy when called.

    Examples
    --------
    >>> from conservative.primitives import lazy_sympy
    >>> lazy_sympy.Max(1, 2)
    2
    """

    def __getattr__(self, name: str):
        module = sys.modules.get("sympy")
        if module is not None:
            return getattr(module, name)
        if name.startswith("__"):        # copy, pickle and introspection probes
            raise AttributeError(name)
        return _SympyName(name)

    def __repr__(self) -> str:
        return "<sympy, imported on first use>"


lazy_sympy = _LazySympy()
