"""Enclosures of the elementary functions ``exp, log, tanh, sigmoid, sin, cos``: NumPy's
float64 values widened by ulps under a guarded accuracy assumption, or mpmath (``exact=True``).
The assumption and its guard are described in the package docstring."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import mpmath
import numpy as np
from mpmath import libmp

from ..errors import InputError, fail_message
from ._arith import add, check_domain, divide
from ._core import Interval, as_interval
from ._rounding import ETA, quiet, raw_to_float, widen_down, widen_up, workprec

__all__ = ["LIBM_ULPS", "EXACT_PREC", "libm_check", "exp", "log", "tanh", "sigmoid", "sin", "cos"]

#: Assumed bound on the error of NumPy's float64 ``exp, log, tanh, sin, cos``, in ulps of the
#: exact result. Results are widened by twice this many ulps of the computed value.
LIBM_ULPS = 4
#: Working precision (bits) of the mpmath path (``exact=True``).
EXACT_PREC = 96
# mpmath's results are moved outward by 2**-_MP_MARGIN_BITS relative (a thousand of its ulps,
# far below a float64 ulp) before rounding to float64: mpmath carries guard bits but truncates
# in fixed point and then rounds the truncated value, so its directed rounding lands on the
# wrong side when the exact result is within the truncation of a representable number
# (mpmath.iv.exp(2**-111) at 96 bits is [1, 1]; the upper end of its tanh(-1e-40) is -1e-40).
_MP_MARGIN_BITS = EXACT_PREC - 10
# Ranges of the functions: the margin must not push a bound past them.
_RANGES = {"exp": (0.0, math.inf), "log": (-math.inf, math.inf), "tanh": (-1.0, 1.0),
           "sigmoid": (0.0, 1.0), "sin": (-1.0, 1.0), "cos": (-1.0, 1.0)}
# NumPy's sin and cos are trusted only up to this magnitude; beyond, argument reduction errs by
# more than the assumed LIBM_ULPS (measured: 7 ulps near 5.6e11, 12 near 3.9e12, thousands
# near 2**50, at the doubles closest to multiples of pi/2), so narrow intervals there take the
# mpmath path.
_TRIG_LIBM_MAX = 2.0 ** 30

_TWO_PI = 2.0 * math.pi


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
    else:       # the last four are the doubles closest to a multiple of pi/2 in their binade
        parts = [rng.uniform(-10, 10, 40), rng.uniform(-1e6, 1e6, 16), rng.normal(size=8) * 1e-6,
                 np.pi * np.arange(1, 9), np.pi * (np.arange(1, 9) + 0.5), [1e15, 1e22, 1e300],
                 [14461176.67027838, 28922353.34055676, 57844706.68111352, 252634696.53458422]]
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
                ulp = float(np.spacing(abs(tf))) if tf != 0 else ETA
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
    return widen_down(y, k), widen_up(y, k)


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


def _outward(raw, up: bool) -> float:
    """Float64 bound of an mpmath endpoint moved outward by the relative margin (exactly)."""
    if raw in (libmp.fzero, libmp.finf, libmp.fninf, libmp.fnan):
        return raw_to_float(raw, up)
    eps = libmp.mpf_shift(libmp.mpf_abs(raw), -_MP_MARGIN_BITS)
    return raw_to_float(libmp.mpf_add(raw, eps) if up else libmp.mpf_sub(raw, eps), up)


def _exact_unary(name: str, x: Interval) -> Interval:
    """Endpoint-wise mpmath.iv enclosure, widened and rounded outward to float64 (Python loop)."""
    iv = mpmath.iv
    lo = np.empty(x.shape)
    hi = np.empty(x.shape)
    with workprec(EXACT_PREC):
        for idx in np.ndindex(x.shape):
            a, b = float(x._lo[idx]), float(x._hi[idx])
            if name == "tanh":
                r_lo, r_hi = _iv_tanh_point(a)._mpi_[0], _iv_tanh_point(b)._mpi_[1]
            else:
                box = iv.mpf([a, b])
                if name == "sigmoid":
                    r = 1 / (1 + iv.exp(-box))
                else:                               # iv.log([0, b]) = [-inf, log b]
                    r = getattr(iv, name)(box)
                r_lo, r_hi = r._mpi_
            lo[idx], hi[idx] = _outward(r_lo, up=False), _outward(r_hi, up=True)
    floor, ceiling = _RANGES[name]
    return Interval._new(np.clip(lo, floor, ceiling), np.clip(hi, floor, ceiling))


def _use_exact(name: str, exact: bool) -> bool:
    if not isinstance(exact, (bool, np.bool_)):
        raise InputError(fail_message(f"interval.{name}", f"exact={exact!r}", "pass True or False"))
    return bool(exact) or not _trusted(name if name in _NP_FUNCS else "exp")


@quiet
def exp(x: Any, *, exact: bool = False) -> Interval:
    """Enclosure of ``exp`` (monotone: endpoints, widened; see the module notes on libm).

    Parameters
    ----------
    x : Interval or array_like
    exact : bool
        Use the mpmath path (no assumption on NumPy's libm; mpmath's results are widened by
        ``2**-(EXACT_PREC - 10)`` relative; Python-loop slow).

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


@quiet
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
    check_domain(x, 0.0, call, closed=False)
    if _use_exact("log", exact):
        return _exact_unary("log", x)
    lo, _ = _np_eval("log", x._lo)
    _, hi = _np_eval("log", x._hi)
    return Interval._new(np.where(x._lo == 0, -np.inf, lo), hi)


@quiet
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


@quiet
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
    lo = np.clip(np.where(has_min, -1.0, lo), -1.0, 1.0)
    hi = np.clip(np.where(has_max, 1.0, hi), -1.0, 1.0)
    far = ~wide & ((np.abs(x._lo) > _TRIG_LIBM_MAX) | (np.abs(x._hi) > _TRIG_LIBM_MAX))
    if np.any(far):
        slow = _exact_unary(name, Interval._new(x._lo[far], x._hi[far]))
        lo, hi = np.array(lo), np.array(hi)
        lo[far], hi[far] = slow._lo, slow._hi
    return Interval._new(lo, hi)


@quiet
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


@quiet
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
