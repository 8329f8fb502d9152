"""Hull attractors whose maps share one linear part, as convex polytopes (issue 11's 3-D
target), against closed forms (the cube [0, 2]^3, the support function of S + M S + ...),
exact fixed points of compositions and an independent chaos game."""

import importlib
import itertools

import numpy as np
import pytest

import conservative as cv
from conservative.derivatives.attractor import ifs_attractor
from conservative.derivatives._ifs_polytope import one_linear_part, polytope_distance

engine = importlib.import_module("conservative.derivatives.attractor")


def chaos_game(M, S, steps, seed=0, burn=100):
    """J <- M J + sum_i w_i s_i with random weights w (half the steps one vertex), from the
    fixed point of map 0: points of K* up to rounding."""
    rng = np.random.default_rng(seed)
    k, D = S.shape
    y = np.linalg.solve(np.eye(D) - M, S[0])
    out = np.empty((steps, D))
    for j in range(steps + burn):
        w = rng.dirichlet(np.ones(k)) if rng.random() < 0.5 else np.eye(k)[rng.integers(k)]
        y = M @ y + w @ S
        if j >= burn:
            out[j - burn] = y
    return out


def support(M, S, U, terms=400):
    """Support function of K* = S + M S + M^2 S + ... (closed form) in the directions U."""
    total, V = np.zeros(len(U)), U.copy()
    for _ in range(terms):
        total += np.max(V @ S.T, axis=1)
        V = V @ M
    return total


def sphere(n, D, seed=1):
    U = np.random.default_rng(seed).normal(size=(n, D))
    return U / np.linalg.norm(U, axis=1, keepdims=True)


def in_coordinates(att, J):
    """J (N, n, 1) -> the flat vectors (N, n) (the frame is the identity up to signs here)."""
    return np.asarray(J).reshape(len(J), -1)


def distance_to_cube(y, side=2.0):
    return np.linalg.norm(y - np.clip(y, 0.0, side), axis=1)


def test_cube_at_the_issue_tolerance_is_the_cube_of_side_two():
    F = cv.trace(lambda x, t: 0.5 * x + cv.relu(t), (3,), (3,))
    diameter = 2 * np.sqrt(3)
    att = cv.attractor(F, np.zeros(3), np.zeros(3), hull=True, tol=1e-2 * diameter)
    assert att.kind == "polytope" and att.dimension == 3 and att.complete
    assert att.hausdorff_bound <= 1e-2 * diameter
    # J is 3 x 3 with a diagonal attractor: K* = {diag(y) : y in [0, 2]^3}
    diag = lambda J: np.stack([J[:, i, i] for i in range(3)], axis=1)   # noqa: E731
    verts = att.hull_vertices()
    assert len(verts) == 8
    assert np.max(distance_to_cube(diag(verts))) <= att.hausdorff_bound
    off = verts.copy()
    off[:, [0, 1, 2], [0, 1, 2]] = 0.0
    assert np.max(np.abs(off)) <= 1e-12                     # in the affine hull
    grid = np.array(list(itertools.product(np.linspace(0, 2, 9), repeat=3)))
    J = np.zeros((len(grid), 3, 3))
    J[:, [0, 1, 2], [0, 1, 2]] = grid
    assert np.max(att.distance(J)) <= att.hausdorff_bound
    assert np.all(att.contains(J))
    far = np.diag([1.0, 1.0, 2.0 + 2.1 * att.hausdorff_bound + 1e-9])
    assert not att.contains(far)
    # .points lie within points_bound of the cube, and cover it to within points_bound
    pts = att.points
    assert np.max(distance_to_cube(diag(pts))) <= att.hausdorff_bound + 1e-12
    from scipy.spatial import cKDTree
    fine = np.array(list(itertools.product(np.linspace(0, 2, 21), repeat=3)))
    gap, _ = cKDTree(diag(pts)).query(fine)
    assert np.max(gap) <= att.points_bound
    lo, hi = att.bounding_box(rigorous=True)
    assert np.all(np.diag(lo) <= 0) and np.all(np.diag(hi) >= 2)
    assert np.all(np.diag(hi) <= 2 + att.hausdorff_bound)


@pytest.mark.parametrize("D", [2, 3])
def test_cube_holds_a_long_chaos_game_and_tol_none_reaches_the_rounding_floor(D):
    corners = np.array(list(itertools.product((0.0, 1.0), repeat=D)))
    A, B = np.array([np.eye(D) / 2] * len(corners)), corners[:, :, None]
    att = ifs_attractor(A, B, hull=True)
    assert att.kind == "polytope" and att.complete and att.tol == att.hausdorff_bound < 1e-10
    samples = chaos_game(np.eye(D) / 2, corners, 100_000)
    assert np.max(att.distance(samples[:, :, None])) <= att.hausdorff_bound
    v = in_coordinates(att, att.hull_vertices())
    assert len(v) == 2 ** D and np.max(distance_to_cube(v)) <= att.hausdorff_bound


def random_system(seed, D=3, k=5, norm=0.7):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(D, D))
    M *= norm / np.linalg.norm(M, 2)
    return M, rng.normal(size=(k, D))


@pytest.mark.parametrize("seed", [3, 11])
def test_random_maps_with_one_linear_part_meet_the_closed_form_support(seed):
    M, S = random_system(seed)
    A, B = np.array([M] * len(S)), S[:, :, None]
    att = ifs_attractor(A, B, hull=True, tol=1e-2)
    assert att.kind == "polytope" and att.hausdorff_bound <= 1e-2
    # Hausdorff distance of convex sets = sup of the support difference
    U = sphere(4000, 3)
    v = in_coordinates(att, att.hull_vertices())
    gap = np.max(U @ v.T, axis=1) - support(M, S, U)
    assert np.max(np.abs(gap)) <= att.hausdorff_bound
    # not vacuous: the bound is within a factor 20 of the measured distance
    assert att.hausdorff_bound <= 20 * np.max(np.abs(gap))
    # fixed points of compositions (exact points of K*) and a chaos game lie within the bound
    fixed = []
    for word in itertools.product(range(len(S)), repeat=3):
        # f_w(y) = M^3 y + M^2 s_w0 + M s_w1 + s_w2
        t = M @ M @ S[word[0]] + M @ S[word[1]] + S[word[2]]
        fixed.append(np.linalg.solve(np.eye(3) - M @ M @ M, t))
    assert np.all(att.contains(np.array(fixed)[:, :, None]))
    samples = chaos_game(M, S, 50_000, seed=seed)
    assert np.max(att.distance(samples[:, :, None])) <= att.hausdorff_bound


def test_two_maps_in_the_plane_a_rotation_and_a_segment():
    """Notebook 04's F3: x <- A x + c relu(t), A 0.6 times a rotation by 60 degrees: K* is
    the zonoid sum_j A^j [0, c], support h(u) = sum_j max(0, u . A^j c)."""
    th = np.deg2rad(60)
    A = 0.6 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    c = np.array([1.0, 0.0])
    F = cv.trace(lambda x, t: A @ x + c * cv.relu(t), (2,), ())
    att = cv.attractor(F, 0.0, np.zeros(2), hull=True, tol=1e-3)
    assert att.kind == "polytope" and att.dimension == 2 and att.hausdorff_bound <= 1e-3
    U = sphere(2000, 2)
    v = in_coordinates(att, att.hull_vertices())
    gap = np.max(U @ v.T, axis=1) - support(A, np.stack([np.zeros(2), c]), U)
    assert np.max(np.abs(gap)) <= att.hausdorff_bound
    samples = chaos_game(A, np.stack([np.zeros(2), c]), 50_000)
    assert np.max(att.distance(samples[:, :, None])) <= att.hausdorff_bound


def test_different_linear_parts_are_not_taken_for_convex():
    """y -> (y1 / 2, 0) and y -> (1/2 - y1 / 2, 1): the hull attractor is a bow-tie, not
    convex; its representation must not contain the midpoint of (0, 0) and (1/4, 1)."""
    A = np.array([np.diag([0.5, 0.0]), np.diag([-0.5, 0.0])])
    B = np.array([[[0.0], [0.0]], [[0.5], [1.0]]])
    att = ifs_attractor(A, B, hull=True, tol=0.01)
    assert att.kind != "polytope"
    assert not one_linear_part(engine.reduce_to_affine_hull(A, B))
    assert att.contains([[0.0], [0.0]]) and att.contains([[0.25], [1.0]])
    assert not att.contains([[0.125], [0.5]])
    W = np.array([[0.3, -0.2, 0.1], [0.1, 0.4, 0.0], [0.0, 0.2, 0.3]])
    F = cv.trace(lambda z, t: cv.relu(W @ z + t), (3,), ())
    AB = F.jacobian(np.zeros(3), 0.0, hull=False).vertices
    assert not one_linear_part(engine.reduce_to_affine_hull(AB[:, :, :3], AB[:, :, 3:]))


def test_budgets_time_limit_and_a_tolerance_below_the_rounding_floor():
    corners = np.array(list(itertools.product((0.0, 1.0), repeat=3)))
    A, B = np.array([np.eye(3) / 2] * 8), corners[:, :, None]
    att = ifs_attractor(A, B, hull=True, tol=1e-2, time_limit=0)      # the first box
    assert not att.complete and att.kind == "polytope"
    v = in_coordinates(att, att.hull_vertices())
    assert np.max(distance_to_cube(v)) <= att.hausdorff_bound
    g = np.array(list(itertools.product(np.linspace(0, 2, 5), repeat=3)))
    assert np.all(att.contains(g[:, :, None]))
    with pytest.raises(cv.SetTooLargeError) as err:
        ifs_attractor(A, B, hull=True, tol=1e-14)
    fine = ifs_attractor(A, B, hull=True, tol=err.value.suggested_tol)
    assert fine.hausdorff_bound <= err.value.suggested_tol
    M, S = random_system(3)
    Ar, Br = np.array([M] * len(S)), S[:, :, None]
    with pytest.raises(cv.SetTooLargeError) as err:
        ifs_attractor(Ar, Br, hull=True, tol=1e-6, max_points=2000)
    assert err.value.suggested_tol is not None and err.value.suggested_tol > 1e-6
    small = ifs_attractor(Ar, Br, hull=True, max_points=2000)
    assert small.complete and len(small.vertices) * len(S) <= 2000 * 4


def test_reading_and_drawing_a_polytope():
    import matplotlib
    matplotlib.use("Agg")
    M, S = random_system(11)
    att = ifs_attractor(np.array([M] * len(S)), S[:, :, None], hull=True, tol=0.05)
    assert "convex polytope" in repr(att)
    d = att.to_dict()
    assert d["kind"] == "polytope" and len(d["vertices"]) == len(att.vertices)
    assert att.cells is None and att.vertices.shape[1] == 3
    assert np.max(att.distance(att.points)) <= 1e-9          # samples lie in the polytope
    ax = cv.plotting.plot_attractor(att)
    assert ax.get_title().startswith("attractor:") and len(ax.collections) >= 1


def test_polytope_distance_against_a_quadratic_program():
    cvxpy = pytest.importorskip("cvxpy")
    from scipy.spatial import ConvexHull
    rng = np.random.default_rng(5)
    V = rng.normal(size=(40, 3))
    hull = ConvexHull(V)
    y = rng.normal(size=(30, 3)) * 2
    got = polytope_distance(y, hull)
    for yi, g in zip(y, got):
        lam = cvxpy.Variable(len(V), nonneg=True)
        prob = cvxpy.Problem(cvxpy.Minimize(cvxpy.sum_squares(V.T @ lam - yi)),
                             [cvxpy.sum(lam) == 1])
        prob.solve(solver=cvxpy.CLARABEL)
        assert abs(np.sqrt(max(prob.value, 0.0)) - g) <= 1e-6


def chaos_game_vertices(A, B, steps, seed=0, burn=100):
    """Random convex combinations of the vertex maps J -> A_i J + B_i (half the steps one
    vertex), from the fixed point of map 0."""
    rng = np.random.default_rng(seed)
    k, n, _ = A.shape
    J = np.linalg.solve(np.eye(n) - A[0], B[0])
    out = np.empty((steps, n, B.shape[2]))
    for j in range(steps + burn):
        w = rng.dirichlet(np.ones(k)) if rng.random() < 0.5 else np.eye(k)[rng.integers(k)]
        J = np.einsum("i,ijk->jk", w, A) @ J + np.einsum("i,ijk->jk", w, B)
        if j >= burn:
            out[j - burn] = J
    return out


def relu_support(W, U, terms=200):
    """Support of the hull attractor of z <- relu(W z + t) at z = 0, t = 0 (maps J -> D (W J
    + 1), D diagonal in [0, 1]^n, and W J + 1 >= 0 on it): h(v) = v+ . 1 + h(W^T v+)."""
    total, V = np.zeros(len(U)), U.copy()
    for _ in range(terms):
        V = np.maximum(V, 0.0)
        total += V.sum(axis=1)
        V = V @ W
    return total


@pytest.mark.parametrize("W, tol", [
    (np.array([[0.3, -0.2], [0.1, 0.4]]), 1.41e-3),                  # the bench's 2-D layer
    (np.array([[0.3, -0.2, 0.1], [0.1, 0.4, 0.0], [0.0, 0.2, 0.3]]), 0.03)])
def test_relu_layers_are_convex_polytopes_within_their_bound(W, tol):
    """Elementwise kinks: the vertices are all combinations of the rows of D W, and W J + 1
    keeps its sign near K*, so P(J) = prod_i [0, (W J + 1)_i] has a convex graph."""
    n = len(W)
    F = cv.trace(lambda z, t: cv.relu(W @ z + t), (n,), ())
    att = cv.attractor(F, 0.0, np.zeros(n), hull=True, tol=tol)
    assert att.kind == "polytope" and att.dimension == n and att.hausdorff_bound <= tol
    U = sphere(4000, n)
    v = att.hull_vertices().reshape(-1, n)
    gap = np.max(U @ v.T, axis=1) - relu_support(W, U)
    assert np.max(np.abs(gap)) <= att.hausdorff_bound
    AB = F.jacobian(np.zeros(n), 0.0, hull=False).vertices
    samples = chaos_game_vertices(AB[:, :, :n], AB[:, :, n:], 50_000)
    assert np.max(att.distance(samples)) <= att.hausdorff_bound
    assert np.min(samples.reshape(-1, n) @ W.T + 1) > 0       # the premise, on K*'s points


def test_product_vertex_sets_whose_rows_swap_are_not_taken_for_convex():
    """The bow-tie's maps with every row combination: the two choices of row 0, y1 / 2 and
    1/2 - y1 / 2, swap order inside K*; no proof of convexity, so no polytope."""
    A = np.array([np.diag([0.5, 0.0]), np.diag([-0.5, 0.0])] * 2)
    B = np.array([[[0.0], [0.0]], [[0.5], [0.0]], [[0.0], [1.0]], [[0.5], [1.0]]])
    from conservative.derivatives._ifs_polytope import row_structure
    assert row_structure(A, B) is not None
    att = ifs_attractor(A, B, hull=True, tol=0.05)
    assert att.kind != "polytope"
    assert row_structure(A[:2], B[[0, 3]]) is None       # not every combination: no product


def test_relu_layer_budgets_give_proved_polytopes_or_measured_suggestions():
    W = np.array([[0.3, -0.2, 0.1], [0.1, 0.4, 0.0], [0.0, 0.2, 0.3]])
    F = cv.trace(lambda z, t: cv.relu(W @ z + t), (3,), ())
    AB = F.jacobian(np.zeros(3), 0.0, hull=False).vertices
    samples = chaos_game_vertices(AB[:, :, :3], AB[:, :, 3:], 5_000)
    quick = cv.attractor(F, 0.0, np.zeros(3), tol=1e-9, time_limit=0)
    assert quick.kind == "polytope" and not quick.complete       # proved convex first
    assert np.max(quick.distance(samples)) <= quick.hausdorff_bound
    with pytest.raises(cv.SetTooLargeError) as err:
        cv.attractor(F, 0.0, np.zeros(3), tol=1e-9, max_points=300)
    fits = cv.attractor(F, 0.0, np.zeros(3), tol=err.value.suggested_tol, max_points=300)
    assert fits.kind == "polytope" and fits.hausdorff_bound <= err.value.suggested_tol
    assert np.max(fits.distance(samples)) <= fits.hausdorff_bound
