"""Results about a computed fixed point count every piece active at the exact fixed point.

Reference values: heavy-ball with alpha = beta = 1/4 on the piecewise quadratic with curvatures
1 and 9 (kink at x = theta) has the Jacobians M(c) = [[5/4 - c/4, -1/4], [1, 0]], each of
spectral radius 1/2, and JSR{M(1), M(9)} = (1 + sqrt 2)/2, reached by the word (0, 1). Its fixed
point at theta = 0 is x = (0, 0), exactly on the kink; `cv.fixed_point` lands about 3e-13 away.
"""

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

import conservative as cv

GOLDEN_HB = (1 + np.sqrt(2)) / 2


def _momentum_map(lo=1.0, hi=9.0):
    def grad(x, t):
        d = x - t[0]
        return cv.where(d > 0, hi * d, lo * d)
    return cv.algorithms.heavy_ball(grad, 0.25, 0.25, 1)


def _M(c):
    return np.array([[1.25 - 0.25 * c, -0.25], [1.0, 0.0]])


def _exact_spectral_radius_of_product(mats, word):
    """rho(A_w) from the exact characteristic polynomial (sympy), independent of the library."""
    P = sp.eye(2)
    for i in word:
        P = sp.Matrix([[sp.Rational(Fraction(float(v))) for v in row] for row in mats[i]]) * P
    lam = sp.symbols("lam")
    roots = sp.Poly(P.charpoly(lam).as_expr(), lam).nroots(n=30)
    return max(abs(complex(r)) for r in roots)


@pytest.fixture(scope="module")
def momentum():
    F = _momentum_map()
    zs = cv.fixed_point(F, np.array([1.0, 1.0]), [0.0]).x
    assert 0 < np.max(np.abs(zs)) < 1e-9          # a rounding away from the kink, not on it
    return F, zs


def test_enclosure_of_the_exact_fixed_point_contains_it_and_names_the_kink(momentum):
    F, zs = momentum
    enc = cv.fixed_point_enclosure(F, [0.0], zs)
    assert enc.proven
    assert np.all(enc.lo <= 0.0) and np.all(enc.hi >= 0.0)      # x̄ = (0, 0)
    assert enc.radius < 1e-9
    assert len(enc.kinks) == 1 and "where" in enc.kinks[0]
    assert "agree on the boundary" in enc.caveat


def test_certify_contraction_at_a_computed_fixed_point_sees_both_curvatures(momentum):
    F, zs = momentum
    cert = cv.certify_contraction(F, theta=[0.0], x=zs)
    assert not cert.certified
    assert cert.word == (0, 1)
    assert cert.lower == pytest.approx(GOLDEN_HB, rel=1e-9)
    # the word indexes the map's own Jacobians, and its value is checked exactly
    own = cert.samples
    assert all(any(np.array_equal(M, _M(c)) for c in (1.0, 9.0)) for M in own)
    exact = _exact_spectral_radius_of_product(own, cert.word) ** 0.5
    assert exact == pytest.approx(cert.lower, rel=1e-12)
    assert any("kinks within the box" in note for note in cert.notes)


def test_the_built_in_counterexample_map_is_refused_at_its_computed_fixed_point():
    ce = cv.examples.momentum_divergence()
    zs = cv.fixed_point(ce.map, np.array([1.0, 1.0]), ce.theta).x
    cert = cv.certify_contraction(ce.map, theta=ce.theta, x=zs)
    assert not cert.certified and cert.lower == pytest.approx(GOLDEN_HB, rel=1e-9)
    with pytest.raises(cv.NotContractingError) as info:
        cv.attractor(ce.map, ce.theta, zs, tol=1e-3)
    assert info.value.lower == pytest.approx(GOLDEN_HB, rel=1e-9)


def test_attractor_refuses_the_computed_fixed_point(momentum):
    F, zs = momentum
    with pytest.raises(cv.NotContractingError, match="cv.attractor") as info:
        cv.attractor(F, [0.0], zs)
    assert info.value.lower == pytest.approx(GOLDEN_HB, rel=1e-9)


def test_implicit_set_and_fpad_do_not_depend_on_the_side_of_the_kink(momentum):
    F, zs = momentum
    exact = np.zeros(2)
    imp = cv.implicit_jacobian(F, [0.0], zs, hull=False).vertices
    assert len(imp) == 1 and np.allclose(imp, 1.0)      # dx̄/dθ = 1 on both pieces
    for x in (zs, -zs, exact):
        assert np.array_equal(cv.fpad(F, [0.0], x, 20), cv.fpad(F, [0.0], exact, 20))
        assert np.array_equal(cv.one_step(F, x, [0.0]), cv.one_step(F, exact, [0.0]))


def test_a_fixed_point_off_the_kink_keeps_one_piece():
    F = _momentum_map()
    zs = cv.fixed_point(F, np.array([1.0, 1.0]), [0.0]).x
    shifted = zs + 0.5                                          # fixed point of theta = 0.5
    zs2 = cv.fixed_point(F, shifted, [0.25]).x                  # x̄ = (1/4, 1/4): d = 0 again
    enc = cv.fixed_point_enclosure(F, [0.25], zs2)
    assert enc.proven and enc.kinks                             # still on the kink
    far = cv.fixed_point(_momentum_map(1.0, 3.0), np.array([3.0, 3.0]), [1.0]).x
    enc = cv.fixed_point_enclosure(_momentum_map(1.0, 3.0), [1.0], far)
    assert enc.proven and enc.lo[0] <= 1.0 <= enc.hi[0]


def test_large_B_does_not_hide_the_choices_in_A():
    F = cv.trace(lambda x, t: 0.5 * x + cv.relu(x) + 1e13 * t, (), ())
    assert sorted(F.jacobian(0.0, 0.0, hull=False).A.vertices.ravel()) == [0.5, 1.5]
    with pytest.raises(cv.SingularJacobianError, match="cv.implicit_jacobian"):
        cv.implicit_jacobian(F, 0.0, 0.0)
    with pytest.raises(cv.NotContractingError) as info:
        cv.attractor(F, 0.0, 0.0, tol=1e-3)
    assert info.value.lower == pytest.approx(1.5)
    assert not cv.certify_contraction(F, theta=0.0, x=0.0).certified


def test_box_certificate_reports_the_maps_own_bound_not_the_enclosures():
    F = _momentum_map()
    box = (np.array([-0.1, -0.1]), np.array([0.1, 0.1]))
    M = F.enclose(box, [0.0])
    # the exact hull of 5/4 - c/4 over c in [1, 9] is [-1, 1] (outward rounding aside)
    assert -1 - 1e-12 <= M.lo[0, 0] <= -1.0 and 1.0 <= M.hi[0, 0] <= 1 + 1e-12
    cert = cv.certify_contraction(F, theta=[0.0], x=box)
    assert not cert.certified
    assert cert.lower == pytest.approx(GOLDEN_HB, rel=1e-9)
    assert all(any(np.array_equal(A, _M(c)) for c in (1.0, 9.0)) for A in cert.samples)


def test_box_refusal_due_to_the_enclosure_width_says_so():
    # a smooth map whose enclosure over a wide box is too loose, while the map contracts
    F = cv.trace(lambda x, t: 0.45 * cv.tanh(x) - 0.45 * cv.tanh(x[::-1]) + t, (2,), ())
    box = (np.array([-3.0, -3.0]), np.array([3.0, 3.0]))
    cert = cv.certify_contraction(F, theta=0.0, x=box)
    if not cert.certified:
        assert cert.lower < 1
        assert "width of the enclosure" in cert.reason


def test_certify_fixed_point_refusal_names_the_divergent_word(momentum):
    F, zs = momentum
    res = cv.certify_fixed_point(F, [0.0], zs)
    assert not res.certified
    assert res.lower == pytest.approx(GOLDEN_HB, rel=1e-9) and res.word == (0, 1)


def test_a_point_that_is_not_a_fixed_point_keeps_its_own_set_and_notes_nearby_kinks():
    F = _momentum_map(1.0, 3.0)
    x = np.array([1e-323, 5.0])                             # d = 2 ulps above the kink
    cert = cv.certify_contraction(F, theta=[0.0], x=x)
    assert cert.certified
    assert any("within 4 ulps" in note for note in cert.notes)
    assert not cv.certify_contraction(F, theta=[0.0], x=np.array([1.0, 5.0])).notes


def test_jacobian_over_a_box_counts_pieces_and_takes_the_kink_default():
    F = cv.trace(lambda x, t: cv.relu(x - t), (2,), ())
    x = np.array([1e-13, 1.0])
    box = ((np.array([-1e-12, 0.9]), np.array([1e-12, 1.1])), 0.0)
    js = F.jacobian(x, 0.0, hull=False, box=box)
    assert js.n_selections == 2
    assert js.default[0, 0] == 0.0                              # relu'(0) = 0, on the kink
    assert F.jacobian(x, 0.0).default[0, 0] == 1.0              # at the float point itself
    with pytest.raises(cv.InputError, match="does not contain the point"):
        F.jacobian(np.array([1.0, 1.0]), 0.0, box=box)


def _exact_relu_fixed_point(W, b):
    """The fixed point of x = relu(W x + b) for small dyadic data, exactly (Fractions), by
    trying every activity pattern (a reference independent of the library)."""
    n = len(b)
    Wq = [[Fraction(float(v)) for v in row] for row in W]
    bq = [Fraction(float(v)) for v in b]
    found = []
    for mask in range(2 ** n):
        act = [(mask >> i) & 1 for i in range(n)]
        M = sp.Matrix(n, n, lambda i, j: (1 if i == j else 0) - act[i] * Wq[i][j])
        rhs = sp.Matrix(n, 1, lambda i, _: act[i] * bq[i])
        x = M.LUsolve(rhs)
        pre = [sum(Wq[i][j] * Fraction(str(x[j])) for j in range(n)) + bq[i] for i in range(n)]
        if all((pre[i] >= 0) if act[i] else (pre[i] <= 0) for i in range(n)):
            found.append([Fraction(str(v)) for v in x])
    return found


@pytest.mark.parametrize("seed", range(6))
def test_enclosures_of_relu_layers_contain_the_exact_fixed_point(seed):
    rng = np.random.default_rng(seed)
    n = 3
    W = np.round(rng.uniform(-0.3, 0.3, (n, n)) * 64) / 64
    b = np.round(rng.normal(size=n) * 64) / 64
    b[0] = -float(W[0] @ np.zeros(n))          # may put coordinate 0 on its kink
    F = cv.trace(lambda x, t: cv.relu(W @ x + b + 0.0 * t), (n,), ())
    x = cv.fixed_point(F, np.zeros(n), 0.0).x
    enc = cv.fixed_point_enclosure(F, 0.0, x)
    assert enc.proven
    exact = _exact_relu_fixed_point(W, b)
    assert exact, "the reference found no fixed point"
    inside = [all(Fraction(float(enc.lo[i])) <= v[i] <= Fraction(float(enc.hi[i]))
                  for i in range(n)) for v in exact]
    assert any(inside)


def test_attractor_time_limit_returns_an_honest_partial_result():
    import time
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    start = time.monotonic()
    att = cv.attractor(F, 0.0, 0.0, hull=False, tol=1e-7, time_limit=0.0)
    assert time.monotonic() - start < 5
    assert not att.complete and att.hausdorff_bound > 1e-7
    # the partial bound is still a bound: the attractor of {x/2 + 1/2, 1/2} ... is [1/2, 1]
    lo, hi = att.bounding_box()
    assert lo[0, 0] - att.hausdorff_bound <= 0.5 + 1e-12
    assert hi[0, 0] + att.hausdorff_bound >= 1.0 - 1e-12
    full = cv.attractor(F, 0.0, 0.0, hull=False, tol=1e-3)
    assert full.complete and full.hausdorff_bound <= 1e-3
