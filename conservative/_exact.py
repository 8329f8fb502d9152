"""Exact rational checks behind every contraction certificate.

Floating SDP and LP solvers only *propose* a norm; the functions here decide, in exact rational
arithmetic (:class:`fractions.Fraction`), whether the proposal is a proof. Every float64 is a
dyadic rational, and ``Fraction(float)`` converts it without error, so a check run on the
converted input is a statement about the very matrices the user passed.

Three checks are provided:

* :func:`check_quadratic` -- ``P ≻ 0`` and ``gamma^2 P - A^T P A ⪰ 0`` for each matrix of a
  finite set, by exact symmetric elimination (LDL^T without square roots). Then
  ``||A||_P <= gamma`` with ``||v||_P = sqrt(v^T P v)``.
* :func:`check_quadratic_box` -- the same inequality for *every* matrix of an interval box
  ``lo <= A <= hi`` (entrywise), via an exact midpoint-radius enclosure of ``A^T P A``.
* :func:`polytope_norm_bound` -- an exact upper bound on ``||A||_V`` in the symmetric polytope
  norm whose unit ball is ``absconv(V)``, from exact solutions of basis systems.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np

__all__ = [
    "to_fractions",
    "solve_exact",
    "dyadic_round",
    "float_at_least",
    "is_psd",
    "check_quadratic",
    "check_quadratic_box",
    "check_quadratic_products",
    "polytope_norm_bound",
]

QMatrix = list  # list of rows of Fraction

try:                                # python-flint's integers make long divisions fast
    from flint import fmpz as _fmpz
except ImportError:                 # pragma: no cover - optional; Python ints are exact too
    _fmpz = None


def to_fractions(a: np.ndarray) -> QMatrix:
    """Convert a float64 matrix to a list of rows of exact :class:`~fractions.Fraction`.

    Examples
    --------
    >>> to_fractions(np.array([[0.5, 0.1]]))[0][1] == Fraction(0.1)
    True
    """
    return [[Fraction(float(v)) for v in row] for row in np.asarray(a, dtype=np.float64)]


def dyadic_round(x: float, bits: int = 40) -> float:
    """Round ``x`` to a float with at most ``bits`` significant bits (keeps rationals short).

    Examples
    --------
    >>> dyadic_round(0.1, 4)
    0.1015625
    """
    if x == 0.0 or not math.isfinite(x):
        return float(x)
    m, e = math.frexp(x)
    return math.ldexp(round(m * 2.0 ** bits), e - bits)


def float_at_least(q: Fraction) -> float:
    """Smallest-effort float ``f`` with ``Fraction(f) >= q`` (rounds up when needed).

    Examples
    --------
    >>> Fraction(float_at_least(Fraction(1, 3))) >= Fraction(1, 3)
    True
    """
    f = float(q)
    while Fraction(f) < q:
        f = math.nextafter(f, math.inf)
    return f


def _finite(*arrays) -> bool:
    """Rationals exist only for finite floats: anything else cannot be a proof."""
    return all(np.all(np.isfinite(np.asarray(a, dtype=np.float64))) for a in arrays)


def _matmul(a: QMatrix, b: QMatrix) -> QMatrix:
    bt = list(zip(*b))
    return [[sum((x * y for x, y in zip(row, col)), Fraction(0)) for col in bt] for row in a]


def _transpose(a: QMatrix) -> QMatrix:
    return [list(r) for r in zip(*a)]


def is_psd(m: QMatrix, *, strict: bool = False) -> bool:
    """Decide exactly whether a symmetric rational matrix is positive (semi)definite.

    Symmetric Gaussian elimination (LDL^T) without pivoting: a negative pivot refutes; a zero
    pivot is allowed (semidefinite case) only if its whole remaining row is zero, because a PSD
    matrix with a zero diagonal entry has a zero row. The Schur complement of a PSD matrix with
    respect to a positive pivot is PSD, so the test is exact in both directions.

    Parameters
    ----------
    m : list of lists of Fraction
        Symmetric matrix (symmetry is checked).
    strict : bool
        Test positive definiteness instead.

    Examples
    --------
    >>> F = Fraction
    >>> is_psd([[F(1), F(1)], [F(1), F(1)]]), is_psd([[F(1), F(1)], [F(1), F(1)]], strict=True)
    (True, False)
    >>> is_psd([[F(1), F(2)], [F(2), F(1)]])
    False
    """
    n = len(m)
    a = [list(row) for row in m]
    if any(a[i][j] != a[j][i] for i in range(n) for j in range(i)):
        return False
    for k in range(n):
        p = a[k][k]
        if p < 0 or (strict and p == 0):
            return False
        if p == 0:
            if any(a[k][j] != 0 for j in range(k + 1, n)):
                return False
            continue
        for i in range(k + 1, n):
            f = a[i][k]
            if f == 0:
                continue
            f = f / p
            row_k, row_i = a[k], a[i]
            for j in range(k + 1, n):
                row_i[j] -= f * row_k[j]
    return True


def _dyadic_integers(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Integers N (object array) and one exponent e with ``values == N * 2**e`` exactly.

    Every finite float64 is ``m * 2**k`` with an integer m of at most 53 bits, so a common
    exponent turns an array of floats into Python integers without error.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    parts = [math.frexp(float(v)) for v in flat]
    mants = [int(m * 2.0 ** 53) for m, _ in parts]
    exps = [e - 53 for (m, e) in parts]
    low = min((e for e, mi in zip(exps, mants) if mi), default=0)
    ints = [mi << (e - low) if mi else 0 for mi, e in zip(mants, exps)]
    return np.array(ints, dtype=object).reshape(np.shape(values)), low


def _is_psd_integer(m: np.ndarray, *, strict: bool = False) -> bool | None:
    """Exact PSD test of a symmetric integer matrix (object array) by fraction-free
    elimination (Bareiss); None if an exact division unexpectedly left a remainder.

    After eliminating the pivots so far, the trailing block equals the Schur complement times
    the last pivot used (a positive leading minor), so signs of pivots are those of LDL^T. A
    zero pivot whose remaining row is zero is skipped: that is elimination of the matrix with
    this index deleted, for which the divisions stay exact.
    """
    a = np.array(m, dtype=object)
    if _fmpz is not None and a.size:
        a = np.vectorize(_fmpz, otypes=[object])(a)     # GMP's fast division (optional)
    n = a.shape[0]
    if not np.array_equal(a, a.T):
        return False
    prev = 1
    for k in range(n):
        p = a[k, k]
        if p < 0 or (strict and p == 0):
            return False
        if p == 0:
            if np.any(a[k, k + 1:] != 0):
                return False
            continue
        if k + 1 < n:
            num = p * a[k + 1:, k + 1:] - np.outer(a[k + 1:, k], a[k, k + 1:])
            q = num // prev
            if np.any(q * prev != num):
                return None
            a[k + 1:, k + 1:] = q
        prev = p
    return True


def _quadratic_gap_integer(a_int: np.ndarray, e_a: int, P_int: np.ndarray, g_int, e_g: int):
    """An integer matrix with the signs (congruence class) of ``g^2 P - A^T P A``, where
    ``A = a_int 2^e_a`` and ``g^2 = g_int 2^e_g``: the exact gap times a power of two."""
    atpa = a_int.T @ P_int @ a_int                      # times 2^(2 e_a + e_p)
    g2p = g_int * P_int                                 # times 2^(e_g + e_p)
    low = min(2 * e_a, e_g)
    return g2p * (1 << (e_g - low)) - atpa * (1 << (2 * e_a - low))


def _quadratic_gap(a: QMatrix, p: QMatrix, g2: Fraction) -> QMatrix:
    """Exact ``g2 * P - A^T P A``."""
    atpa = _matmul(_transpose(a), _matmul(p, a))
    return [[g2 * pij - sij for pij, sij in zip(prow, srow)] for prow, srow in zip(p, atpa)]


def check_quadratic(mats: np.ndarray, P: np.ndarray, gamma: float) -> bool:
    """Exactly verify ``P ≻ 0`` and ``A^T P A ⪯ gamma^2 P`` for every ``A`` in ``mats``.

    Then ``||A v||_P <= gamma ||v||_P`` for all v, i.e. ``||A||_P <= gamma`` with
    ``||v||_P = sqrt(v^T P v)``; since ``A -> A^T P A`` is matrix-convex, it also holds on the
    convex hull of ``mats``. All inputs are float64 and converted exactly.

    Examples
    --------
    >>> A = np.array([[[0.5, 0.0], [0.0, 0.25]]])
    >>> check_quadratic(A, np.eye(2), 0.5), check_quadratic(A, np.eye(2), 0.49)
    (True, False)
    """
    if not _finite(mats, P, gamma):
        return False
    # exact integer arithmetic (a common power of two per matrix): same answer as Fractions,
    # without their gcds, so a 40 x 40 check takes a fraction of a second
    P_int, e_p = _dyadic_integers(P)
    verdict = _is_psd_integer(P_int, strict=True)
    if verdict is None:                                 # cannot happen; be safe anyway
        return _check_quadratic_fractions(mats, P, gamma)
    if not verdict:
        return False
    g_int, e_g = _dyadic_integers(np.array([gamma]))
    for a in mats:
        verdict = _is_psd_integer(_quadratic_gap_integer(*_dyadic_integers(a), P_int,
                                                         g_int[0] ** 2, 2 * e_g))
        if verdict is None:
            return _check_quadratic_fractions(mats, P, gamma)
        if not verdict:
            return False
    return True


def _check_quadratic_fractions(mats: np.ndarray, P: np.ndarray, gamma: float) -> bool:
    """:func:`check_quadratic` in :class:`~fractions.Fraction` arithmetic (reference path)."""
    p = to_fractions(P)
    if not is_psd(p, strict=True):
        return False
    g2 = Fraction(float(gamma)) ** 2
    return all(is_psd(_quadratic_gap(to_fractions(a), p, g2)) for a in mats)


def _interval_matmul(xc, xr, yc, yr):
    """Exact midpoint-radius product: XY lies in ``xc@yc ± (|xc| yr + xr |yc| + xr yr)``."""
    c = _matmul(xc, yc)
    axc = [[abs(v) for v in row] for row in xc]
    ayc = [[abs(v) for v in row] for row in yc]
    r1, r2, r3 = _matmul(axc, yr), _matmul(xr, ayc), _matmul(xr, yr)
    r = [[u + v + w for u, v, w in zip(a, b, d)] for a, b, d in zip(r1, r2, r3)]
    return c, r


def _perron_bound(t: QMatrix) -> Fraction:
    """Exact upper bound on the spectral radius of a nonnegative matrix (Collatz-Wielandt).

    For any positive u, ``rho(T) <= max_i (T u)_i / u_i``; u is a float Perron vector estimate
    (only its quality, not the soundness, depends on floating point).
    """
    n = len(t)
    tf = np.array([[float(v) for v in row] for row in t])
    u = np.ones(n)
    for _ in range(50):
        w = tf @ u + 1e-12 * u.sum()
        if not np.all(np.isfinite(w)) or w.max() == 0:
            break
        u = w / w.max()
    uq = [Fraction(max(float(v), 1e-12)) for v in u]
    return max(sum((t[i][j] * uq[j] for j in range(n)), Fraction(0)) / uq[i] for i in range(n))


def check_quadratic_box(lo: np.ndarray, hi: np.ndarray, P: np.ndarray, gamma: float) -> bool:
    """Exactly verify ``A^T P A ⪯ gamma^2 P`` for *every* A with ``lo <= A <= hi`` entrywise.

    With ``A = C + Δ``, ``|Δ| <= R`` (C, R the exact midpoint and radius), an exact
    midpoint-radius product encloses ``A^T P A`` in ``S_c ± S_r`` entrywise. For a symmetric
    E with ``|E| <= S_r`` and any positive diagonal D,
    ``x^T E x <= |Dx|^T (D^{-1} S_r D^{-1}) |Dx| <= r ||Dx||^2`` with r a Collatz-Wielandt
    bound on the spectral radius of ``D^{-1} S_r D^{-1}``. Hence
    ``gamma^2 P - A^T P A ⪰ gamma^2 P - S_c - r D^2``, tested exactly (D = powers of two close
    to ``sqrt(diag P)``). The test is sufficient, not necessary.

    Examples
    --------
    >>> lo = np.array([[0.4, -0.1], [0.0, 0.4]]); hi = np.array([[0.5, 0.1], [0.0, 0.5]])
    >>> check_quadratic_box(lo, hi, np.eye(2), 0.75), check_quadratic_box(lo, hi, np.eye(2), 0.5)
    (True, False)
    """
    if not _finite(lo, hi, P, gamma):
        return False
    p = to_fractions(P)
    n = len(p)
    if not is_psd(p, strict=True):
        return False
    flo, fhi = to_fractions(lo), to_fractions(hi)
    if any(l > h for rl, rh in zip(flo, fhi) for l, h in zip(rl, rh)):
        return False
    c = [[(l + h) / 2 for l, h in zip(rl, rh)] for rl, rh in zip(flo, fhi)]
    r = [[(h - l) / 2 for l, h in zip(rl, rh)] for rl, rh in zip(flo, fhi)]
    zero = [[Fraction(0)] * n for _ in p]
    pac, par = _interval_matmul(p, zero, c, r)                          # P A
    sc, sr = _interval_matmul(_transpose(c), _transpose(r), pac, par)  # A^T (P A)
    sc = [[(sc[i][j] + sc[j][i]) / 2 for j in range(n)] for i in range(n)]
    sr = [[max(sr[i][j], sr[j][i]) for j in range(n)] for i in range(n)]
    dexp = [round(math.log2(float(p[i][i])) / 2) for i in range(n)]
    dinv = [Fraction(2) ** (-e) for e in dexp]
    rad = _perron_bound([[sr[i][j] * dinv[i] * dinv[j] for j in range(n)] for i in range(n)])
    g2 = Fraction(float(gamma)) ** 2
    gap = [[g2 * p[i][j] - sc[i][j] - (rad * Fraction(4) ** dexp[i] if i == j else 0)
            for j in range(n)] for i in range(n)]
    return is_psd(gap)


def check_quadratic_products(mats: np.ndarray, P: np.ndarray, gamma: float, k: int) -> bool:
    """Exactly verify ``A_w^T P A_w ⪯ gamma^{2k} P`` for every product of length k.

    Then, in the norm ``||x|| = max_{|u| < k} gamma^{-|u|} ||A_u x||_P`` (``|u| = 0`` is the
    identity), every ``A_i`` has ``||A_i|| <= gamma``: for ``|u| < k - 1`` the product
    ``A_u A_i`` is again a shorter word, and for ``|u| = k - 1`` the length-k inequality applies.
    Products are formed exactly in rationals.

    Examples
    --------
    >>> A = np.array([[[0., 2.], [0.125, 0.]]])           # ||A||_2 = 2 but A^2 = I/4
    >>> check_quadratic_products(A, np.eye(2), 0.5, 2)
    True
    """
    if not _finite(mats, P, gamma):
        return False
    P_int, _ = _dyadic_integers(P)
    if not _is_psd_integer(P_int, strict=True):
        return False
    g_int, e_g = _dyadic_integers(np.array([gamma]))
    # products formed exactly: integer matrices with one exponent each
    qs = [_dyadic_integers(a) for a in mats]
    level = qs
    for _ in range(k - 1):
        level = [(a @ w, ea + ew) for a, ea in qs for w, ew in level]
    for w, ew in level:
        verdict = _is_psd_integer(_quadratic_gap_integer(w, ew, P_int, g_int[0] ** (2 * k),
                                                         2 * k * e_g))
        if not verdict:                     # None (cannot happen) counts as no proof
            return False
    return True


def solve_exact(a: QMatrix, b) -> list | None:
    """``x`` with ``a x = b`` in exact rationals (Gauss-Jordan with pivoting on non-zeros);
    None if ``a`` is singular. ``b`` is a vector, or a list of rows for several right-hand
    sides (then ``x`` is a list of rows too).

    Examples
    --------
    >>> from fractions import Fraction as Q
    >>> solve_exact([[Q(2), Q(1)], [Q(0), Q(1)]], [Q(3), Q(1)])
    [Fraction(1, 1), Fraction(1, 1)]
    >>> solve_exact([[Q(1), Q(1)], [Q(1), Q(1)]], [Q(1), Q(0)]) is None
    True
    """
    n = len(a)
    several = n > 0 and isinstance(b[0], (list, tuple))
    m = [list(row) + (list(b[i]) if several else [b[i]]) for i, row in enumerate(a)]
    for k in range(n):
        piv = next((i for i in range(k, n) if m[i][k] != 0), None)
        if piv is None:
            return None
        m[k], m[piv] = m[piv], m[k]
        inv = 1 / Fraction(m[k][k])
        m[k] = [x * inv for x in m[k]]
        for i in range(n):
            if i != k and m[i][k] != 0:
                f = m[i][k]
                m[i] = [x - f * y for x, y in zip(m[i], m[k])]
    return [row[n:] for row in m] if several else [row[n] for row in m]


def _basis_for(cols: np.ndarray, preferred: Sequence[int]) -> list[int] | None:
    """n linearly independent columns: ``preferred`` first, then greedily the column farthest
    from the current span (a well-conditioned completion keeps the exact solution close to the
    LP's)."""
    n = cols.shape[0]
    scale = max(1.0, float(np.abs(cols).max()))
    chosen: list[int] = []
    for j in preferred:
        if np.linalg.matrix_rank(cols[:, chosen + [j]], tol=1e-10 * scale) == len(chosen) + 1:
            chosen.append(j)
        if len(chosen) == n:
            return chosen
    while len(chosen) < n:
        if chosen:
            q, _ = np.linalg.qr(cols[:, chosen])
            resid = cols - q @ (q.T @ cols)
        else:
            resid = cols
        dist = np.linalg.norm(resid, axis=0)
        dist[chosen] = -1.0
        j = int(np.argmax(dist))
        if dist[j] <= 1e-10 * scale:
            return None
        chosen.append(j)
    return chosen


def polytope_norm_bound(mats: np.ndarray, V: np.ndarray, supports: dict) -> Fraction | None:
    """Exact upper bound on ``max_i ||A_i||_V`` for the norm with unit ball ``absconv(V)``.

    ``V`` holds the polytope vertices as columns (n, N). The norm of a vector y is
    ``min{||lam||_1 : V lam = y}``, so ``||A||_V = max_j ||A v_j||_V`` over the vertices.
    For each pair (i, j) an exact solution of ``V_B lam_B = A_i v_j`` on a basis B (suggested by
    a float LP through ``supports[(i, j)]``) gives the exact bound ``||lam_B||_1``. Returns None
    when V is not full-dimensional (no norm) or a basis is singular.

    Examples
    --------
    >>> V = np.eye(2)                         # unit ball: the l1 ball
    >>> A = np.array([[[0.5, 0.25], [0.0, 0.5]]])
    >>> polytope_norm_bound(A, V, {})
    Fraction(3, 4)
    """
    n, N = V.shape
    if not _finite(mats, V):
        return None
    vq = to_fractions(V)
    worst = Fraction(0)
    for i, a in enumerate(mats):
        aq = to_fractions(a)
        for j in range(N):
            y = [sum((aq[r][c] * vq[c][j] for c in range(n)), Fraction(0)) for r in range(n)]
            basis = _basis_for(V, supports.get((i, j), ()))
            if basis is None:
                return None
            lam = solve_exact([[vq[r][b] for b in basis] for r in range(n)], y)
            if lam is None:
                return None
            worst = max(worst, sum(abs(v) for v in lam))
    return worst
