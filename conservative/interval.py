"""Interval arrays with outward rounding (layer L1).

An :class:`Interval` is an immutable array of closed real intervals ``[lo, hi]`` stored as two
float64 arrays. Every operation returns an interval that contains the exact real result for
*every* choice of reals inside the operands (the *inclusion property*); no operation ever
narrows a result to a rounded value.

How rounding is made outward
----------------------------
NumPy computes in round-to-nearest and cannot switch the rounding mode, so each rounded
operation is followed by an explicit correction, in the spirit of ``mpmath.libmp.libmpi``:

* ``+ - * /`` and ``sqrt`` use error-free transformations (Knuth's TwoSum, Dekker's
  TwoProduct) to learn the *sign* of the rounding error, then step one float down or up with
  ``np.nextafter`` only when the rounded value lies on the wrong side. The result is the
  correctly *directed* rounding: exact operations (``2 * 3``, ``x * 0``, ``x + 0``) stay exact.
  Where the transformation is not error-free (overflow, values below ``2**-960``) the code
  steps unconditionally, which is always sound.
* Sums and matrix products bound the rounding error of the whole floating-point dot product
  a priori (``|fl(x.y) - x.y| <= gamma_k |x|.|y|``, Higham, *Accuracy and Stability*, Thm 3.1,
  valid for any summation order and with or without FMA) and widen by that bound, rounded up.
  This assumes BLAS forms each entry as a sum of the ``k`` products (no Strassen-like
  algorithm), which holds for OpenBLAS, MKL and NumPy's own loops.
* ``exp, log, tanh, sin, cos`` evaluate NumPy at the endpoints (or at the critical points),
  then widen by ``2 * LIBM_ULPS`` units in the last place. **Assumption:** NumPy's float64
  implementations err by less than ``LIBM_ULPS`` (= 4) ulps of the exact result. IEEE 754 does
  not guarantee this (glibc's functions are within 1 ulp; NumPy's AVX-512 code measured
  1.15 ulp for ``tanh``). The assumption is *guarded*: on first use, :func:`libm_check`
  measures NumPy against mpmath on a fixed sample and, if any observed error exceeds
  ``LIBM_ULPS / 2``, the function switches to the mpmath path with a ``RuntimeWarning``.
  Passing ``exact=True`` always takes the mpmath path: each endpoint is enclosed with
  ``mpmath.iv`` at ``EXACT_PREC`` bits and rounded outward to float64 (no assumption, slow).
* ``sigmoid`` is ``1 / (1 + exp(-x))`` in interval arithmetic, so it inherits ``exp``'s rule.

The floating-point environment is checked once (round-to-nearest, no flush-to-zero); a
violation raises :class:`~conservative.errors.ConservativeError` instead of returning wrong
bounds.

Decisions are three-valued. ``a < b`` on intervals returns a :class:`Tristate` that is
*certainly* true, *certainly* false, or *undecided* elementwise; ``bool()`` of an undecided
comparison raises :class:`~conservative.errors.UndecidedError` (``mpmath.iv`` would return
``None``, which is silently falsy). :func:`decide` forces a comparison and names the call.

Division by an interval that contains 0 raises :class:`~conservative.errors.UndecidedError`;
:func:`divide` with ``on_zero="whole"`` returns the whole real line there instead.

Examples
--------
>>> from conservative.interval import Interval
>>> s = Interval.point(0.1) + Interval.point(0.2)
>>> s
Interval(lo=0.3, hi=0.30000000000000004)
>>> from fractions import Fraction
>>> bool(s.lo <= Fraction(0.1) + Fraction(0.2) <= s.hi)
True
>>> x = Interval([-1.0, 2.0], [1.0, 3.0])
>>> x ** 2
Interval(lo=[0.0, 4.0], hi=[1.0, 9.0])
>>> (x > 0).value
array([-1,  1], dtype=int8)
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import warnings
from fractions import Fraction
from typing import Any, Iterator

import mpmath
import numpy as np
from mpmath import libmp
try:
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy < 2.0
    from numpy.core.numeric import normalize_axis_tuple

from .errors import (ConservativeError, InputError, NonFiniteError, ShapeError, UndecidedError,
                     fail_message)

__all__ = [
    "Interval", "IntervalMatrix", "Tristate",
    "as_interval", "decide",
    "lt", "le", "gt", "ge", "eq", "ne",
    "certainly_positive", "certainly_negative", "certainly_nonnegative",
    "certainly_nonpositive", "certainly_zero", "possibly_zero", "possibly_positive",
    "possibly_negative",
    "add", "subtract", "multiply", "divide", "power", "square", "sqrt", "absolute",
    "maximum", "minimum", "relu", "clip", "soft_threshold",
    "exp", "log", "tanh", "sigmoid", "sin", "cos",
    "matmul", "stack", "concatenate", "broadcast_arrays", "hull", "where",
    "workprec", "libm_check", "LIBM_ULPS", "EXACT_PREC",
]
# ``sum`` is public (``interval.sum``) but kept out of ``__all__`` so that a star-import does not
# shadow the builtin.

#: Assumed bound on the error of NumPy's float64 ``exp, log, tanh, sin, cos``, in ulps of the
#: exact result. Results are widened by twice this many ulps of the computed value.
LIBM_ULPS = 4
#: Working precision (bits) of the mpmath path (``exact=True``).
EXACT_PREC = 96

_MAX = float(np.finfo(np.float64).max)
_BELOW_MAX = float(np.nextafter(_MAX, 0.0))
_ETA = float(np.nextafter(0.0, 1.0))          # smallest positive subnormal, 2**-1074
_SPLITTER = 134217729.0                       # 2**27 + 1, Veltkamp/Dekker splitting
_BIG = 2.0 ** 995                             # above this the split may overflow
_SMALL = 2.0 ** -960                          # below this the product error may underflow
_TINY_FACTOR = 2.0 ** -511                    # products of entries above this do not underflow
_TWO_PI = 2.0 * math.pi


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
        daz = np.all(np.full(4, _ETA) * 2.0 == 2.0 * _ETA)      # fails under denormals-are-zero
    return bool(nearest_up and nearest_dn and tie_even and subnormal and daz)


def _check_environment(call: str) -> None:
    if not _fp_environment_ok():
        raise ConservativeError(fail_message(
            call, "a floating-point environment that is not IEEE round-to-nearest with "
            "subnormals (a library may have enabled flush-to-zero or changed the rounding mode)",
            "restore the default environment (e.g. avoid -ffast-math builds) before using "
            "interval arithmetic"))


def _down(x):
    return np.nextafter(x, -np.inf)


def _up(x):
    return np.nextafter(x, np.inf)


def _two_sum(a, b):
    """Knuth's TwoSum: s = fl(a + b) and e with a + b = s + e exactly (if s is finite)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _add_rd(a, b):
    """a + b rounded toward -inf (NaN-free for valid interval endpoints)."""
    s, e = _two_sum(a, b)
    return np.where((e >= 0) & np.isfinite(e), s, _down(s))   # overflow, inf: step (sound)


def _add_ru(a, b):
    """a + b rounded toward +inf."""
    s, e = _two_sum(a, b)
    return np.where((e <= 0) & np.isfinite(e), s, _up(s))


def _two_prod(a, b):
    """Dekker's TwoProduct: p = fl(a b), e, and a mask ``ok`` where a b = p + e exactly."""
    p = a * b
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLITTER * b
    bh = c - (c - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    ap = np.abs(p)
    aa, ab = np.abs(a), np.abs(b)
    ok = (((aa <= _BIG) & (ab <= _BIG) & (aa >= _SMALL) & (ab >= _SMALL)
           & (ap >= _SMALL) & (ap <= _BIG))
          | (((a == 0) | (b == 0)) & np.isfinite(a) & np.isfinite(b)))
    return p, e, ok


def _mul_dir(a, b):
    """(a b rounded down, a b rounded up); NaN where the product is 0 * inf."""
    p, e, ok = _two_prod(a, b)
    sign = np.sign(a) * np.sign(b)              # sign of the exact product (underflow to 0)
    lo = np.where((ok & (e >= 0)) | ((p == 0) & (sign >= 0)), p, _down(p))
    hi = np.where((ok & (e <= 0)) | ((p == 0) & (sign <= 0)), p, _up(p))
    return lo, hi


def _div_dir(a, b):
    """(a / b rounded down, a / b rounded up) for b != 0; NaN for inf / inf."""
    q = a / b
    p, e, ok = _two_prod(q, b)
    r = (a - p) - e                     # exact sign of a - q b (Sterbenz; gradual underflow)
    ok = ok & np.isfinite(q) & np.isfinite(a) & np.isfinite(b) & (
        (np.abs(q) >= _SMALL) | (q == 0))     # q normal, so q b is within 2 ulps of a
    s = np.sign(r) * np.sign(b)         # sign of a / b - q
    sign = np.sign(a) * np.sign(b)      # sign of the exact quotient (q may underflow to 0)
    lo = np.where((ok & (s >= 0)) | ((q == 0) & (sign >= 0)), q, _down(q))
    hi = np.where((ok & (s <= 0)) | ((q == 0) & (sign <= 0)), q, _up(q))
    return lo, hi


def _sqrt_dir(x):
    """(sqrt(x) rounded down, rounded up) for x >= 0, using the IEEE correctly rounded sqrt."""
    s = np.sqrt(x)
    p, e, ok = _two_prod(s, s)
    r = (x - p) - e                     # sign of x - s**2
    ok = ok & np.isfinite(s)
    lo = np.where(ok & (r >= 0), s, _down(s))
    hi = np.where(ok & (r <= 0), s, _up(s))
    return np.maximum(lo, 0.0), hi


def _pow_dir(m, k: int, up: bool):
    """m**k for m >= 0, rounded down (``up=False``) or up, by binary powering."""
    result = np.ones_like(m)
    base = m
    pick = 1 if up else 0
    while k:
        if k & 1:
            result = _mul_dir(result, base)[pick]
        k >>= 1
        if k:
            base = _mul_dir(base, base)[pick]
    return result


def _sum_bound(n: int):
    """Factor c with |fl(sum x) - sum x| <= c * fl(sum |x|) for n terms, any order (n u <= 1/4)."""
    return float(n + 1) * 2.0 ** -52


def _sum_dir(x, axis, keepdims, up: bool):
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
        r = _mul_dir(_sum_bound(e.shape[-1]), et)[1]
        if up:
            s_out = _add_ru(s, _add_ru(es, r))
            fallback = np.inf
        else:
            s_out = _add_rd(s, _add_rd(es, -r))
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


def _widen_down(y, ulps):
    yf = np.where(y == np.inf, _MAX, y)
    out = _down(yf - ulps * _ulp(yf))
    return np.where(y == -np.inf, -np.inf, out)


def _widen_up(y, ulps):
    yf = np.where(y == -np.inf, -_MAX, y)
    out = _up(yf + ulps * _ulp(yf))
    return np.where(y == np.inf, np.inf, out)


def _quiet(fn):
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


def _raw_mpf(value):
    """Raw mpmath tuple of a real number (exact for floats, ints and mpf)."""
    if isinstance(value, mpmath.mpf):
        return value._mpf_
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return libmp.from_int(int(value))
    return libmp.from_float(float(value))


def _raw_to_float(raw, up: bool) -> float:
    """Round a raw mpf outward to float64: the largest float <= raw (or smallest >= raw)."""
    if raw == libmp.fnan:
        raise NonFiniteError(fail_message("Interval.from_mpmath", "a NaN endpoint",
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


def _mp_endpoints(value) -> tuple[float, float]:
    """Outward float64 enclosure of an mpmath interval or real number."""
    if isinstance(value, mpmath.ctx_iv.ivmpf):
        a, b = value._mpi_
    elif isinstance(value, (mpmath.mpf, numbers.Real, np.integer, np.floating)) \
            and not isinstance(value, (bool, np.bool_)):
        if isinstance(value, Fraction):
            return _fraction_endpoints(value)
        a = b = _raw_mpf(value)
    else:
        raise InputError(fail_message(
            "Interval.from_mpmath", f"an element of type {type(value).__name__}",
            "pass mpmath.iv.mpf intervals, mpmath.mpf numbers or real numbers"))
    return _raw_to_float(a, up=False), _raw_to_float(b, up=True)


def _fraction_endpoints(value: Fraction) -> tuple[float, float]:
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


# ---------------------------------------------------------------------------------------------
# Input conversion
# ---------------------------------------------------------------------------------------------

def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:200]


def _float_endpoints(value: Any, *, name: str, call: str, finite: bool):
    """Convert to float64; return (down, up) enclosures (different only for huge integers)."""
    if isinstance(value, (Interval, Tristate)):
        raise InputError(fail_message(call, f"{name} as {type(value).__name__}",
                                      "pass real numbers here, or use the Interval directly"))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 53:
        lo, hi = _fraction_endpoints(Fraction(value))    # Python ints of any size, outward
        if finite and not (math.isfinite(lo) and math.isfinite(hi)):
            raise NonFiniteError(fail_message(call, f"{name}={value!r} beyond the float range",
                                              "pass numbers below 1.8e308 in magnitude"))
        return np.array(lo), np.array(hi)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise ShapeError(fail_message(
            call, f"{name} as {_describe(value)}, a nested sequence of unequal lengths",
            "pass a rectangular array (every row of the same length)")) from None
    if arr.dtype == bool or arr.dtype.kind in "bcOUSMmV":
        raise InputError(fail_message(
            call, f"{name} as {_describe(value)}",
            "pass real numbers (int or float); complex, bool and object arrays are not accepted"))
    f = np.array(arr, dtype=np.float64)
    lo = hi = f
    if arr.dtype.kind in "iu" and arr.size and np.max(np.abs(f)) > 2.0 ** 53:
        lo, hi = f.copy(), f.copy()          # int64 beyond 2**53: enclose outward (rare, loop)
        for idx in np.ndindex(f.shape):
            if abs(f[idx]) > 2.0 ** 53:
                lo[idx], hi[idx] = _fraction_endpoints(Fraction(int(arr[idx])))
    if np.any(np.isnan(f)):
        raise NonFiniteError(fail_message(call, f"{name} containing NaN",
                                          "pass real numbers; NaN is not an interval endpoint"))
    if finite and not np.all(np.isfinite(f)):
        raise NonFiniteError(fail_message(
            call, f"{name} containing infinite values",
            "pass finite numbers, or build an unbounded interval with Interval(lo, hi)"))
    return lo, hi


def as_interval(value: Any, *, name: str = "value", call: str = "as_interval") -> "Interval":
    """Return ``value`` as an :class:`Interval`; real arrays become point intervals.

    Parameters
    ----------
    value : Interval, array_like of real numbers, or mpmath interval/number
        Floats are exact points (``0.1`` means the double nearest 1/10, not 1/10: use
        :meth:`Interval.from_exact` for decimal strings or fractions).
    name, call : str
        Used in error messages.

    Raises
    ------
    InputError
        For complex, bool, object or NaN input; ``NonFiniteError`` for infinite points.

    Examples
    --------
    >>> as_interval([1, 2]).hi
    array([1., 2.])
    """
    if isinstance(value, Interval):
        return value
    _check_environment(call)
    if isinstance(value, (mpmath.ctx_iv.ivmpf, mpmath.mpf)) or (
            hasattr(value, "rows") and hasattr(value, "cols")):
        return Interval.from_mpmath(value)
    lo, hi = _float_endpoints(value, name=name, call=call, finite=True)
    return Interval._new(lo, hi)


def _pair(a, b, call):
    a = as_interval(a, name="the first operand", call=call)
    b = as_interval(b, name="the second operand", call=call)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(fail_message(call, f"operands of shapes {a.shape} and {b.shape}",
                                      "pass operands whose shapes broadcast (NumPy rules)"))
    return a, b


def _fmt(x: np.ndarray) -> str:
    if x.ndim == 0:
        return repr(float(x))
    return np.array2string(x, separator=", ", formatter={"float_kind": lambda v: repr(float(v))},
                           threshold=200, max_line_width=100)


# ---------------------------------------------------------------------------------------------
# Interval
# ---------------------------------------------------------------------------------------------

class Interval:
    """Immutable array of closed intervals ``[lo, hi]`` with outward-rounded arithmetic.

    Parameters
    ----------
    lo, hi : array_like of real numbers
        Endpoints; they broadcast against each other. ``hi`` defaults to ``lo`` (points).
        Endpoints may be infinite (``lo = -inf``, ``hi = +inf``) but ``lo`` may not be
        ``+inf`` nor ``hi`` ``-inf``. Integers beyond 2**53 are enclosed outward.

    Attributes
    ----------
    lo, hi : ndarray
        Read-only float64 arrays of equal shape with ``lo <= hi``.

    Raises
    ------
    InputError
        If ``lo > hi`` somewhere, an endpoint is NaN (``NonFiniteError``), or the input is not
        real (complex, bool, object).
    ShapeError
        If ``lo`` and ``hi`` do not broadcast.

    Notes
    -----
    Operators: ``+ - * / @ **`` (non-negative integer powers), unary ``-``, ``abs()``, and the
    comparisons ``< <= > >= == !=`` which return a :class:`Tristate`. Operands may be
    intervals or real arrays (treated as exact points); NumPy arrays on the left work too.
    ``np.asarray(interval)`` is refused: choose ``.lo``, ``.hi`` or ``.mid`` explicitly.

    Examples
    --------
    >>> x = Interval([0.0, 1.0], [1.0, 2.0])
    >>> x.shape
    (2,)
    >>> x * 2 - 1
    Interval(lo=[-1.0, 1.0], hi=[1.0, 3.0])
    >>> Interval(2.0, 1.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conservative.errors.InputError: Interval: received lo > hi at index () (lo=2.0, hi=1.0); ...
    """

    __slots__ = ("_lo", "_hi")
    __array_ufunc__ = None          # make ndarray (op) Interval defer to our reflected methods
    __hash__ = None                 # mutable-looking semantics of == (tri-state) forbid hashing

    def __init__(self, lo: Any, hi: Any = None, *, call: str = "Interval"):
        _check_environment(call)
        lo_d, hi_u = _float_endpoints(lo, name="lo", call=call, finite=False)
        if hi is not None:
            _, hi_u = _float_endpoints(hi, name="hi", call=call, finite=False)
        try:
            shape = np.broadcast_shapes(lo_d.shape, hi_u.shape)
        except ValueError:
            raise ShapeError(fail_message(call, f"lo of shape {lo_d.shape} and hi of shape "
                                          f"{hi_u.shape}", "pass endpoints whose shapes broadcast"))
        lo_d = np.array(np.broadcast_to(lo_d, shape), dtype=np.float64)
        hi_u = np.array(np.broadcast_to(hi_u, shape), dtype=np.float64)
        bad = lo_d > hi_u
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(fail_message(
                call, f"lo > hi at index {idx} (lo={float(lo_d[idx])!r}, hi={float(hi_u[idx])!r})",
                "pass lo <= hi elementwise (use Interval.hull to build the smallest interval "
                "around unordered values)"))
        if np.any(lo_d == np.inf) or np.any(hi_u == -np.inf):
            raise InputError(fail_message(call, "lo = +inf or hi = -inf",
                                          "an interval must contain a real number"))
        self._set(lo_d, hi_u)

    def _set(self, lo, hi):
        lo.flags.writeable = False
        hi.flags.writeable = False
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_hi", hi)

    @classmethod
    def _new(cls, lo, hi) -> "Interval":
        """Build without validation from arrays known to be valid endpoints."""
        obj = object.__new__(Interval)
        obj._set(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
        return obj

    def __setattr__(self, name, value):
        raise AttributeError(f"Interval is immutable; cannot set {name!r}")

    def __reduce__(self):
        return (_rebuild, (type(self), np.array(self._lo), np.array(self._hi)))

    # --- constructors ----------------------------------------------------------------------

    @classmethod
    def point(cls, x: Any, *, call: str = "Interval.point") -> "Interval":
        """Degenerate intervals ``[x, x]`` (exact: floats are taken as they are).

        Raises
        ------
        InputError
            For NaN, infinite, complex, bool or object input.

        Examples
        --------
        >>> Interval.point([1.5, -2.0])
        Interval(lo=[1.5, -2.0], hi=[1.5, -2.0])
        """
        _check_environment(call)
        lo, hi = _float_endpoints(x, name="x", call=call, finite=True)
        return cls._new(lo, hi)

    @classmethod
    def whole(cls, shape: tuple[int, ...] = ()) -> "Interval":
        """The whole real line ``[-inf, inf]`` in every entry.

        Examples
        --------
        >>> Interval.whole((2,))
        Interval(lo=[-inf, -inf], hi=[inf, inf])
        """
        return cls._new(np.full(shape, -np.inf), np.full(shape, np.inf))

    @classmethod
    def from_box(cls, box: Any, *, call: str = "Interval.from_box") -> "Interval":
        """Interval from a ``(lo, hi)`` pair of arrays (the box format of ``F.enclose``).

        An :class:`Interval` is returned unchanged.

        Raises
        ------
        InputError
            If ``box`` is not an Interval or a pair, or ``lo > hi``.

        Examples
        --------
        >>> Interval.from_box(([0, 1], [1, 1]))
        Interval(lo=[0.0, 1.0], hi=[1.0, 1.0])
        """
        if isinstance(box, Interval):
            return box
        if not isinstance(box, (tuple, list)) or len(box) != 2:
            raise InputError(fail_message(call, f"box as {_describe(box)}",
                                          "pass an Interval or a pair (lo, hi) of arrays"))
        return cls(box[0], box[1], call=call)

    @classmethod
    def from_exact(cls, values: Any, *, call: str = "Interval.from_exact") -> "Interval":
        """Tightest float64 enclosure of exact numbers: ints, Fractions, decimal strings.

        ``Interval.point(0.1)`` encloses the double nearest 1/10; ``from_exact("0.1")``
        encloses 1/10 itself.

        Raises
        ------
        InputError
            If an element cannot be read as an exact rational number.

        Examples
        --------
        >>> Interval.from_exact("0.1")
        Interval(lo=0.09999999999999999, hi=0.1)
        >>> Interval.from_exact([1, "1/3"]).hi
        array([1.        , 0.33333333])
        """
        arr = np.asarray(values, dtype=object)
        lo = np.empty(arr.shape)
        hi = np.empty(arr.shape)
        for idx in np.ndindex(arr.shape):
            v = arr[idx]
            try:
                if isinstance(v, (float, np.floating)) and math.isnan(v):
                    raise ValueError
                fr = Fraction(v) if not isinstance(v, np.generic) else Fraction(v.item())
            except (TypeError, ValueError, OverflowError):
                raise InputError(fail_message(call, f"element {idx} = {v!r}",
                                              "pass ints, Fractions, floats or decimal strings"))
            lo[idx], hi[idx] = _fraction_endpoints(fr)
        return cls._new(lo, hi)

    @classmethod
    def from_mpmath(cls, value: Any, *, call: str = "Interval.from_mpmath") -> "Interval":
        """Outward float64 enclosure of mpmath intervals or numbers.

        Parameters
        ----------
        value : mpmath.iv.mpf, mpmath.mpf, mpmath (iv) matrix, or a (nested) sequence or
            object array of these
            An ``iv.matrix`` or ``mp.matrix`` gives a 2-D interval.

        Raises
        ------
        InputError
            For elements that are not real mpmath numbers or intervals.

        Examples
        --------
        >>> import mpmath
        >>> with workprec(100):
        ...     third = mpmath.iv.mpf(1) / 3
        >>> x = Interval.from_mpmath(third)
        >>> bool(x.lo < x.hi)
        True
        """
        if hasattr(value, "rows") and hasattr(value, "cols"):
            value = [[value[i, j] for j in range(value.cols)] for i in range(value.rows)]
        arr = np.empty((), dtype=object)
        if isinstance(value, (list, tuple, np.ndarray)):
            arr = np.asarray(value, dtype=object)
        else:
            arr[()] = value
        lo = np.empty(arr.shape)
        hi = np.empty(arr.shape)
        for idx in np.ndindex(arr.shape):
            lo[idx], hi[idx] = _mp_endpoints(arr[idx])
        return cls._new(lo, hi)

    def to_mpmath(self) -> Any:
        """Exact conversion to ``mpmath.iv.mpf`` intervals.

        Returns
        -------
        mpmath.iv.mpf or ndarray of object
            A single interval for 0-d input, else an object array of the same shape. The
            endpoints are exact (they are floats); precision for further ``iv`` arithmetic is
            set with :func:`workprec`.

        Examples
        --------
        >>> Interval(1.0, 2.0).to_mpmath()
        mpi('1.0', '2.0')
        """
        out = np.empty(self.shape, dtype=object)
        with workprec(max(53, mpmath.iv.prec)):
            for idx in np.ndindex(self.shape):
                out[idx] = mpmath.iv.mpf([float(self._lo[idx]), float(self._hi[idx])])
        return out[()] if self.ndim == 0 else out

    def to_iv_matrix(self) -> Any:
        """Exact conversion to an ``mpmath.iv.matrix`` (1-D input becomes a column).

        Raises
        ------
        ShapeError
            If the interval is not 1-D or 2-D.

        Examples
        --------
        >>> m = Interval([[0.0, 1.0]], [[1.0, 1.0]]).to_iv_matrix()
        >>> (m.rows, m.cols)
        (1, 2)
        """
        if self.ndim not in (1, 2):
            raise ShapeError(fail_message("Interval.to_iv_matrix", f"an interval of shape "
                                          f"{self.shape}", "pass a 1-D or 2-D interval"))
        x = self if self.ndim == 2 else self.reshape(-1, 1)
        m = mpmath.iv.matrix(x.shape[0], x.shape[1])
        with workprec(max(53, mpmath.iv.prec)):
            for i in range(x.shape[0]):
                for j in range(x.shape[1]):
                    m[i, j] = mpmath.iv.mpf([float(x._lo[i, j]), float(x._hi[i, j])])
        return m

    # --- basic properties ------------------------------------------------------------------

    @property
    def lo(self) -> np.ndarray:
        """Lower endpoints (read-only float64 array)."""
        return self._lo

    @property
    def hi(self) -> np.ndarray:
        """Upper endpoints (read-only float64 array)."""
        return self._hi

    @property
    def shape(self) -> tuple[int, ...]:
        return self._lo.shape

    @property
    def ndim(self) -> int:
        return self._lo.ndim

    @property
    def size(self) -> int:
        return self._lo.size

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d Interval")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d Interval")
        for i in range(self.shape[0]):
            yield self[i]

    @property
    @_quiet
    def mid(self) -> np.ndarray:
        """A float inside each interval, near the midpoint (0 for the whole line).

        Examples
        --------
        >>> Interval([0.0, 1.0], [1.0, 1.0]).mid
        array([0.5, 1. ])
        """
        lo, hi = self._lo, self._hi
        m = np.where(lo == hi, lo, 0.5 * lo + 0.5 * hi)
        m = np.where(np.isnan(m), 0.0, m)
        return np.asarray(np.clip(m, lo, hi))

    @property
    @_quiet
    def rad(self) -> np.ndarray:
        """Radius rounded up: ``[mid - rad, mid + rad]`` contains the interval.

        Examples
        --------
        >>> Interval(0.0, 1.0).rad
        array(0.5)
        """
        m = self.mid
        return np.asarray(np.maximum(_add_ru(self._hi, -m), _add_ru(m, -self._lo)))

    @property
    @_quiet
    def width(self) -> np.ndarray:
        """``hi - lo`` rounded up."""
        return np.asarray(_add_ru(self._hi, -self._lo))

    @property
    def mag(self) -> np.ndarray:
        """Magnitude ``max |x|`` over the interval (exact)."""
        return np.maximum(np.abs(self._lo), np.abs(self._hi))

    @property
    def mig(self) -> np.ndarray:
        """Mignitude ``min |x|`` over the interval (exact; 0 if it contains 0)."""
        m = np.minimum(np.abs(self._lo), np.abs(self._hi))
        return np.where((self._lo <= 0) & (self._hi >= 0), 0.0, m)

    @property
    def is_point(self) -> np.ndarray:
        """Elementwise ``lo == hi``."""
        return self._lo == self._hi

    def equals(self, other: "Interval") -> bool:
        """Structural equality: same shape and identical endpoints (not a comparison of values)."""
        return (isinstance(other, Interval) and self.shape == other.shape
                and bool(np.array_equal(self._lo, other._lo))
                and bool(np.array_equal(self._hi, other._hi)))

    def contains(self, x: Any, *, atol: float = 0.0) -> np.ndarray:
        """Elementwise membership of reals ``x`` (or inclusion of an interval ``x``).

        Parameters
        ----------
        x : array_like or Interval
            Broadcast against the interval.
        atol : float
            Tolerance: test ``lo - atol <= x <= hi + atol`` (0 for the rigorous test).

        Raises
        ------
        InputError
            If ``x`` contains NaN, or ``atol`` is negative or NaN.

        Examples
        --------
        >>> Interval([0.0, 0.0], [1.0, 1.0]).contains([0.5, 2.0])
        array([ True, False])
        """
        call = "Interval.contains"
        if not atol >= 0:
            raise InputError(fail_message(call, f"atol={atol!r}", "pass atol >= 0"))
        if isinstance(x, Interval):
            lo, hi = x._lo, x._hi
        else:
            lo, hi = _float_endpoints(x, name="x", call=call, finite=False)
        try:
            np.broadcast_shapes(np.shape(lo), self.shape)
        except ValueError:
            raise ShapeError(fail_message(call, f"x of shape {np.shape(lo)} for an interval of "
                                          f"shape {self.shape}", "pass x that broadcasts"))
        with np.errstate(all="ignore"):
            return np.asarray((self._lo - atol <= lo) & (hi <= self._hi + atol))

    def intersects(self, other: Any) -> np.ndarray:
        """Elementwise: do the intervals share a point?

        Examples
        --------
        >>> Interval(0.0, 1.0).intersects(Interval([1.0, 1.5], [2.0, 2.0]))
        array([ True, False])
        """
        a, b = _pair(self, other, "Interval.intersects")
        return (a._lo <= b._hi) & (b._lo <= a._hi)

    def hull(self, other: Any) -> "Interval":
        """Smallest interval containing both (elementwise).

        Examples
        --------
        >>> Interval(0.0, 1.0).hull(3.0)
        Interval(lo=0.0, hi=3.0)
        """
        a, b = _pair(self, other, "Interval.hull")
        return Interval._new(np.minimum(a._lo, b._lo), np.maximum(a._hi, b._hi))

    def intersection(self, other: Any) -> "Interval":
        """Elementwise intersection.

        Raises
        ------
        InputError
            If the intervals are disjoint somewhere (there is no empty interval).

        Examples
        --------
        >>> Interval(0.0, 2.0).intersection(Interval(1.0, 3.0))
        Interval(lo=1.0, hi=2.0)
        """
        a, b = _pair(self, other, "Interval.intersection")
        lo, hi = np.maximum(a._lo, b._lo), np.minimum(a._hi, b._hi)
        if np.any(lo > hi):
            raise InputError(fail_message("Interval.intersection", "disjoint intervals",
                                          "check intersects() first; empty intervals do not exist"))
        return Interval._new(lo, hi)

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        """Uniform random floats inside the (bounded) intervals, shape ``(size, *shape)``.

        Raises
        ------
        InputError
            If an endpoint is infinite.

        Examples
        --------
        >>> x = Interval([0.0, 5.0], [1.0, 5.0])
        >>> s = x.sample(np.random.default_rng(0), 3)
        >>> s.shape, bool(x.contains(s).all())
        ((3, 2), True)
        """
        if not (np.all(np.isfinite(self._lo)) and np.all(np.isfinite(self._hi))):
            raise InputError(fail_message("Interval.sample", "an unbounded interval",
                                          "sample only bounded intervals"))
        shape = self.shape if size is None else (size,) + self.shape
        u = rng.random(shape)
        with np.errstate(all="ignore"):
            x = self._lo + u * (self._hi - self._lo)
            x = np.where(np.isfinite(x), x, self._lo + u * self._hi - u * self._lo)
        return np.clip(x, self._lo, self._hi)

    # --- shape manipulation ----------------------------------------------------------------

    def __getitem__(self, key) -> "Interval":
        if isinstance(key, (Interval, Tristate)):
            raise InputError(fail_message("Interval.__getitem__", f"an index of type "
                                          f"{type(key).__name__}",
                                          "index with ints, slices or boolean/int arrays"))
        return Interval._new(self._lo[key], self._hi[key])

    def __setitem__(self, key, value):
        raise TypeError("Interval is immutable; build a new one with where(), stack() or "
                        "concatenate()")

    def reshape(self, *shape) -> "Interval":
        """Same intervals in a new shape (NumPy rules, C order)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            return Interval._new(self._lo.reshape(shape), self._hi.reshape(shape))
        except ValueError:
            raise ShapeError(fail_message("Interval.reshape", f"shape {shape} for an interval "
                                          f"of shape {self.shape}", "keep the number of elements"))

    def ravel(self) -> "Interval":
        """Flatten in C order."""
        return self.reshape(-1)

    def transpose(self, *axes) -> "Interval":
        """Permute axes (NumPy rules)."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = axes or None
        return Interval._new(np.transpose(self._lo, axes), np.transpose(self._hi, axes))

    @property
    def T(self) -> "Interval":
        return self.transpose()

    def broadcast_to(self, shape) -> "Interval":
        """Broadcast to ``shape`` (read-only views)."""
        try:
            return Interval._new(np.broadcast_to(self._lo, shape),
                                 np.broadcast_to(self._hi, shape))
        except ValueError:
            raise ShapeError(fail_message("Interval.broadcast_to", f"shape {tuple(shape)} for "
                                          f"an interval of shape {self.shape}",
                                          "pass a shape compatible under broadcasting"))

    def as_matrix(self) -> "IntervalMatrix":
        """View a 2-D interval as an :class:`IntervalMatrix`."""
        return IntervalMatrix.from_interval(self)

    # --- conversion guards -----------------------------------------------------------------

    def __array__(self, dtype=None, copy=None):
        raise InputError(fail_message(
            "np.asarray(Interval)", f"an Interval of shape {self.shape}",
            "use .lo, .hi or .mid to choose which floats you mean"))

    def __bool__(self):
        raise InputError(fail_message("bool(Interval)", "an Interval",
                                      "compare explicitly (x > 0) and decide() the Tristate"))

    def __float__(self):
        raise InputError(fail_message("float(Interval)", "an Interval",
                                      "use .lo, .hi or .mid to choose which float you mean"))

    def __repr__(self) -> str:
        return f"Interval(lo={_fmt(self._lo)}, hi={_fmt(self._hi)})"

    # --- arithmetic operators --------------------------------------------------------------

    def __neg__(self) -> "Interval":
        return Interval._new(-self._hi, -self._lo)

    def __pos__(self) -> "Interval":
        return self

    def __abs__(self) -> "Interval":
        return absolute(self)

    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return subtract(self, other)

    def __rsub__(self, other):
        return subtract(other, self)

    def __mul__(self, other):
        return multiply(self, other)

    def __rmul__(self, other):
        return multiply(other, self)

    def __truediv__(self, other):
        return divide(self, other)

    def __rtruediv__(self, other):
        return divide(other, self)

    def __pow__(self, k):
        return power(self, k)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __lt__(self, other):
        return lt(self, other)

    def __le__(self, other):
        return le(self, other)

    def __gt__(self, other):
        return gt(self, other)

    def __ge__(self, other):
        return ge(self, other)

    def __eq__(self, other):
        try:
            return eq(self, other)
        except InputError:          # not a number: let Python fall back to identity
            return NotImplemented

    def __ne__(self, other):
        try:
            return ne(self, other)
        except InputError:
            return NotImplemented

    # --- methods mirroring the module functions -------------------------------------------

    def square(self) -> "Interval":
        return square(self)

    def sqrt(self) -> "Interval":
        return sqrt(self)

    def abs(self) -> "Interval":
        return absolute(self)

    def exp(self, *, exact: bool = False) -> "Interval":
        return exp(self, exact=exact)

    def log(self, *, exact: bool = False) -> "Interval":
        return log(self, exact=exact)

    def tanh(self, *, exact: bool = False) -> "Interval":
        return tanh(self, exact=exact)

    def sigmoid(self, *, exact: bool = False) -> "Interval":
        return sigmoid(self, exact=exact)

    def sin(self, *, exact: bool = False) -> "Interval":
        return sin(self, exact=exact)

    def cos(self, *, exact: bool = False) -> "Interval":
        return cos(self, exact=exact)

    def relu(self) -> "Interval":
        return relu(self)

    def sum(self, axis=None, keepdims: bool = False) -> "Interval":
        return sum(self, axis=axis, keepdims=keepdims)

    def lt(self, other) -> "Tristate":
        return lt(self, other)

    def le(self, other) -> "Tristate":
        return le(self, other)

    def gt(self, other) -> "Tristate":
        return gt(self, other)

    def ge(self, other) -> "Tristate":
        return ge(self, other)


def _rebuild(cls, lo, hi):
    """Unpickle an Interval (or IntervalMatrix) without re-validating."""
    obj = object.__new__(cls)
    obj._set(lo, hi)
    return obj


# ---------------------------------------------------------------------------------------------
# IntervalMatrix
# ---------------------------------------------------------------------------------------------

class IntervalMatrix(Interval):
    """A 2-D :class:`Interval`: the result type of Jacobian enclosures (``F.enclose``).

    Every matrix ``M`` with ``lo <= M <= hi`` entrywise belongs to the box; for a map
    ``F(x, theta)`` with ``n`` states and ``m`` parameters the shape is ``(n, n + m)`` and the
    blocks ``[A B]`` are :meth:`A_block` and :meth:`B_block`.

    Parameters
    ----------
    lo, hi : array_like, 2-D
        Endpoints, as for :class:`Interval`.

    Raises
    ------
    ShapeError
        If the endpoints are not 2-D.
    InputError
        As for :class:`Interval` (``lo > hi``, NaN).

    Examples
    --------
    >>> M = IntervalMatrix([[0.0, 1.0], [0.5, 0.0]], [[0.0, 1.0], [1.0, 0.0]])
    >>> M.contains(np.array([[0.0, 1.0], [0.75, 0.0]]))
    True
    >>> M.A_block(1).shape, M.vertices_count
    ((2, 1), 2)
    """

    __slots__ = ()

    def __init__(self, lo: Any, hi: Any = None, *, call: str = "IntervalMatrix"):
        super().__init__(lo, hi, call=call)
        if self.ndim != 2:
            raise ShapeError(fail_message(call, f"endpoints of shape {self.shape}",
                                          "pass 2-D arrays (matrices)"))

    @classmethod
    def from_interval(cls, x: Interval, *,
                      call: str = "IntervalMatrix.from_interval") -> "IntervalMatrix":
        """Wrap a 2-D :class:`Interval` (no copy).

        Raises
        ------
        ShapeError
            If ``x`` is not 2-D.
        """
        x = as_interval(x, call=call)
        if x.ndim != 2:
            raise ShapeError(fail_message(call, f"an interval of shape {x.shape}",
                                          "pass a 2-D interval"))
        obj = object.__new__(cls)
        obj._set(x._lo, x._hi)
        return obj

    def contains(self, M: Any, *, atol: float = 0.0):
        """Is the matrix ``M`` (or each matrix of a stack) inside the box?

        Parameters
        ----------
        M : array_like of shape ``self.shape`` or ``(k, *self.shape)``, or an Interval
            A matrix, a stack of matrices, or an interval matrix (inclusion test).
        atol : float
            Entrywise tolerance (0 for the rigorous test).

        Returns
        -------
        bool or ndarray of bool
            One bool for a single matrix, an array of shape ``(k,)`` for a stack.

        Raises
        ------
        ShapeError
            If the trailing shape of ``M`` is not ``self.shape``.
        InputError
            If ``M`` contains NaN or ``atol < 0``.
        """
        call = "IntervalMatrix.contains"
        if isinstance(M, Interval):
            if M.shape != self.shape:
                raise ShapeError(fail_message(call, f"an interval of shape {M.shape}",
                                              f"pass shape {self.shape}"))
            return bool(np.all(super().contains(M, atol=atol)))
        lo, _ = _float_endpoints(M, name="M", call=call, finite=False)
        if lo.shape[-2:] != self.shape or lo.ndim not in (2, 3):
            raise ShapeError(fail_message(call, f"M of shape {lo.shape}",
                                          f"pass a matrix of shape {self.shape} or a stack of "
                                          f"shape (k, {self.shape[0]}, {self.shape[1]})"))
        inside = super().contains(lo, atol=atol)
        if lo.ndim == 2:
            return bool(np.all(inside))
        return np.all(inside, axis=(1, 2))

    def columns(self, cols) -> "IntervalMatrix":
        """The sub-box of the selected columns (a slice, an int array or a boolean mask)."""
        if isinstance(cols, (int, np.integer)):
            cols = [int(cols)]
        return IntervalMatrix.from_interval(Interval._new(self._lo[:, cols], self._hi[:, cols]))

    def A_block(self, n: int) -> "IntervalMatrix":
        """First ``n`` columns (the state block ``A`` of ``[A B]``)."""
        return self.columns(slice(0, n))

    def B_block(self, n: int) -> "IntervalMatrix":
        """Columns from ``n`` on (the parameter block ``B`` of ``[A B]``)."""
        return self.columns(slice(n, None))

    @property
    def vertices_count(self) -> int:
        """Number of vertices of the box: ``2**`` (number of entries with ``lo < hi``)."""
        return 2 ** int(np.count_nonzero(self._lo < self._hi))

    @property
    def T(self) -> "IntervalMatrix":
        return IntervalMatrix.from_interval(self.transpose())

    def __getitem__(self, key) -> Interval:
        out = super().__getitem__(key)
        return IntervalMatrix.from_interval(out) if out.ndim == 2 else out

    @_quiet
    def norm_bound(self, ord: Any = np.inf) -> float:
        """Upper bound of the operator norm over the box, for ``ord`` in ``{1, inf}``.

        Raises
        ------
        InputError
            For another ``ord``.

        Examples
        --------
        >>> IntervalMatrix([[0.0, -1.0]], [[0.5, -0.5]]).norm_bound(np.inf)
        1.5
        """
        if ord not in (1, np.inf):
            raise InputError(fail_message("IntervalMatrix.norm_bound", f"ord={ord!r}",
                                          "pass 1 or numpy.inf"))
        axis = 1 if ord == np.inf else 0
        sums = _sum_dir(self.mag, (axis,), False, up=True)
        return float(np.max(sums)) if sums.size else 0.0

    def __repr__(self) -> str:
        width = float(np.max(self.width)) if self.size else 0.0
        return (f"IntervalMatrix(shape={self.shape}, max_width={width!r},\n"
                f"  lo={_fmt(self._lo)},\n  hi={_fmt(self._hi)})")


# ---------------------------------------------------------------------------------------------
# Tri-state decisions
# ---------------------------------------------------------------------------------------------

class Tristate:
    """Elementwise three-valued truth: certainly true, certainly false, or undecided.

    Stored as two boolean arrays: ``certainly`` (true for every choice of values in the
    intervals) and ``possibly`` (true for some choice). Undecided means
    ``possibly & ~certainly``. Logic follows Kleene: ``~``, ``&``, ``|``.

    Raises
    ------
    UndecidedError
        From ``bool()`` of an undecided single comparison (never a silent ``False``).
    InputError
        From ``bool()`` of more than one element, or if ``certainly`` is not a subset of
        ``possibly``.

    Examples
    --------
    >>> t = Interval([0.0, 2.0, -1.0], [1.0, 3.0, 0.5]) > 0.75
    >>> t
    Tristate([undecided, True, False])
    >>> t.value
    array([-1,  1,  0], dtype=int8)
    >>> bool(t[1])
    True
    >>> bool(t[0])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conservative.errors.UndecidedError: bool(Tristate): ... gt(x=[0.0, 1.0], y=0.75); ...
    """

    __slots__ = ("_c", "_p", "_source")
    __array_ufunc__ = None          # ndarray & Tristate defers to our reflected operators

    def __init__(self, certainly: Any, possibly: Any, *, source=None):
        c, p = np.broadcast_arrays(np.asarray(certainly, dtype=bool),
                                   np.asarray(possibly, dtype=bool))
        c, p = np.array(c), np.array(p)
        c.flags.writeable = False
        p.flags.writeable = False
        if np.any(c & ~p):
            raise InputError(fail_message("Tristate", "certainly=True where possibly=False",
                                          "pass certainly as a subset of possibly"))
        self._c, self._p, self._source = c, p, source

    @property
    def certainly(self) -> np.ndarray:
        """True where the statement holds for every choice of values."""
        return self._c

    @property
    def possibly(self) -> np.ndarray:
        """True where the statement holds for some choice of values."""
        return self._p

    @property
    def undecided(self) -> np.ndarray:
        return self._p & ~self._c

    @property
    def decided(self) -> np.ndarray:
        return self._c | ~self._p

    @property
    def value(self) -> np.ndarray:
        """int8 array: 1 certainly true, 0 certainly false, -1 undecided."""
        v = np.where(self._c, 1, np.where(self._p, -1, 0)).astype(np.int8)
        return v

    @property
    def shape(self) -> tuple[int, ...]:
        return self._c.shape

    @property
    def size(self) -> int:
        return self._c.size

    def _where_text(self, idx) -> str:
        if self._source is None:
            return "an undecided comparison"
        op, a, b = self._source
        try:
            ai, bi = a.broadcast_to(self.shape)[idx], b.broadcast_to(self.shape)[idx]
            text = lambda v: _fmt(v._lo) if bool(np.all(v.is_point)) else \
                f"[{_fmt(v._lo)}, {_fmt(v._hi)}]"
            at = "" if idx == () else f" at index {idx}"
            return f"an undecided comparison {op}(x={text(ai)}, y={text(bi)}){at}"
        except Exception:      # pragma: no cover - message building must never hide the error
            return f"an undecided comparison {op}"

    def __bool__(self) -> bool:
        if self.size != 1:
            raise InputError(fail_message(
                "bool(Tristate)", f"{self.size} elements",
                "use .all() or .any() and then bool(), or decide() to get a boolean array"))
        if self.undecided.reshape(-1)[0]:
            raise UndecidedError(fail_message(
                "bool(Tristate)", self._where_text(()),
                "decide both branches (e.g. where() with the hull) or tighten the intervals"))
        return bool(self._c.reshape(-1)[0])

    def __array__(self, dtype=None, copy=None):
        raise InputError(fail_message(
            "np.asarray(Tristate)", f"a Tristate of shape {self.shape}",
            "use .certainly, .possibly, .value or decide() to say what undecided should mean"))

    def __invert__(self) -> "Tristate":
        return Tristate(~self._p, ~self._c)

    def __and__(self, other: "Tristate") -> "Tristate":
        other = _as_tristate(other, "Tristate.__and__")
        return Tristate(self._c & other._c, self._p & other._p)

    def __or__(self, other: "Tristate") -> "Tristate":
        other = _as_tristate(other, "Tristate.__or__")
        return Tristate(self._c | other._c, self._p | other._p)

    __rand__ = __and__
    __ror__ = __or__

    def all(self, axis=None) -> "Tristate":
        """Three-valued ``all`` (certainly if all certainly; possibly if all possibly)."""
        return Tristate(np.all(self._c, axis=axis), np.all(self._p, axis=axis))

    def any(self, axis=None) -> "Tristate":
        """Three-valued ``any``."""
        return Tristate(np.any(self._c, axis=axis), np.any(self._p, axis=axis))

    def __getitem__(self, key) -> "Tristate":
        src = None
        if self._source is not None:
            op, a, b = self._source
            src = (op, a.broadcast_to(self.shape)[key], b.broadcast_to(self.shape)[key])
        return Tristate(self._c[key], self._p[key], source=src)

    def __repr__(self) -> str:
        names = np.where(self._c, "True", np.where(self._p, "undecided", "False"))
        if names.ndim == 0:
            return f"Tristate({names[()]})"
        return "Tristate(" + np.array2string(names, separator=", ",
                                             formatter={"all": str}) + ")"


def _as_tristate(x, call) -> Tristate:
    if isinstance(x, Tristate):
        return x
    arr = np.asarray(x)
    if arr.dtype != bool:
        raise InputError(fail_message(call, _describe(x), "pass a Tristate or booleans"))
    return Tristate(arr, arr)


def decide(t: Tristate, *, call: str = "decide") -> Any:
    """Force a three-valued comparison into booleans, refusing to guess.

    Parameters
    ----------
    t : Tristate or array of bool
        The comparison (plain booleans are returned unchanged).
    call : str
        Name of the operation that needs the answer, quoted in the error.

    Returns
    -------
    bool or ndarray of bool
        ``bool`` for a 0-d comparison, else an array of ``t``'s shape.

    Raises
    ------
    UndecidedError
        If any element is undecided; the message names ``call``, the number of undecided
        elements and the first offending comparison.

    Examples
    --------
    >>> decide(Interval(1.0, 2.0) > 0)
    True
    >>> decide(Interval([-1.0, 1.0], [1.0, 2.0]) > 0, call="relu activity")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conservative.errors.UndecidedError: relu activity: ... at index (0,) (1 of 2 elements undecided); ...
    """
    t = _as_tristate(t, call)
    und = t.undecided
    if np.any(und):
        idx = tuple(int(i) for i in np.argwhere(und)[0])
        raise UndecidedError(fail_message(
            call, f"{t._where_text(idx)} ({int(np.count_nonzero(und))} of {und.size} elements "
            "undecided)", "split the box, tighten the enclosure, or handle both outcomes"))
    out = t.certainly.copy()
    return bool(out) if out.ndim == 0 else out


def _compare(op: str, a, b) -> Tristate:
    a, b = _pair(a, b, op)
    if op == "lt":
        c, p = a._hi < b._lo, a._lo < b._hi
    elif op == "le":
        c, p = a._hi <= b._lo, a._lo <= b._hi
    elif op == "gt":
        c, p = a._lo > b._hi, a._hi > b._lo
    elif op == "ge":
        c, p = a._lo >= b._hi, a._hi >= b._lo
    elif op == "eq":
        c = (a._lo == a._hi) & (b._lo == b._hi) & (a._lo == b._lo)
        p = (a._lo <= b._hi) & (b._lo <= a._hi)
    else:  # ne
        eq_c = (a._lo == a._hi) & (b._lo == b._hi) & (a._lo == b._lo)
        c = (a._hi < b._lo) | (b._hi < a._lo)
        p = ~eq_c
    return Tristate(c, p, source=(op, a, b))


def lt(a: Any, b: Any) -> Tristate:
    """Three-valued ``a < b`` for every choice of values in ``a`` and ``b``.

    Certainly true iff ``a.hi < b.lo``; certainly false iff ``a.lo >= b.hi``.

    Raises
    ------
    ShapeError
        If the shapes do not broadcast.

    Examples
    --------
    >>> lt(Interval(0.0, 1.0), 2.0), lt(Interval(0.0, 1.0), 0.5)
    (Tristate(True), Tristate(undecided))
    """
    return _compare("lt", a, b)


def le(a: Any, b: Any) -> Tristate:
    """Three-valued ``a <= b`` (see :func:`lt`)."""
    return _compare("le", a, b)


def gt(a: Any, b: Any) -> Tristate:
    """Three-valued ``a > b`` (see :func:`lt`)."""
    return _compare("gt", a, b)


def ge(a: Any, b: Any) -> Tristate:
    """Three-valued ``a >= b`` (see :func:`lt`)."""
    return _compare("ge", a, b)


def eq(a: Any, b: Any) -> Tristate:
    """Three-valued ``a == b``: certain only for equal point intervals.

    Examples
    --------
    >>> eq(Interval(1.0, 1.0), 1.0), eq(Interval(0.0, 1.0), Interval(0.0, 1.0))
    (Tristate(True), Tristate(undecided))
    """
    return _compare("eq", a, b)


def ne(a: Any, b: Any) -> Tristate:
    """Three-valued ``a != b`` (the negation of :func:`eq`)."""
    return _compare("ne", a, b)


def certainly_positive(x: Any) -> np.ndarray:
    """Elementwise: is every value > 0? (``False`` means *not certain*, not *negative*)."""
    x = as_interval(x, call="certainly_positive")
    return x._lo > 0


def certainly_negative(x: Any) -> np.ndarray:
    """Elementwise: is every value < 0?"""
    x = as_interval(x, call="certainly_negative")
    return x._hi < 0


def certainly_nonnegative(x: Any) -> np.ndarray:
    """Elementwise: is every value >= 0?"""
    x = as_interval(x, call="certainly_nonnegative")
    return x._lo >= 0


def certainly_nonpositive(x: Any) -> np.ndarray:
    """Elementwise: is every value <= 0?"""
    x = as_interval(x, call="certainly_nonpositive")
    return x._hi <= 0


def certainly_zero(x: Any) -> np.ndarray:
    """Elementwise: is the interval exactly ``[0, 0]``?"""
    x = as_interval(x, call="certainly_zero")
    return (x._lo == 0) & (x._hi == 0)


def possibly_zero(x: Any) -> np.ndarray:
    """Elementwise: does the interval contain 0?

    Examples
    --------
    >>> possibly_zero(Interval([-1.0, 0.5], [1.0, 1.0]))
    array([ True, False])
    """
    x = as_interval(x, call="possibly_zero")
    return (x._lo <= 0) & (x._hi >= 0)


def possibly_positive(x: Any) -> np.ndarray:
    """Elementwise: does the interval contain a value > 0?"""
    x = as_interval(x, call="possibly_positive")
    return x._hi > 0


def possibly_negative(x: Any) -> np.ndarray:
    """Elementwise: does the interval contain a value < 0?"""
    x = as_interval(x, call="possibly_negative")
    return x._lo < 0


# ---------------------------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------------------------

@_quiet
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
    a, b = _pair(a, b, "Interval.__add__")
    return Interval._new(_add_rd(a._lo, b._lo), _add_ru(a._hi, b._hi))


@_quiet
def subtract(a: Any, b: Any) -> Interval:
    """Outward-rounded ``a - b = [a.lo - b.hi, a.hi - b.lo]``.

    Examples
    --------
    >>> subtract(Interval(0.0, 1.0), Interval(0.0, 1.0))
    Interval(lo=-1.0, hi=1.0)
    """
    a, b = _pair(a, b, "Interval.__sub__")
    return Interval._new(_add_rd(a._lo, -b._hi), _add_ru(a._hi, -b._lo))


@_quiet
def multiply(a: Any, b: Any) -> Interval:
    """Outward-rounded ``a * b``: hull of the four directed endpoint products (0 * inf = 0).

    Examples
    --------
    >>> multiply(Interval(-1.0, 2.0), Interval(3.0, 4.0))
    Interval(lo=-4.0, hi=8.0)
    """
    a, b = _pair(a, b, "Interval.__mul__")
    los, his = [], []
    for x, y in ((a._lo, b._lo), (a._lo, b._hi), (a._hi, b._lo), (a._hi, b._hi)):
        d, u = _mul_dir(x, y)
        los.append(np.where(np.isnan(d), 0.0, d))
        his.append(np.where(np.isnan(u), 0.0, u))
    lo = np.minimum(np.minimum(los[0], los[1]), np.minimum(los[2], los[3]))
    hi = np.maximum(np.maximum(his[0], his[1]), np.maximum(his[2], his[3]))
    return Interval._new(lo, hi)


@_quiet
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
    a, b = _pair(a, b, call)
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
        d, u = _div_dir(x, y)
        # inf / inf (NaN) is a path-dependent corner limit; for a one-signed divisor the other
        # three corners already span it (they include the 0 of finite / inf), so drop it.
        los.append(np.where(np.isnan(d), np.inf, d))
        his.append(np.where(np.isnan(u), -np.inf, u))
    lo = np.minimum(np.minimum(los[0], los[1]), np.minimum(los[2], los[3]))
    hi = np.maximum(np.maximum(his[0], his[1]), np.maximum(his[2], his[3]))
    bad = zero | np.isnan(lo) | np.isnan(hi) | (lo > hi)
    return Interval._new(np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi))


@_quiet
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
        return Interval._new(_pow_dir(mlo, k, up=False), _pow_dir(mhi, k, up=True))
    neg_lo = lo < 0
    neg_hi = hi < 0
    plo = np.where(neg_lo, -_pow_dir(np.abs(lo), k, up=True), _pow_dir(np.abs(lo), k, up=False))
    phi = np.where(neg_hi, -_pow_dir(np.abs(hi), k, up=False), _pow_dir(np.abs(hi), k, up=True))
    return Interval._new(plo, phi)


def square(x: Any) -> Interval:
    """``x ** 2``, tight (``[-1, 2]`` gives ``[0, 4]``, not ``[-2, 4]``)."""
    return power(x, 2)


@_quiet
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
    _domain(x, 0.0, "interval.sqrt", closed=True)
    lo, _ = _sqrt_dir(x._lo)
    _, hi = _sqrt_dir(x._hi)
    return Interval._new(lo, hi)


def _domain(x: Interval, bound: float, call: str, closed: bool) -> None:
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
    a, b = _pair(a, b, "interval.maximum")
    return Interval._new(np.maximum(a._lo, b._lo), np.maximum(a._hi, b._hi))


def minimum(a: Any, b: Any) -> Interval:
    """Elementwise ``min(a, b)`` (exact)."""
    a, b = _pair(a, b, "interval.minimum")
    return Interval._new(np.minimum(a._lo, b._lo), np.minimum(a._hi, b._hi))


def relu(x: Any) -> Interval:
    """``max(x, 0)`` (exact).

    Examples
    --------
    >>> relu(Interval(-1.0, 2.0))
    Interval(lo=0.0, hi=2.0)
    """
    return maximum(x, 0.0)


def clip(z: Any, lo: Any, hi: Any) -> Interval:
    """``min(max(z, lo), hi)`` (exact; monotone in all three arguments, as ``np.clip``).

    Examples
    --------
    >>> clip(Interval(-2.0, 0.5), -1.0, 1.0)
    Interval(lo=-1.0, hi=0.5)
    """
    return minimum(maximum(z, lo), hi)


@_quiet
def soft_threshold(z: Any, t: Any) -> Interval:
    """``sign(z) max(|z| - t, 0)`` for thresholds ``t >= 0``.

    Nondecreasing in ``z``; for fixed ``z`` its magnitude is nonincreasing in ``t``, so the
    range over a box is ``[S(z.lo, t.hi if z.lo >= 0 else t.lo), S(z.hi, t.lo if z.hi >= 0
    else t.hi)]``, computed as ``max(z - t, 0) + min(z + t, 0)`` with directed rounding.

    Raises
    ------
    InputError
        If ``t`` is certainly negative somewhere.
    UndecidedError
        If ``t`` may be negative (the map is discontinuous for negative thresholds).

    Examples
    --------
    >>> soft_threshold(Interval([-3.0, -0.5, 2.0], [-2.0, 0.5, 4.0]), 1.0)
    Interval(lo=[-2.0, 0.0, 1.0], hi=[-1.0, 0.0, 3.0])
    """
    call = "interval.soft_threshold"
    z, t = _pair(z, t, call)
    _domain(t, 0.0, call, closed=True)
    lo = np.maximum(_add_rd(z._lo, -t._hi), 0.0) + np.minimum(_add_rd(z._lo, t._lo), 0.0)
    hi = np.maximum(_add_ru(z._hi, -t._lo), 0.0) + np.minimum(_add_ru(z._hi, t._hi), 0.0)
    return Interval._new(lo, hi)


# ---------------------------------------------------------------------------------------------
# Transcendental functions
# ---------------------------------------------------------------------------------------------

_NP_FUNCS = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "sin": np.sin, "cos": np.cos}
_MP_FUNCS = {"exp": mpmath.exp, "log": mpmath.log, "tanh": mpmath.tanh, "sin": mpmath.sin,
             "cos": mpmath.cos}


def _libm_sample(name: str) -> np.ndarray:
    rng = np.random.default_rng(20261122)
    if name == "exp":
        parts = [rng.uniform(-740, 709, 48), rng.uniform(-1, 1, 24), rng.normal(size=8) * 1e-9]
    elif name == "log":
        parts = [np.exp(rng.uniform(-740, 709, 48)), rng.uniform(0.5, 2, 24),
                 1 + rng.normal(size=8) * 1e-9, [5e-324, 1e-310, 1.7e308]]
    elif name == "tanh":
        parts = [rng.uniform(-20, 20, 48), rng.normal(size=24) * 1e-3, rng.normal(size=8),
                 [1e-300, 19.0, 0.5493]]
    else:
        parts = [rng.uniform(-10, 10, 40), rng.uniform(-1e6, 1e6, 16), rng.normal(size=8) * 1e-6,
                 np.pi * np.arange(1, 9), np.pi * (np.arange(1, 9) + 0.5), [1e15, 1e22, 1e300]]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


@functools.lru_cache(maxsize=None)
def libm_check() -> dict[str, float]:
    """Largest observed error of NumPy's float64 functions, in ulps of the exact result.

    Each of ``exp, log, tanh, sin, cos`` is evaluated on a fixed sample (as a contiguous array,
    NumPy's SIMD path, and element by element, its scalar path) and compared with mpmath at
    113 bits. Interval functions trust NumPy only if the observed error is at most
    ``LIBM_ULPS / 2``; otherwise they use the mpmath path. The result is cached: it describes
    the machine, not the data. A sample cannot prove a bound; it guards against a libm that is
    grossly less accurate than assumed.

    Returns
    -------
    dict
        ``{name: max_ulps}``.

    Examples
    --------
    >>> all(v <= LIBM_ULPS / 2 for v in libm_check().values())
    True
    """
    report = {}
    with np.errstate(all="ignore"), mpmath.workprec(113):
        for name, f in _NP_FUNCS.items():
            x = _libm_sample(name)
            vec = f(x)
            scal = np.array([f(np.float64(v)) for v in x])
            worst = 0.0
            for xi, y1, y2 in zip(x, vec, scal):
                t = _MP_FUNCS[name](mpmath.mpf(float(xi)))
                tf = float(t)
                ulp = float(np.spacing(abs(tf))) if tf != 0 else _ETA
                for y in (y1, y2):
                    if not np.isfinite(y):
                        err = 0.0 if (math.isinf(tf) and tf == y) else math.inf
                    else:
                        err = float(abs(mpmath.mpf(float(y)) - t) / ulp)
                    worst = max(worst, err)
            report[name] = worst
    return report


@functools.lru_cache(maxsize=None)
def _trusted(name: str) -> bool:
    ok = libm_check()[name] <= LIBM_ULPS / 2
    if not ok:
        warnings.warn(f"interval.{name}: NumPy's float64 {name} erred by "
                      f"{libm_check()[name]:.3g} ulps on the self-check sample (assumed < "
                      f"{LIBM_ULPS}); using the slower mpmath path instead", RuntimeWarning,
                      stacklevel=3)
    return ok


def _np_eval(name, x):
    """NumPy value of ``name`` at float array ``x``, widened to (lower, upper) bounds."""
    y = _NP_FUNCS[name](x)
    k = 2 * LIBM_ULPS
    return _widen_down(y, k), _widen_up(y, k)


def _iv_tanh_point(v: float):
    """Rigorous mpmath interval enclosing tanh(v) for a float v."""
    if math.isinf(v):
        return mpmath.iv.mpf(math.copysign(1.0, v))
    if v == 0:
        return mpmath.iv.mpf(0)
    extra = max(0, -math.frexp(v)[1]) + 10      # cancellation in e - 1 for small |v|
    old = mpmath.iv.prec
    mpmath.iv.prec = old + extra
    try:
        e = mpmath.iv.exp(2 * mpmath.iv.mpf(v))
        return (e - 1) / (e + 1)
    finally:
        mpmath.iv.prec = old


def _exact_unary(name: str, x: Interval) -> Interval:
    """Endpoint-wise mpmath.iv enclosure, rounded outward to float64 (Python loop)."""
    iv = mpmath.iv
    lo = np.empty(x.shape)
    hi = np.empty(x.shape)
    with workprec(EXACT_PREC):
        for idx in np.ndindex(x.shape):
            a, b = float(x._lo[idx]), float(x._hi[idx])
            if name == "tanh":
                ra, rb = _iv_tanh_point(a), _iv_tanh_point(b)
                lo[idx] = _raw_to_float(ra._mpi_[0], up=False)
                hi[idx] = _raw_to_float(rb._mpi_[1], up=True)
                continue
            box = iv.mpf([a, b])
            if name == "sigmoid":
                r = 1 / (1 + iv.exp(-box))
            else:                                   # iv.log([0, b]) = [-inf, log b]
                r = getattr(iv, name)(box)
            lo[idx], hi[idx] = _mp_endpoints(r)
    return Interval._new(lo, hi)


def _use_exact(name: str, exact: bool) -> bool:
    if not isinstance(exact, (bool, np.bool_)):
        raise InputError(fail_message(f"interval.{name}", f"exact={exact!r}", "pass True or False"))
    return bool(exact) or not _trusted(name if name in _NP_FUNCS else "exp")


@_quiet
def exp(x: Any, *, exact: bool = False) -> Interval:
    """Enclosure of ``exp`` (monotone: endpoints, widened; see the module notes on libm).

    Parameters
    ----------
    x : Interval or array_like
    exact : bool
        Use the mpmath path (rigorous without any libm assumption, Python-loop slow).

    Examples
    --------
    >>> y = exp(Interval(0.0, 1.0))
    >>> bool(y.lo <= 1.0 <= y.hi and y.lo <= np.e <= y.hi)
    True
    """
    x = as_interval(x, call="interval.exp")
    if _use_exact("exp", exact):
        return _exact_unary("exp", x)
    lo, _ = _np_eval("exp", x._lo)
    _, hi = _np_eval("exp", x._hi)
    return Interval._new(np.maximum(lo, 0.0), hi)


@_quiet
def log(x: Any, *, exact: bool = False) -> Interval:
    """Enclosure of the natural logarithm; ``log([0, b]) = [-inf, log b]``.

    Raises
    ------
    InputError
        If an interval has ``hi <= 0`` (no point of the domain ``x > 0``). A lower endpoint
        ``lo = 0`` is allowed and gives ``-inf``.
    UndecidedError
        If an interval straddles 0 (``lo < 0 < hi``).

    Examples
    --------
    >>> y = log(Interval(1.0, np.e))
    >>> bool(y.contains(0.0) and y.contains(1.0))
    True
    """
    call = "interval.log"
    x = as_interval(x, call=call)
    _domain(x, 0.0, call, closed=False)
    if _use_exact("log", exact):
        return _exact_unary("log", x)
    lo, _ = _np_eval("log", x._lo)
    _, hi = _np_eval("log", x._hi)
    return Interval._new(np.where(x._lo == 0, -np.inf, lo), hi)


@_quiet
def tanh(x: Any, *, exact: bool = False) -> Interval:
    """Enclosure of ``tanh`` (monotone), clipped to ``[-1, 1]``.

    Examples
    --------
    >>> tanh(Interval(-np.inf, np.inf))
    Interval(lo=-1.0, hi=1.0)
    """
    x = as_interval(x, call="interval.tanh")
    if _use_exact("tanh", exact):
        return _exact_unary("tanh", x)
    lo, _ = _np_eval("tanh", x._lo)
    _, hi = _np_eval("tanh", x._hi)
    return Interval._new(np.clip(lo, -1.0, 1.0), np.clip(hi, -1.0, 1.0))


@_quiet
def sigmoid(x: Any, *, exact: bool = False) -> Interval:
    """Enclosure of ``1 / (1 + exp(-x))`` (monotone), in ``[0, 1]``.

    Examples
    --------
    >>> sigmoid(Interval(0.0, 0.0)).contains(0.5)
    array(True)
    """
    x = as_interval(x, call="interval.sigmoid")
    if _use_exact("sigmoid", exact):
        return _exact_unary("sigmoid", x)
    # Evaluate at each endpoint in interval arithmetic: 1 / (1 + exp(-v)) is increasing in v.
    at_lo = divide(1.0, add(1.0, exp(Interval._new(-x._lo, -x._lo))))
    at_hi = divide(1.0, add(1.0, exp(Interval._new(-x._hi, -x._hi))))
    return Interval._new(np.clip(at_lo._lo, 0.0, 1.0), np.clip(at_hi._hi, 0.0, 1.0))


def _may_contain_phase(lo, hi, phase: float):
    """Conservatively: does [lo, hi] contain a point phase + 2 k pi? (True when unsure)."""
    t_lo = (lo - phase) / _TWO_PI
    t_hi = (hi - phase) / _TWO_PI
    slack_lo = 1e-12 * (1.0 + np.abs(t_lo))
    slack_hi = 1e-12 * (1.0 + np.abs(t_hi))
    return np.ceil(t_lo - slack_lo) <= np.floor(t_hi + slack_hi)


def _trig(name: str, x: Interval, phase_max: float, phase_min: float) -> Interval:
    lo_a, hi_a = _np_eval(name, x._lo)
    lo_b, hi_b = _np_eval(name, x._hi)
    lo = np.minimum(lo_a, lo_b)
    hi = np.maximum(hi_a, hi_b)
    wide = ~(x._hi - x._lo < 6.0) | ~np.isfinite(x._lo) | ~np.isfinite(x._hi)
    has_max = wide | _may_contain_phase(x._lo, x._hi, phase_max)
    has_min = wide | _may_contain_phase(x._lo, x._hi, phase_min)
    hi = np.where(has_max, 1.0, hi)
    lo = np.where(has_min, -1.0, lo)
    return Interval._new(np.clip(lo, -1.0, 1.0), np.clip(hi, -1.0, 1.0))


@_quiet
def sin(x: Any, *, exact: bool = False) -> Interval:
    """Enclosure of ``sin``: endpoints, plus ``+-1`` where a maximum ``pi/2 + 2k pi`` or a
    minimum ``-pi/2 + 2k pi`` may lie inside (decided conservatively).

    Examples
    --------
    >>> sin(Interval(0.0, 3.0)).hi
    array(1.)
    """
    x = as_interval(x, call="interval.sin")
    if _use_exact("sin", exact):
        return _exact_unary("sin", x)
    return _trig("sin", x, 0.5 * math.pi, -0.5 * math.pi)


@_quiet
def cos(x: Any, *, exact: bool = False) -> Interval:
    """Enclosure of ``cos``: endpoints, plus ``+-1`` where ``2k pi`` or ``pi + 2k pi`` may lie
    inside (decided conservatively).

    Examples
    --------
    >>> cos(Interval(3.0, 4.0)).lo
    array(-1.)
    """
    x = as_interval(x, call="interval.cos")
    if _use_exact("cos", exact):
        return _exact_unary("cos", x)
    return _trig("cos", x, 0.0, math.pi)


# ---------------------------------------------------------------------------------------------
# Reductions, products, assembly
# ---------------------------------------------------------------------------------------------

@_quiet
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
    return Interval._new(_sum_dir(x._lo, axis, keepdims, up=False),
                         _sum_dir(x._hi, axis, keepdims, up=True))


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


def _midrad_parts(x: Interval):
    """(mid, rad) floats with [mid - rad, mid + rad] containing x; rad is None for points."""
    lo, hi = x._lo, x._hi
    if np.array_equal(lo, hi):
        return lo, None
    m = np.where(lo == hi, lo, 0.5 * lo + 0.5 * hi)
    r = np.maximum(_add_ru(hi, -m), _add_ru(m, -lo))
    return m, r


def _has_tiny(*arrays) -> bool:
    return any(bool(np.any((np.abs(a) < _TINY_FACTOR) & (a != 0)))
               for a in arrays if a is not None)


def _matmul_midrad(a: Interval, b: Interval, k: int) -> Interval:
    """Midpoint-radius product with an a-priori bound on BLAS rounding (see :func:`matmul`).

    With ``S1 = |ma| |mb|``, ``S23 = |ma| rb + ra (|mb| + rb)`` computed by BLAS in
    round-to-nearest, the exact products satisfy ``T <= (S + k eta) / (1 - gamma_k)``, so
    ``|C - mid| <= c1 S1 + c2 S23 (+ 8 (k+1) eta if a product may underflow)`` with
    ``c1 = 2 (k+1) u >= gamma_k / (1 - gamma_k)`` and ``c2 = 1 + 4 (k+1) u >= 1/(1 - gamma_k)``.
    """
    ma, ra = _midrad_parts(a)
    mb, rb = _midrad_parts(b)
    c = ma @ mb
    if k == 0:
        return Interval._new(c, c.copy())
    abs_ma, abs_mb = np.abs(ma), np.abs(mb)
    s1 = abs_ma @ abs_mb
    s23 = np.zeros_like(s1)
    u = abs_mb
    if rb is not None:
        s23 = abs_ma @ rb
    if ra is not None:
        u = abs_mb if rb is None else _add_ru(abs_mb, rb)
        s23 = _add_ru(s23, ra @ u)
    c1 = _sum_bound(k)
    c2 = float(_up(1.0 + float(k + 1) * 2.0 ** -51))
    r = _add_ru(_mul_dir(c1, s1)[1], _mul_dir(c2, s23)[1])
    if _has_tiny(ma, mb, ra, rb, u):
        r = _add_ru(r, 8.0 * (k + 1) * _ETA)
    lo = _add_rd(c, -r)
    hi = _add_ru(c, r)
    bad = np.isnan(lo) | np.isnan(hi)
    return Interval._new(np.where(bad, -np.inf, lo), np.where(bad, np.inf, hi))


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


@_quiet
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
    finite = all(bool(np.all(np.isfinite(v))) for v in (a._lo, a._hi, b._lo, b._hi))
    if method == "tight" or not finite:
        return _matmul_tight(a, b)
    return _matmul_midrad(a, b, k)


def stack(xs: Any, axis: int = 0) -> Interval:
    """Stack intervals (or real arrays) along a new axis.

    Raises
    ------
    ShapeError
        If the shapes differ.

    Examples
    --------
    >>> stack([Interval(0.0, 1.0), 2.0]).shape
    (2,)
    """
    items = [as_interval(x, call="interval.stack") for x in xs]
    try:
        return Interval._new(np.stack([x._lo for x in items], axis=axis),
                             np.stack([x._hi for x in items], axis=axis))
    except (ValueError, np.exceptions.AxisError):
        raise ShapeError(fail_message("interval.stack", f"shapes {[x.shape for x in items]} "
                                      f"with axis={axis}", "pass equal shapes and a valid axis"))


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


def broadcast_arrays(*xs: Any) -> list[Interval]:
    """Broadcast intervals (or real arrays) against each other.

    Raises
    ------
    ShapeError
        If the shapes do not broadcast.
    """
    items = [as_interval(x, call="interval.broadcast_arrays") for x in xs]
    try:
        shape = np.broadcast_shapes(*[x.shape for x in items])
    except ValueError:
        raise ShapeError(fail_message("interval.broadcast_arrays",
                                      f"shapes {[x.shape for x in items]}",
                                      "pass shapes that broadcast"))
    return [x.broadcast_to(shape) for x in items]


def hull(*xs: Any) -> Interval:
    """Smallest interval containing all arguments elementwise (reals or intervals).

    Examples
    --------
    >>> hull(3.0, 1.0, Interval(2.0, 5.0))
    Interval(lo=1.0, hi=5.0)
    """
    if not xs:
        raise InputError(fail_message("interval.hull", "no arguments", "pass at least one"))
    out = as_interval(xs[0], call="interval.hull")
    for x in xs[1:]:
        out = out.hull(x)
    return out


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
    cond = _as_tristate(cond, call)
    a, b = _pair(a, b, call)
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
