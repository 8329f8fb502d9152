"""Proofs that scale: rigorous floating point, and the one rule for turning a float into a proof.

Exact rational checks (:mod:`conservative._exact`) cost ``O(n^3)`` operations on long integers,
fine up to a few dozen coordinates. Above that the checks here are used; they are *rigorous*
(``verified="interval"``): every floating-point error is bounded a priori, never estimated.

* Products of float matrices are enclosed with outward-rounded interval arithmetic
  (``conservative.interval.matmul``: ``|fl(XY) - XY| <= gamma_k |X||Y|``).
* Positive definiteness of every symmetric matrix of an interval matrix ``[M - R, M + R]`` is
  proved as INTLAB's ``isspd`` does (Rump, *Verification of positive definiteness*, BIT 2006):
  if the floating-point Cholesky factorisation of ``M' = M - c I`` (diagonal rounded down)
  runs to completion, then ``M' + E = R^T R`` with ``|E| <= gamma_{n+1} |R^T||R|`` (Higham,
  *Accuracy and Stability*, Thm 10.3, any order of the inner products), so
  ``lambda_min(M') >= -gamma_{n+1}/(1 - gamma_{n+1}) tr(M')``; with
  ``c > ||R||_2 + gamma_{n+1}/(1 - gamma_{n+1}) tr(M)`` every matrix of the interval is
  positive definite. Assumes IEEE double arithmetic in round-to-nearest (checked by the
  interval layer) and LAPACK's ``dpotrf`` over a BLAS without Strassen-like products.

:func:`prove_with_margin` is the single "round to a short dyadic, re-check with a margin" rule
behind every certificate: a float estimate of a bound becomes the candidates
``estimate * (1 + eps)`` rounded up to 40-bit dyadics, and the first candidate that the proof
accepts is the certified value.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from typing import Callable

import numpy as np

from .. import _exact
from .. import interval as iv
from .report import Verified

__all__ = ["EXACT_MAX_DIM", "MARGINS", "dyadic_scale", "dyadic_matrix", "dyadic_round_array", "prove_with_margin", "spd_interval",
           "spd_point", "quadratic_gap", "check_quadratic_rigorous", "lambda_min_lower",
           "nonnegative_ratio_bound", "upper_sum", "sqrt_up"]

#: Largest dimension at which quadratic and infinity-norm checks are run in exact rationals;
#: larger problems get the rigorous floating-point checks ("interval").
EXACT_MAX_DIM = 40
#: Relative margins tried by :func:`prove_with_margin`.
MARGINS = (1e-12, 1e-9, 1e-6, 1e-3)
_U = 2.0 ** -53                      # unit roundoff
_ETA = 2.0 ** -1074                  # smallest subnormal


def _up(x):
    """One step towards +inf (elementwise): a bound on anything that rounded to nearest."""
    return np.nextafter(x, np.inf)


def dyadic_scale(P: np.ndarray) -> float:
    """The power of two that brings the largest entry of ``P`` into [1, 2)."""
    top = float(np.abs(np.asarray(P, dtype=float)).max())
    return math.ldexp(1.0, -math.frexp(top)[1] + 1) if top > 0 and math.isfinite(top) else 1.0


def dyadic_matrix(P: np.ndarray, bits: int = 40) -> np.ndarray:
    """``P`` scaled by a power of two (:func:`dyadic_scale`), rounded to ``bits``-bit dyadics
    and symmetrised: short rationals, so that exact checks stay fast.

    Examples
    --------
    >>> Q = dyadic_matrix(np.array([[3.0, 0.1], [0.1, 2.0]]))
    >>> bool(np.array_equal(Q, Q.T)), float(np.abs(Q).max()) <= 2
    (True, True)
    """
    P = np.asarray(P, dtype=float)
    Q = dyadic_round_array(P * dyadic_scale(P), bits)
    return (Q + Q.T) / 2 if Q.ndim == 2 and Q.shape[0] == Q.shape[1] else Q


def dyadic_round_array(x: np.ndarray, bits: int = 40) -> np.ndarray:
    """:func:`conservative._exact.dyadic_round` of every entry (vectorised, same results).

    Examples
    --------
    >>> dyadic_round_array(np.array([0.1, -3.0, 0.0]), 4).tolist()
    [0.1015625, -3.0, 0.0]
    """
    x = np.asarray(x, dtype=float)
    m, e = np.frexp(x)
    with np.errstate(all="ignore"):
        out = np.ldexp(np.round(m * 2.0 ** bits), e - bits)
    return np.where(np.isfinite(x) & (x != 0), out, x)


def prove_with_margin(estimate: float, prove: Callable[[float], Verified | None], *,
                      limit: float = math.inf, margins=MARGINS, bits: int = 40,
                      deadline: float = math.inf) -> tuple[float, Verified] | None:
    """The first of ``estimate * (1 + eps)`` (rounded up to ``bits``-bit dyadics) that
    ``prove`` accepts, as ``(value, how)``; None when none does, a candidate reaches ``limit``,
    or the deadline passes (no proof starts after it).

    ``prove(value)`` returns the verification level of a proof that the bound holds with that
    value, or None.

    Examples
    --------
    >>> prove_with_margin(0.5, lambda v: Verified.EXACT if v >= 0.5000001 else None)
    (0.5000005, 'exact')
    """
    if not math.isfinite(estimate) or estimate < 0:
        return None
    for eps in margins:
        value = _exact.dyadic_round(estimate * (1 + eps), bits)
        if value < estimate:
            value = math.nextafter(value, math.inf)
        if value >= limit:
            return None
        if time.monotonic() > deadline:
            return None
        how = prove(value)
        if how is not None:
            return value, Verified(how)
    return None


def upper_sum(x: np.ndarray, axis=None) -> np.ndarray:
    """An upper bound on the exact sum of non-negative floats (any summation order)."""
    x = np.asarray(x, dtype=float)
    k = x.size if axis is None else x.shape[axis]
    s = np.sum(x, axis=axis)
    return _up(s * (1.0 + 2.0 * (k + 2) * _U) + (k + 1) * _ETA)


def sqrt_up(x: float) -> float:
    """An upper bound on ``sqrt(x)`` (x >= 0 a float; inf stays inf)."""
    if not math.isfinite(x):
        return math.inf
    r = math.sqrt(x)
    while Fraction(r) ** 2 < Fraction(x):
        r = math.nextafter(r, math.inf)
    return r


def _symmetric_midrad(lo: np.ndarray, hi: np.ndarray):
    """Midpoint M (exactly symmetric) and radius R with every *symmetric* matrix of
    ``[lo, hi]`` inside ``[M - R, M + R]``."""
    m = 0.5 * lo + 0.5 * hi
    r = _up(np.maximum(_up(hi - m), _up(m - lo)))
    ms = 0.5 * m + 0.5 * m.T                  # exactly symmetric: + commutes in IEEE
    r = _up(np.maximum(r, r.T) + 4 * _U * np.abs(ms) + _ETA)
    return ms, r


def spd_interval(lo: np.ndarray, hi: np.ndarray) -> bool:
    """Rigorous: every symmetric matrix ``S`` with ``lo <= S <= hi`` is positive definite.

    See the module docstring (Rump's ``isspd``). Sufficient, not necessary: a matrix whose
    smallest eigenvalue is below about ``n u tr(M)`` is not proved.

    Examples
    --------
    >>> spd_interval(np.eye(3) * 0.999, np.eye(3)), spd_interval(-np.eye(2), np.eye(2))
    (True, False)
    """
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    n = lo.shape[0]
    if n == 0:
        return True
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))) or np.any(lo > hi):
        return False
    with np.errstate(all="ignore"):
        M, R = _symmetric_midrad(lo, hi)
        diag = np.diagonal(M)
        if np.any(diag <= 0):
            return False
        spread = float(np.max(upper_sum(R, axis=1)))              # >= ||R||_2 (symmetric)
        trace = float(upper_sum(diag))
        gamma = (n + 1) * _U / (1 - (n + 1) * _U)
        alpha = _up(gamma / (1 - gamma) * (1 + 4 * _U))
        c = float(_up((spread + alpha * trace + n * n * 2.0 ** -1000) * (1 + 8 * _U)))
        if not math.isfinite(c):
            return False
        shifted = np.array(M)
        idx = np.arange(n)
        shifted[idx, idx] = np.nextafter(diag - c, -np.inf)        # <= M_ii - c exactly
        try:
            L = np.linalg.cholesky(shifted)
        except np.linalg.LinAlgError:
            return False
    return bool(np.all(np.isfinite(L)))


def spd_point(M: np.ndarray) -> bool:
    """Rigorous positive definiteness of one symmetric float matrix (exact for small ones).

    Examples
    --------
    >>> spd_point(np.array([[2.0, 1.0], [1.0, 2.0]])), spd_point(np.array([[1.0, 2.0], [2.0, 1.0]]))
    (True, False)
    """
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or not np.array_equal(M, M.T):
        return False
    if M.shape[0] <= EXACT_MAX_DIM:          # P ≻ 0 alone, by exact integer elimination
        return bool(_exact.check_quadratic(np.zeros((0,) + M.shape), M, 0.0))
    return spd_interval(M, M)


def quadratic_gap(A: iv.Interval, P: np.ndarray, rho: float) -> iv.Interval:
    """An interval enclosure of ``rho^2 P - A^T P A`` for every matrix ``A`` of ``A``."""
    P_iv = iv.Interval(P)
    PA = iv.matmul(P_iv, A)
    AtPA = iv.matmul(A.T, PA)
    r = iv.Interval(np.float64(rho))
    return iv.subtract(iv.multiply(iv.multiply(r, r), P_iv), AtPA)


def check_quadratic_rigorous(mats, P: np.ndarray, rho: float) -> bool:
    """Rigorous floating point: ``P ≻ 0`` and ``rho^2 P - A^T P A ≻ 0`` for each given matrix
    (a stack of floats, or Intervals covering boxes of matrices).

    Examples
    --------
    >>> A = np.array([[[0.5, 0.0], [0.0, 0.25]]])
    >>> check_quadratic_rigorous(A, np.eye(2), 0.5000001), check_quadratic_rigorous(A, np.eye(2), 0.49)
    (True, False)
    """
    P = np.asarray(P, dtype=float)
    if not (np.all(np.isfinite(P)) and np.array_equal(P, P.T)) or not spd_interval(P, P):
        return False
    if not math.isfinite(rho) or rho < 0:
        return False
    with np.errstate(all="ignore"):
        for A in mats:
            A = A if isinstance(A, iv.Interval) else iv.Interval(np.asarray(A, dtype=float))
            gap = quadratic_gap(A, P, rho)
            if not spd_interval(gap.lo, gap.hi):
                return False
    return True


def lambda_min_lower(P: np.ndarray) -> float:
    """A positive number proved to be <= the smallest eigenvalue of symmetric ``P``, or 0."""
    P = np.asarray(P, dtype=float)
    try:
        guess = 0.5 * float(np.linalg.eigvalsh(P).min())
    except np.linalg.LinAlgError:
        return 0.0
    if not guess > 0:
        return 0.0
    g = _exact.dyadic_round(guess, 20)
    shifted_lo = np.array(P)
    idx = np.arange(P.shape[0])
    if P.shape[0] <= EXACT_MAX_DIM:
        q = _exact.to_fractions(P)
        for i in idx:
            q[i][i] -= Fraction(g)
        return g if _exact.is_psd(q, strict=True) else 0.0
    # P - g I with the diagonal rounded down encloses nothing smaller than the exact P - g I
    shifted_lo[idx, idx] = np.nextafter(np.diagonal(P) - g, -np.inf)
    shifted_hi = np.array(P)
    shifted_hi[idx, idx] = np.nextafter(np.diagonal(P) - g, np.inf)
    return g if spd_interval(shifted_lo, shifted_hi) else 0.0


def nonnegative_ratio_bound(B: np.ndarray, w: np.ndarray, *, exact: bool) -> float:
    """An upper bound on ``max_i (B w)_i / w_i`` for non-negative ``B`` and positive ``w``
    (the weighted infinity norm of every matrix bounded entrywise in magnitude by ``B``).

    Exact rationals (then the bound is the exact value rounded up), or rigorous floating
    point (an a-priori bound on the rounding of non-negative sums).
    """
    B, w = np.asarray(B, dtype=float), np.asarray(w, dtype=float)
    if not (np.all(w > 0) and np.all(np.isfinite(w)) and np.all(np.isfinite(B))):
        return math.inf
    if exact:
        wq = [Fraction(float(v)) for v in w]
        best = Fraction(0)
        for i, row in enumerate(B):
            nz = np.flatnonzero(row)
            s = sum((Fraction(float(row[j])) * wq[j] for j in nz), Fraction(0))
            best = max(best, s / wq[i])
        return _exact.float_at_least(best)
    with np.errstate(all="ignore"):
        s = upper_sum(B * w[None, :], axis=1)
        ratio = _up(s / w)
    value = float(np.max(ratio)) if ratio.size else 0.0
    return value if math.isfinite(value) else math.inf
