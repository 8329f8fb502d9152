"""Proven lower bounds on spectral radii of products, in exact integer arithmetic (layer L1).

A lower bound on a joint spectral radius is ``rho(A_w)^(1/|w|)`` for a product ``A_w``. Its
floating-point value can exceed the truth: the eigenvalues of a defective product (a Jordan
block, a Polyak-tuned heavy-ball matrix) err by about ``sqrt(eps) ||A||``, so a computed
``1.0000000139`` may belong to a product whose spectral radius is ``1 - 2^-30``. Here the claim
``rho(A_w) >= r`` is *proved*:

1. the product is formed exactly: every float64 is ``m 2^e``, so each matrix is an integer
   matrix times a power of two, and so is the product;
2. its characteristic polynomial ``p`` has integer coefficients (Faddeev-LeVerrier in exact
   rationals, then cleared);
3. ``rho >= r`` iff ``p(r z)`` is not Schur stable, decided by the Schur-Cohn recursion: with
   ``c_0`` and ``c_n`` the constant and leading coefficients, ``p`` is stable iff
   ``|c_0| < |c_n|`` and ``(c_n p(z) - c_0 z^n p(1/z)) / z`` is stable (by Rouché's theorem the
   two have the same number of zeros in the open unit disc, less one; a zero on the circle
   is passed on to the reduced polynomial and fails the strict test at degree 1).

Everything is exact, so a bound reported as proved is a bound. Above :data:`MAX_PROOF_DIM` the
exact recursion is too slow, and :func:`trace_power_lower_bound` is used instead: for every k,
``n rho(M)^k >= |trace(M^k)|``, with ``M^k`` enclosed in outward-rounded interval arithmetic by
repeated squaring, after a diagonal similarity that balances M (which leaves the spectrum
alone); it loses a factor ``n^(1/k)`` (0.3 % at n = 20, k = 1024).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["MAX_PROOF_DIM", "MAX_PROOF_LENGTH", "proven_lower_bound", "schur_stable",
           "trace_power_lower_bound", "spectral_lower_bound"]

#: Largest matrix and word for which the exact proof is attempted (cost grows like n^4 with
#: integers of about 53 |w| bits).
MAX_PROOF_DIM = 6
MAX_PROOF_LENGTH = 64


def _integer_matrix(A: np.ndarray) -> tuple[list, int]:
    """``A = M 2^e`` exactly, M a list of lists of Python ints."""
    mant, expo = np.frexp(A)                       # A = mant 2^expo, 0.5 <= |mant| < 1
    e = int(expo.min()) - 53
    M = [[int(np.ldexp(mant[i, j], 53)) << int(expo[i, j] - 53 - e) if A[i, j] != 0 else 0
          for j in range(A.shape[1])] for i in range(A.shape[0])]
    return M, e


def _matmul(X: list, Y: list) -> list:
    n, k, m = len(X), len(Y), len(Y[0])
    return [[sum(X[i][t] * Y[t][j] for t in range(k)) for j in range(m)] for i in range(n)]


def _exact_product(mats: np.ndarray, word) -> tuple[list, int]:
    """``A[w[-1]] ... A[w[0]]`` exactly, as (integer matrix, exponent)."""
    P, e = None, 0
    for i in word:
        M, ei = _integer_matrix(np.asarray(mats[int(i)], dtype=float))
        P, e = (M, ei) if P is None else (_matmul(M, P), e + ei)
    return P, e


def _charpoly(M: list) -> list:
    """Integer coefficients ``c_0, ..., c_n`` (``c_n = 1``) of ``det(z I - M)``, M integer.

    The Samuelson-Berkowitz algorithm: division free, so integers stay integers (no gcd).
    """
    n = len(M)
    C = [1, -M[0][0]]                               # highest degree first, leading 1 x 1 block
    for k in range(1, n):
        R = [M[i][k] for i in range(k)]
        S = M[k][:k]
        v = [1, -M[k][k]]
        w = R
        for _ in range(k):                          # -S M^j R, j = 0 .. k-1
            v.append(-sum(a * b for a, b in zip(S, w)))
            w = [sum(M[i][t] * w[t] for t in range(k)) for i in range(k)]
        C = [sum(v[i - j] * C[j] for j in range(min(i, k) + 1) if i - j < len(v))
             for i in range(k + 2)]
    return C[::-1]


def schur_stable(coeffs) -> bool:
    """True iff every zero of ``sum c_k z^k`` (real, exact coefficients) has ``|z| < 1``.

    Examples
    --------
    >>> schur_stable([-1, 0, 4])        # 4 z^2 - 1: zeros ±1/2
    True
    >>> schur_stable([1, 0, 1])         # z^2 + 1: zeros on the circle
    False
    """
    c = [Fraction(v) for v in coeffs]
    while len(c) > 1 and c[-1] == 0:
        c.pop()
    while len(c) > 1:
        n = len(c) - 1
        if abs(c[0]) >= abs(c[n]):
            return False
        lead = c[n]
        c = [(c[k + 1] - c[0] / lead * c[n - k - 1]) for k in range(n)]   # (c_n p - c_0 p*)/(z c_n)
    return True


def _proves(coeffs: list, e: int, r: Fraction) -> bool:
    """True iff the product ``M 2^e`` (char. polynomial of M: ``coeffs``) has rho >= r."""
    # the zeros of p(2^e r z) are the eigenvalues of M 2^e divided by r
    s = Fraction(2) ** e / r
    # q(z) = p(z / s) has zeros s * lambda(M) = lambda(M 2^e) / r
    n = len(coeffs) - 1
    q = [coeffs[k] * s ** (n - k) for k in range(n + 1)]
    return not schur_stable(q)


def proven_lower_bound(mats: np.ndarray, word, estimate: float, *,
                       down_to_zero: bool = False) -> float | None:
    """The largest float ``b <= estimate`` found with ``rho(A_w)^(1/|w|) >= b`` proved exactly.

    Tries the estimate, then slightly smaller values; returns None when the matrices are too
    large for the exact proof (:data:`MAX_PROOF_DIM`, :data:`MAX_PROOF_LENGTH`) or nothing
    positive could be proved. With ``down_to_zero`` the search goes on below three quarters of
    the estimate (a nilpotent or nearly defective product, whose float eigenvalues overshoot)
    and ends at the proved bound 0.

    Examples
    --------
    A Jordan block at ``1 - 2^-30``: floating eigenvalues of its powers overshoot 1.

    >>> lam = 1 - 2.0 ** -30
    >>> J = np.array([[[lam, 1.0], [0.0, lam]]])
    >>> b = proven_lower_bound(J, (0, 0, 0, 0), 1.0000000139698382)
    >>> b <= lam, b > lam - 1e-9
    (True, True)
    """
    word = tuple(int(i) for i in word)
    n = mats.shape[1]
    if not word or n > MAX_PROOF_DIM or len(word) > MAX_PROOF_LENGTH:
        return None
    if not (math.isfinite(estimate) and estimate > 0):
        return None
    P, e = _exact_product(mats, word)
    coeffs = _charpoly(P)
    L = len(word)

    def proved(b: float) -> bool:                    # rho(A_w) >= b^L, exactly
        return b > 0 and math.isfinite(b) and _proves(coeffs, e, Fraction(b) ** L)

    def near(est: float) -> float | None:            # the largest proved bound near est
        if proved(est):
            return float(est)
        failed, found = 0, None                      # shrink 2^-k of est, k = 44, 42, ...
        for k in range(44, 1, -2):
            if proved(est * (1.0 - 2.0 ** -k)):
                failed, found = k + 2, k
                break
        if found is None:
            return None
        lo, hi = 2.0 ** -found, 2.0 ** -failed       # proved at lo, not at hi: bisect a little
        for _ in range(6):
            mid = 0.5 * (lo + hi)
            if proved(est * (1.0 - mid)):
                lo = mid
            else:
                hi = mid
        return float(est * (1.0 - lo))

    bound = near(estimate)
    if bound is None and down_to_zero:
        bound = next((b for b in (near(estimate * 2.0 ** -k) for k in range(2, 62, 4))
                      if b is not None), 0.0)
    return bound


def trace_power_lower_bound(mats: np.ndarray, word, estimate: float, *,
                            squarings: int = 10) -> float | None:
    """A proved lower bound on ``rho(A_w)^(1/|w|)`` from traces of powers (any size).

    ``A_w`` is enclosed exactly-rounded, scaled by a power of two near ``estimate^|w|`` and
    balanced by a diagonal similarity of powers of two (both exact), then squared ``squarings``
    times in interval arithmetic; ``n rho^k >= |trace(M^k)|`` at each ``k = 2^j`` gives a bound.
    Returns the best one, or None when no trace is bounded away from 0 (rotations, too much
    interval growth).
    """
    from . import interval as iv

    word = tuple(int(i) for i in word)
    n = mats.shape[1]
    if not word or not (math.isfinite(estimate) and estimate > 0):
        return None
    L = len(word)
    log_c = round(L * math.log2(estimate))
    if abs(log_c) > 1000:
        return None
    X = iv.Interval(np.asarray(mats[word[0]], dtype=float))
    for i in word[1:]:
        X = iv.matmul(iv.Interval(np.asarray(mats[i], dtype=float)), X)
    X = iv.Interval(np.ldexp(X.lo, -log_c), np.ldexp(np.asarray(X.hi), -log_c))  # exact
    mid = np.abs(X.mid)
    with np.errstate(divide="ignore"):
        col, row = mid.sum(axis=0) - np.diag(mid), mid.sum(axis=1) - np.diag(mid)
        logd = np.where((col > 0) & (row > 0), np.round(0.5 * np.log2(row / col)), 0.0)
    logd = np.clip(logd, -200, 200)                     # D^-1 X D, D = diag(2^logd): exact
    X = iv.Interval(np.ldexp(X.lo, (logd[None, :] - logd[:, None]).astype(int)),
                    np.ldexp(X.hi, (logd[None, :] - logd[:, None]).astype(int)))
    best, k = None, 1
    for _ in range(squarings + 1):
        t = iv.sum(iv.Interval(np.diagonal(X.lo), np.diagonal(X.hi)))
        mig = float(t.mig)
        if mig > 0 and math.isfinite(mig):
            # rho(X)^k >= mig / n, rounded down: a relative step of 1e-15 per operation
            value = (mig / n) ** (1.0 / k) * (1.0 - 8e-16 * (k.bit_length() + 4))
            bound = (2.0 ** (log_c / L)) * value ** (1.0 / L) * (1.0 - 8e-16 * 4)
            best = bound if best is None else max(best, bound)
        if not np.all(np.isfinite(X.lo)) or not np.all(np.isfinite(X.hi)):
            break
        X = iv.matmul(X, X)
        k *= 2
    return best


def spectral_lower_bound(mats: np.ndarray, word, estimate: float) -> tuple[float, bool]:
    """``(bound, proved)``: a proved lower bound on ``rho(A_w)^(1/|w|)`` when one is found
    (exactly for small matrices, from traces of powers otherwise), else the floating-point
    ``estimate`` with ``proved=False``."""
    mats = np.asarray(mats, dtype=float)
    # where the exact test applies it is decisive: a failed proof means the estimate
    # overshoots, and the search continues lower, down to the proved 0
    exact = proven_lower_bound(mats, word, estimate, down_to_zero=True)
    if exact is not None:
        return exact, True
    traced = trace_power_lower_bound(mats, word, estimate)
    if traced is not None:
        return min(traced, float(estimate)), True
    return float(estimate), False
