"""An independent exact checker for the claims ``conservative`` makes.

The adversarial tests re-check every certificate and every 'exact' bound the library returns
with the functions here. They are written from scratch, apart from ``conservative/_exact.py``
(nothing is imported from the package), so that a bug in the library's own checks cannot hide a
false answer. Every float64 is a dyadic rational; ``Fraction(float)`` converts it without error,
so each check is a statement about the very numbers the library returned.

Arithmetic is exact throughout: :class:`fractions.Fraction` for scalars and the decisions
(pivots, signs), python-flint's ``fmpq_mat`` for matrix products and characteristic
polynomials when it is installed (a speed-up only; without it the same algorithms run on
Fractions), and sympy for the real algebraic numbers of closed-form joint spectral radii.

What is checked
---------------
* :func:`is_psd` -- positive (semi)definiteness by symmetric elimination with diagonal
  pivoting (the largest remaining diagonal entry is eliminated first).
* :func:`check_quadratic_certificate` -- ``P ≻ 0`` and ``rho^2 P - A^T P A ⪰ 0`` for each A.
* :func:`check_polytope_certificate` -- the columns V span R^n and every ``A v_j`` lies in
  ``rho * absconv(V)``, by an exact simplex method (Bland's rule) for
  ``min ||lam||_1 s.t. V lam = A v_j``.
* :func:`check_lifted_certificate` -- ``Pk ≻ 0`` and ``A_w^T Pk A_w ⪯ rho^(2k) Pk`` for every
  product of length k; :func:`lifted_norm_squared` evaluates the norm built from it.
* :func:`spectral_radius_compare` -- the sign of ``rho(M) - R`` exactly (Schur-Cohn recursion
  on the characteristic polynomial; ties through the resultant whose largest real root is
  ``rho(M)^2`` and Sturm counting).
* :func:`check_lower_bound` -- ``rho(A_w)^(1/|w|) >= lower`` for a word over given matrices.
* :func:`compare_algebraic`, :func:`is_exactly_upper_bound` -- a float against a closed form
  such as the golden ratio, exactly.
* :func:`in_hull` -- (floating) membership of a matrix in the convex hull of a set, used to
  check that a word indexes matrices genuinely in the map's own set.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np

try:  # optional speed-up for products and characteristic polynomials
    import flint
except ImportError:  # pragma: no cover - exercised only without python-flint
    flint = None

BACKEND = "python-flint" if flint is not None else "fractions"

__all__ = [
    "BACKEND", "Verdict", "rational", "rational_matrix", "matmul", "transpose", "word_product",
    "is_psd", "check_quadratic_certificate", "check_polytope_certificate",
    "check_lifted_certificate", "lifted_norm_squared", "charpoly", "spectral_radius_below",
    "spectral_radius_compare",
    "check_lower_bound", "compare_algebraic", "is_exactly_upper_bound", "is_at_most", "in_hull",
]


class Verdict:
    """A boolean with the reason attached (``assert v, v.reason`` prints why it failed)."""

    def __init__(self, ok: bool, reason: str = ""):
        self.ok = bool(ok)
        self.reason = reason

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Verdict({self.ok}, {self.reason!r})"


# ---------------------------------------------------------------------------------------------
# exact numbers and matrices (lists of rows of Fraction)


def rational(x) -> Fraction:
    """The exact rational value of a float (or an int / Fraction); non-finite values raise."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return Fraction(int(x))
    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"{x!r} has no rational value")
    return Fraction(f)


def rational_matrix(a) -> list:
    """A matrix (float array, or nested lists of Fractions/ints) as rows of Fraction."""
    if isinstance(a, np.ndarray):
        if a.ndim != 2:
            raise ValueError(f"expected a matrix, got shape {a.shape}")
        return [[rational(v) for v in row] for row in a.tolist()]
    return [[rational(v) for v in row] for row in a]


def _is_finite_array(a) -> bool:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        # rationals too big for a float are still finite
        return all(isinstance(v, (Fraction, int)) for row in a for v in row)
    return bool(np.all(np.isfinite(arr)))


def _to_flint(a):
    return flint.fmpq_mat(len(a), len(a[0]),
                          [flint.fmpq(v.numerator, v.denominator) for row in a for v in row])


def _from_flint(m) -> list:
    return [[Fraction(int(m[i, j].p), int(m[i, j].q)) for j in range(m.ncols())]
            for i in range(m.nrows())]


def matmul(a: list, b: list) -> list:
    """Exact product of two rational matrices."""
    if flint is not None and a and b and a[0] and b[0]:
        return _from_flint(_to_flint(a) * _to_flint(b))
    cols = list(zip(*b))
    return [[sum((x * y for x, y in zip(row, col)), Fraction(0)) for col in cols] for row in a]


def transpose(a: list) -> list:
    return [list(col) for col in zip(*a)]


def _identity(n: int) -> list:
    return [[Fraction(int(i == j)) for j in range(n)] for i in range(n)]


def word_product(mats: Sequence[list], word: Iterable[int]) -> list:
    """``mats[w[-1]] @ ... @ mats[w[0]]`` exactly (``w[0]`` is applied first)."""
    n = len(mats[0])
    out = _identity(n)
    for i in word:
        out = matmul(mats[i], out)
    return out


def _sym(a: list) -> list:
    n = len(a)
    return [[(a[i][j] + a[j][i]) / 2 for j in range(n)] for i in range(n)]


# ---------------------------------------------------------------------------------------------
# definiteness


def is_psd(m: list, *, strict: bool = False) -> bool:
    """Exact test of ``m ⪰ 0`` (``m ≻ 0`` with ``strict``) for a symmetric rational matrix.

    Symmetric elimination that always pivots on the largest remaining diagonal entry. A
    positive pivot leaves a Schur complement that is PSD iff the matrix is; when the largest
    remaining diagonal entry is 0, the remaining block must vanish (a PSD matrix with zero
    diagonal is zero) and a negative one refutes. A non-symmetric input is refused.
    """
    n = len(m)
    a = [list(map(rational, row)) for row in m]
    if any(len(row) != n for row in a):
        raise ValueError("is_psd needs a square matrix")
    if any(a[i][j] != a[j][i] for i in range(n) for j in range(i)):
        return False
    left = list(range(n))
    while left:
        k = max(left, key=lambda i: a[i][i])
        p = a[k][k]
        if p < 0:
            return False
        if p == 0:
            return not strict and all(a[i][j] == 0 for i in left for j in left)
        left.remove(k)
        for i in left:
            f = a[i][k] / p
            if f:
                for j in left:
                    a[i][j] -= f * a[k][j]
    return True


def _gap(A: list, P: list, r2: Fraction) -> list:
    """``r2 P - A^T P A`` (symmetrised: only the quadratic form matters)."""
    atpa = matmul(transpose(A), matmul(P, A))
    return _sym([[r2 * p - s for p, s in zip(prow, srow)] for prow, srow in zip(P, atpa)])


def check_quadratic_certificate(mats, P, rho) -> Verdict:
    """Exactly: ``P ≻ 0`` and ``rho^2 P - A^T P A ⪰ 0`` for every A in ``mats``.

    Then ``||A v||_P <= rho ||v||_P`` with ``||v||_P = sqrt(v^T P v)`` on the whole convex hull
    of ``mats`` (``A -> A^T P A`` is matrix-convex), hence JSR(conv mats) <= rho.
    ``mats`` may hold float arrays or exact rational matrices (lists of Fractions).
    """
    if P is None:
        return Verdict(False, "no quadratic form P")
    if not (_is_finite_array(P) and math.isfinite(float(rho))):
        return Verdict(False, f"non-finite P or rho = {rho!r}")
    if rho < 0:
        return Verdict(False, f"negative rho = {rho!r}")
    Pq = _sym(rational_matrix(np.asarray(P, dtype=np.float64)))
    if not is_psd(Pq, strict=True):
        return Verdict(False, "P is not positive definite (exactly)")
    r2 = rational(rho) ** 2
    for i, A in enumerate(mats):
        Aq = rational_matrix(A)
        if len(Aq) != len(Pq):
            return Verdict(False, f"matrix {i} has size {len(Aq)}, P has {len(Pq)}")
        if not is_psd(_gap(Aq, Pq, r2)):
            return Verdict(False, f"rho^2 P - A^T P A is not PSD for matrix {i} "
                                  f"(rho = {float(rho)!r})")
    return Verdict(True)


def check_lifted_certificate(mats, Pk, rho, k: int, *, as_norm: bool = True) -> Verdict:
    """Exactly: ``Pk ≻ 0`` and ``A_w^T Pk A_w ⪯ rho^(2k) Pk`` for every product of length k.

    Then ``rho(A_w) <= rho^k`` for all those products, so JSR <= rho. As a *norm*
    (``as_norm``, needs ``rho > 0``): in ``||x|| = max_{|u| < k} rho^-|u| ||A_u x||_Pk``
    (``u`` empty: the identity) every ``A_i`` has ``||A_i|| <= rho``: for ``|u| < k - 1``,
    ``A_u A_i`` is a word of length ``|u| + 1 < k`` already in the maximum, and for
    ``|u| = k - 1`` the length-k inequality applies. With ``rho = 0`` (allowed for a JSR bound
    only) every product of length k must vanish.
    """
    if Pk is None or not isinstance(k, (int, np.integer)) or k < 1:
        return Verdict(False, f"no lifted form (Pk={Pk is not None}, k={k!r})")
    if not (_is_finite_array(Pk) and math.isfinite(float(rho)) and rho >= 0):
        return Verdict(False, f"non-finite Pk or rho = {rho!r}")
    if as_norm and rho == 0:
        return Verdict(False, "rho = 0 defines no lifted norm")
    Pq = _sym(rational_matrix(np.asarray(Pk, dtype=np.float64)))
    if not is_psd(Pq, strict=True):
        return Verdict(False, "Pk is not positive definite (exactly)")
    qs = [rational_matrix(A) for A in mats]
    r2k = rational(rho) ** (2 * int(k))
    for word in itertools.product(range(len(qs)), repeat=int(k)):
        if not is_psd(_gap(word_product(qs, word), Pq, r2k)):
            return Verdict(False, f"rho^(2k) Pk - A_w^T Pk A_w is not PSD for the word {word}")
    return Verdict(True)


def lifted_norm_squared(mats, Pk, rho, k: int, x) -> Fraction:
    """``max_{|u| < k} rho^(-2|u|) (A_u x)^T Pk (A_u x)``, exactly (the square of the norm)."""
    qs = [rational_matrix(A) for A in mats]
    Pq = _sym(rational_matrix(np.asarray(Pk, dtype=np.float64)))
    r2 = rational(rho) ** 2
    col = [[rational(v)] for v in x]
    best = Fraction(0)
    level = [col]
    for length in range(int(k)):
        for v in level:
            q = matmul(transpose(v), matmul(Pq, v))[0][0] / r2 ** length
            best = max(best, q)
        level = [matmul(A, v) for A in qs for v in level]
    return best


# ---------------------------------------------------------------------------------------------
# polytope norms: exact linear programming


def _exact_lp_min(c: list, A: list, b: list):
    """``min c^T x s.t. A x = b, x >= 0`` exactly (two-phase tableau simplex, Bland's rule).

    Returns the optimal value (a Fraction) or None when infeasible. Bland's rule cannot cycle,
    so the loop ends; everything is rational, so the answer is exact.
    """
    m, nvar = len(A), len(c)
    rows = [list(A[i]) + [b[i]] for i in range(m)]
    for r in rows:                                   # b >= 0
        if r[-1] < 0:
            r[:] = [-v for v in r]
    # phase 1: artificial variables nvar .. nvar + m - 1
    tab = [r[:-1] + [Fraction(int(i == j)) for j in range(m)] + [r[-1]]
           for i, r in enumerate(rows)]
    basis = [nvar + i for i in range(m)]
    total = nvar + m

    def pivot(row, col):
        p = tab[row][col]
        tab[row] = [v / p for v in tab[row]]
        for i in range(m):
            if i != row and tab[i][col] != 0:
                f = tab[i][col]
                tab[i] = [v - f * w for v, w in zip(tab[i], tab[row])]
        basis[row] = col

    def run(cost, allowed):
        while True:
            # reduced costs c_j - c_B^T B^-1 a_j over allowed columns
            entering = None
            for j in allowed:
                if j in basis:
                    continue
                red = cost[j] - sum((cost[basis[i]] * tab[i][j] for i in range(m)),
                                    Fraction(0))
                if red < 0:
                    entering = j                     # Bland: smallest index
                    break
            if entering is None:
                return True
            ratios = [(tab[i][-1] / tab[i][entering], basis[i], i)
                      for i in range(m) if tab[i][entering] > 0]
            if not ratios:
                return False                         # unbounded
            _, _, leave = min(ratios)                # Bland: ties by smallest basic index
            pivot(leave, entering)

    phase1 = [Fraction(0)] * nvar + [Fraction(1)] * m
    run(phase1, range(total))
    if sum((tab[i][-1] for i in range(m) if basis[i] >= nvar), Fraction(0)) != 0:
        return None
    # drive remaining (zero-level) artificials out of the basis where possible
    for i in range(m):
        if basis[i] >= nvar:
            j = next((j for j in range(nvar) if tab[i][j] != 0), None)
            if j is not None:
                pivot(i, j)
    cost = list(c) + [Fraction(0)] * m
    if not run(cost, range(nvar)):
        return -math.inf
    return sum((cost[basis[i]] * tab[i][-1] for i in range(m)), Fraction(0))


def _rank(a: list) -> int:
    """Exact rank by Gaussian elimination."""
    m = [list(r) for r in a]
    rank, ncol = 0, len(m[0]) if m else 0
    for col in range(ncol):
        piv = next((i for i in range(rank, len(m)) if m[i][col] != 0), None)
        if piv is None:
            continue
        m[rank], m[piv] = m[piv], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][col] != 0:
                f = m[i][col] / m[rank][col]
                m[i] = [x - f * y for x, y in zip(m[i], m[rank])]
        rank += 1
    return rank


def polytope_norm(V: list, y: list):
    """``||y||_V = min{||lam||_1 : V lam = y}`` exactly (None if y is not in the span)."""
    n, N = len(V), len(V[0])
    A = [list(V[i]) + [-v for v in V[i]] for i in range(n)]     # lam = u - w, u, w >= 0
    return _exact_lp_min([Fraction(1)] * (2 * N), A, list(y))


def check_polytope_certificate(mats, V, rho) -> Verdict:
    """Exactly: ``absconv(columns of V)`` is a unit ball and every A maps it into ``rho`` times it.

    The ball is full-dimensional iff V has rank n (then ``||.||_V`` is a norm); the operator
    norm is ``max_j ||A v_j||_V``, computed by an exact LP per vertex. Then JSR <= rho.
    """
    if V is None:
        return Verdict(False, "no polytope")
    Varr = np.asarray(V, dtype=np.float64)
    if Varr.ndim != 2 or not np.all(np.isfinite(Varr)) or not math.isfinite(float(rho)):
        return Verdict(False, "polytope vertices or rho not finite / not a matrix")
    Vq = rational_matrix(Varr)
    n = len(Vq)
    if _rank(Vq) < n:
        return Verdict(False, f"the polytope is flat: its {len(Vq[0])} vertices span fewer "
                              f"than {n} dimensions, so it is no unit ball")
    r = rational(rho)
    for i, A in enumerate(mats):
        Aq = rational_matrix(A)
        images = matmul(Aq, Vq)
        for j in range(len(Vq[0])):
            val = polytope_norm(Vq, [images[row][j] for row in range(n)])
            if val is None or val > r:
                return Verdict(False, f"matrix {i} maps vertex {j} to norm {float(val)!r} > "
                                      f"rho = {float(rho)!r}")
    return Verdict(True)


# ---------------------------------------------------------------------------------------------
# spectral radius, exactly


def charpoly(M: list) -> list:
    """Coefficients ``c[0..n]`` (``c[k]`` of ``z^k``, ``c[n] = 1``) of ``det(z I - M)``."""
    n = len(M)
    if flint is not None:
        p = _to_flint(M).charpoly()
        coeffs = [Fraction(int(v.p), int(v.q)) for v in p.coeffs()]
        return coeffs + [Fraction(0)] * (n + 1 - len(coeffs))
    # Faddeev-LeVerrier: M_k = M M_{k-1} + c_{n-k+1} I, c_{n-k} = -tr(M M_k) / k
    c = [Fraction(0)] * (n + 1)
    c[n] = Fraction(1)
    Mk = [[Fraction(0)] * n for _ in range(n)]
    for k in range(1, n + 1):
        Mk = matmul(M, Mk)
        for i in range(n):
            Mk[i][i] += c[n - k + 1]
        AM = matmul(M, Mk)
        c[n - k] = -sum((AM[i][i] for i in range(n)), Fraction(0)) / k
    return c


def _schur_stable(c: list) -> bool:
    """All roots of ``sum c[k] z^k`` (real coefficients, ``c[-1] != 0``) in the open unit disk.

    Schur-Cohn: if ``|c_0| >= |c_n|`` the product of the roots has modulus >= 1; otherwise, by
    Rouché on the unit circle, ``(c_n p(z) - c_0 p*(z)) / z`` (degree n - 1, ``p*`` the
    reversed polynomial) has as many roots inside as p has minus one.
    """
    c = list(c)
    while len(c) > 1:
        a0, an = c[0], c[-1]
        if abs(a0) >= abs(an):
            return False
        n = len(c) - 1
        c = [an * c[k] - a0 * c[n - k] for k in range(1, n + 1)]
    return True


def spectral_radius_below(M, R) -> bool:
    """Exactly ``rho(M) < R`` (Schur-Cohn on the characteristic polynomial of ``M / R``)."""
    Mq = rational_matrix(M)
    R = rational(R)
    if R <= 0:
        return False
    c = charpoly(Mq)
    return _schur_stable([c[k] * R ** k for k in range(len(Mq) + 1)])


def spectral_radius_compare(M, R) -> int:
    """Sign of ``rho(M) - R`` (-1, 0 or 1), exactly. M float array or rational; R >= 0."""
    Mq = rational_matrix(M)
    R = rational(R)
    if R < 0:
        return 1
    c = charpoly(Mq)
    n = len(Mq)
    if R == 0:
        return 0 if all(v == 0 for v in c[:n]) else 1       # nilpotent iff det(zI - M) = z^n
    if spectral_radius_below(Mq, R):
        return -1
    # rho >= R: tie or not. rho^2 is the largest real root of Res_z(p(z), z^n p(t/z)), whose
    # roots are all products z_i z_j (moduli <= rho^2, and z_m conj(z_m) = rho^2 is one).
    import sympy
    z, t = sympy.symbols("z t")
    p = sum(sympy.Rational(v.numerator, v.denominator) * z ** k for k, v in enumerate(c))
    q = sympy.expand(z ** n * p.subs(z, t / z))
    res = sympy.Poly(sympy.resultant(sympy.Poly(p, z), sympy.Poly(q, z)), t, domain=sympy.QQ)
    R2 = sympy.Rational(R.numerator, R.denominator) ** 2
    above = res.count_roots(R2, None) - (1 if res.eval(R2) == 0 else 0)
    return 1 if above > 0 else 0


def check_lower_bound(mats, word, lower, *, rtol: float = 0.0) -> Verdict:
    """Exactly: ``rho(A_w)^(1/|w|) >= lower / (1 + rtol)`` for the word over ``mats``.

    ``rtol`` admits the rounding of a floating estimate (``lower`` is documented as one);
    anything beyond it is a false lower bound.
    """
    if lower is None or (isinstance(lower, float) and math.isnan(lower)):
        return Verdict(True, "no lower bound claimed")
    if not math.isfinite(float(lower)):
        return Verdict(False, f"lower bound {lower!r} is not finite")
    if lower <= 0:
        return Verdict(True)
    if word is None or len(word) == 0:
        return Verdict(False, f"positive lower bound {lower!r} without a word")
    qs = [rational_matrix(A) for A in mats]
    if any(not (0 <= int(i) < len(qs)) for i in word):
        return Verdict(False, f"word {tuple(word)} indexes outside the {len(qs)} matrices")
    W = word_product(qs, [int(i) for i in word])
    target = (rational(lower) / (1 + rational(rtol))) ** len(word)
    if spectral_radius_below(W, target):
        return Verdict(False, f"rho(A_w)^(1/{len(word)}) < {float(lower)!r} / (1 + {rtol}) for "
                              f"the word {tuple(word)}: a false lower bound")
    return Verdict(True)


# ---------------------------------------------------------------------------------------------
# closed forms


_ISOLATED: dict = {}


def _isolate(alpha):
    """``(minimal polynomial, a, b)`` with alpha the only root in [a, b] (cached)."""
    import sympy
    if alpha not in _ISOLATED:
        x = sympy.Symbol("x")
        poly = sympy.Poly(sympy.minimal_polynomial(alpha, x), x)
        if poly.degree() == 1:
            root = -poly.all_coeffs()[1] / poly.all_coeffs()[0]
            _ISOLATED[alpha] = (poly, root, root)
        else:
            approx = sympy.N(alpha, 60)
            spots = [(a, b) for (a, b), _ in poly.intervals(eps=sympy.Rational(1, 10 ** 30))
                     if a <= approx <= b]
            if len(spots) != 1:
                raise ValueError(f"cannot isolate {alpha} among the roots of {poly}")
            _ISOLATED[alpha] = (poly, *spots[0])
    return _ISOLATED[alpha]


def compare_algebraic(q, alpha) -> int:
    """Sign of ``q - alpha`` for a rational q and a real algebraic sympy expression alpha.

    alpha is located among the real roots of its minimal polynomial by exact isolating
    intervals (the one holding its 60-digit value, required to be unique), which are then
    refined exactly until q falls outside; an irreducible polynomial of degree > 1 has no
    rational root, so this ends.
    """
    import sympy
    q = rational(q)
    qq = sympy.Rational(q.numerator, q.denominator)
    poly, a, b = _isolate(alpha)
    if poly.degree() == 1:
        return int(bool(qq > a)) - int(bool(qq < a))
    width = b - a
    while True:
        if qq >= b:
            return 1
        if qq <= a:
            return -1
        width /= 10 ** 10
        a, b = poly.refine_root(a, b, eps=width)


def is_exactly_upper_bound(value, exact, *, scale=1, power: int = 1) -> Verdict:
    """Exactly ``(value / scale)^power >= exact`` (exact: a sympy closed form, e.g. the
    golden ratio, for the JSR of the unscaled set; the tested set is ``scale`` times it)."""
    if value is None or not math.isfinite(float(value)):
        return Verdict(math.isinf(float(value)) and value > 0, f"upper bound {value!r}")
    q = (rational(value) / rational(scale)) ** power
    if compare_algebraic(q, exact) < 0:
        return Verdict(False, f"{float(value)!r} is below the true value "
                              f"{float(scale)!r} * ({exact})^(1/{power})")
    return Verdict(True)


def is_at_most(value, exact, *, scale=1, power: int = 1, rtol: float = 0.0) -> Verdict:
    """Exactly ``(value / (1 + rtol) / scale)^power <= exact`` (lower bounds vs closed forms)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Verdict(True, "no value")
    if not math.isfinite(float(value)):
        return Verdict(False, f"lower bound {value!r}")
    if value <= 0:
        return Verdict(True)
    q = (rational(value) / (1 + rational(rtol)) / rational(scale)) ** power
    if compare_algebraic(q, exact) > 0:
        return Verdict(False, f"{float(value)!r} exceeds the true value "
                              f"{float(scale)!r} * ({exact})^(1/{power}) (rtol {rtol})")
    return Verdict(True)


# ---------------------------------------------------------------------------------------------
# membership (floating point, with a tolerance): is a matrix really in the map's own set?


def in_hull(M, points, *, rtol: float = 1e-9, atol: float = 0.0) -> bool:
    """Whether M lies in the convex hull of ``points`` up to ``max(rtol * size, atol)`` per
    entry (size: the largest entry of the points). ``atol`` admits the rounding of a Jacobian
    evaluated in floating point when its entries cancel (``1 - step * L`` is ~1e-16)."""
    from scipy.optimize import linprog
    pts = np.array([[float(v) for v in np.ravel(np.asarray(p, dtype=object))] for p in points])
    m = np.array([float(v) for v in np.ravel(np.asarray(M, dtype=object))])
    if any(np.array_equal(p, m) for p in pts):
        return True
    size = float(np.abs(pts).max())
    tol = max(rtol * size, atol)
    scale = max(size, float(np.abs(m).max()), tol)
    if scale == 0 or not math.isfinite(scale):
        return False
    pts, m, tol = pts / scale, m / scale, tol / scale   # the LP sees entries of size <= 1
    if len(pts) == 1:
        return bool(np.all(np.abs(pts[0] - m) <= tol))
    k = len(pts)
    res = linprog(np.zeros(k), A_ub=np.vstack([pts.T, -pts.T]),
                  b_ub=np.concatenate([m + tol, tol - m]), A_eq=np.ones((1, k)), b_eq=[1.0],
                  bounds=(0, None), method="highs")
    if res.status != 0:
        return False
    lam = np.clip(res.x, 0, None)
    lam /= lam.sum()
    return bool(np.max(np.abs(lam @ pts - m)) <= 2 * tol)
