"""Tests of the algorithm zoo and the matrix primitives.

Oracles: scikit-learn (``Lasso``, ``graphical_lasso``), the closed-form Lasso hypergradient on
the support, central finite differences for the smooth matrix primitives, KKT conditions for the
group Lasso, and the published heavy-ball cycle of Lessard, Recht & Packard (2016).
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conservative as cv
from conservative import linalg
from conservative.errors import ConservativeError, InputError, ShapeError, UndecidedError
from conservative.primitives import PRIMITIVES

ZOO = cv.algorithms


@pytest.fixture(scope="module")
def lasso_data():
    return cv.datasets.lasso_small()


def sklearn_lasso(X, y, lam):
    """scikit-learn's Lasso minimises 1/(2 n) ||X w - y||^2 + alpha ||w||_1: alpha = lam / n.

    The oracle is optional (test extra): without scikit-learn the tests using it skip.
    """
    Lasso = pytest.importorskip("sklearn.linear_model").Lasso
    model = Lasso(alpha=lam / X.shape[0], fit_intercept=False, tol=1e-14, max_iter=100_000)
    return model.fit(X, y).coef_


def random_covariance(d=5, n=60, seed=0):
    A = np.random.default_rng(seed).normal(size=(n, d))
    return np.cov(A.T, bias=True)


# --- the matrix primitives ---------------------------------------------------------------------

def sym(rng, d):
    A = rng.normal(size=(d, d))
    return A + A.T


def central_difference(F, x, t, dx, dt, eps=1e-6):
    return (F(x + eps * dx, t + eps * dt) - F(x - eps * dx, t - eps * dt)) / (2 * eps)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 5),
       gamma=st.floats(0.05, 5.0))
def test_logdet_prox_jvp_matches_central_differences(seed, d, gamma):
    rng = np.random.default_rng(seed)
    W, H = sym(rng, d), rng.normal(size=(d, d))   # an asymmetric tangent: only its symmetric
    F = cv.trace(lambda Z, t: linalg.logdet_prox(Z * t, gamma), (d, d), ())  # part matters
    _, tangent = F.jvp(W, 1.3, dx=H[..., None], dtheta=np.array([0.7]))
    fd = central_difference(F, W, 1.3, H, 0.7)
    assert np.allclose(tangent[..., 0], fd, atol=1e-6, rtol=1e-6)


def test_logdet_prox_value_solves_its_equation_and_matches_eigh():
    rng = np.random.default_rng(1)
    W, gamma = sym(rng, 4), 0.3
    X = linalg.logdet_prox(W, gamma)
    assert np.allclose(X, X.T) and np.all(np.linalg.eigvalsh(X) > 0)
    assert np.allclose(X - gamma * np.linalg.inv(X), W, atol=1e-12)
    # very negative eigenvalues: no cancellation in (l + sqrt(l^2 + 4 gamma)) / 2
    X = linalg.logdet_prox(np.diag([-1e8, 1.0]), 1.0)
    assert X[0, 0] == pytest.approx(1e-8, rel=1e-12)


def test_logdet_prox_jacobian_at_repeated_eigenvalues():
    """At W = c I every divided difference is g'(c): the Jacobian is g'(c) times the symmetriser."""
    d, gamma, c = 3, 2.0, 0.5
    F = cv.trace(lambda Z, t: linalg.logdet_prox(Z, gamma), (d, d), ())
    A = F.jacobian(c * np.eye(d), 0.0).default[:, :d * d]
    dg = 0.5 * (1 + c / np.sqrt(c * c + 4 * gamma))
    sym_op = 0.5 * (np.eye(d * d) + np.eye(d * d)[np.arange(d * d).reshape(d, d).T.ravel()])
    assert np.allclose(A, dg * sym_op, atol=1e-12)
    # and the same against finite differences one direction at a time
    for k in range(d * d):
        E = np.eye(d * d)[k].reshape(d, d)
        assert np.allclose(A[:, k], central_difference(F, c * np.eye(d), 0.0, E, 0.0).ravel(),
                           atol=1e-7)


def test_logdet_prox_batched_evaluation_matches_single_points():
    rng = np.random.default_rng(2)
    F = cv.trace(lambda Z, t: linalg.logdet_prox(Z - t * np.eye(3), 0.5), (3, 3), ())
    Ws, ts = np.stack([sym(rng, 3) for _ in range(4)]), rng.normal(size=4)
    assert np.allclose(F(Ws, ts), np.stack([F(W, t) for W, t in zip(Ws, ts)]))


@pytest.mark.parametrize("b_shape", [(3,), (3, 2)])
def test_solve_jvp_matches_central_differences(b_shape):
    rng = np.random.default_rng(3)
    A0 = sym(rng, 3) + 8 * np.eye(3)
    B0 = rng.normal(size=b_shape)

    def fn(x, t):  # A depends on x and theta, b on x
        A = A0 + t * (x[:, None] * x[None, :])
        b = B0 * x[0] if len(b_shape) == 1 else B0 * x[:, None]
        out = linalg.solve(A, b)
        return out if len(b_shape) == 1 else cv.sum(out, axis=1)

    F = cv.trace(fn, (3,), ())
    x, dx = rng.normal(size=3), rng.normal(size=3)
    _, tangent = F.jvp(x, 0.4, dx=dx[:, None], dtheta=np.array([0.9]))
    assert np.allclose(tangent[:, 0], central_difference(F, x, 0.4, dx, 0.9), atol=1e-7)


def _logdet_map(d, gamma=0.5):
    return cv.trace(lambda Z, t: linalg.logdet_prox(Z * t, gamma), (d, d), ())


def _solve_map():
    A0 = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 5.0]])
    return cv.trace(lambda x, t: linalg.solve(A0 + t * (x[:, None] * x[None, :]), x), (3,), ())


@pytest.mark.parametrize("make, shape", [(lambda: _logdet_map(3), (3, 3)), (_solve_map, (3,))])
def test_matrix_transpose_rules_are_adjoint_to_the_jvp(make, shape):
    """Reverse mode equals forward mode: <c, A h + B s> == <A^T c, h> + <B^T c, s>."""
    F = make()
    rng = np.random.default_rng(6)
    x, h, c = (rng.normal(size=shape) for _ in range(3))
    x = x + x.T if len(shape) == 2 else x
    _, tangent = F.jvp(x, 0.8, dx=h[..., None], dtheta=np.array([1.7]))
    _, ct_x, ct_t = F.vjp(x, 0.8, c)
    assert np.sum(c * tangent[..., 0]) == pytest.approx(np.sum(ct_x * h) + 1.7 * ct_t,
                                                        rel=1e-10)


@pytest.mark.parametrize("make, shape, radius", [
    (lambda: _logdet_map(3), (3, 3), 1e-3), (lambda: _logdet_map(2, 0.1), (2, 2), 0.01),
    (_solve_map, (3,), 1e-3), (_solve_map, (3,), 0.1)])
def test_matrix_interval_rules_enclose_sampled_values_and_jacobians(make, shape, radius):
    F = make()
    rng = np.random.default_rng(7)
    x0 = rng.normal(size=shape)
    x0 = 0.5 * (x0 + x0.T) if len(shape) == 2 else x0
    box = (x0 - radius, x0 + radius)
    values, M = F.enclose(box, (1 - radius, 1 + radius), value=True)
    assert np.all(values.hi - values.lo < 50 * radius)        # tight for small boxes
    assert np.all(M.hi - M.lo < 50 * radius)
    for _ in range(30):
        x = rng.uniform(*box)
        t = rng.uniform(1 - radius, 1 + radius)
        assert np.all(values.contains(F(x, t)))
        D = F.jacobian(x, t).default
        assert np.all((M.lo <= D) & (D <= M.hi))


def test_solve_enclosure_is_refused_when_the_box_may_hold_a_singular_matrix():
    F = cv.trace(lambda x, t: linalg.solve(np.eye(2) * t, x), (2,), ())
    with pytest.raises(UndecidedError, match="smaller box"):
        F.enclose((np.zeros(2), np.ones(2)), (-1.0, 1.0))


def test_solve_refuses_singular_matrices_and_bad_shapes():
    F = cv.trace(lambda x, t: linalg.solve(np.ones((2, 2)) * t, x), (2,), ())
    with pytest.raises(InputError, match="singular"):
        F(np.ones(2), 1.0)
    with pytest.raises(ShapeError, match="cv.linalg.solve"):
        cv.trace(lambda x, t: linalg.solve(np.ones((2, 3)), x), (2,), ())
    with pytest.raises(ShapeError, match="cv.linalg.solve"):
        cv.trace(lambda x, t: linalg.solve(np.eye(3), x), (2,), ())


def test_logdet_prox_refuses_bad_gamma_and_non_square_input():
    for gamma in (0.0, -1.0, np.nan, "1"):
        with pytest.raises(InputError, match="cv.linalg.logdet_prox.*gamma"):
            linalg.logdet_prox(np.eye(2), gamma)
    with pytest.raises(ShapeError, match="cv.linalg.logdet_prox"):
        cv.trace(lambda x, t: linalg.logdet_prox(x, 1.0), (2, 3), ())


def test_matrix_primitives_are_smooth_and_structural():
    for name in ("logdet_prox", "solve"):
        prim = PRIMITIVES[name]
        assert prim.kind == "structural" and prim.jvp is not None and prim.smooth and prim.doc


@pytest.mark.parametrize("d", [1, 2])
def test_logdet_prox_sympy_form_matches_the_implementation(d):
    prim = PRIMITIVES["logdet_prox"]
    W = np.array([[2, -1], [-1, 0]])[:d, :d]
    exact = prim.sympy(np.array(W[None], dtype=object), gamma=0.5)
    value = np.array(exact[0].tolist(), dtype=float)
    assert np.allclose(value, prim.impl(W[None].astype(float), gamma=0.5)[0], atol=1e-14)
    with pytest.raises(NotImplementedError, match="3 x 3"):
        prim.sympy(np.zeros((1, 3, 3), dtype=object), gamma=0.5)


def test_solve_sympy_form_is_exact():
    prim = PRIMITIVES["solve"]
    A = np.array([[[2, 1], [1, 3]]], dtype=object)
    x = prim.sympy(A, np.array([[1, 2]], dtype=object))
    assert [str(v) for v in x[0]] == ["1/5", "3/5"]
    assert prim.sympy(A, np.array([[[1, 0], [2, 1]]], dtype=object)).shape == (1, 2, 2)


# --- the Lasso family against scikit-learn ------------------------------------------------------

@pytest.mark.parametrize("lam", [2.0, 5.0, 20.0])
def test_fb_dr_admm_fista_reach_sklearns_lasso_solution(lasso_data, lam):
    X, y = lasso_data
    p = X.shape[1]
    ref = sklearn_lasso(X, y, lam)
    runs = [(ZOO.forward_backward_lasso(X, y), np.zeros(p)),
            (ZOO.douglas_rachford_lasso(X, y, gamma=0.05), np.zeros(p)),
            (ZOO.admm_lasso(X, y, rho=20.0), np.zeros(2 * p)),
            (ZOO.fista_lasso(X, y, momentum=0.5), np.zeros(2 * p))]
    for F, x0 in runs:
        r = cv.fixed_point(F, x0, lam)
        assert np.allclose(F.solution(r.x), ref, atol=1e-6), F.name
    F = ZOO.fista_lasso(X, y)            # the t_k schedule: run a fixed number of steps
    w = F.solution(cv.iterate(F, F.info["x0"], lam, 1500)[-1])
    assert np.allclose(w, ref, atol=1e-6)


def test_weighted_lasso_matches_sklearn_on_rescaled_columns(lasso_data):
    X, y = lasso_data
    p, lam = X.shape[1], 5.0
    c = np.linspace(0.5, 2.0, p)                      # lam_j = lam c_j
    ref = sklearn_lasso(X / c, y, lam) / c            # v = c w solves the Lasso in X diag(1/c)
    F = ZOO.weighted_lasso_forward_backward(X, y)
    assert F.param_shape == (p,)
    w = cv.fixed_point(F, np.zeros(p), lam * c).x
    assert np.allclose(w, ref, atol=1e-6)
    assert F.contraction is not None and F.contraction < 1


def test_group_lasso_solution_satisfies_kkt(lasso_data):
    X, y = lasso_data
    groups, lam = [[0, 1], [2, 3, 5], [4], [6, 7]], 10.0
    F = ZOO.group_lasso_forward_backward(X, y, groups)
    w = cv.fixed_point(F, np.zeros(8), lam).x
    grad = X.T @ (X @ w - y)
    active = 0
    for g in groups:
        norm = np.linalg.norm(w[g])
        if norm > 0:
            active += 1
            assert np.allclose(grad[g] + lam * w[g] / norm, 0.0, atol=1e-8)
        else:
            assert np.linalg.norm(grad[g]) <= lam + 1e-8
    assert 0 < active < len(groups)
    # labels give the same map as index lists
    G = ZOO.group_lasso_forward_backward(X, y, [0, 0, 1, 1, 2, 1, 3, 3])
    assert np.allclose(G(w, lam), F(w, lam))


def test_block_soft_threshold_values_and_pinned_set_on_the_sphere():
    F = cv.trace(lambda z, t: cv.group_soft_threshold(z, t), (2,), ())
    rng = np.random.default_rng(4)
    for _ in range(20):
        z, t = rng.normal(size=2), abs(rng.normal())
        ref = z * max(1 - t / np.linalg.norm(z), 0.0)
        assert np.allclose(F(z, t), ref)
    assert np.array_equal(F(np.zeros(2), 0.0), np.zeros(2))   # t = 0 at z = 0: finite
    # on ||z|| = t the two pieces: z z^T / t^2 with d/dt = -z / ||z||, and 0
    js = F.jacobian(np.array([3.0, 4.0]), 5.0, hull=False)
    outer = np.array([[9.0, 12.0, -3.0], [12.0, 16.0, -4.0]]) / np.array([25, 25, 5])
    assert js.contains(outer) and js.contains(np.zeros((2, 3)))
    assert len(js.vertices) == 2


# --- sparse inverse covariance against scikit-learn ---------------------------------------------

@pytest.mark.parametrize("lam", [0.05, 0.1])
def test_sparse_inverse_covariance_matches_graphical_lasso(lam):
    S = random_covariance()
    graphical_lasso = pytest.importorskip("sklearn.covariance").graphical_lasso
    _, precision = graphical_lasso(S, alpha=lam, tol=1e-12, enet_tol=1e-14, max_iter=10_000)
    F = ZOO.sparse_inverse_covariance(S, gamma=1.0)
    r = cv.fixed_point(F, F.info["x0"], lam)
    P = F.solution(r.x)
    assert np.allclose(P, precision, atol=1e-6)
    assert np.count_nonzero(np.abs(P) < 1e-9) > 0          # some entries are selected out


def test_sparse_inverse_covariance_derivatives_converge_linearly():
    """The Jacobian in Z contracts at the solution; FPAD gives dP/dlam = finite differences."""
    S, lam, gamma = random_covariance(), 0.1, 1.0
    d = S.shape[0]
    F = ZOO.sparse_inverse_covariance(S, gamma=gamma)
    Z = cv.fixed_point(F, F.info["x0"], lam).x
    D = F.jacobian(Z, lam).default
    A, B = D[:, :d * d], D[:, d * d:]
    assert np.max(np.abs(np.linalg.eigvals(A))) < 0.9
    J = np.zeros((d * d, 1))
    for _ in range(200):
        J = A @ J + B
    prox = cv.trace(lambda W, t: linalg.logdet_prox(W - gamma * S, gamma), (d, d), ())
    _, dP = prox.jvp(Z, 0.0, dx=J.reshape(d, d, 1))
    eps = 1e-5
    fd = (F.solution(cv.fixed_point(F, Z, lam + eps).x)
          - F.solution(cv.fixed_point(F, Z, lam - eps).x)) / (2 * eps)
    assert np.allclose(dP[..., 0], fd, atol=1e-5)


def test_sparse_inverse_covariance_jacobian_enclosure_is_sound_and_tight():
    S, lam = random_covariance(), 0.1
    F = ZOO.sparse_inverse_covariance(S, gamma=1.0)
    Z = cv.fixed_point(F, F.info["x0"], lam).x
    r = 1e-6
    M = F.enclose((Z - r, Z + r), (lam - r, lam + r))
    D = F.jacobian(Z, lam).default
    assert np.all((M.lo <= D) & (D <= M.hi)) and np.max(M.hi - M.lo) < 1e-4


# --- hypergradients: piggyback against the closed form ------------------------------------------

def lasso_closed_form_derivative(X, w):
    S = np.nonzero(w)[0]
    dw = np.zeros(X.shape[1])
    dw[S] = -np.linalg.solve(X[:, S].T @ X[:, S], np.sign(w[S]))
    return dw


def piggyback(F, x0, lam, steps):
    """x_{k+1} = F(x_k), J_{k+1} = A_k J_k + B_k with the default selection, via F.jvp."""
    x, J = np.asarray(x0, float), np.zeros(F.state_shape + (1,))
    for _ in range(steps):
        x, J = F.jvp(x, lam, dx=J, dtheta=np.ones((1,)))
    return x, J[..., 0]


def test_lasso_hypergradient_converges_to_closed_form(lasso_data):
    X, y = lasso_data
    lam = 5.0
    F = ZOO.forward_backward_lasso(X, y)
    w = cv.fixed_point(F, np.zeros(8), lam).x
    expected = lasso_closed_form_derivative(X, w)
    errors = []
    for steps in (40, 80, 160):
        _, J = piggyback(F, np.zeros(8), lam, steps)
        errors.append(np.max(np.abs(J - expected)))
    assert errors[-1] < 1e-9
    assert errors[1] < 1e-2 * errors[0]                      # linear convergence
    # the same with F.jacobian(...).default, one [A B] per iterate
    x, J = np.zeros(8), np.zeros((8, 1))
    for _ in range(160):
        D = F.jacobian(x, lam).default
        x, J = F(x, lam), D[:, :8] @ J + D[:, 8:]
    assert np.allclose(J[:, 0], expected, atol=1e-9)


def test_dr_and_admm_hypergradients_reach_the_closed_form(lasso_data):
    X, y = lasso_data
    lam = 5.0
    expected = lasso_closed_form_derivative(X, sklearn_lasso(X, y, lam).round(12))
    F = ZOO.douglas_rachford_lasso(X, y, gamma=0.05)
    z, Jz = piggyback(F, np.zeros(8), lam, 300)
    gamma = F.info["gamma"]
    M = np.linalg.inv(np.eye(8) + gamma * X.T @ X)          # w = M z + const
    assert np.allclose(M @ Jz, expected, atol=1e-8)
    G = ZOO.admm_lasso(X, y, rho=20.0)
    s, Js = piggyback(G, np.zeros(16), lam, 300)
    assert np.allclose(Js[:8], expected, atol=1e-8)


def test_weighted_lasso_hypergradient_per_feature(lasso_data):
    X, y = lasso_data
    lam = np.full(8, 5.0)
    F = ZOO.weighted_lasso_forward_backward(X, y)
    w = cv.fixed_point(F, np.zeros(8), lam).x
    S = np.nonzero(w)[0]
    x, J = np.zeros(8), np.zeros((8, 8))
    for _ in range(200):
        x, J = F.jvp(x, lam, dx=J, dtheta=np.eye(8))
    expected = np.zeros((8, 8))    # dw_S / dlam_S = -(X_S^T X_S)^{-1} diag(sign w_S)
    expected[np.ix_(S, S)] = -np.linalg.inv(X[:, S].T @ X[:, S]) * np.sign(w[S])
    assert np.allclose(J, expected, atol=1e-9)


def test_contraction_factors_bound_the_jacobians(lasso_data):
    X, y = lasso_data
    for F, x0 in [(ZOO.douglas_rachford_lasso(X, y, gamma=0.05), np.zeros(8)),
                  (ZOO.weighted_lasso_forward_backward(X, y), np.zeros(8)),
                  (ZOO.group_lasso_forward_backward(X, y, [0, 0, 1, 1, 2, 2, 3, 3]),
                   np.zeros(8))]:
        rng = np.random.default_rng(5)
        lam = 5.0 if F.param_shape == () else np.full(8, 5.0)
        for x in [x0, *rng.normal(size=(5, 8))]:
            A = F.jacobian(x, lam).default[:, :8]
            assert np.linalg.norm(A, 2) <= F.contraction + 1e-12, F.name


# --- gradient methods ---------------------------------------------------------------------------

def lrp_gradient(x, theta):
    """Lessard, Recht & Packard (2016), section 4.6: L = 25, mu = 1, kinks at 1 and 2.

    grad f(x) = 25 x (x < 1), x + 24 (1 <= x < 2), 25 x - 24 (x >= 2); as relus.
    """
    return 25.0 * x - 24.0 * cv.relu(x - 1.0) + 24.0 * cv.relu(x - 2.0)


def test_heavy_ball_cycles_on_the_lessard_recht_packard_example():
    L, mu = 25.0, 1.0
    kappa = L / mu
    alpha = 4.0 / (np.sqrt(L) + np.sqrt(mu)) ** 2                      # 1/9
    beta = ((np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)) ** 2          # 4/9
    F = ZOO.heavy_ball(lrp_gradient, alpha, beta, 1)
    xs = cv.iterate(F, np.array([3.3, 3.3]), np.zeros(1), 600)[:, 0]   # x0 = x1 in [3.07, 3.46]
    cycle = np.array([792.0, -2208.0, 2592.0]) / 1225.0               # the period-3 limit cycle
    tail = xs[-30:]
    assert np.allclose(tail[3:], tail[:-3], atol=1e-10)                # periodic ...
    assert not np.allclose(tail[1:], tail[:-1], atol=1e-1)             # ... not stationary
    assert np.allclose(np.sort(tail[-3:]), np.sort(cycle), atol=1e-10)
    assert np.min(np.abs(tail)) > 0.6                                  # far from the minimiser 0

    # the cycle is exact: a period-3 orbit of the heavy-ball recursion in rationals
    def grad(x):
        return 25 * x if x < 1 else (x + 24 if x < 2 else 25 * x - 24)
    a, b = Fraction(1, 9), Fraction(4, 9)
    orbit = [Fraction(792, 1225), Fraction(-2208, 1225)]
    for _ in range(4):
        x, xp = orbit[-1], orbit[-2]
        orbit.append(x - a * grad(x) + b * (x - xp))
    assert orbit[3:5] == orbit[0:2] and orbit[2] == Fraction(2592, 1225)
    for x0 in (3.07, 3.2, 3.46):                                       # the published range
        xs = cv.iterate(F, np.array([x0, x0]), np.zeros(1), 600)[-3:, 0]
        assert np.allclose(np.sort(xs), np.sort(cycle), atol=1e-9)


def test_heavy_ball_converges_on_a_quadratic_of_curvature_one():
    F = ZOO.heavy_ball(lambda x, t: x - t, 0.25, 0.25, 1)   # f = (x - theta)^2 / 2
    r = cv.fixed_point(F, np.array([5.0, 5.0]), np.array([2.0]))
    assert np.allclose(F.solution(r.x), [2.0]) and r.rate < 0.6
    A = F.jacobian(r.x, np.array([2.0])).default[:, :2]
    assert np.allclose(A, [[1.0, -0.25], [1.0, 0.0]])
    assert np.max(np.abs(np.linalg.eigvals(A))) == pytest.approx(0.5)


def test_heavy_ball_multidimensional_state_layout():
    Q = np.diag([1.0, 4.0])
    F = ZOO.heavy_ball(lambda x, t: Q @ x - t, 0.2, 0.3, 2, param_shape=(2,))
    s = np.array([1.0, 2.0, 0.5, 0.0])
    x, xp = s[:2], s[2:]
    expected = x - 0.2 * (Q @ x - np.array([1.0, 1.0])) + 0.3 * (x - xp)
    assert np.allclose(F(s, np.ones(2)), np.concatenate([expected, x]))
    r = cv.fixed_point(F, np.zeros(4), np.ones(2))
    assert np.allclose(F.solution(r.x), [1.0, 0.25])


def test_gradient_descent_reference_value_of_design_section_5():
    F = ZOO.gradient_descent(lambda x, t: (x - 1.0) + t * x, 0.25, 1)
    J_bar = -0.25                                           # d/dtheta 1/(1 + theta) at theta = 1
    x, J = np.zeros(1), np.zeros((1, 1))
    for k in range(1, 30):
        x, J = F.jvp(x, np.ones(1), dx=J, dtheta=np.ones((1, 1)))
        assert J[0, 0] - J_bar == pytest.approx(0.25 * (1 + k) * 0.5 ** k, abs=1e-14)


def test_newton_one_step_derivative():
    Q = np.array([[3.0, 1.0], [1.0, 2.0]])

    def grad(x, t):
        return Q @ x + 0.1 * cv.exp(x) - t

    def hess(x, t):
        return Q + np.eye(2) * (0.1 * cv.exp(x))[None, :]

    F = ZOO.newton(grad, hess, 2, param_shape=(2,))
    theta = np.array([1.0, -0.5])
    r = cv.fixed_point(F, np.zeros(2), theta)
    assert r.steps < 10
    D = F.jacobian(r.x, theta).default
    H = Q + np.diag(0.1 * np.exp(r.x))
    assert np.allclose(D[:, :2], 0.0, atol=1e-10)           # d_x F vanishes at the solution
    assert np.allclose(D[:, 2:], np.linalg.inv(H), atol=1e-10)   # one-step = implicit


# --- failure paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("build, match", [
    (lambda X, y: ZOO.douglas_rachford_lasso(X, y, gamma=-1.0), "douglas_rachford_lasso.*gamma"),
    (lambda X, y: ZOO.douglas_rachford_lasso(X, y, gamma=0.0), "gamma=0.0"),
    (lambda X, y: ZOO.admm_lasso(X, y, rho=-2.0), "admm_lasso.*rho=-2.0"),
    (lambda X, y: ZOO.weighted_lasso_forward_backward(X, y, step=-0.1), "step=-0.1"),
    (lambda X, y: ZOO.group_lasso_forward_backward(X, y, [0] * 8, step=1.0), "2 / L"),
    (lambda X, y: ZOO.fista_lasso(X, y, step=-1.0), "fista_lasso.*step"),
    (lambda X, y: ZOO.fista_lasso(X, y, momentum=1.0), "momentum=1.0"),
    (lambda X, y: ZOO.group_lasso_forward_backward(X, y, [[0, 1], [2, 3]]), "exactly one"),
    (lambda X, y: ZOO.group_lasso_forward_backward(X, y, [[0, 1.5]]), "groups"),
])
def test_bad_parameters_raise_input_errors(lasso_data, build, match):
    X, y = lasso_data
    with pytest.raises(InputError, match=match) as info:
        build(X, y)
    assert "received" in str(info.value) and "pass" in str(info.value)


@pytest.mark.parametrize("builder", [
    lambda X, y: ZOO.weighted_lasso_forward_backward(X, y),
    lambda X, y: ZOO.group_lasso_forward_backward(X, y, [0] * 8),
    lambda X, y: ZOO.fista_lasso(X, y),
    lambda X, y: ZOO.douglas_rachford_lasso(X, y, gamma=1.0),
    lambda X, y: ZOO.admm_lasso(X, y, rho=1.0),
])
def test_bad_shapes_raise_shape_errors(lasso_data, builder):
    X, y = lasso_data
    for bad in [(X[:, 0], y), (X, y[:-1])]:
        with pytest.raises(ShapeError, match="X of shape .* and y of shape"):
            builder(*bad)


def test_sparse_inverse_covariance_refuses_bad_S_and_gamma():
    S = random_covariance()
    with pytest.raises(InputError, match="sparse_inverse_covariance.*asymmetric S"):
        ZOO.sparse_inverse_covariance(S + np.triu(np.ones_like(S), 1), gamma=1.0)
    with pytest.raises(ShapeError, match="S of shape \\(5, 4\\)"):
        ZOO.sparse_inverse_covariance(S[:, :4], gamma=1.0)
    with pytest.raises(InputError, match="gamma=-1"):
        ZOO.sparse_inverse_covariance(S, gamma=-1)


def test_negative_penalty_is_refused_at_evaluation(lasso_data):
    X, y = lasso_data
    F = ZOO.douglas_rachford_lasso(X, y, gamma=0.05)
    with pytest.raises(ConservativeError, match="negative threshold"):
        F(np.zeros(8), -1.0)


def test_gradient_methods_refuse_bad_arguments():
    g = lambda x, t: x  # noqa: E731
    with pytest.raises(InputError, match="heavy_ball.*alpha=-0.1"):
        ZOO.heavy_ball(g, -0.1, 0.5, 1)
    with pytest.raises(InputError, match="heavy_ball.*beta=-0.5"):
        ZOO.heavy_ball(g, 0.1, -0.5, 1)
    with pytest.raises(InputError, match="heavy_ball.*n=0"):
        ZOO.heavy_ball(g, 0.1, 0.5, 0)
    with pytest.raises(InputError, match="gradient_descent.*grad of type"):
        ZOO.gradient_descent(3.0, 0.1, 1)
    with pytest.raises(ShapeError, match="heavy_ball.*grad returning shape \\(3,\\)"):
        ZOO.heavy_ball(lambda x, t: cv.concatenate([x, x, x]), 0.1, 0.5, 1)
    with pytest.raises(ShapeError, match="newton.*hess returning shape \\(2,\\)"):
        ZOO.newton(g, lambda x, t: x, 2)


# --- the zoo's contract -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ZOO.__all__[1:])
def test_every_builder_is_documented(name):
    doc = getattr(ZOO, name).__doc__
    for section in ("Parameters", "Returns", "Raises", "Examples", "References"):
        assert section in doc, f"{name}: no {section} section"


def test_algorithm_maps_carry_name_solution_and_info(lasso_data):
    X, y = lasso_data
    F = ZOO.admm_lasso(X, y, rho=3.0)
    assert isinstance(F, ZOO.AlgorithmMap) and isinstance(F, cv.Map)
    assert "ADMM" in F.name and F.info["rho"] == 3.0
    assert F.solution(np.arange(16.0)).tolist() == list(range(8))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (9, 9), (40, 6), (6, 40)])
@pytest.mark.parametrize("scale", [1.0, 3.0, 1e150, 1e-150, 1e-300])
def test_squared_spectral_norm_matches_numpys_singular_values(shape, scale):
    # the Lipschitz constant of the Lasso gradient from the smaller Gram matrix, against
    # NumPy's largest singular value squared (an SVD: an independent computation)
    from conservative.algorithms.lasso import squared_spectral_norm
    X = np.random.default_rng(sum(shape)).standard_normal(shape) * scale
    reference = np.linalg.norm(X / scale, 2) ** 2 * scale * scale
    assert squared_spectral_norm(X) == pytest.approx(reference, rel=1e-13)


def test_lasso_maps_refuse_designs_without_a_finite_positive_lipschitz_constant():
    for make in (cv.algorithms.forward_backward_lasso,
                 cv.algorithms.weighted_lasso_forward_backward, cv.algorithms.fista_lasso):
        for X in (np.zeros((3, 4)), np.full((2, 3), 1e200)):
            with pytest.raises(InputError, match=r"\|\|X\|\|_2\^2"):
                make(X, np.ones(X.shape[0]))
    X, y = cv.datasets.lasso_small()
    F = cv.algorithms.forward_backward_lasso(X, y)
    assert F.info["L"] == pytest.approx(np.linalg.norm(X, 2) ** 2, rel=1e-14)
    assert F.info["step"] == 1.0 / F.info["L"]
