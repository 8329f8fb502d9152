"""Reductions, products and assembly of intervals: outward-rounded sums and matrix products
(midpoint-radius with an a-priori BLAS bound, or tight), concatenation and selection."""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
try:
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy < 2.0
    from numpy.core.numeric import normalize_axis_tuple

from ..errors import InputError, ShapeError, fail_message
from ._arith import multiply
from ._core import Interval, as_interval, as_interval_pair
from ._rounding import (ETA, TINY_FACTOR, add_ru, mul_up_nonneg, next_up, quiet,
                        sum_bound, sum_dir)
from ._tristate import as_tristate

__all__ = ["matmul", "concatenate", "where"]
# ``sum`` is public (``interval.sum``) but kept out of ``__all__`` so that a star-import does not
# shadow the builtin.


@quiet
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Interval:  # noqa: A001
    """Outward-rounded sum along ``axis`` (NumPy semantics).

    The floating sums of the endpoints are widened by the a-priori bound
    ``(n + 1) 2**-52 * sum |endpoints|`` (rounded up), so sums of zeros stay exactly zero.

    Raises
    ------
    ShapeError
        If ``axis`` is out of range.

    Examples
    --------
    >>> sum(Interval([0.0, 1.0], [1.0, 1.0]))
    Interval(lo=1.0, hi=2.0)
    """
    x = as_interval(x, call="interval.sum")
    try:
        if axis is not None:
            axis = normalize_axis_tuple(axis, x.ndim)
    except (ValueError, TypeError, np.exceptions.AxisError):
        raise ShapeError(fail_message("interval.sum", f"axis={axis!r} for shape {x.shape}",
                                      "pass an axis within the number of dimensions"))
    return Interval._new(sum_dir(x._lo, axis, keepdims, up=False),
                         sum_dir(x._hi, axis, keepdims, up=True))


def _matmul_shapes(sa, sb, call):
    if len(sa) == 0 or len(sb) == 0:
        raise ShapeError(fail_message(call, f"operands of shapes {sa} and {sb}",
                                      "matmul needs operands with at least one dimension"))
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise ShapeError(fail_message(call, f"operands of shapes {sa} and {sb} (inner "
                                      f"dimensions {ka} and {kb})",
                                      "pass matrices whose inner dimensions agree"))
    try:
        np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ShapeError(fail_message(call, f"operands of shapes {sa} and {sb}",
                                      "pass stacks whose batch dimensions broadcast"))
    return ka


#: Facts of large point operands, computed once per operand: the constants of a traced
#: program reach every product as the same Interval object (built once per program), and a
#: product with a 250 x 2000 constant spent most of its time re-scanning it (point? finite?
#: tiny entries? its absolute value). id(lo) -> (weakref lo, weakref hi, facts or None).
_FACTS: dict = {}
_FACTS_MIN_SIZE = 4096
_UNKNOWN = object()


def _operand_facts(x: Interval):
    """``[mid, None, |mid|, finite, tiny, non-zero rows]`` of a large point operand whose
    endpoint arrays own their read-only data, memoised while the arrays live (the non-zero
    rows are found on first use); None for every other operand."""
    lo, hi = x._lo, x._hi
    if lo.size < _FACTS_MIN_SIZE or lo.base is not None or hi.base is not None \
            or lo.flags.writeable or hi.flags.writeable:
        return None
    entry = _FACTS.get(id(lo))
    if entry is not None and entry[0]() is lo and entry[1]() is hi:
        return entry[2]
    facts = None
    if lo is hi or np.array_equal(lo, hi):
        mag = np.abs(lo)
        top = float(np.max(mag))                 # inf or NaN when some entry is not finite
        tiny = float(np.min(mag)) < TINY_FACTOR and _has_tiny(mag)   # one scan when no entry
        facts = [lo, None, mag, math.isfinite(top), tiny, _UNKNOWN]  # is small
        mag.flags.writeable = False
    key = id(lo)
    _FACTS[key] = (weakref.ref(lo, lambda _, key=key, memo=_FACTS: memo.pop(key, None)),
                   weakref.ref(hi),
                   facts)
    return facts


def _midrad_parts(x: Interval):
    """(mid, rad) floats with [mid - rad, mid + rad] containing x; rad is None for points."""
    lo, hi = x._lo, x._hi
    if lo is hi or np.array_equal(lo, hi):
        return lo, None
    m = np.where(lo == hi, lo, 0.5 * lo + 0.5 * hi)
    r = np.maximum(add_ru(hi, -m), add_ru(m, -lo))
    return m, r


_TINY_CHUNK = 1 << 16


def _has_tiny(*arrays) -> bool:
    """Whether some entry is non-zero and below ``TINY_FACTOR`` in magnitude (a product may
    underflow). Large arrays are scanned in chunks: no temporaries of their size."""
    for a in arrays:
        if a is None:
            continue
        flat = np.ravel(a, order="K")
        for start in range(0, flat.size, _TINY_CHUNK):
            mag = np.abs(flat[start:start + _TINY_CHUNK])
            if np.any((mag < TINY_FACTOR) & (mag != 0)):
                return True
    return False


def _matmul_midrad(a: Interval, b: Interval, k: int) -> Interval:
    """Midpoint-radius product with an a-priori bound on BLAS rounding (see :func:`matmul`).

    With ``S1 = |ma| |mb|``, ``S23 = |ma| rb + ra (|mb| + rb)`` computed by BLAS in
    round-to-nearest, the exact products satisfy ``T <= (S + k eta) / (1 - gamma_k)``, so
    ``|C - mid| <= c1 S1 + c2 S23 (+ 8 (k+1) eta if a product may underflow)`` with
    ``c1 = 2 (k+1) u >= gamma_k / (1 - gamma_k)`` and ``c2 = 1 + 4 (k+1) u >= 1/(1 - gamma_k)``.
    """
    fa, fb = _operand_facts(a), _operand_facts(b)
    ma, ra = (fa[0], fa[1]) if fa is not None else _midrad_parts(a)
    mb, rb = (fb[0], fb[1]) if fb is not None else _midrad_parts(b)
    # zero rows of b (seeds of a few coordinates, a centred probe, a box wide in a few
    # coordinates) add exact zeros: the products run over b's other rows only
    if fb is None:
        mid_rows = _nonzero_rows(mb)
    else:                                  # found once, on the first use as a right operand
        if fb[5] is _UNKNOWN:
            fb[5] = _nonzero_rows(mb)
        mid_rows = fb[5]
    c = _on_rows(ma, mb, mid_rows)
    if k == 0:
        return Interval._new(c, c.copy())
    abs_ma = fa[2] if fa is not None else np.abs(ma)
    abs_mb = fb[2] if fb is not None else np.abs(mb)
    c1 = sum_bound(k)
    c2 = float(next_up(1.0 + float(k + 1) * 2.0 ** -51))
    if ra is None and rb is not None:
        # a point a: |C - c| <= gamma_k |a| |mb| + |a| rb = |a| v with v = c1 |mb| + rb rounded
        # up (c1 >= gamma_k), and the computed |a| v (non-negative terms) is at least
        # (1 - gamma_k) of the exact one, less k eta where products underflow: one product
        # with |a| instead of two
        v = add_ru(mul_up_nonneg(c1, abs_mb), rb)
        r = mul_up_nonneg(c2, _on_rows(abs_ma, v, _nonzero_rows(v)))
        tiny = (fa[4] if fa is not None else _has_tiny(ma)) or _has_tiny(v)
    else:
        s1 = _on_rows(abs_ma, abs_mb, mid_rows)      # |mid b| has the zero rows of mid b
        s23 = np.zeros_like(s1)
        u = abs_mb
        if rb is not None:
            s23 = _on_rows(abs_ma, rb, _nonzero_rows(rb))
        if ra is not None:
            u = abs_mb if rb is None else add_ru(abs_mb, rb)
            s23 = add_ru(s23, ra @ u)
        r = add_ru(mul_up_nonneg(c1, s1), mul_up_nonneg(c2, s23))
        # a known (point) operand's tiny entries are in its facts (then u = |mb| or |mb| + rb
        # with rb = None); scan only the others
        tiny = (fa[4] if fa is not None else _has_tiny(ma, ra)) or \
            (fb[4] if fb is not None else _has_tiny(mb, rb, u))
    if tiny:
        r = add_ru(r, 8.0 * (k + 1) * ETA)
    lo, hi = _around(c, r)
    # c overflowed (a partial sum beyond the range, even where the exact sum is small): with
    # c1 applied before the product r stays finite, so c +- r says nothing there
    bad = np.isnan(lo) | np.isnan(hi) | ~np.isfinite(c)
    return Interval._new(np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi))


def _around(c: np.ndarray, r: np.ndarray) -> tuple:
    """``[c - r, c + r]`` rounded outward by one step after rounding to nearest (sound: the
    exact value lies within half a spacing of the rounded one, on the side of the step), and
    exactly ``c`` where ``r`` is 0 (then every product was an exact 0, and so is ``c``)."""
    exact = r == 0
    return (np.where(exact, c, np.nextafter(c - r, -np.inf)),
            np.where(exact, c, np.nextafter(c + r, np.inf)))


def _nonzero_rows(b: np.ndarray):
    """The rows of a 1-D or 2-D operand that are not all zero, or None when too few rows are
    zero for a product restricted to the others to gain (and for small or stacked operands)."""
    if b.ndim > 2 or b.shape[0] < 64:
        return None
    nz = np.flatnonzero(b if b.ndim == 1 else np.any(b != 0, axis=1))
    return nz if 2 * len(nz) <= b.shape[0] else None


def _on_rows(a: np.ndarray, b: np.ndarray, rows) -> np.ndarray:
    """``a @ b`` from the listed rows of ``b`` (all of them when None); the other rows are
    zero, so they only add exact zeros (operands are finite here)."""
    if rows is None or a.ndim != 2:
        return a @ b
    return a[:, rows] @ b[rows]


def _finite(x: Interval) -> bool:
    facts = _operand_facts(x)
    if facts is not None:
        return facts[3]
    lo, hi = x._lo, x._hi                          # a point's ends may be one array
    return bool(np.all(np.isfinite(lo)) and (hi is lo or np.all(np.isfinite(hi))))


def _matmul_tight(a: Interval, b: Interval) -> Interval:
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    if squeeze_a:
        a = a.reshape(1, -1)
    if squeeze_b:
        b = b.reshape(-1, 1)
    prods = multiply(a[..., :, :, None], b[..., None, :, :])       # (..., n, k, m)
    out = sum(prods, axis=-2)
    if squeeze_a:
        out = out[..., 0, :]
    if squeeze_b:
        out = out[..., 0]
    return out


@quiet
def matmul(a: Any, b: Any, *, method: str = "midrad") -> Interval:
    """Outward-rounded matrix product (NumPy ``@`` semantics, stacks broadcast).

    Parameters
    ----------
    a, b : Interval or array_like
        At least one dimension each. Real arrays are exact points.
    method : {"midrad", "tight"}
        ``"midrad"`` (default, used by ``@``): midpoint-radius form with BLAS,
        ``mid(a) @ mid(b)`` plus ``|mid a| rad b + rad a (|mid b| + rad b)`` plus an a-priori
        rounding bound. Tight up to rounding when one factor is a point matrix; at most 1.5x
        too wide otherwise (Rump 1999). Unbounded entries give ``[-inf, inf]`` where they
        meet a product. ``"tight"``: exact hull of every ``sum_k a_ik b_kj`` up to rounding,
        from the elementwise products (memory ``n k m``).

    Raises
    ------
    ShapeError
        If inner dimensions differ, stacks do not broadcast, or an operand is 0-d.
    InputError
        For an unknown method.

    Examples
    --------
    >>> A = np.array([[1.0, 2.0], [0.0, 1.0]])
    >>> x = Interval([0.0, 1.0], [1.0, 1.0])
    >>> y = A @ x                       # midrad: exact range widened by ~k ulps
    >>> bool(y.contains(Interval([2.0, 1.0], [3.0, 1.0])).all())
    True
    >>> matmul(A, x, method="tight")    # exact sums stay exact
    Interval(lo=[2.0, 1.0], hi=[3.0, 1.0])
    """
    call = "interval.matmul"
    if method not in ("midrad", "tight"):
        raise InputError(fail_message(call, f"method={method!r}", "pass 'midrad' or 'tight'"))
    a, b = as_interval(a, call=call, name="a"), as_interval(b, call=call, name="b")
    k = _matmul_shapes(a.shape, b.shape, call)
    finite = all(_finite(x) for x in (a, b))
    if method == "tight" or not finite:
        return _matmul_tight(a, b)
    return _matmul_midrad(a, b, k)


def concatenate(xs: Any, axis: int = 0) -> Interval:
    """Join intervals (or real arrays) along an existing axis.

    Raises
    ------
    ShapeError
        If the shapes do not fit.

    Examples
    --------
    >>> concatenate([Interval([0.0], [1.0]), np.zeros(2)]).shape
    (3,)
    """
    items = [as_interval(x, call="interval.concatenate") for x in xs]
    try:
        return Interval._new(np.concatenate([x._lo for x in items], axis=axis),
                             np.concatenate([x._hi for x in items], axis=axis))
    except (ValueError, np.exceptions.AxisError):
        raise ShapeError(fail_message("interval.concatenate", f"shapes "
                                      f"{[x.shape for x in items]} with axis={axis}",
                                      "pass shapes that agree except along axis"))


def where(cond: Any, a: Any, b: Any) -> Interval:
    """Select ``a`` where ``cond`` is certainly true, ``b`` where certainly false, and the
    hull of both where undecided.

    For a *continuous* piecewise function whose pieces are enclosed over the whole box, the
    hull is a sound enclosure where the box straddles the boundary.

    Raises
    ------
    ShapeError
        If the shapes do not broadcast.

    Examples
    --------
    >>> x = Interval([-2.0, -1.0, 1.0], [-1.0, 1.0, 2.0])
    >>> where(x > 0, x, 0.0)
    Interval(lo=[0.0, -1.0, 1.0], hi=[0.0, 1.0, 2.0])
    """
    call = "interval.where"
    cond = as_tristate(cond, call)
    a, b = as_interval_pair(a, b, call)
    try:
        shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ShapeError(fail_message(call, f"cond of shape {cond.shape} and values of shapes "
                                      f"{a.shape}, {b.shape}", "pass shapes that broadcast"))
    c = np.broadcast_to(cond.certainly, shape)
    p = np.broadcast_to(cond.possibly, shape)
    lo = np.where(c, a._lo, np.where(p, np.minimum(a._lo, b._lo), b._lo))
    hi = np.where(c, a._hi, np.where(p, np.maximum(a._hi, b._hi), b._hi))
    return Interval._new(np.broadcast_to(lo, shape), np.broadcast_to(hi, shape))
