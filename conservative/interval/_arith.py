"""Outward-rounded arithmetic of intervals: ``+ - * /``, integer powers, ``sqrt``, ``abs``,
``max`` and ``min``, and the domain check shared by the functions defined on a half-line."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import InputError, UndecidedError, fail_message
from ._core import Interval, as_interval, as_interval_pair
from ._rounding import add_rd, add_ru, div_dir, mul_dir, pow_dir, quiet, sqrt_dir

__all__ = [
    "add", "subtract", "multiply", "divide", "power", "square", "sqrt", "check_domain", "absolute",
    "maximum", "minimum",
]


@quiet
def add(a: Any, b: Any) -> Interval:
    """Outward-rounded ``a + b`` (directed rounding: exact sums stay exact).

    Raises
    ------
    ShapeError
        If the shapes do not broadcast.

    Examples
    --------
    >>> add(Interval(0.0, 1.0), 2)
    Interval(lo=2.0, hi=3.0)
    """
    a, b = as_interval_pair(a, b, "Interval.__add__")
    return Interval._new(add_rd(a._lo, b._lo), add_ru(a._hi, b._hi))


@quiet
def subtract(a: Any, b: Any) -> Interval:
    """Outward-rounded ``a - b = [a.lo - b.hi, a.hi - b.lo]``.

    Examples
    --------
    >>> subtract(Interval(0.0, 1.0), Interval(0.0, 1.0))
    Interval(lo=-1.0, hi=1.0)
    """
    a, b = as_interval_pair(a, b, "Interval.__sub__")
    return Interval._new(add_rd(a._lo, -b._hi), add_ru(a._hi, -b._lo))


@quiet
def multiply(a: Any, b: Any) -> Interval:
    """Outward-rounded ``a * b``: hull of the four directed endpoint products (0 * inf = 0).

    Examples
    --------
    >>> multiply(Interval(-1.0, 2.0), Interval(3.0, 4.0))
    Interval(lo=-4.0, hi=8.0)
    """
    a, b = as_interval_pair(a, b, "Interval.__mul__")
    if b._lo is b._hi and a._lo is not a._hi:
        a, b = b, a
    if a._lo is a._hi:                 # a point factor c: [c lo, c hi] or, for c < 0, reversed
        c = a._lo
        if b._lo is b._hi:
            d, u = mul_dir(c, b._lo)
        elif c.ndim == 0:
            d, u = (mul_dir(c, b._lo)[0], mul_dir(c, b._hi)[1]) if c >= 0 else \
                (mul_dir(c, b._hi)[0], mul_dir(c, b._lo)[1])
        else:
            up = c >= 0
            d = mul_dir(c, np.where(up, b._lo, b._hi))[0]
            u = mul_dir(c, np.where(up, b._hi, b._lo))[1]
        return Interval._new(np.where(np.isnan(d), 0.0, d), np.where(np.isnan(u), 0.0, u))
    los, his = [], []
    for x, y in ((a._lo, b._lo), (a._lo, b._hi), (a._hi, b._lo), (a._hi, b._hi)):
        d, u = mul_dir(x, y)
        los.append(np.where(np.isnan(d), 0.0, d))
        his.append(np.where(np.isnan(u), 0.0, u))
    lo = np.minimum(np.minimum(los[0], los[1]), np.minimum(los[2], los[3]))
    hi = np.maximum(np.maximum(his[0], his[1]), np.maximum(his[2], his[3]))
    return Interval._new(lo, hi)


@quiet
def divide(a: Any, b: Any, *, on_zero: str = "raise") -> Interval:
    """Outward-rounded ``a / b``.

    Parameters
    ----------
    a, b : Interval or array_like
    on_zero : {"raise", "whole"}
        What to do where ``b`` contains 0: raise (the default, also used by the ``/``
        operator) or return the whole line ``[-inf, inf]`` there (sound but uninformative).

    Raises
    ------
    UndecidedError
        If ``b`` contains 0 somewhere and ``on_zero="raise"`` (``InputError`` if ``b`` is
        exactly ``[0, 0]`` there).
    ShapeError
        If the shapes do not broadcast.

    Examples
    --------
    >>> Interval(1.0, 2.0) / 4
    Interval(lo=0.25, hi=0.5)
    >>> divide(1.0, Interval(-1.0, 1.0), on_zero="whole")
    Interval(lo=-inf, hi=inf)
    """
    call = "Interval.__truediv__"
    if on_zero not in ("raise", "whole"):
        raise InputError(fail_message("divide", f"on_zero={on_zero!r}",
                                      "pass 'raise' or 'whole'"))
    a, b = as_interval_pair(a, b, call)
    zero = (b._lo <= 0) & (b._hi >= 0)
    if on_zero == "raise" and np.any(zero):
        idx = tuple(int(i) for i in np.argwhere(zero)[0])
        exact0 = b._lo[idx] == 0 and b._hi[idx] == 0
        err = InputError if exact0 else UndecidedError
        raise err(fail_message(
            call, f"a divisor [{float(b._lo[idx])!r}, {float(b._hi[idx])!r}] containing 0 "
            f"at index {idx}",
            "exclude 0 from the divisor (tighter box) or call interval.divide(a, b, "
            "on_zero='whole')"))
    blo = np.where(zero, 1.0, b._lo)
    bhi = np.where(zero, 1.0, b._hi)
    los, his = [], []
    for x, y in ((a._lo, blo), (a._lo, bhi), (a._hi, blo), (a._hi, bhi)):
        d, u = div_dir(x, y)
        # inf / inf (NaN) is a path-dependent corner limit; for a one-signed divisor the other
        # three corners already span it (they include the 0 of finite / inf), so drop it.
        los.append(np.where(np.isnan(d), np.inf, d))
        his.append(np.where(np.isnan(u), -np.inf, u))
    lo = np.minimum(np.minimum(los[0], los[1]), np.minimum(los[2], los[3]))
    hi = np.maximum(np.maximum(his[0], his[1]), np.maximum(his[2], his[3]))
    bad = zero | np.isnan(lo) | np.isnan(hi) | (lo > hi)
    return Interval._new(np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi))


@quiet
def power(x: Any, k: Any) -> Interval:
    """``x ** k`` for a non-negative integer ``k``; even powers are tight (never negative).

    Raises
    ------
    InputError
        If ``k`` is not a non-negative integer.

    Examples
    --------
    >>> Interval(-2.0, 1.0) ** 2, Interval(-2.0, 1.0) ** 3
    (Interval(lo=0.0, hi=4.0), Interval(lo=-8.0, hi=1.0))
    """
    call = "Interval.__pow__"
    if isinstance(k, Interval) or isinstance(k, bool) or not isinstance(
            k, (numbers.Integral, float, np.floating)) or not float(k).is_integer() or k < 0:
        raise InputError(fail_message(call, f"exponent {k!r}",
                                      "pass a non-negative integer; write 1 / x**k for "
                                      "negative powers and exp(k * log(x)) for real ones"))
    k = int(k)
    x = as_interval(x, call=call)
    if k == 0:
        return Interval._new(np.ones(x.shape), np.ones(x.shape))
    lo, hi = x._lo, x._hi
    if k % 2 == 0:
        mlo, mhi = x.mig, x.mag
        return Interval._new(pow_dir(mlo, k, up=False), pow_dir(mhi, k, up=True))
    neg_lo = lo < 0
    neg_hi = hi < 0
    plo = np.where(neg_lo, -pow_dir(np.abs(lo), k, up=True), pow_dir(np.abs(lo), k, up=False))
    phi = np.where(neg_hi, -pow_dir(np.abs(hi), k, up=False), pow_dir(np.abs(hi), k, up=True))
    return Interval._new(plo, phi)


def square(x: Any) -> Interval:
    """``x ** 2``, tight (``[-1, 2]`` gives ``[0, 4]``, not ``[-2, 4]``)."""
    return power(x, 2)


@quiet
def sqrt(x: Any) -> Interval:
    """Outward-rounded square root (directed rounding of IEEE's correctly rounded sqrt).

    Raises
    ------
    InputError
        If an interval lies entirely below 0.
    UndecidedError
        If an interval straddles 0 (part of it is outside the domain). Intersect with
        ``[0, inf)`` first only if you can justify that the negative part is not attained.

    Examples
    --------
    >>> sqrt(Interval(4.0, 9.0))
    Interval(lo=2.0, hi=3.0)
    """
    x = as_interval(x, call="interval.sqrt")
    check_domain(x, 0.0, "interval.sqrt", closed=True)
    lo, _ = sqrt_dir(x._lo)
    _, hi = sqrt_dir(x._hi)
    return Interval._new(lo, hi)


def check_domain(x: Interval, bound: float, call: str, closed: bool) -> None:
    """Refuse intervals outside the domain ``[bound, inf)`` (``closed``) or ``(bound, inf)``:
    InputError if no point is inside, UndecidedError if ``lo < bound`` (partly outside)."""
    outside = (x._hi < bound) if closed else (x._hi <= bound)
    if np.any(outside):
        idx = tuple(int(i) for i in np.argwhere(outside)[0])
        raise InputError(fail_message(
            call, f"[{float(x._lo[idx])!r}, {float(x._hi[idx])!r}] at index {idx}, outside the "
            "domain",
            f"pass values {'>=' if closed else '>'} {bound}"))
    straddle = x._lo < bound
    if np.any(straddle):
        idx = tuple(int(i) for i in np.argwhere(straddle)[0])
        raise UndecidedError(fail_message(
            call, f"[{float(x._lo[idx])!r}, {float(x._hi[idx])!r}] at index {idx}, partly "
            "outside the domain",
            "tighten the enclosure so that it lies inside the domain"))


def absolute(x: Any) -> Interval:
    """``|x|`` (exact, no rounding).

    Examples
    --------
    >>> absolute(Interval([-3.0, 1.0], [2.0, 2.0]))
    Interval(lo=[0.0, 1.0], hi=[3.0, 2.0])
    """
    x = as_interval(x, call="interval.absolute")
    return Interval._new(x.mig, x.mag)


def maximum(a: Any, b: Any) -> Interval:
    """Elementwise ``max(a, b)`` (exact: ``[max(lo), max(hi)]``)."""
    a, b = as_interval_pair(a, b, "interval.maximum")
    return Interval._new(np.maximum(a._lo, b._lo), np.maximum(a._hi, b._hi))


def minimum(a: Any, b: Any) -> Interval:
    """Elementwise ``min(a, b)`` (exact)."""
    a, b = as_interval_pair(a, b, "interval.minimum")
    return Interval._new(np.minimum(a._lo, b._lo), np.minimum(a._hi, b._hi))
