"""The speed paths of issue 13 (hypergradients, piggyback m = p) give the same numbers as the
plain computations and independent references, and refuse what they must refuse."""

import mpmath
import numpy as np
import pytest

import conservative as cv
from conservative import interval as iv
from conservative.interval import _assembly


def _lasso(n=40, p=120, k=5, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) / np.sqrt(n)
    w0 = np.zeros(p)
    w0[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    y = X @ w0 + 0.01 * rng.standard_normal(n)
    lam = 0.1 * float(np.max(np.abs(X.T @ y)))
    return X, y, lam


def _exact_hypergradient(X, w, g):
    """grad_S . (-(X_S^T X_S)^{-1} sign w_S), in 50-digit arithmetic."""
    S = np.flatnonzero(w)
    mpmath.mp.dps = 50
    XS = mpmath.matrix(X[:, S].tolist())
    J = mpmath.lu_solve(XS.T * XS, mpmath.matrix((-np.sign(w[S])).tolist()))
    return float(sum(mpmath.mpf(float(g[S][i])) * J[i] for i in range(len(S))))


def test_hypergradients_match_the_closed_form():
    X, y, lam = _lasso()
    F = cv.algorithms.forward_backward_lasso(X, y)
    w = cv.fixed_point(F, np.zeros(X.shape[1]), lam, tol=1e-15, accelerate="anderson").x
    g = np.random.default_rng(1).standard_normal(X.shape[1])
    ref = _exact_hypergradient(X, w, g)
    assert float(cv.fpad_vjp(F, lam, w, g)) == pytest.approx(ref, rel=1e-12)
    J = cv.implicit_jacobian(F, lam, w)
    assert float(J.vertices[0, :, 0] @ g) == pytest.approx(ref, rel=1e-12)


def test_reverse_fpad_still_refuses_a_block_that_does_not_contract():
    # x -> 1.5 x + t has the fixed point -2 t and I - A = -0.5 invertible, but the adjoint
    # iteration v <- 1.5 v + g diverges: FPAD must not return the limit of a solve
    F = cv.trace(lambda x, t: 1.5 * x + t, (3,), (3,))
    with pytest.raises(cv.NotConvergedError):
        cv.fpad_vjp(F, np.ones(3), -2 * np.ones(3), np.ones(3), max_steps=200)


def test_interval_neumann_proof_on_the_hull():
    # {0, 3}: I - A = 1 - A vanishes at A = 1 inside the hull, although both vertices are fine
    proved, how = cv.invertible_on_hull(np.array([[[0.0]], [[3.0]]]))
    assert not proved
    A = np.array([[[3.0, 0.0], [0.0, 3.0]], [[4.0, 1.0], [0.0, 2.5]]])      # not contracting
    proved, how = cv.invertible_on_hull(A)
    assert proved and "outward-rounded" in how
    for s in np.linspace(0.0, 1.0, 101):                    # independent: det on the segment
        assert abs(np.linalg.det(np.eye(2) - ((1 - s) * A[0] + s * A[1]))) > 1.0


def test_memoised_constant_products_equal_the_plain_ones(monkeypatch):
    rng = np.random.default_rng(0)
    M = iv.Interval(rng.standard_normal((80, 100)))              # a point, size 8000
    x = iv.Interval(rng.standard_normal(100) - 1e-3, rng.standard_normal(100) * 0 + 5.0)
    first, again = M @ x, M @ x                                  # facts computed, then reused
    monkeypatch.setattr(_assembly, "_FACTS_MIN_SIZE", 10 ** 9)   # the plain path
    plain = M @ x
    for a in (first, again):
        assert np.array_equal(a.lo, plain.lo) and np.array_equal(a.hi, plain.hi)
    tight = iv.matmul(M, x, method="tight")
    assert np.all(plain.lo <= tight.lo) and np.all(tight.hi <= plain.hi)


def test_memo_ignores_arrays_that_are_not_its_own():
    big = np.ones((100, 100))
    view = iv.Interval._new(big[:, :], big[:, :])      # views of a writeable array
    assert _assembly._operand_facts(view) is None
    owned = iv.Interval(np.ones((100, 100)))
    assert _assembly._operand_facts(owned) is not None


def _dense_loop(X, y, s, lam_vec, w, steps):
    p = X.shape[1]
    J = np.zeros((p, p))
    for _ in range(steps):
        z = w - s * (X.T @ (X @ w - y))
        mask = np.abs(z) > s * lam_vec
        J = mask[:, None] * (J - s * (X.T @ (X @ J)) - s * np.diag(np.sign(z)))
        w = np.sign(z) * np.maximum(np.abs(z) - s * lam_vec, 0)
    return J


def _one_penalty_per_feature():
    """FB-Lasso with one penalty per feature (m = p), and its fixed point."""
    X, y, lam = _lasso()
    p = X.shape[1]
    s = 1.0 / np.linalg.norm(X, 2) ** 2
    lam_vec = np.full(p, lam)
    F = cv.trace(lambda w, t: cv.soft_threshold(w - s * (X.T @ (X @ w - y)), s * t), (p,), (p,))
    w = cv.fixed_point(F, np.zeros(p), lam_vec, tol=1e-14).x
    return X, y, s, lam_vec, F, w


def test_piggyback_one_penalty_per_feature_matches_the_dense_loop():
    X, y, s, lam_vec, F, w = _one_penalty_per_feature()
    ref = _dense_loop(X, y, s, lam_vec, w, 12)
    _, last = cv.piggyback(F, w, lam_vec, 12, history=False)
    _, every = cv.piggyback(F, w, lam_vec, 12)
    np.testing.assert_allclose(last[0], ref, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(last[0], every[-1])


def test_demanded_elementwise_tangents_equal_the_full_pass():
    X, y, lam = _lasso()
    p = X.shape[1]
    F = cv.algorithms.forward_backward_lasso(X, y)
    w = cv.fixed_point(F, np.zeros(p), lam, tol=1e-14).x
    seeds_J = np.random.default_rng(2).standard_normal((p, 3))
    xb, tb = F.point(w, lam, call="test")
    from conservative.evaluate import evaluate
    from conservative.jacobian import jvp, linearise
    values = evaluate(F.program, xb, tb, call="test", keep=True)
    lin = linearise(F.program, values, tol=0.0, call="test", with_pieces=False)
    seeds = {F.program.x_node: seeds_J[None], F.program.theta_node: np.zeros((1, 3))}
    demanded = jvp(F.program, values, lin.partials, seeds)
    full = jvp(F.program, values, lin.partials, seeds, keep=True)[F.program.out_node]
    np.testing.assert_array_equal(demanded, full)


def test_history_free_piggyback_with_a_permuting_map():
    # the tangent of x[::-1] is a view of the derivative kept in the output slot
    F = cv.trace(lambda x, t: 0.5 * x[::-1] + t, (4,), (4,))
    _, last = cv.piggyback(F, np.zeros(4), np.arange(4.0), 5, history=False)
    _, every = cv.piggyback(F, np.zeros(4), np.arange(4.0), 5)
    np.testing.assert_array_equal(last[0], every[-1])


def test_piggyback_one_penalty_per_feature_keeps_no_identity_seed():
    # at m = p the derivative is p x p: the run holds it, its output slot and the step's
    # temporaries, but not the identity seed of theta for the whole run (one p x p array)
    import tracemalloc
    X, y, s, lam_vec, F, w = _one_penalty_per_feature()
    cv.piggyback(F, w, lam_vec, 2, history=False)          # compiled once, off the count
    peaks = []
    for run in (lambda: cv.piggyback(F, w, lam_vec, 4, history=False),
                lambda: _dense_loop(X, y, s, lam_vec, w, 4)):
        tracemalloc.start()
        run()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[0] <= 1.2 * peaks[1], [peak / (8 * w.size ** 2) for peak in peaks]
