"""Adversarial soundness review: attacks on certificates, enclosures and JSR brackets.

The ``test_bug_*`` tests reproduce the bugs this review found (all fixed since: a discontinuous
``where`` across a fixed-point box, inward-rounded box corners, floating eigenvalues worded as a
proof, an overflow in the norm lift); the others are attacks the library withstood.
"""

from fractions import Fraction

import numpy as np
import pytest

import conservative as cv
from conservative import _exact
from conservative.implicit import invertible_on_hull


def _exact_quadratic_ok(mats, P, rho):
    """Independent exact re-check: rho^2 P - A^T P A PSD via sympy rationals."""
    import sympy
    Pq = sympy.Matrix([[sympy.Rational(Fraction(float(v))) for v in row] for row in P])
    r2 = sympy.Rational(Fraction(float(rho))) ** 2
    if not Pq.is_positive_definite:
        return False
    for a in mats:
        Aq = sympy.Matrix([[sympy.Rational(Fraction(float(v))) for v in row] for row in a])
        G = r2 * Pq - Aq.T * Pq * Aq
        if not all(ev >= 0 for ev in _sym_eigs_lower(G)):
            return False
    return True


def _sym_eigs_lower(G):
    # exact PSD test through principal-minor-free LDL (independent of _exact)
    import sympy
    n = G.shape[0]
    M = G.copy()
    out = []
    for k in range(n):
        p = M[k, k]
        out.append(p)
        if p < 0:
            return out
        if p == 0:
            if any(M[k, j] != 0 for j in range(k + 1, n)):
                return [sympy.Integer(-1)]
            continue
        for i in range(k + 1, n):
            f = M[i, k] / p
            for j in range(k + 1, n):
                M[i, j] -= f * M[k, j]
    return out


# --------------------------------------------------------------------------------------------
# BUGS


def test_bug_fixed_point_certified_for_discontinuous_where_without_fixed_point():
    # x <= 1000: F = x/4 + 751 -> would-be fixed point 1001.33 (> 1000, not in this branch)
    # x >  1000: F = x/4 + 749 -> would-be fixed point  998.67 (<= 1000, not in this branch)
    # so F has no fixed point at all; the jump (2.0) is invisible to the trace-time sampler.
    F = cv.trace(lambda x, t: cv.where(x > 1000.0, 0.25 * x + 749.0, 0.25 * x + 751.0),
                 (), ())
    for x in (990.0, 1000.5, 1001.2, 1010.0):
        f = float(np.asarray(F(x, 0.0)))
        assert f != x
    res = cv.certify_fixed_point(F, 0.0, 1000.0)
    assert not res.certified, (res.x_box, res.radius)


def test_bug_lower_bound_exceeds_true_jsr_for_nilpotent():
    A = np.array([[[1.0, 1.0], [-1.0, -1.0]]]) * 2.0 ** 60
    assert not np.any(A[0] @ A[0])                 # exactly nilpotent: JSR = 0
    r = cv.jsr(A, time_limit=5.0)
    assert r.lower <= 1e-6 * np.abs(A).max()        # lower must be <= true JSR (0), up to eps
    c = cv.certify_contraction(A, time_limit=5.0)
    assert c.certified or "no norm can" not in c.reason


# --------------------------------------------------------------------------------------------
# attacks that held


def test_heavy_ball_divergent_pair_refused():
    M = lambda c: [[1 + 0.25 - 0.25 * c, -0.25], [1, 0]]      # noqa: E731
    cert = cv.certify_contraction([M(1), M(9)], time_limit=5.0)
    assert not cert.certified and cert.lower > 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_certified_sets_recheck_exactly_and_have_no_divergent_products(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(2, 3, 3))
    A /= 1.05 * cv.jsr(A, time_limit=3.0).upper
    cert = cv.certify_contraction(A, time_limit=5.0)
    if not cert.certified:
        return
    assert cert.rho < 1
    if cert.P is not None:
        assert _exact_quadratic_ok(A, cert.P, cert.rho)
    import itertools
    import mpmath
    for k in range(1, 6):
        for w in itertools.product(range(2), repeat=k):
            M = np.eye(3)
            for i in w:
                M = A[i] @ M
            ev = mpmath.mp.eig(mpmath.matrix(M.tolist()))[0]
            assert max(abs(e) for e in ev) < 1


def test_zero_row_reduction_lift_is_exact():
    # n = 30 > SMALL_DIM: rows 3.. are zero in every matrix; large coupling into Z columns
    rng = np.random.default_rng(1)
    n = 30
    A = np.zeros((2, n, n))
    A[:, :3, :3] = rng.normal(size=(2, 3, 3)) * 0.3
    A[:, :3, 3:] = rng.normal(size=(2, 3, n - 3)) * 1e3
    cert = cv.certify_contraction(A, time_limit=10.0)
    assert cert.certified and cert.P is not None
    assert _exact.check_quadratic(A, cert.P, cert.rho)


def test_bug_lift_overflow_on_huge_coupling():
    n = 26
    A = np.zeros((1, n, n))
    A[0, 0, 5] = 1e200                      # only coupling, N-block zero: JSR = 0
    cert = cv.certify_contraction(A, time_limit=5.0)
    if cert.certified:
        assert _exact.check_quadratic(A, cert.P, cert.rho)


def test_zero_row_reduction_near_one_refused():
    n = 26
    B = np.zeros((1, n, n))
    B[0, 0, 0] = 1.0                        # JSR exactly 1 after reduction
    B[0, 0, 7] = 3.0
    assert not cv.certify_contraction(B, time_limit=5.0).certified


def test_box_certificate_covers_sampled_matrices():
    lo = np.array([[0.3, -0.2, 0.0], [0.1, 0.2, -0.1], [0.0, 0.1, 0.25]])
    hi = lo + 0.05
    box = cv.IntervalMatrix(lo, hi) if hasattr(cv, "IntervalMatrix") else None
    if box is None:
        from conservative.interval import IntervalMatrix
        box = IntervalMatrix(lo, hi)
    cert = cv.certify_contraction(box, time_limit=5.0)
    assert cert.certified
    rng = np.random.default_rng(0)
    S = lo + (hi - lo) * rng.random((50, 3, 3))
    assert _exact.check_quadratic(S[:5], cert.P, cert.rho)
    corners = np.where(rng.random((20, 3, 3)) < 0.5, lo, hi)
    assert _exact.check_quadratic(corners, cert.P, cert.rho)


def test_exact_is_psd_edge_cases():
    F = Fraction
    assert not _exact.is_psd([[F(0), F(1)], [F(1), F(0)]])
    assert not _exact.is_psd([[F(1), F(0)], [F(0), F(-1, 10 ** 30)]])
    assert _exact.is_psd([[F(0), F(0)], [F(0), F(0)]])
    assert not _exact.is_psd([[F(1), F(2)], [F(3), F(1)]])       # non-symmetric refused
    tiny = 5e-324
    assert not _exact.check_quadratic(np.array([[[1.0]]]), np.array([[tiny]]),
                                      float(np.nextafter(1.0, 0.0)))
    assert not _exact.check_quadratic(np.array([[[np.nan]]]), np.eye(1), 0.5)
    assert not _exact.check_quadratic_box(np.eye(1) * 0.9, np.eye(1) * 1.0, np.eye(1), 0.99)


def test_polytope_bound_exact():
    V = np.eye(2)
    A = np.array([[[0.5, 0.25], [0.0, 0.5]]])
    assert _exact.polytope_norm_bound(A, V, {}) == Fraction(3, 4)
    flat = np.array([[1.0, 2.0], [0.0, 0.0]])
    assert _exact.polytope_norm_bound(A, flat, {}) is None


def test_invertible_on_hull_abs_example():
    A = np.array([[[-1.0]], [[1.0]]])           # I - A in {2, 0}: singular vertex
    assert not invertible_on_hull(A)[0]
    A = np.array([[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]]) * 2.0
    # midpoint [[0,1],[1,0]]: I - A singular on the hull, vertices fine
    assert not invertible_on_hull(A)[0]


def test_enclosure_contains_sampled_jacobians():
    F = cv.trace(lambda x, t: cv.relu(x * t[0] - 0.3) - cv.relu(-x) * 0.5 + cv.abs(x - t[1]),
                 (), (2,))
    lo_x, hi_x = -1.0, 1.0
    lo_t, hi_t = np.array([0.5, -0.2]), np.array([1.5, 0.4])
    M = F.enclose((lo_x, hi_x), (lo_t, hi_t))
    rng = np.random.default_rng(0)
    pts = list(rng.uniform(lo_x, hi_x, 40)) + [0.0, 0.3, -0.2, 0.4, lo_x, hi_x]
    for x in pts:
        t = lo_t + (hi_t - lo_t) * rng.random(2)
        js = F.jacobian(x, t, hull=True)
        V = np.asarray(js.vertices).reshape(-1, 1, 3)
        assert np.all(V >= M.lo - 0) and np.all(V <= M.hi + 0)


def test_fixed_point_certificate_contains_fixed_point():
    F = cv.trace(lambda x, t: 0.25 * x + t, (), ())
    for t in (0.75 + 2.0 ** -52, 1e10 / 3, 1e-300):
        xbar = Fraction(t) / Fraction(3, 4)
        res = cv.certify_fixed_point(F, t, float(xbar))
        if res.certified:
            lo, hi = res.x_box
            assert Fraction(float(lo)) <= xbar <= Fraction(float(hi))


def test_bug_fixed_point_box_rounded_inward():
    a = 0.03125
    F = cv.trace(lambda x, t: a * x + t, (), ())
    u = 2.0 ** -52
    t = (1 - a) + u
    xbar = Fraction(t) / (1 - Fraction(a))            # = 1 + 1.032 ulp, not a float
    res = cv.certify_fixed_point(F, t, 1.0, radius=1.47 * u, attempts=1)
    assert res.certified
    lo, hi = res.x_box
    assert Fraction(float(lo)) <= xbar <= Fraction(float(hi)), (hi - 1) / u
