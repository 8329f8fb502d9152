"""Translation helpers shared by the JAX and PyTorch importers.

An importer walks a foreign program (a jaxpr, a torch.export graph) operation by operation and
rebuilds it with the DSL inside :func:`conservative.trace`. The values it passes around are

``Sym``
    a symbolic float64 array (depends on ``x`` or ``theta``);
``numpy.ndarray``
    a constant of any dtype (weights, literals, integer index arrays, boolean masks);
``Condition``
    the result of comparing symbolic values (``x > 0``): usable only to select between branches;
:class:`Jump`
    a discontinuous factor, ``sign(z)`` or the 0/1 indicator of a condition: usable only when
    multiplied by a value that vanishes where it jumps (``sign(z) * relu(|z| - t)`` is the
    soft-threshold; ``(x > 0) * x`` is a ReLU).

:class:`Translator` holds the operations that both importers need, each written with DSL
primitives so that every kink of the foreign program stays one kink node: ``max(x, 0)`` becomes
``cv.relu``, ``max(u, a u)`` one ``cv.maximum``, ``sign(z) * relu(|z| - t)`` one
``cv.soft_threshold``. Smooth functions missing from the DSL are smooth compositions (no new
kinks): ``log1p(u) = log(1 + u)``, ``softplus(u) = -log(sigmoid(-u))``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import dsl
from ..dsl import Condition, Sym
from ..errors import DiscontinuityError, ShapeError, TracingError, fail_message
from ..graph import source_line
from ..primitives import PRIMITIVES

__all__ = ["Jump", "Translator", "is_symbolic", "shape_of", "quote", "definition_source"]


def shape_of(value) -> tuple:
    """The shape of a Sym or of a constant."""
    return value.shape if isinstance(value, Sym) else np.shape(value)


def is_symbolic(value) -> bool:
    """True for values that depend on the inputs (Sym, Condition, Jump)."""
    return isinstance(value, (Sym, Condition, Jump))


def quote(source: str) -> str:
    """``file:line`` followed by the text of that line, when it can be read."""
    text = source_line(source) if source else ""
    return f"{source}: `{text}`" if text else (source or "<unknown>")


def definition_source(obj) -> str | None:
    """``file:line`` of the definition of a function or of a module's ``forward``."""
    target = getattr(obj, "forward", obj)
    try:
        target = inspect.unwrap(target)
        path = inspect.getsourcefile(target)
        line = inspect.getsourcelines(target)[1]
    except (TypeError, OSError):
        return None
    return f"{path}:{line}" if path else None


@dataclass(frozen=True, eq=False)
class Jump:
    """A discontinuous factor times a pending product: ``scale * factor * sign(arg)`` or
    ``scale * factor * indicator(cond)``.

    Products with constants and symbolic values are collected first (``t * sign(x) * x`` is
    ``t |x|`` whatever the order of the factors); when the value is used otherwise it becomes
    ``where(arg > 0, scale factor, -scale factor)`` (sign) or ``where(cond, scale factor, 0)``
    (indicator), a continuous map exactly when ``factor`` vanishes on the boundary, which
    ``cv.where`` checks. With no symbolic factor yet (``factor is None``) any use is a jump,
    refused.
    """

    kind: str                   # "sign", "step" or "index"
    arg: Any                    # Sym (sign, index: the array it indexes) or Condition (step)
    scale: Any                  # a constant
    source: str
    factor: Any = None          # None or the Sym product of the symbolic factors so far

    def times(self, scale=1.0, factor=None) -> "Jump":
        """This jump with ``scale`` and ``factor`` multiplied in."""
        return Jump(self.kind, self.arg, self.scale * scale, self.source,
                    self.factor if factor is None else
                    (factor if self.factor is None else self.factor * factor))


class Translator:
    """DSL versions of the operations of foreign programs.

    Parameters
    ----------
    call : str
        The public call, for error messages (``"cv.from_jax"``).
    """

    def __init__(self, call: str):
        self.call = call
        # how some symbolic values were made, keyed by their node: recognises sign * relu(|z| - t)
        self._abs_of: dict[int, Sym] = {}
        self._sub_of: dict[int, tuple] = {}
        self._relu_of: dict[int, Any] = {}
        # each pending sign / indicator product becomes one cv.where, however often it is used
        self._resolved: dict[tuple, tuple] = {}
        self.source = ""

    # --- checks ---------------------------------------------------------------------------------

    def array(self, value, what: str):
        """``value`` as a Sym or float constant; refuse conditions and jumps used as numbers
        (a jump with a symbolic factor becomes its continuous selection, checked)."""
        if isinstance(value, Jump):
            if value.factor is None or value.kind == "index":
                raise self.jump_error(value, what)
            return self._resolve(value)
        if isinstance(value, Condition):
            raise DiscontinuityError(fail_message(
                self.call, f"the comparison `{value!r}` used as a number in {what} at "
                f"{quote(self.source)}", "a 0/1 indicator jumps on the boundary of its "
                "condition; select between branches instead (jnp.where / torch.where), or "
                "multiply the indicator by a value that vanishes on the boundary"))
        if isinstance(value, Sym):
            return value
        arr = np.asarray(value)
        return arr.astype(np.float64) if arr.dtype.kind in "biuf" else arr

    def jump_error(self, jump: Jump, what: str) -> DiscontinuityError:
        name = {"sign": "sign", "step": "0/1 indicator",
                "index": "sorting permutation (indices of a sort)"}[jump.kind]
        return DiscontinuityError(fail_message(
            self.call, f"the discontinuous {name} made at {quote(jump.source)} used in {what} "
            f"at {quote(self.source)}", "conservative Jacobians exist only for locally "
            "Lipschitz maps; a sign or indicator is accepted only as a factor of a value that "
            "vanishes where it jumps (sign(z) * relu(|z| - t) is the soft-threshold); use "
            "cv.soft_threshold-like forms, abs, relu or where with agreeing branches"))

    def unsupported(self, name: str, todo: str = "") -> TracingError:
        todo = todo or ("write this step with supported operations (arithmetic, matmul, "
                        "max/min/abs/relu/clip/where, smooth functions, reshapes and indexing), "
                        "or write the map with the DSL and cv.trace")
        return TracingError(fail_message(self.call, f"the operation `{name}` at "
                                         f"{quote(self.source)}, which has no conservative "
                                         "translation", todo))

    # --- arithmetic -----------------------------------------------------------------------------

    def add(self, a, b):
        a, b = self.array(a, "an addition"), self.array(b, "an addition")
        out = self._neutral(a, b, 0.0)
        out = self._neutral(b, a, 0.0) if out is None else out
        return a + b if out is None else out

    def _neutral(self, a, b, unit: float):
        """``a`` broadcast to the result when the constant ``b`` is ``unit`` everywhere."""
        if isinstance(b, Sym) or not isinstance(a, Sym) or not np.all(b == unit):
            return None
        return self.broadcast_to(a, np.broadcast_shapes(a.shape, np.shape(b)))

    def sub(self, a, b):
        a, b = self.array(a, "a subtraction"), self.array(b, "a subtraction")
        out = self._neutral(a, b, 0.0)
        out = a - b if out is None else out
        if isinstance(out, Sym):
            self._sub_of[out.node] = (a, b)
        return out

    def neg(self, a):
        if isinstance(a, Jump):
            return a.times(-1.0)
        return -self.array(a, "a negation")

    def mul(self, a, b):
        if isinstance(a, Condition):
            a = Jump("step", a, 1.0, self.source)
        if isinstance(b, Condition):
            b = Jump("step", b, 1.0, self.source)
        if isinstance(a, Jump) and isinstance(b, Jump):
            if a.factor is None and b.factor is None:
                raise self.jump_error(a, "a product of two discontinuous factors")
            if a.factor is not None:
                a = self.array(a, "a product")
            else:
                b = self.array(b, "a product")
        if isinstance(b, Jump) and not isinstance(a, Jump):
            a, b = b, a
        if isinstance(a, Jump):
            if a.kind == "index":
                raise self.jump_error(a, "a product")
            if not isinstance(b, Sym):
                b = np.asarray(b, dtype=np.float64)
                if not np.any(b):                      # 0 * sign(z): zero everywhere
                    arg = a.arg.g if a.kind == "step" else a.arg
                    shapes = [shape_of(arg), b.shape] + ([a.factor.shape] if a.factor is not
                                                         None else [])
                    return np.zeros(np.broadcast_shapes(*shapes))
                return a.times(b)
            t = self._soft_threshold_of(a.arg, b) if a.kind == "sign" else None
            if t is not None:                          # sign(z) * relu(|z| - t)
                out = dsl.soft_threshold(a.arg, t)
                out = out if a.factor is None else out * a.factor
                return out if _is_one(a.scale) else out * a.scale
            return a.times(factor=b)
        a, b = self.array(a, "a product"), self.array(b, "a product")
        out = self._neutral(a, b, 1.0)
        out = self._neutral(b, a, 1.0) if out is None else out
        return a * b if out is None else out

    def div(self, a, b):
        if isinstance(a, Jump) and not is_symbolic(b):
            return a.times(1.0 / np.asarray(b, dtype=np.float64))
        return self.array(a, "a division") / self.array(b, "a division")

    def _resolve(self, jump: Jump):
        """``scale * factor * sign(z)`` as ``where(z > 0, g, -g)`` with ``g = scale * factor``
        (an indicator: ``where(cond, g, 0)``); cv.where checks that ``g`` vanishes where the
        selection switches, i.e. that the product is continuous."""
        # one selection per (jump, factor): s and 2 s of the same s = sign(x) x share their node
        key = (jump.kind, id(jump.arg), id(jump.factor))
        cached = self._resolved.get(key)
        if cached is None:
            g = jump.factor
            base = dsl.where(jump.arg > 0, g, -g) if jump.kind == "sign" else \
                dsl.where(jump.arg, g, 0.0 * g)
            cached = self._resolved[key] = (jump.arg, g, base)   # kept: the ids stay unique
        base = cached[2]
        return base if _is_one(jump.scale) else base * jump.scale

    def _soft_threshold_of(self, z: Sym, g: Sym):
        """``t`` when ``g`` is ``relu(abs(z) - t)`` (the form of jaxopt's prox_lasso)."""
        inner = self._relu_of.get(g.node)
        if not isinstance(inner, Sym) or inner.node not in self._sub_of:
            return None
        a, t = self._sub_of[inner.node]
        base = self._abs_of.get(a.node) if isinstance(a, Sym) else None
        if base is None or base.node != z.node:
            return None
        if isinstance(t, Sym) and t.shape != z.shape and t.shape != ():
            return None
        return t

    def pow(self, a, b):
        a = self.array(a, "a power")
        if isinstance(b, Sym) or np.ndim(b) != 0:
            return a ** self.array(b, "a power")
        return self.integer_pow(a, float(b))

    def integer_pow(self, a, y: float):
        a = self.array(a, "a power")
        if y == 1:
            return a
        if y == 0:
            return 0.0 * a + 1.0
        if y == 2:
            return dsl.square(a)
        return a ** float(y)

    # --- smooth functions (compositions without new kinks) --------------------------------------

    def smooth(self, name: str, a):
        a = self.array(a, name)
        if name in _DSL_SMOOTH:
            return getattr(dsl, _DSL_SMOOTH[name])(a)
        if name == "log1p":
            return dsl.log(1.0 + a)
        if name == "expm1":
            return dsl.exp(a) - 1.0
        if name == "rsqrt":
            return a ** -0.5
        if name == "exp2":
            return dsl.exp(a * math.log(2.0))
        if name == "tan":
            return dsl.sin(a) / dsl.cos(a)
        raise self.unsupported(name)

    def softplus(self, a, beta: float = 1.0):
        """``log(1 + exp(beta a)) / beta`` as ``-log(sigmoid(-beta a)) / beta`` (smooth).

        cv.sigmoid is evaluated without overflow, so the value is accurate wherever
        ``beta a < 745``; beyond, sigmoid underflows and the map reports a non-finite value.
        """
        a = self.array(a, "softplus")
        u = a if beta == 1.0 else beta * a
        out = -dsl.log(dsl.sigmoid(-u))
        return out if beta == 1.0 else out / beta

    def logaddexp(self, a, b):
        """``log(exp(a) + exp(b)) = b + softplus(a - b)``, smooth."""
        a, b = self.array(a, "logaddexp"), self.array(b, "logaddexp")
        sp = self.softplus(a - b)
        if not isinstance(b, Sym) and not np.any(b):
            return sp
        return b + sp

    def leaky_relu(self, a, slope: float):
        """``a`` for ``a >= 0``, ``slope a`` below: one kink node, set {1, slope} at 0."""
        a = self.array(a, "leaky_relu")
        if 0.0 <= slope <= 1.0:
            return dsl.maximum(a, slope * a)
        if slope > 1.0:
            return dsl.minimum(a, slope * a)
        return dsl.where(a >= 0, a, slope * a)

    # --- nonsmooth ------------------------------------------------------------------------------

    def maximum(self, a, b):
        a, b = self.array(a, "max"), self.array(b, "max")
        out = self._infinite_bound(a, b, -np.inf, self.maximum)
        if out is not None:
            return out
        for u, v in ((a, b), (b, a)):
            if isinstance(u, Sym) and not isinstance(v, Sym) and not np.any(v) \
                    and np.broadcast_shapes(u.shape, shape_of(v)) == u.shape:
                return self.relu(u)
        return dsl.maximum(a, b)

    def minimum(self, a, b):
        a, b = self.array(a, "min"), self.array(b, "min")
        out = self._infinite_bound(a, b, np.inf, self.minimum)
        return dsl.minimum(a, b) if out is None else out

    def _infinite_bound(self, a, b, neutral: float, op):
        """``max(u, -inf) = u`` (``min(u, inf) = u``) where a constant operand is that infinity.

        JAX writes ``max(-inf, reduce_max(x))`` in softmax and logsumexp, and ``jnp.clip`` /
        ``torch.clamp`` take infinite bounds. Values of a Map are finite, so those entries are
        the other operand, without a kink; the finite entries keep their max / min node. None
        when no constant operand holds ``neutral``.
        """
        for u, v in ((a, b), (b, a)):
            if not isinstance(u, Sym) or isinstance(v, Sym):
                continue
            v = np.asarray(v, dtype=np.float64)
            free = v == neutral
            if not np.any(free) or np.any(np.isnan(v)) or np.any(v == -neutral):
                return None                   # NaN or the absorbing infinity: refused later
            shape = np.broadcast_shapes(u.shape, v.shape)
            u = self.broadcast_to(u, shape)
            if np.all(free):
                return u
            free = np.broadcast_to(free, shape).reshape(-1)
            flat = self.reshape(u, (free.size,))
            kept = np.flatnonzero(~free)
            bounded = op(flat[kept], np.broadcast_to(v, shape).reshape(-1)[kept])
            order = np.empty(free.size, dtype=np.intp)
            order[kept] = np.arange(kept.size)
            order[np.flatnonzero(free)] = kept.size + np.flatnonzero(free)
            joined = dsl.concatenate([bounded, flat])
            return self.reshape(joined[order], shape)
        return None

    def relu(self, a):
        a = self.array(a, "relu")
        out = dsl.relu(a)
        self._relu_of[out.node] = a
        return out

    def abs(self, a):
        if isinstance(a, Jump) and a.factor is None:     # |sign(z)| jumps at 0 as well
            raise self.jump_error(a, "an absolute value")
        a = self.array(a, "abs")
        out = dsl.abs(a)
        self._abs_of[out.node] = a
        return out

    def sign(self, a):
        return Jump("sign", self.array(a, "sign"), 1.0, self.source)

    def clip(self, a, lo, hi):
        a = self.array(a, "clip")
        if lo is None and hi is None:
            return a
        if hi is None:
            return self.maximum(a, lo)
        if lo is None:
            return self.minimum(a, hi)
        lo, hi = self.array(lo, "clip"), self.array(hi, "clip")
        constant = not isinstance(lo, Sym) and not isinstance(hi, Sym)
        if constant and (np.any(lo > hi) or not np.all(np.isfinite(lo))
                         or not np.all(np.isfinite(hi))):
            # min(max(a, lo), hi) with lo > hi is the constant hi there: keep the foreign order;
            # infinite bounds drop out of max / min (the set is the same as clip's)
            return self.minimum(self.maximum(a, lo), hi)
        return dsl.clip(a, lo, hi)

    def cumsum(self, a, axis: int, reverse: bool = False):
        """Cumulative sum along ``axis``: a product with a triangular matrix of ones."""
        a = self.array(a, "a cumulative sum")
        shape = shape_of(a)
        axis %= max(len(shape), 1)
        n = shape[axis]
        ones = np.triu(np.ones((n, n))) if not reverse else np.tril(np.ones((n, n)))
        order = tuple(i for i in range(len(shape)) if i != axis) + (axis,)
        moved = self.transpose(a, order)
        out = self.matmul(moved, ones) if isinstance(moved, Sym) else np.asarray(moved) @ ones
        return self.transpose(out, tuple(int(i) for i in np.argsort(order)))

    def sort(self, a, axis: int):
        """Values sorted ascending along ``axis``, by odd-even transposition: ``n`` rounds of
        ``minimum`` / ``maximum`` on neighbouring pairs. Sorting is Lipschitz; at ties each
        comparison keeps both choices, so every sorting permutation is in the set."""
        a = self.array(a, "a sort")
        shape = shape_of(a)
        axis %= max(len(shape), 1)
        if not isinstance(a, Sym):
            return np.sort(a, axis=axis)
        n = shape[axis]
        order = tuple(i for i in range(len(shape)) if i != axis) + (axis,)
        rows = self.reshape(self.transpose(a, order), (-1, n) if len(shape) > 1 else (1, n))
        rows = self.reshape(rows, (int(np.prod(shape, dtype=np.int64)) // max(n, 1), n))
        for r in range(n):
            first = r % 2
            pairs = (n - first) // 2
            if pairs == 0:
                continue
            left = rows[:, first:first + 2 * pairs:2]
            right = rows[:, first + 1:first + 2 * pairs:2]
            low, high = dsl.minimum(left, right), dsl.maximum(left, right)
            # new column j: the pair's low / high where j is in a pair, the old column elsewhere
            index = np.arange(n) + 2 * pairs
            index[first:first + 2 * pairs:2] = np.arange(pairs)
            index[first + 1:first + 2 * pairs:2] = pairs + np.arange(pairs)
            rows = dsl.concatenate([low, high, rows], axis=1)[:, index]
        inverse = np.argsort(order)
        moved = tuple(shape[i] for i in order)
        return self.transpose(self.reshape(rows, moved), tuple(int(i) for i in inverse))

    # --- conditions -----------------------------------------------------------------------------

    def compare(self, op: str, a, b, same_operand: bool = False):
        """``a op b`` for op in > >= < <= == !=; constants compare with NumPy."""
        a = self.array(a, "a comparison") if isinstance(a, Jump) else a
        b = self.array(b, "a comparison") if isinstance(b, Jump) else b
        if not isinstance(a, Sym) and not isinstance(b, Sym):
            a, b = np.asarray(a), np.asarray(b)
            return {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
                    "==": np.equal, "!=": np.not_equal}[op](a, b)
        decided = self._compare_with_non_finite(op, a, b)
        if decided is not None:
            return decided
        if op in ("==", "!="):
            if same_operand:
                # x != x is the NaN test, x == x its negation: values here are finite
                shape = a.shape if isinstance(a, Sym) else b.shape
                return np.full(shape, op == "==")
            raise TracingError(fail_message(
                self.call, f"an equality test (`{op}`) of traced values at {quote(self.source)}",
                "equality holds on a set of measure zero and makes a discontinuous branch; "
                "compare with >, >=, <, <= (the branches must then agree on the boundary)"))
        a, b = self.array(a, "a comparison"), self.array(b, "a comparison")
        if isinstance(a, Sym) and op in (">", ">=") and self._neutral(a, b, 0.0) is not None:
            return Condition(self._neutral(a, b, 0.0), strict=(op == ">"))   # x > 0 as is
        if isinstance(a, Sym):
            return {">": a.__gt__, ">=": a.__ge__, "<": a.__lt__, "<=": a.__le__}[op](b)
        flipped = {">": "<", ">=": "<=", "<": ">", "<=": ">="}[op]
        return self.compare(flipped, b, a)

    def _compare_with_non_finite(self, op: str, a, b):
        """``x == inf``, ``x < inf``, ``x != nan``: decided, since the values of a Map are finite.

        (``jnp.nan_to_num`` and ``jnp.hypot`` test ``x == inf``.) None unless the constant operand
        is non-finite everywhere.
        """
        sym, const, flipped = (a, b, False) if isinstance(a, Sym) else (b, a, True)
        if not isinstance(sym, Sym) or isinstance(const, Sym):
            return None
        const = np.asarray(const)
        if const.dtype.kind not in "fc" or not const.size or np.any(np.isfinite(const)):
            return None
        fn = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
              "==": np.equal, "!=": np.not_equal}[op]
        finite = np.zeros(sym.shape)            # any finite value decides the same way
        out = fn(const, finite) if flipped else fn(finite, const)
        return np.broadcast_to(out, np.broadcast_shapes(sym.shape, const.shape))

    def logical(self, op: str, a, b=None):
        """and / or / not of conditions (mixed strictness is harmless: branches agree)."""
        if op == "not":
            if isinstance(a, Condition):
                return ~a
            if isinstance(a, Jump):
                raise self.jump_error(a, "a logical not")
            return np.logical_not(a) if np.asarray(a).dtype == bool else np.invert(a)
        conds = [v for v in (a, b) if isinstance(v, Condition)]
        consts = [v for v in (a, b) if not isinstance(v, Condition)]
        if any(isinstance(v, (Sym, Jump)) for v in consts):
            raise self.unsupported(f"logical {op} of numbers")
        if len(conds) == 1:
            c = np.asarray(consts[0], dtype=bool)
            # a constant True (and) / False (or) leaves the condition; the other value fixes it
            neutral = (op == "and")
            if np.all(c == neutral):
                return conds[0]
            if np.all(c != neutral):
                return c
            raise self.unsupported(f"logical {op} of a condition and a constant mask",
                                   "combine conditions of traced values only")
        first, second = conds
        if first.strict != second.strict:
            # on the boundary both branches are active and must agree, so strictness only picks
            # the default branch there; use one convention for both
            first, second = Condition(first.g, False), Condition(second.g, False)
        return first & second if op == "and" else first | second

    def select(self, pred, cases: Sequence):
        """``cases[pred]`` (JAX's select_n order: case 0 where the predicate is False)."""
        if isinstance(pred, Jump) and pred.kind == "step" and pred.factor is None \
                and _is_one(pred.scale):
            pred = pred.arg                             # a condition cast to an integer
        if isinstance(pred, Condition):
            if len(cases) != 2:
                raise self.unsupported("select_n with a condition and more than two cases")
            return dsl.where(pred, self.array(cases[1], "a selection"),
                             self.array(cases[0], "a selection"))
        if is_symbolic(pred):
            raise TracingError(fail_message(
                self.call, f"a selection whose predicate is a traced number at "
                f"{quote(self.source)}", "select with a comparison of traced values "
                "(jnp.where(x > 0, a, b)): an integer index computed from x is a jump"))
        pred = np.asarray(pred)
        cases = [self.array(c, "a selection") for c in cases]
        index = pred.astype(np.intp)
        if not any(isinstance(c, Sym) for c in cases):
            return np.choose(index, np.broadcast_arrays(*cases))
        first = int(index.reshape(-1)[0]) if index.size else 0
        if np.all(index == first):
            return cases[first]
        # a constant mask picks elements: an exact gather from the stacked cases
        shape = np.broadcast_shapes(index.shape, *[shape_of(c) for c in cases])
        flat = [self.broadcast_to(c, shape).reshape(-1) if isinstance(c, Sym) else
                np.broadcast_to(c, shape).reshape(-1) for c in cases]
        size = int(np.prod(shape, dtype=np.int64))
        pick = np.broadcast_to(index, shape).reshape(-1) * size + np.arange(size)
        return dsl.reshape(dsl.concatenate(flat)[pick], shape)

    # --- reductions -----------------------------------------------------------------------------

    def sum(self, a, axes, keepdims: bool = False):
        a = self.array(a, "a sum")
        axes = tuple(sorted(int(ax) % max(len(shape_of(a)), 1) for ax in axes))
        out = dsl.sum(a, axis=axes) if axes else a
        return self._keep(out, shape_of(a), axes) if keepdims else out

    def reduce_extremum(self, kind: str, a, axes, keepdims: bool = False):
        a = self.array(a, f"a {kind} reduction")
        shape = shape_of(a)
        axes = tuple(sorted({int(ax) % max(len(shape), 1) for ax in axes}))
        fn = dsl.max if kind == "max" else dsl.min
        out = a
        for ax in reversed(axes):           # one axis at a time; later axes first keeps indices
            out = fn(out, axis=ax)
        return self._keep(out, shape, axes) if keepdims else out

    def _keep(self, out, shape, axes):
        kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
        return self.reshape(out, kept)

    # --- shapes and indexing --------------------------------------------------------------------

    def reshape(self, a, shape):
        a = self.array(a, "a reshape")
        shape = tuple(int(s) for s in shape)
        if isinstance(a, Sym):
            return a if a.shape == np.empty(a.shape, np.int8).reshape(shape).shape else \
                dsl.reshape(a, shape)
        return np.reshape(a, shape)

    def transpose(self, a, perm):
        a = self.array(a, "a transpose")
        perm = tuple(int(p) for p in perm)
        if perm == tuple(range(len(perm))):
            return a
        return dsl.transpose(a, perm) if isinstance(a, Sym) else np.transpose(a, perm)

    def broadcast_to(self, a, shape):
        """NumPy broadcasting (new axes in front) of a Sym or constant."""
        shape = tuple(int(s) for s in shape)
        a = self.array(a, "a broadcast")
        if not isinstance(a, Sym):
            return np.broadcast_to(a, shape)
        if a.shape == shape:
            return a
        try:
            np.broadcast_shapes(a.shape, shape)
        except ValueError:
            raise ShapeError(fail_message(self.call, f"a broadcast of shape {a.shape} to "
                                          f"{shape} at {quote(self.source)}",
                                          "report this program: the shapes do not broadcast")
                             ) from None
        return dsl.bind(PRIMITIVES["broadcast_to"], a, call=self.call, shape=shape)

    def broadcast_in_dim(self, a, shape, dims):
        """JAX's broadcast_in_dim: operand axis i becomes output axis ``dims[i]``."""
        a = self.array(a, "a broadcast")
        shape, dims = tuple(int(s) for s in shape), tuple(int(d) for d in dims)
        in_shape = shape_of(a)
        lead = len(shape) - len(in_shape)
        if dims != tuple(range(lead, len(shape))):
            inter = [1] * len(shape)
            for i, d in enumerate(dims):
                inter[d] = in_shape[i]
            a = self.reshape(a, inter)
        return self.broadcast_to(a, shape)

    def getitem(self, a, index: tuple):
        a = self.array(a, "indexing")
        shape = shape_of(a)
        if len(index) <= len(shape) and all(
                isinstance(i, slice) and i.indices(d) == (0, d, 1) for i, d in zip(index, shape)):
            return a
        return a[index]

    def take_flat(self, a, flat_index: np.ndarray, fill=None):
        """``a.reshape(-1)[flat_index]``, with ``fill`` where the index is -1 (padding)."""
        a = self.array(a, "indexing")
        flat_index = np.asarray(flat_index, dtype=np.intp)
        size = int(np.prod(shape_of(a), dtype=np.int64))
        if not isinstance(a, Sym):
            flat = np.append(np.reshape(a, -1), 0.0 if fill is None else fill)
            return flat[np.where(flat_index < 0, size, flat_index)]
        if flat_index.shape == shape_of(a) and np.array_equal(flat_index.reshape(-1),
                                                              np.arange(size)):
            return a
        flat = self.reshape(a, (size,))
        if np.any(flat_index < 0):
            flat = dsl.concatenate([flat, np.full(1, 0.0 if fill is None else fill)])
            flat_index = np.where(flat_index < 0, size, flat_index)
        idx = flat_index.reshape(-1)
        if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            out = flat[int(idx[0]):int(idx[0]) + len(idx)]        # a contiguous run: a slice
        else:
            out = flat[idx]
        return self.reshape(out, flat_index.shape)

    def movement(self, parts, apply, what: str):
        """The result of a pure data-movement operation (gather, scatter, pad, flip, tile, ...).

        Each output element must be one element of ``parts`` or a constant (a padding or fill
        value). The framework runs the operation itself, ``apply(labelled_parts)``, on two
        labellings of the inputs: ``k`` and ``-k**2`` for the k-th element (k >= 1). An output
        that reads as the same element in both is that element; one that is equal in both is
        a constant; anything else (an operation that combines elements) is refused. ``apply``
        returns one array or a list of them.
        """
        parts = [self.array(p, what) for p in parts]
        shapes = [shape_of(p) for p in parts]
        sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
        total = int(sum(sizes))
        if total > 2 ** 26:           # labels squared must stay exact in float64
            raise self.unsupported(f"{what} on more than 2**26 elements")
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        first = [np.arange(offsets[k] + 1, offsets[k + 1] + 1, dtype=np.float64)
                 .reshape(shapes[k]) for k in range(len(parts))]
        out_a, out_b = apply(first), apply([-(f ** 2) for f in first])
        single = not isinstance(out_a, (list, tuple))
        if single:
            out_a, out_b = [out_a], [out_b]
        flats = [self.reshape(p, (sizes[k],)) for k, p in enumerate(parts)]
        source = flats[0] if len(flats) == 1 else self.concatenate(flats, 0)
        outs = [self._relabel(source, total, np.asarray(a, dtype=np.float64),
                              np.asarray(b, dtype=np.float64), what)
                for a, b in zip(out_a, out_b)]
        return outs[0] if single else outs

    def _relabel(self, source, total: int, a: np.ndarray, b: np.ndarray, what: str):
        """Rebuild one output of :meth:`movement` from its two labelled evaluations."""
        label = np.rint(a)
        is_label = (label == a) & (a >= 1) & (a <= total) & (b == -(a ** 2))
        is_const = ~is_label & (a == b)
        if not np.all(is_label | is_const | (np.isnan(a) & np.isnan(b))):
            raise self.unsupported(f"{what} (its outputs are not elements of its inputs)")
        if not np.all(is_label | is_const):
            raise self.unsupported(f"{what} out of bounds (filled with NaN)",
                                   "keep indices within the array")
        index = np.where(is_label, label - 1, 0).astype(np.intp)
        if np.any(is_const):
            # constants (padding, fill values) are appended to the source and indexed there
            source = self.concatenate([source, a[is_const]], 0)
            index[is_const] = total + np.arange(int(np.count_nonzero(is_const)))
        return self.take_flat(source, index)

    def concatenate(self, parts, axis: int):
        parts = [self.array(p, "a concatenation") for p in parts]
        parts = [p for p in parts if shape_of(p)[axis] != 0] or parts[:1]
        if len(parts) == 1:
            return parts[0]
        if not any(isinstance(p, Sym) for p in parts):
            return np.concatenate(parts, axis=axis)
        return dsl.concatenate(parts, axis=axis)

    # --- products -------------------------------------------------------------------------------

    def matmul(self, a, b):
        """NumPy ``@`` for operands of 1 or 2 dimensions, and batched stacks beyond."""
        a, b = self.array(a, "a matrix product"), self.array(b, "a matrix product")
        na, nb = len(shape_of(a)), len(shape_of(b))
        if na <= 2 and nb <= 2:
            if na == 0 or nb == 0:
                return a * b
            return dsl.matmul(a, b)
        # batched: contract a's last axis with b's second-to-last, batch over leading axes
        ca, cb = na - 1, (0 if nb == 1 else nb - 2)
        if nb == 1:
            return self.dot_general(a, b, ((ca,), (cb,)), ((), ()))
        if na == 1:
            return self.dot_general(a, b, ((0,), (cb,)), ((), ()))
        if na != nb:
            raise self.unsupported("a batched matrix product with broadcast batch axes")
        batch = tuple(range(na - 2))
        return self.dot_general(a, b, ((ca,), (cb,)), (batch, batch))

    def dot_general(self, a, b, contract, batch):
        """JAX's dot_general: output axes are batch, free axes of ``a``, free axes of ``b``."""
        a, b = self.array(a, "a contraction"), self.array(b, "a contraction")
        (ca, cb), (ba, bb) = contract, batch
        ca, cb, ba, bb = (tuple(int(i) for i in v) for v in (ca, cb, ba, bb))
        sa, sb = shape_of(a), shape_of(b)
        if ba:
            return self._batched_dot(a, b, sa, sb, ca, cb, ba, bb)
        fa = tuple(i for i in range(len(sa)) if i not in ca)
        fb = tuple(i for i in range(len(sb)) if i not in cb)
        out_shape = tuple(sa[i] for i in fa) + tuple(sb[i] for i in fb)
        if not ca:                                      # an outer product
            left = self.reshape(self.transpose(a, fa), tuple(sa[i] for i in fa) + (1,) * len(fb))
            return left * self.transpose(b, fb)
        k = int(np.prod([sa[i] for i in ca], dtype=np.int64))
        left = self.transpose(a, fa + ca)
        left = self.reshape(left, ((int(np.prod([sa[i] for i in fa], dtype=np.int64)),)
                                   if fa else ()) + (k,))
        right = self.transpose(b, cb + fb)
        right = self.reshape(right, (k,) + ((int(np.prod([sb[i] for i in fb], dtype=np.int64)),)
                                            if fb else ()))
        return self.reshape(dsl.matmul(left, right), out_shape)

    def _batched_dot(self, a, b, sa, sb, ca, cb, ba, bb):
        # move batch axes to the front, contract each batch entry, stack the results
        ra = [i for i in range(len(sa)) if i not in ba]
        rb = [i for i in range(len(sb)) if i not in bb]
        a_t, b_t = self.transpose(a, ba + tuple(ra)), self.transpose(b, bb + tuple(rb))
        bshape = tuple(sa[i] for i in ba)
        nb = int(np.prod(bshape, dtype=np.int64))
        a_t = self.reshape(a_t, (nb,) + tuple(sa[i] for i in ra))
        b_t = self.reshape(b_t, (nb,) + tuple(sb[i] for i in rb))
        ca2 = tuple(ra.index(i) for i in ca)
        cb2 = tuple(rb.index(i) for i in cb)
        parts = [self.dot_general(a_t[j], b_t[j], (ca2, cb2), ((), ())) for j in range(nb)]
        parts = [p if isinstance(p, Sym) else np.asarray(p) for p in parts]
        stacked = dsl.stack(parts) if any(isinstance(p, Sym) for p in parts) else np.stack(parts)
        return self.reshape(stacked, bshape + tuple(shape_of(parts[0])))


def _is_one(scale) -> bool:
    return np.ndim(scale) == 0 and float(scale) == 1.0


_DSL_SMOOTH = {"exp": "exp", "log": "log", "sqrt": "sqrt", "tanh": "tanh", "logistic": "sigmoid",
               "sigmoid": "sigmoid", "sin": "sin", "cos": "cos", "square": "square"}
