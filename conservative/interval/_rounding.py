"""Rounding kernel: the floating-point environment, directed rounding of ``+ - * / sqrt``,
a-priori bounds for sums, widening by ulps, and outward conversion of exact numbers
(fractions, mpmath) to float64. Arrays in, arrays out; no interval type here."""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from fractions import Fraction
from typing import Iterator

import mpmath
import numpy as np
from mpmath import libmp

from ..errors import ConservativeError, InputError, NonFiniteError, fail_message

__all__ = [
    "ETA", "TINY_FACTOR", "check_environment", "next_up", "add_rd", "add_ru",
    "mul_dir", "div_dir", "sqrt_dir", "pow_dir", "sum_bound", "sum_dir", "widen_down", "widen_up",
    "quiet", "workprec", "raw_to_float", "fraction_endpoints",
]

_MAX = float(np.finfo(np.float64).max)
_BELOW_MAX = float(np.nextafter(_MAX, 0.0))
ETA = float(np.nextafter(0.0, 1.0))           # smallest positive subnormal, 2**-1074
_SPLITTER = 134217729.0                       # 2**27 + 1, Veltkamp/Dekker splitting
_BIG = 2.0 ** 995                             # above this the split may overflow
_SMALL = 2.0 ** -960                          # below this the product error may underflow
TINY_FACTOR = 2.0 ** -511                     # products of entries above this do not underflow


# ---------------------------------------------------------------------------------------------
# Floating-point environment and directed rounding primitives (arrays in, arrays out)
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _fp_environment_ok() -> bool:
    """Return True if NumPy rounds to nearest and keeps subnormals (checked once)."""
    with np.errstate(all="ignore"):
        one = np.ones(4)
        t = np.full(4, 3.0 * 2.0 ** -54)
        nearest_up = np.all(one + t == 1.0 + 2.0 ** -52)        # fails if rounding down/to zero
        nearest_dn = np.all(-one - t == -1.0 - 2.0 ** -52)      # fails if rounding up
        tie_even = np.all(one + 2.0 ** -53 == 1.0)              # fails if rounding up
        subnormal = np.all(np.full(4, 2.0 ** -1022) / 4.0 > 0.0)  # fails under flush-to-zero
        daz = np.all(np.full(4, ETA) * 2.0 == 2.0 * ETA)      # fails under denormals-are-zero
    return bool(nearest_up and nearest_dn and tie_even and subnormal and daz)


def check_environment(call: str) -> None:
    if not _fp_environment_ok():
        raise ConservativeError(fail_message(
            call, "a floating-point environment that is not IEEE round-to-nearest with "
            "subnormals (a library may have enabled flush-to-zero or changed the rounding mode)",
            "restore the default environment (e.g. avoid -ffast-math builds) before using "
            "interval arithmetic"))


def _next_down(x):
    return np.nextafter(x, -np.inf)


def next_up(x):
    return np.nextafter(x, np.inf)


def _two_sum(a, b):
    """Knuth's TwoSum: s = fl(a + b) and e with a + b = s + e exactly (if s is finite)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _scalars(a, b) -> bool:
    """Both 0-d: the kernels below then run on Python floats (the same IEEE doubles, rounded
    to nearest; a tenth of the cost of NumPy's scalar calls), with the same results."""
    return np.ndim(a) == 0 and np.ndim(b) == 0


def add_rd(a, b):
    """a + b rounded toward -inf (NaN-free for valid interval endpoints)."""
    if _scalars(a, b):
        s, e = _two_sum(float(a), float(b))
        return np.array(s if e >= 0 and math.isfinite(e) else math.nextafter(s, -math.inf))
    s, e = _two_sum(a, b)
    return np.where((e >= 0) & np.isfinite(e), s, _next_down(s))   # overflow, inf: step (sound)


def add_ru(a, b):
    """a + b rounded toward +inf."""
    if _scalars(a, b):
        s, e = _two_sum(float(a), float(b))
        return np.array(s if e <= 0 and math.isfinite(e) else math.nextafter(s, math.inf))
    s, e = _two_sum(a, b)
    return np.where((e <= 0) & np.isfinite(e), s, next_up(s))


def _product_and_error(a, b):
    """Dekker's TwoProduct on arrays or Python floats: p = fl(a b) and e with a b = p + e
    where nothing overflows or underflows (:func:`_two_prod` says where)."""
    p = a * b
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLITTER * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _two_prod(a, b):
    """Dekker's TwoProduct: p = fl(a b), e, and a mask ``ok`` where a b = p + e exactly."""
    p, e = _product_and_error(a, b)
    ap = np.abs(p)
    aa, ab = np.abs(a), np.abs(b)
    ok = (((aa <= _BIG) & (ab <= _BIG) & (aa >= _SMALL) & (ab >= _SMALL)
           & (ap >= _SMALL) & (ap <= _BIG))
          | (((a == 0) | (b == 0)) & np.isfinite(a) & np.isfinite(b)))
    return p, e, ok


def _mul_dir_scalar(a: float, b: float):
    """:func:`mul_dir` of two Python floats, the same operations in the same order."""
    p, e = _product_and_error(a, b)
    aa, ab, ap = abs(a), abs(b), abs(p)
    ok = ((_SMALL <= aa <= _BIG and _SMALL <= ab <= _BIG and _SMALL <= ap <= _BIG)
          or ((a == 0 or b == 0) and math.isfinite(a) and math.isfinite(b)))
    sign = _sign(a) * _sign(b)
    lo = p if (ok and e >= 0) or (p == 0 and sign >= 0) else math.nextafter(p, -math.inf)
    hi = p if (ok and e <= 0) or (p == 0 and sign <= 0) else math.nextafter(p, math.inf)
    return np.array(lo), np.array(hi)


def _sign(x: float) -> float:
    return math.nan if x != x else float((x > 0) - (x < 0))


def mul_dir(a, b):
    """(a b rounded down, a b rounded up); NaN where the product is 0 * inf."""
    if _scalars(a, b):
        return _mul_dir_scalar(float(a), float(b))
    p, e, ok = _two_prod(a, b)
    sign = np.sign(a) * np.sign(b)              # sign of the exact product (underflow to 0)
    lo = np.where((ok & (e >= 0)) | ((p == 0) & (sign >= 0)), p, _next_down(p))
    hi = np.where((ok & (e <= 0)) | ((p == 0) & (sign <= 0)), p, next_up(p))
    return lo, hi


def mul_up_nonneg(c: float, s):
    """``c s`` rounded toward +inf for a scalar ``c > 0`` and an array ``s >= 0`` (radii and
    error bounds, where one ulp does not matter): ``next_up(fl(c s))``, which is at least
    ``c s`` for every real product (the exact product lies below the float after the
    rounded one), and exactly 0 where ``s`` is 0. Cheaper than :func:`mul_dir`."""
    p = c * s
    return np.where(s == 0, 0.0, next_up(p))


def div_dir(a, b):
    """(a / b rounded down, a / b rounded up) for b != 0; NaN for inf / inf."""
    q = a / b
    p, e, ok = _two_prod(q, b)
    r = (a - p) - e                     # exact sign of a - q b (Sterbenz; gradual underflow)
    ok = ok & np.isfinite(q) & np.isfinite(a) & np.isfinite(b) & (
        (np.abs(q) >= _SMALL) | (q == 0))     # q normal, so q b is within 2 ulps of a
    s = np.sign(r) * np.sign(b)         # sign of a / b - q
    sign = np.sign(a) * np.sign(b)      # sign of the exact quotient (q may underflow to 0)
    lo = np.where((ok & (s >= 0)) | ((q == 0) & (sign >= 0)), q, _next_down(q))
    hi = np.where((ok & (s <= 0)) | ((q == 0) & (sign <= 0)), q, next_up(q))
    return lo, hi


def sqrt_dir(x):
    """(sqrt(x) rounded down, rounded up) for x >= 0, using the IEEE correctly rounded sqrt."""
    s = np.sqrt(x)
    p, e, ok = _two_prod(s, s)
    r = (x - p) - e                     # sign of x - s**2
    ok = ok & np.isfinite(s)
    lo = np.where(ok & (r >= 0), s, _next_down(s))
    hi = np.where(ok & (r <= 0), s, next_up(s))
    return np.maximum(lo, 0.0), hi


def pow_dir(m, k: int, up: bool):
    """m**k for m >= 0, rounded down (``up=False``) or up, by binary powering."""
    result = np.ones_like(m)
    base = m
    pick = 1 if up else 0
    while k:
        if k & 1:
            result = mul_dir(result, base)[pick]
        k >>= 1
        if k:
            base = mul_dir(base, base)[pick]
    return result


def sum_bound(n: int):
    """Factor c with |fl(sum x) - sum x| <= c * fl(sum |x|) for n terms, any order (n u <= 1/4)."""
    return float(n + 1) * 2.0 ** -52


def sum_dir(x, axis, keepdims, up: bool):
    """Sum along ``axis`` (None or a tuple of normalised axes), rounded down or up.

    A vectorised pairwise TwoSum tree gives the floating sum ``s`` and the exact rounding
    errors ``e_i`` (``sum x = s + sum e_i``); the errors are summed in floating point and
    bounded a priori. Exact sums therefore stay exact. Columns that overflow (or contain
    infinities) get an infinite bound: sound, and exact when an entry is infinite.
    """
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(range(x.ndim)) if axis is None else tuple(axis)
    keep = [d for d in range(x.ndim) if d not in axes]
    out_shape = tuple(x.shape[d] for d in keep)
    n = int(np.prod([x.shape[d] for d in axes])) if axes else 1
    cols = np.transpose(x, keep + list(axes)).reshape(out_shape + (n,))
    if n == 0:
        s = np.zeros(out_shape)
    elif n == 1:
        s = cols[..., 0].copy()
    else:
        errs = []
        cur = cols
        while cur.shape[-1] > 1:
            m = cur.shape[-1]
            half = m // 2
            a, b = cur[..., :half], cur[..., half:2 * half]
            ss, ee = _two_sum(a, b)
            errs.append(ee)
            cur = np.concatenate([ss, cur[..., 2 * half:]], axis=-1) if m % 2 else ss
        s = cur[..., 0]
        e = np.concatenate(errs, axis=-1)
        es = np.sum(e, axis=-1)
        et = np.sum(np.abs(e), axis=-1)
        r = mul_dir(sum_bound(e.shape[-1]), et)[1]
        if up:
            s_out = add_ru(s, add_ru(es, r))
            fallback = np.inf
        else:
            s_out = add_rd(s, add_rd(es, -r))
            fallback = -np.inf
        clean = np.isfinite(s) & np.isfinite(es) & np.isfinite(r)
        s = np.where(clean, s_out, fallback)
    if keepdims:
        shape = [1 if d in axes else x.shape[d] for d in range(x.ndim)]
        s = np.reshape(s, shape)
    return np.asarray(s, dtype=np.float64)


def _ulp(y):
    """Unit in the last place of |y| (finite at the largest double, where np.spacing is inf)."""
    return np.spacing(np.minimum(np.abs(y), _BELOW_MAX))


def widen_down(y, ulps):
    yf = np.where(y == np.inf, _MAX, y)
    out = _next_down(yf - ulps * _ulp(yf))
    return np.where(y == -np.inf, -np.inf, out)


def widen_up(y, ulps):
    yf = np.where(y == -np.inf, -_MAX, y)
    out = next_up(yf + ulps * _ulp(yf))
    return np.where(y == np.inf, np.inf, out)


def quiet(fn):
    """Run ``fn`` with floating-point warnings off: overflow and inf are handled explicitly."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    return wrapper


# ---------------------------------------------------------------------------------------------
# mpmath bridge
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def workprec(prec: int) -> Iterator[None]:
    """Scope the precision of *both* ``mpmath.mp`` and ``mpmath.iv`` to ``prec`` bits.

    ``mpmath.workprec`` only changes ``mpmath.mp``; the interval context ``mpmath.iv`` keeps
    its own precision, so a test that wraps ``iv`` calls in ``mpmath.workprec(200)`` silently
    runs at 53 bits. Use this instead. Precision is restored on exit, even on error.

    Parameters
    ----------
    prec : int
        Bits of precision (>= 2).

    Raises
    ------
    InputError
        If ``prec`` is not an integer >= 2.

    Examples
    --------
    >>> import mpmath
    >>> with workprec(200):
    ...     print(mpmath.iv.prec, mpmath.mp.prec)
    200 200
    >>> mpmath.iv.prec
    53
    """
    if isinstance(prec, bool) or not isinstance(prec, numbers.Integral) or prec < 2:
        raise InputError(fail_message("interval.workprec", f"prec={prec!r}",
                                      "pass an integer number of bits >= 2, such as 200"))
    old_iv = mpmath.iv.prec
    try:
        mpmath.iv.prec = int(prec)
        with mpmath.workprec(int(prec)):
            yield
    finally:
        mpmath.iv.prec = old_iv


def raw_to_float(raw, up: bool) -> float:
    """Round a raw mpf outward to float64: the largest float <= raw (or smallest >= raw)."""
    if raw == libmp.fnan:
        raise NonFiniteError(fail_message("interval (mpmath path)", "a NaN endpoint from mpmath",
                                          "pass intervals with real endpoints"))
    if raw == libmp.finf:
        return math.inf if up else _MAX
    if raw == libmp.fninf:
        return -_MAX if up else -math.inf
    f = libmp.to_float(raw)
    if math.isinf(f):
        f = math.copysign(_MAX, f)
    while True:
        c = libmp.mpf_cmp(libmp.from_float(f), raw)
        if up and c < 0:
            f = math.nextafter(f, math.inf)
        elif not up and c > 0:
            f = math.nextafter(f, -math.inf)
        else:
            return f


def fraction_endpoints(value: Fraction) -> tuple[float, float]:
    """Tightest float64 enclosure of an exact rational number."""
    try:
        f = float(value)          # correctly rounded
    except OverflowError:
        f = math.inf if value > 0 else -math.inf
    if math.isinf(f):
        return (_MAX, math.inf) if f > 0 else (-math.inf, -_MAX)
    exact = Fraction(f)
    if exact == value:
        return f, f
    if exact > value:
        return math.nextafter(f, -math.inf), f
    return f, math.nextafter(f, math.inf)
