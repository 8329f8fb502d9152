"""The attractor engine against closed forms and an independent chaos game (issue 11)."""

import numpy as np
import pytest

import conservative as cv
from conservative.derivatives.attractor import ifs_attractor


def chaos_game(A, B, *, hull, steps, seed=0, burn=200):
    """Points of the attractor by random selections (hull: random convex weights), started at
    the fixed point of map 0 (itself a point of the attractor)."""
    rng = np.random.default_rng(seed)
    k, n, _ = A.shape
    J = np.linalg.solve(np.eye(n) - A[0], B[0])
    out = []
    for s in range(steps):
        if hull:
            w = rng.dirichlet(np.ones(k) * 0.3)
            J = np.einsum("i,ijk->jk", w, A) @ J + np.einsum("i,ijk->jk", w, B)
        else:
            i = rng.integers(k)
            J = A[i] @ J + B[i]
        if s >= burn:
            out.append(J.copy())
    return np.array(out)


def test_a_point_direction_as_small_as_it_is_keeps_its_dimension():
    # the second coordinate varies by 1e-300 only: the attractor is two-dimensional, and a
    # float rank decision would have called it a segment
    A = np.array([np.eye(2) / 2] * 3)
    B = np.array([[[0.0], [0.0]], [[1.0], [0.0]], [[0.0], [1e-300]]])
    att = ifs_attractor(A, B, hull=False, tol=0.05)
    assert att.dimension == 2
    segment = ifs_attractor(A[:2], B[:2], hull=False, tol=1e-6)
    assert segment.dimension == 1 and np.allclose(segment.intervals, [[0.0, 2.0]], atol=1e-12)


@pytest.mark.parametrize("hull", [True, False])
def test_half_plus_the_unit_square_is_the_square_of_side_two(hull):
    # J <- J/2 + b, b in the unit square (its corners, or their hull): the attractor is [0, 2]^2
    A = np.array([np.eye(2) / 2] * 4)
    B = np.array([[[0.0], [0.0]], [[1.0], [0.0]], [[0.0], [1.0]], [[1.0], [1.0]]])
    tol = 0.25 if hull else 0.1       # filling four-vertex polytopes by lattices is costly
    att = ifs_attractor(A, B, hull=hull, tol=tol)
    assert att.dimension == 2 and att.hausdorff_bound <= tol
    pts = att.points.reshape(len(att), 2)
    assert np.all(pts >= -att.hausdorff_bound) and np.all(pts <= 2 + att.hausdorff_bound)
    grid = np.stack(np.meshgrid(np.linspace(0, 2, 41), np.linspace(0, 2, 41)), -1).reshape(-1, 2)
    assert cv.excess(grid, pts) <= att.points_bound
    lo, hi = att.bounding_box(rigorous=True)
    assert np.all(lo <= 0) and np.all(hi >= 2)
    # from the support function: the box [0, 2]^2 to about 1e-9, whatever the net's tol
    np.testing.assert_allclose(np.concatenate([lo, hi]).ravel(), [0, 0, 2, 2], atol=1e-8)


def test_hull_intervals_have_the_closed_form_end_points():
    rng = np.random.default_rng(3)
    for _ in range(20):
        r = rng.uniform(0, 0.9, 3)                  # non-negative slopes: [min, max] of the
        t = rng.uniform(-1, 1, 3)                   # fixed points t_i / (1 - r_i)
        att = ifs_attractor(r.reshape(-1, 1, 1), t.reshape(-1, 1, 1), hull=True)
        fixed = t / (1 - r)
        np.testing.assert_allclose(att.intervals, [[fixed.min(), fixed.max()]], rtol=1e-13,
                                   atol=1e-15)
        assert att.hausdorff_bound < 1e-13


@pytest.mark.parametrize("hull", [False, True])
def test_readme_lasso_at_lam_max_is_one_dimensional_and_holds_every_chaos_game_point(hull):
    X, y = cv.datasets.lasso_small()
    F = cv.algorithms.forward_backward_lasso(X, y)
    lam_max = float(np.max(np.abs(X.T @ y)))
    att = cv.attractor(F, lam_max, np.zeros(8), hull=hull)
    assert att.dimension == 1 and att.complete and att.hausdorff_bound < 1e-12
    js = F.jacobian(np.zeros(8), lam_max, hull=False)
    AB = js.vertices
    samples = chaos_game(AB[:, :, :8], AB[:, :, 8:], hull=hull, steps=20_000)
    dist = att.distance(samples)
    assert np.max(dist) <= att.hausdorff_bound + 1e-15
    assert att.contains(samples).all()


@pytest.mark.parametrize("hull", [False, True])
def test_relu_layer_chaos_game_points_are_within_the_bound(hull):
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    F = cv.trace(lambda z, t: cv.relu(W @ z + t), (2,), ())
    att = cv.attractor(F, 0.0, np.zeros(2), hull=hull, time_limit=20)
    assert att.dimension == 2 and att.tol == att.hausdorff_bound      # chosen by the budget
    AB = F.jacobian(np.zeros(2), 0.0, hull=False).vertices
    samples = chaos_game(AB[:, :, :2], AB[:, :, 2:], hull=hull, steps=5_000)
    assert np.max(att.distance(samples)) <= att.hausdorff_bound * (1 + 1e-9)
    lo, hi = att.bounding_box(rigorous=True)             # support-function brackets
    assert np.all(samples >= lo - 1e-12) and np.all(samples <= hi + 1e-12)
    # and consistent with the net, whose points are within the bound of the attractor
    nlo, nhi = att.bounding_box()
    b = att.hausdorff_bound
    assert np.all(np.abs(hi - nhi) <= b + 1e-12) and np.all(np.abs(lo - nlo) <= b + 1e-12)


def test_explicit_tol_beyond_the_budget_is_refused_with_a_measured_suggestion():
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    F = cv.trace(lambda z, t: cv.relu(W @ z + t), (2,), ())
    with pytest.raises(cv.SetTooLargeError) as info:
        cv.attractor(F, 0.0, np.zeros(2), hull=False, tol=1e-9, max_points=2000)
    tol = info.value.suggested_tol
    assert tol is not None and tol > 1e-9
    att = cv.attractor(F, 0.0, np.zeros(2), hull=False, tol=tol, max_points=2000)
    assert att.hausdorff_bound <= tol and len(att.net) <= 2000


def test_repr_html_and_dict():
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    att = cv.attractor(F, 0.0, 0.0, hull=False, names=["dx/dθ"])
    text = repr(att)
    assert len(text.splitlines()) <= 8 and "dx/dθ" in text and "intervals" in text
    assert "<table>" in att._repr_html_()
    d = att.to_dict()
    import json
    json.dumps(d)
    assert d["dimension"] == 1 and d["kind"] == "intervals" and d["axis_entry"] == [0, 0]


def test_distances_do_not_overflow_for_huge_derivatives():
    # B = 1e268: the attractor is an interval near 4.6e268; distances stay finite and exact
    F = cv.trace(lambda x, t: 0.7 * x + 0.01 * cv.relu(x) + 1e268 * t, (), ())
    att = cv.attractor(F, 0.0, 0.0)
    hi = att.intervals[-1, 1]
    assert np.isfinite(att.distance([[hi * 1.01]]))
    assert att.distance([[hi * 1.01]]) == pytest.approx(0.01 * hi, rel=1e-9)
    assert all(att.contains(J) for J in att.fixed_points)


def test_douglas_rachford_kink_attractor_is_the_closed_form_interval():
    # X = y = gamma = 1 at lam = 1: 2 w - z = 1 = lam sits on the soft-threshold's kink, so
    # the derivative iterates J <- J/2 + b with b in {0, -1} (the threshold's partial is 0 or
    # -sign(1)): the attractor of the finite selections is the interval [-2, 0]
    dr = cv.algorithms.douglas_rachford_lasso(np.array([[1.0]]), np.array([1.0]), gamma=1.0)
    z = cv.fixed_point(dr, np.zeros(1), 1.0).x
    att = cv.attractor(dr, 1.0, z, hull=False, tol=1e-6)
    assert att.dimension == 1
    lo, hi = float(att.intervals[0][0]), float(att.intervals[-1][1])
    assert abs(lo + 2.0) <= att.hausdorff_bound + 1e-12
    assert abs(hi - 0.0) <= att.hausdorff_bound + 1e-12
    for point in (-2.0, -1.0, -0.5, 0.0):
        assert att.distance(np.array([[point]])) <= att.hausdorff_bound + 1e-12
