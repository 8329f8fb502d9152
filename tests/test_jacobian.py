"""Conservative Jacobians of programs: hand-derived sets and finite differences."""

import numpy as np
import pytest

import conservative as cv


def _fd(F, x, t, h=1e-6):
    x, t = np.asarray(x, float), np.asarray(t, float)
    n, m = x.size, t.size
    cols = []
    for i in range(n + m):
        e = np.zeros(n + m)
        e[i] = h
        dx, dt = e[:n].reshape(x.shape), e[n:].reshape(t.shape)
        cols.append((F(x + dx, t + dt) - F(x - dx, t - dt)).ravel() / (2 * h))
    return np.array(cols).T


def test_smooth_point_gives_classical_jacobian():
    rng = np.random.default_rng(1)
    M = rng.normal(size=(3, 3))
    F = cv.trace(lambda x, t: cv.tanh(M @ x) * t[0] + cv.sin(x) * t[1] + x ** 3, (3,), (2,))
    x, t = rng.normal(size=3), rng.normal(size=2)
    js = F.jacobian(x, t)
    assert js.is_singleton and js.shape == (3, 5)
    np.testing.assert_allclose(js.vertices[0], _fd(F, x, t), atol=1e-8)


def test_relu_difference_is_a_program_property():
    F = cv.trace(lambda x, t: cv.relu(x) - cv.relu(-x), (), ())
    assert F(0.3, 0.0) == 0.3
    js = F.jacobian(0.0, 0.0, hull=False)
    np.testing.assert_array_equal(np.sort(js.A.vertices.ravel()), [0.0, 1.0, 2.0])
    hull = F.jacobian(0.0, 0.0, hull=True).A
    assert hull.contains([[1.7]]) and not hull.contains([[2.1]]) and not js.A.contains([[1.5]])


def test_soft_threshold_step_at_a_kink():
    # w <- S(w - 0.5 (w - 1), 0.5 lam): at lam = 1.5, w = 0.5 the argument 0.75 is the threshold
    F = cv.trace(lambda w, lam: cv.soft_threshold(w - 0.5 * (w - 1.0), 0.5 * lam), (), ())
    js = F.jacobian(0.5, 1.5, hull=False)
    got = {tuple(v.ravel()) for v in js.vertices}
    assert got == {(0.5, -0.5), (0.0, 0.0)}
    np.testing.assert_array_equal(js.default, [[0.0, 0.0]])   # the zero piece
    # just off the kink the set is the classical derivative
    np.testing.assert_allclose(F.jacobian(0.6, 1.5).vertices[0], [[0.5, -0.5]])
    # 0.2 + 0.4 != 0.6 in floating point: the kink is seen only with a tolerance
    assert F.jacobian(0.2, 1.2).is_singleton
    assert F.jacobian(0.2, 1.2, tol=1e-12).n_selections == 2


def test_relu_layer_is_factored():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(30, 30))
    x = rng.normal(size=30)
    b = -(W @ x)                                           # every coordinate at its kink
    F = cv.trace(lambda z, t: cv.relu(W @ z + b * t), (30,), ())
    js = F.jacobian(x, 1.0)
    assert js.n_selections == 2 ** 30
    with pytest.raises(cv.SetTooLargeError):
        js.vertices
    lo, hi = js.A.bounding_box()
    np.testing.assert_allclose(lo, np.minimum(W, 0))
    np.testing.assert_allclose(hi, np.maximum(W, 0))
    d = rng.random(30)
    assert js.A.contains(d[:, None] * W)                   # any diagonal in [0, 1]^30
    assert not js.A.contains(1.1 * W)
    hard = F.jacobian(x, 1.0, hull=False)
    assert hard.A.contains((d > 0.5)[:, None] * W)
    assert not hard.A.contains(d[:, None] * W)


def test_nested_kinks_use_lazy_assembly_and_match_hand_count():
    # relu(relu(x) - t): a kink downstream of another
    F = cv.trace(lambda x, t: cv.relu(cv.relu(x) - t), (), ())
    js = F.jacobian(0.0, 0.0, hull=False)
    got = {tuple(np.round(v.ravel(), 12)) for v in js.vertices}
    # inner d1 in {0,1}, outer d2 in {0,1}: dF/dx = d2 d1, dF/dt = -d2
    assert got == {(0.0, 0.0), (0.0, -1.0), (1.0, -1.0)}


def test_max_reduction_ties():
    F = cv.trace(lambda x, t: x * 0.0 + cv.max(x), (3,), ())
    js = F.jacobian(np.array([1.0, 1.0, 1.0]), 0.0, hull=False)
    rows = {tuple(v[0, :3]) for v in js.vertices}
    assert rows == {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)}
    hull = F.jacobian(np.array([1.0, 1.0, 1.0]), 0.0, hull=True)
    third = np.full((3, 4), 1 / 3)
    third[:, 3] = 0.0
    assert hull.contains(third) and not js.contains(third)
    two = F.jacobian(np.array([1.0, 1.0, 0.0]), 0.0, hull=False)
    assert {tuple(v[0, :3]) for v in two.vertices} == {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)}


def test_tolerance_activates_nearby_pieces():
    F = cv.trace(lambda x, t: cv.relu(x), (), ())
    assert F.jacobian(1e-13, 0.0).is_singleton
    assert F.jacobian(1e-13, 0.0, tol=1e-12).n_selections == 2
    with pytest.raises(cv.InputError):
        F.jacobian(0.0, 0.0, tol=-1.0)


def test_jvp_matches_default_jacobian():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 4))
    F = cv.trace(lambda w, lam: cv.soft_threshold(w - 0.05 * (X.T @ (X @ w)), 0.05 * lam),
                 (4,), ())
    w = rng.normal(size=4)
    J = F.jacobian(w, 1.0).default
    dx = rng.normal(size=(4, 3))
    dt = rng.normal(size=(3,))
    val, tan = F.jvp(w, 1.0, dx, dt[None, :].reshape(3))
    np.testing.assert_allclose(val, F(w, 1.0))
    np.testing.assert_allclose(tan, J[:, :4] @ dx + J[:, 4:] @ dt[None, :], atol=1e-14)
    with pytest.raises(cv.ShapeError):
        F.jvp(w, 1.0, np.zeros((3, 2)))


def test_jacobian_set_from_matrices_and_blocks():
    js = cv.JacobianSet.from_matrices([[[0.5, 1.0]], [[0.2, -1.0]]], hull=True)
    np.testing.assert_allclose(js.A.vertices.ravel(), [0.5, 0.2])
    np.testing.assert_allclose(js.B.vertices.ravel(), [1.0, -1.0])
    assert js.contains([[0.35, 0.0]]) and not js.contains([[0.35, 0.5]])
    with pytest.raises(cv.ShapeError):
        cv.JacobianSet.from_matrices(np.zeros((0, 2, 2)))
    with pytest.raises(cv.ShapeError):
        js.contains(np.zeros((2, 2)))
