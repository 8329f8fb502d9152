"""Piggyback runs, attractors, implicit sets, FPAD and one-step, against exact references."""

import numpy as np
import pytest

import conservative as cv


def gd_quadratic():
    # gradient descent on f(w) = (w-1)^2/2 + theta w^2/2, alpha = 1/4 (docs/reference_values.md)
    return cv.trace(lambda w, t: w - 0.25 * ((w - 1.0) + t[0] * w), (), (1,))


def test_gradient_descent_k_rho_k_envelope_is_exact():
    xs, Js = cv.piggyback(gd_quadratic(), 0.0, [1.0], 40)
    k = np.arange(41)
    np.testing.assert_allclose(Js[:, 0, 0] - (-0.25), 0.25 * (1 + k) * 0.5 ** k, rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(xs[-1], 0.5, atol=1e-10)


def test_forward_backward_away_from_kink():
    # x <- S(x - 0.5 (x - theta), 0.5 lam) with lam = 0.5: x̄ = theta - lam on the support
    F = cv.trace(lambda x, th: cv.soft_threshold(0.5 * x + 0.5 * th, 0.25), (), ())
    xs, Js = cv.piggyback(F, 1.5, 2.0, 30)
    np.testing.assert_allclose(xs, 1.5)
    np.testing.assert_allclose(Js[:, 0, 0], 1 - 0.5 ** np.arange(31), rtol=1e-14)
    # the limit agrees with the implicit value and with FPAD at this smooth point
    imp = cv.implicit_jacobian(F, 2.0, 1.5)
    np.testing.assert_allclose(imp.vertices.ravel(), [1.0])
    np.testing.assert_allclose(cv.fpad(F, 2.0, 1.5, 60)[-1], [[1.0]], rtol=1e-14)


def test_fpad_error_is_rho_k_and_one_step_bias():
    F = gd_quadratic()
    Js = cv.fpad(F, [1.0], 0.5, 20)
    np.testing.assert_allclose(Js[:, 0, 0] + 0.25, 0.25 * 0.5 ** np.arange(21), rtol=1e-12)
    # one-step: d_theta F = -alpha w, not the true derivative -1/4 (a biased estimate)
    np.testing.assert_allclose(cv.one_step(F, 0.5, [1.0]), [[-0.125]])


def test_one_step_is_exact_for_newton():
    # Newton on g(x) = x^3/3 + x - theta (g' = x^2 + 1): x̄(theta) has dx/dtheta = 1/(x̄^2 + 1)
    F = cv.trace(lambda x, t: x - (x ** 3 / 3 + x - t) / (x * x + 1), (), ())
    x_bar = cv.fixed_point(F, 0.0, 2.0).x
    np.testing.assert_allclose(cv.one_step(F, x_bar, 2.0), [[1 / (x_bar ** 2 + 1)]], rtol=1e-12)


def test_attractor_selection_vs_hull_by_hand():
    # at x = theta = 0: A in {0, 1/2}, B = 1/2
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    finite = cv.attractor(F, 0.0, 0.0, hull=False, tol=1e-4)
    # K = {1/2} u (K/2 + 1/2): the countable set {1 - 2^-j : j >= 1} u {1}
    ref = np.concatenate([1 - 0.5 ** np.arange(1, 40), [1.0]])
    pts = finite.points.ravel()
    assert finite.hausdorff_bound <= 1e-4
    assert cv.hausdorff(pts[:, None], ref[:, None]) <= finite.hausdorff_bound + 1e-12
    hull = cv.attractor(F, 0.0, 0.0, hull=True, tol=1e-4)
    lo, hi = hull.bounding_box()
    assert abs(lo[0, 0] - 0.5) <= hull.hausdorff_bound and abs(hi[0, 0] - 1) <= 1e-4
    assert cv.excess(np.array([[0.6], [0.8]]), hull.points.reshape(-1, 1)) <= 1e-4
    assert cv.excess(np.array([[0.6]]), pts[:, None]) > 0.01      # a gap of the finite set
    # implicit set {1/2, 1} lies in both attractors
    imp = cv.implicit_jacobian(F, 0.0, 0.0, hull=False).vertices
    assert cv.excess(imp.reshape(-1, 1), pts[:, None]) <= finite.hausdorff_bound


def test_attractor_larger_than_implicit_set_and_hull():
    # F(x) = relu(x)/2 - relu(-x)/2 + theta: at 0 the A-set is {0, 1/2, -1/2... } by node choices
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) - 0.25 * cv.relu(-x) + t, (), ())
    att = cv.attractor(F, 0.0, 0.0, hull=True, tol=1e-4)
    imp = cv.implicit_jacobian(F, 0.0, 0.0, hull=True).vertices.ravel()
    lo, hi = att.bounding_box()
    # A ranges over [-0.25... ] choices: relu'(x) in {0,1}, relu'(-x) in {0,1} -> A in
    # {0, 1/2, 1/4, 3/4}; B = 1; implicit images 1/(1-A) in [1, 4]; attractor hull [1, 4]
    np.testing.assert_allclose(sorted(imp), [1.0, 4 / 3, 2.0, 4.0], rtol=1e-12)
    assert lo[0, 0] <= 1 + 1e-4 and hi[0, 0] >= 4 - 1e-4


def test_piggyback_runs_stay_near_the_attractor():
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    att = cv.attractor(F, 0.0, 0.0, hull=False, tol=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = rng.integers(0, 2, size=60).tolist()
        _, Js = cv.piggyback(F, 0.0, 0.0, 60, selection=idx)
        # d(J_k, K*) <= rho^k d(J_0, K*) + ...: after 60 steps the excess is below the bound
        assert cv.excess(Js[-1:, :, :].reshape(1, 1), att.points.reshape(-1, 1)) <= \
            att.hausdorff_bound + 0.5 ** 59


def test_heavy_ball_switching_kink_refuses_attractor():
    alpha = beta = 0.25

    def hb(s, t):  # curvature 1 left of 0, 9 right of 0: gradient continuous at the kink
        x, x_prev = s[0], s[1]
        grad = cv.where(x > 0, 9.0 * x, x) - t[0]
        return cv.stack([x - alpha * grad + beta * (x - x_prev), x])

    F = cv.trace(hb, (2,), (1,))
    with pytest.raises(cv.NotContractingError) as err:
        cv.attractor(F, [0.0], np.zeros(2))
    assert err.value.lower > 1 + 1e-3                          # (1 + sqrt 2)/2 = 1.207
    assert err.value.lower <= (1 + np.sqrt(2)) / 2 + 1e-9
    # every single matrix is Schur stable (spectral radius 1/2) ...
    A = F.jacobian(np.zeros(2), [0.0], hull=False).A.vertices
    assert np.all(np.max(np.abs(np.linalg.eigvals(A)), axis=1) < 0.51)
    # ... yet switching along the returned word makes piggyback diverge from the fixed point
    word = list(err.value.word) * 40
    _, Js = cv.piggyback(F, np.zeros(2), [0.0], len(word), selection=word)
    assert np.linalg.norm(Js[-1]) > 1e3


def test_singular_hull_refused():
    # fixed points of y <- |y| + y - x solve |y| = x; at 0 I - A is in {1, -1}: 0 in the hull
    F = cv.trace(lambda y, x: cv.abs(y) + y - x, (), ())
    with pytest.raises(cv.SingularJacobianError):
        cv.implicit_jacobian(F, 0.0, 0.0)


def test_invertible_on_hull_without_contraction():
    A = np.array([[[3.0, 0.0], [0.0, 3.0]], [[4.0, 1.0], [0.0, 2.5]]])   # not contracting
    proved, how = cv.invertible_on_hull(A)
    assert proved and ("exact" in how or "outward-rounded" in how)


def test_selection_modes_and_their_errors():
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    _, Js = cv.piggyback(F, 0.0, 0.0, 3, selection=[1, 0, 1])
    np.testing.assert_allclose(Js.ravel(), [0.0, 0.5, 0.5, 0.75])
    _, Jm = cv.piggyback(F, 0.0, 0.0, 3, selection="min_norm")
    np.testing.assert_allclose(Jm.ravel(), [0.0, 0.5, 0.5, 0.5])     # A = 0 has least norm
    _, Jc = cv.piggyback(F, 0.0, 0.0, 2, selection=lambda k, js: np.array([[0.25, 0.5]]),
                         hull=True)
    np.testing.assert_allclose(Jc.ravel(), [0.0, 0.5, 0.625])
    with pytest.raises(cv.InputError):
        cv.piggyback(F, 0.0, 0.0, 2, selection=lambda k, js: np.array([[0.25, 0.5]]))
    with pytest.raises(cv.InputError):
        cv.piggyback(F, 0.0, 0.0, 2, selection=[0, 5])
    with pytest.raises(cv.InputError):
        cv.piggyback(F, 0.0, 0.0, 2, selection="best")
    with pytest.raises(cv.ShapeError):
        cv.piggyback(F, 0.0, 0.0, 2, J0=np.zeros((2, 2)))
    with pytest.raises(cv.InputError):
        cv.attractor(F, 0.0, 1.0)                                    # not a fixed point


def test_set_valued_piggyback_covers_every_selection():
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    _, sets = cv.piggyback_sets(F, 0.0, 0.0, 6)
    rng = np.random.default_rng(1)
    for _ in range(10):
        idx = rng.integers(0, 2, size=6).tolist()
        _, Js = cv.piggyback(F, 0.0, 0.0, 6, selection=idx)
        for k in range(7):
            assert np.min(np.abs(sets[k].ravel() - Js[k, 0, 0])) < 1e-12


def test_piggyback_agrees_with_jax_through_the_unrolled_loop():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 5))
    y = rng.normal(size=12)
    F = cv.algorithms.forward_backward_lasso(X, y)
    step = F.info["step"]
    lam = 0.3 * float(np.max(np.abs(X.T @ y)))

    def unrolled(lam):
        w = jnp.zeros(5)
        for _ in range(25):
            z = w - step * (X.T @ (X @ w - y))
            w = jnp.sign(z) * jnp.maximum(jnp.abs(z) - step * lam, 0.0)
        return w

    xs, Js = cv.piggyback(F, np.zeros(5), lam, 25)
    np.testing.assert_allclose(xs[-1], unrolled(lam), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Js[-1, :, 0], jax.jacfwd(unrolled)(lam), rtol=1e-10, atol=1e-13)


def test_reverse_mode_matches_forward_mode_on_a_lasso():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(20, 6))
    y = rng.normal(size=20)
    F = cv.algorithms.forward_backward_lasso(X, y)
    lam = 0.2 * float(np.max(np.abs(X.T @ y)))
    g = rng.normal(size=6)
    xs, Js = cv.piggyback(F, np.zeros(6), lam, 30)
    np.testing.assert_allclose(cv.piggyback_vjp(F, np.zeros(6), lam, 30, g), g @ Js[-1, :, 0],
                               rtol=1e-11, atol=1e-14)
    w_bar = cv.fixed_point(F, np.zeros(6), lam).x
    S = np.abs(w_bar) > 0
    closed = np.zeros(6)
    closed[S] = -np.linalg.solve(X[:, S].T @ X[:, S], np.sign(w_bar[S]))   # dw_S/dlam
    np.testing.assert_allclose(cv.fpad_vjp(F, lam, w_bar, g), g @ closed, rtol=1e-9)
    np.testing.assert_allclose(cv.fpad(F, lam, w_bar, 400)[-1, :, 0], closed, rtol=1e-8,
                               atol=1e-12)


def test_map_vjp_is_the_transpose_of_the_jacobian():
    rng = np.random.default_rng(6)
    M = rng.normal(size=(3, 4))
    idx = np.array([2, 0])

    def fn(x, t):
        m = cv.reshape(x, (2, 3))
        a = cv.tanh(m @ M)
        b = cv.concatenate([a[:, 1:3].T, a.T[idx]], axis=0)
        c = cv.sum(b, axis=1) * t[0] + cv.max(x) * t[1]
        d = cv.stack([c[0], c[1], c[2] * c[3], c[0] - c[2], cv.relu(c[1]),
                      cv.soft_threshold(c[3], t[1] ** 2)])
        return d + x * t[2] + cv.mean(m, axis=0)[0]

    F = cv.trace(fn, (6,), (3,))
    for _ in range(5):
        x, t, c = rng.normal(size=6), rng.normal(size=3), rng.normal(size=6)
        J = F.jacobian(x, t).default
        _, cx, ct = F.vjp(x, t, c)
        np.testing.assert_allclose(cx, J[:, :6].T @ c, atol=1e-13)
        np.testing.assert_allclose(ct, J[:, 6:].T @ c, atol=1e-13)


def test_many_parameter_piggyback_matches_a_dense_numpy_loop():
    # one penalty per feature (m = p = 12): tangents are zero off the support, which the
    # constant-matrix product exploits; compare with the plain dense recursion
    rng = np.random.default_rng(8)
    X = rng.normal(size=(30, 12))
    y = rng.normal(size=30)
    s = 1 / np.linalg.norm(X, 2) ** 2
    lam = 0.3 * np.abs(X.T @ y) * rng.uniform(0.5, 1.5, size=12)
    F = cv.trace(lambda w, t: cv.soft_threshold(w - s * (X.T @ (X @ w - y)), s * t), (12,), (12,))
    xs, Js = cv.piggyback(F, np.zeros(12), lam, 40)
    w, J = np.zeros(12), np.zeros((12, 12))
    for k in range(40):
        z = w - s * (X.T @ (X @ w - y))
        mask = (np.abs(z) > s * lam).astype(float)
        J = mask[:, None] * (J - s * (X.T @ (X @ J)) - s * np.diag(np.sign(z)))
        w = np.sign(z) * np.maximum(np.abs(z) - s * lam, 0)
        np.testing.assert_allclose(xs[k + 1], w, atol=1e-14)
        np.testing.assert_allclose(Js[k + 1], J, atol=1e-13)


def test_default_tolerance_works_for_an_interval_attractor():
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    att = cv.attractor(F, 0.0, 0.0)                       # hull=True, tol=1e-6 (the contract)
    lo, hi = att.bounding_box()
    assert att.hausdorff_bound <= 1e-6
    assert abs(lo[0, 0] - 0.5) <= 1e-6 and abs(hi[0, 0] - 1.0) <= 1e-6


def test_history_false_keeps_only_the_last_derivative():
    F = gd_quadratic()
    xs, Js = cv.piggyback(F, 0.0, [1.0], 12)
    xl, Jl = cv.piggyback(F, 0.0, [1.0], 12, history=False)
    assert xl.shape == (1,) and Jl.shape == (1, 1, 1)
    np.testing.assert_array_equal(Jl[0], Js[-1])
    np.testing.assert_array_equal(xl[0], xs[-1])
    _, Jsel = cv.piggyback(F, 0.0, [1.0], 3, selection=[0, 0, 0], history=False)
    np.testing.assert_allclose(Jsel[0], cv.piggyback(F, 0.0, [1.0], 3)[1][-1])


def test_set_valued_piggyback_with_hull_keeps_the_hull_vertices():
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    F = cv.trace(lambda z, t: cv.relu(W @ z + t), (2,), ())
    _, sets = cv.piggyback_sets(F, np.zeros(2), 0.0, 6, hull=True)
    _, finite = cv.piggyback_sets(F, np.zeros(2), 0.0, 6, hull=False)
    from scipy.spatial import Delaunay
    for k in (3, 6):
        hull_pts = sets[k].reshape(len(sets[k]), 2)
        pts = finite[k].reshape(len(finite[k]), 2)
        tri = Delaunay(hull_pts)                                 # every selection inside
        assert np.all(tri.find_simplex(pts, tol=1e-12) >= 0)
        assert len(hull_pts) <= len(pts)


def test_attractor_at_a_defective_smooth_fixed_point_uses_a_well_conditioned_norm():
    # heavy-ball with alpha = beta = 1/4 on x^2/2 - x: the Jacobian has a double eigenvalue 1/2
    # (defective), the tightest quadratic norm is nearly singular; the attractor is one point
    F = cv.algorithms.heavy_ball(lambda x, t: x * t[0] - 1.0, 0.25, 0.25, 1)
    x_bar = cv.fixed_point(F, np.zeros(2), [1.0]).x
    att = cv.attractor(F, [1.0], x_bar)
    imp = cv.implicit_jacobian(F, [1.0], x_bar).vertices[0]          # d x̄/d theta = -1
    np.testing.assert_allclose(imp, [[-1.0], [-1.0]], atol=1e-12)
    assert att.hausdorff_bound <= 1e-6
    assert cv.excess(imp.reshape(1, -1), att.points.reshape(len(att), -1)) <= att.hausdorff_bound
    A = F.jacobian(x_bar, [1.0]).A.vertices[0]
    M = att.rho ** 2 * att.P - A.T @ att.P @ A                       # the norm really contracts
    assert np.linalg.eigvalsh(M).min() >= -1e-12 and att.rho < 1


# --- issue 8: argument checks name the call ------------------------------------------------------


def test_fpad_and_piggyback_share_the_J0_check():
    import conservative as cv
    from conservative.errors import InputError, ShapeError
    F = cv.trace(lambda x, t: 0.5 * x + t, (2,), ())
    for call, run in (("cv.fpad", lambda **kw: cv.fpad(F, 0.0, [0.0, 0.0], 3, **kw)),
                      ("cv.piggyback", lambda **kw: cv.piggyback(F, [0.0, 0.0], 0.0, 3, **kw))):
        with pytest.raises(ShapeError, match=f"{call}: received J0 of shape \\(3, 3\\)"):
            run(J0=np.zeros((3, 3)))          # was a bare ValueError from reshape in fpad
        with pytest.raises(ShapeError, match=f"{call}: received J0 of shape \\(1, 2\\)"):
            run(J0=np.zeros((1, 2)))
        assert run(J0=np.ones((2, 1)))[-1].shape[-2:] == (2, 1)
    with pytest.raises(InputError, match="cv.piggyback: received steps=2.5"):
        cv.piggyback(F, [0.0, 0.0], 0.0, 2.5)
    with pytest.raises(InputError, match="cv.piggyback: received hull='no'"):
        cv.piggyback(F, [0.0, 0.0], 0.0, 2, selection="min_norm", hull="no")


def test_errors_inside_attractor_name_cv_attractor():
    import conservative as cv
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    with pytest.raises(cv.ConservativeError) as info:
        cv.attractor(F, 0.0, 0.0, tol=-1.0)            # refused inside the IFS computation
    assert "cv.attractor" in str(info.value) and "ifs_attractor" not in str(info.value)
    with pytest.raises(cv.InputError, match="cv.attractor: received hull="):
        cv.attractor(F, 0.0, 0.0, hull="yes")


def test_certify_fixed_point_checks_attempts():
    import conservative as cv
    F = cv.trace(lambda x, t: 0.5 * x + t, (), ())
    for bad in (2.5, 0, True, "3"):
        with pytest.raises(cv.InputError, match="cv.certify_fixed_point: received attempts="):
            cv.certify_fixed_point(F, 0.0, 0.0, attempts=bad)


def test_selection_check_compares_each_entry_at_its_own_scale():
    # the check used atol = 1e-9 * max|M| = 1e-3 here, which let a selection change the
    # 3e-7 entry to 1e-4 (spectral radius 10.5 instead of 1.05) unnoticed
    import conservative as cv
    F = cv.trace(lambda x, t: cv.stack([0.5 * x[0] + 1e6 * x[1],
                                        0.5 * x[1] + 3e-7 * cv.relu(x[0])]), (2,), ())
    x0 = np.zeros(2)
    good = F.jacobian(x0, 0.0, hull=False).select([1])
    xs, Js = cv.piggyback(F, x0, 0.0, 2, selection=lambda k, js: good)
    assert Js.shape == (3, 2, 1)
    forged = good.copy()
    forged[1, 0] = 1e-4
    with pytest.raises(cv.InputError, match="not in the conservative Jacobian"):
        cv.piggyback(F, x0, 0.0, 2, selection=lambda k, js: forged)
