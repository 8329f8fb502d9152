"""Support-restricted implicit differentiation and FPAD, Anderson acceleration, and solutions
computed elsewhere, against closed forms and the dense computations."""

import numpy as np
import pytest

import conservative as cv
from conservative.derivatives import implicit


def lasso(p=40, n=30, seed=0, frac=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w0 = np.zeros(p)
    w0[:4] = rng.standard_normal(4) * 3
    y = X @ w0 + 0.1 * rng.standard_normal(n)
    F = cv.algorithms.forward_backward_lasso(X, y)
    lam = frac * float(np.max(np.abs(X.T @ y)))
    w = cv.fixed_point(F, np.zeros(p), lam, tol=1e-14).x
    S = np.abs(w) > 0
    closed = np.zeros(p)
    closed[S] = -np.linalg.solve(X[:, S].T @ X[:, S], np.sign(w[S]))   # dw_S/dlam
    F.data = (X, y)
    return F, lam, w, closed, rng


def test_restricted_paths_match_the_closed_form_and_the_dense_ones(monkeypatch):
    F, lam, w, closed, rng = lasso()
    g = rng.standard_normal(len(w))
    assert 0 < np.count_nonzero(w) <= len(w) // 4          # the reduced block is used
    fast = (cv.implicit_jacobian(F, lam, w).vertices[0, :, 0], cv.fpad(F, lam, w, 300)[-1, :, 0],
            cv.fpad_vjp(F, lam, w, g))
    monkeypatch.setattr(implicit, "MAX_BLOCK", 0)           # the dense paths
    dense = (cv.implicit_jacobian(F, lam, w).vertices[0, :, 0],
             cv.fpad(F, lam, w, 300)[-1, :, 0], cv.fpad_vjp(F, lam, w, g))
    np.testing.assert_allclose(fast[0], closed, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast[1], closed, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(fast[2], g @ closed, rtol=1e-9)
    for a, b in zip(fast, dense):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_rows_constant_in_x_but_not_in_theta_are_carried():
    # rows 1, 3, 4, 5 of A are zero, but B is not zero there: x1 = 3 t, x2 = x2/2 + x1, ...
    def fn(x, t):
        return cv.stack([0.5 * x[0] + 0.2 * x[1] + t[0], 3.0 * t[0], 0.5 * x[2] + x[1],
                         t[0] * t[0], 7.0 + 0.0 * t[0], 2.0 * t[0]])
    F = cv.trace(fn, (6,), (1,))
    t = 0.5
    x = np.array([(0.2 * 3 * t + t) / 0.5, 3 * t, 2 * 3 * t, t * t, 7.0, 2 * t])
    exact = np.array([3.2, 3.0, 6.0, 2 * t, 0.0, 2.0])      # dx/dt by hand
    np.testing.assert_allclose(cv.implicit_jacobian(F, [t], x).vertices[0, :, 0], exact,
                               rtol=1e-13)
    np.testing.assert_allclose(cv.fpad(F, [t], x, 80)[-1, :, 0], exact, rtol=1e-12)
    g = np.arange(1.0, 7.0)
    np.testing.assert_allclose(cv.fpad_vjp(F, [t], x, g), [g @ exact], rtol=1e-12)


def test_anderson_reaches_the_same_fixed_point_faster_and_is_safeguarded():
    F, lam, w, _, _ = lasso(p=60, seed=1)
    plain = cv.fixed_point(F, np.zeros(60), lam, tol=1e-12)
    fast = cv.fixed_point(F, np.zeros(60), lam, tol=1e-12, accelerate="anderson")
    assert fast.steps < plain.steps
    np.testing.assert_allclose(fast.x, w, atol=1e-9)
    assert np.linalg.norm(F(fast.x, lam) - fast.x) <= 1e-12 * (1 + np.linalg.norm(fast.x)) * 10
    # a map on which extrapolation overshoots: the safeguard keeps the plain steps
    G = cv.trace(lambda x, t: cv.clip(-0.9 * x + t, -1.0, 1.0), (), ())
    r = cv.fixed_point(G, 0.7, 0.0, accelerate="anderson", max_steps=2000)
    assert abs(float(r.x)) < 1e-10
    with pytest.raises(cv.InputError, match="accelerate"):
        cv.fixed_point(G, 0.0, 0.0, accelerate="newton")


def test_anderson_refuses_proposals_outside_the_domain_and_stalling_ones(monkeypatch):
    import importlib
    iterate = importlib.import_module("conservative.derivatives.iterate")
    # sqrt's domain: x -> sqrt(x + t) / 2 has the fixed point (1 + sqrt(1 + 16 t)) / 8
    F = cv.trace(lambda x, t: cv.sqrt(x + t) * 0.5, (), ())
    exact = (1 + np.sqrt(1 + 16 * 2.0)) / 8
    calls = []

    def outside(memory):              # every other proposal leaves the domain (x + t < 0)
        calls.append(1)
        return np.full_like(memory.g, -10.0) if len(calls) % 2 else memory.g
    monkeypatch.setattr(iterate._Memory, "point", outside)
    r = cv.fixed_point(F, 1.0, 2.0, accelerate="anderson")
    assert abs(float(r.x) - exact) < 1e-11 and len(calls) > 2

    # a proposal that never moves (the current point): accepted while within the slack of the
    # best residual, then refused once the best stops improving, so the plain steps converge
    G = cv.trace(lambda x, t: 0.9 * x + t, (3,), ())
    monkeypatch.setattr(iterate._Memory, "point", lambda memory: memory.x)
    r = cv.fixed_point(G, np.zeros(3), 1.0, accelerate="anderson", memory=2, max_steps=5000)
    np.testing.assert_allclose(r.x, 10.0, rtol=1e-10)
    plain = cv.fixed_point(G, np.zeros(3), 1.0)
    assert r.steps <= 2 * plain.steps + 10


def test_anderson_takes_fewer_steps_on_a_support_changing_lasso():
    F, lam, w, _, _ = lasso(p=200, n=60, seed=4, frac=0.05)
    plain = cv.fixed_point(F, np.zeros(200), lam, tol=1e-12)
    fast = cv.fixed_point(F, np.zeros(200), lam, tol=1e-12, accelerate="anderson")
    monotone = cv.fixed_point(F, np.zeros(200), lam, tol=1e-12, accelerate="anderson",
                              memory=1)
    assert fast.steps < monotone.steps and fast.steps < plain.steps / 3
    np.testing.assert_allclose(fast.x, w, atol=1e-9)


def test_a_solution_from_scikit_learn_feeds_the_derivatives():
    sklearn = pytest.importorskip("sklearn.linear_model")
    F, lam, w, closed, rng = lasso(p=30, n=40, seed=2)
    X, y = F.data
    n = X.shape[0]
    # scikit-learn minimises 1/(2n) ||Xw - y||^2 + alpha ||w||_1: alpha = lam / n
    coef = sklearn.Lasso(alpha=lam / n, fit_intercept=False, tol=1e-14,
                         max_iter=100_000).fit(X, y).coef_
    np.testing.assert_allclose(coef, w, atol=1e-8)
    g = rng.standard_normal(30)
    np.testing.assert_allclose(cv.fpad_vjp(F, lam, coef, g), g @ closed, rtol=1e-7)
    assert cv.certify_contraction(F, theta=lam, x=coef).certified


@pytest.mark.parametrize("support", [0, 1, 7, 12, 13, 100])
def test_a_constant_matrix_times_a_sparse_vector_meets_only_its_columns(support):
    # the value of X @ w on w's support (at most an eighth of 100 entries) against the dense
    # product, through the compiled step and through the interpreter's walk
    from conservative.compiled import values_function
    from conservative.evaluate import evaluate
    rng = np.random.default_rng(support)
    X = rng.standard_normal((30, 100))
    F = cv.trace(lambda w, t: X.T @ (X @ w) * t, (100,), ())
    w = np.zeros(100)
    w[rng.choice(100, support, replace=False)] = rng.standard_normal(support)
    compiled = values_function(F.program)(w[None], np.array([2.0]))[0]
    walk = evaluate(F.program, w[None], np.array([2.0]), call="test")[0]
    np.testing.assert_allclose(compiled, 2.0 * (X.T @ (X @ w)), rtol=1e-13, atol=1e-12)
    np.testing.assert_array_equal(compiled, walk)
    w[rng.integers(100)] += 1.0                         # a new support: gathered anew
    np.testing.assert_allclose(F(w, 2.0), 2.0 * (X.T @ (X @ w)), rtol=1e-13, atol=1e-12)
