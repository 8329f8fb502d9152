"""Tests of conservative.ifs: attractors of the set-valued piggyback map, worked by hand.

Notation: vertices [A_i B_i], Phi(K) = {A J + B : [A B] in S, J in K}; hull=False uses the
vertices (an IFS), hull=True their convex hull.
"""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conservative.distances import excess, hausdorff
from conservative.errors import (ConservativeError, InputError, NotContractingError,
                                 SetTooLargeError, ShapeError)
from conservative.ifs import Attractor, ifs_attractor


def scalars(a, b):
    """Vertices of a scalar system: A (k, 1, 1), B (k, 1, 1)."""
    return (np.asarray(a, float).reshape(-1, 1, 1), np.asarray(b, float).reshape(-1, 1, 1))


def interval_distance(points, lo, hi):
    """Exact Hausdorff distance between a finite set of scalars and the interval [lo, hi]."""
    x = np.sort(np.asarray(points, float).ravel())
    out = max(0.0, lo - x[0], x[-1] - hi)  # excess of the points over the interval
    # excess of the interval over the points: the max of t -> dist(t, x) on [lo, hi] is at lo,
    # hi or at a midpoint between consecutive points
    t = np.clip(np.concatenate([[lo, hi], (x[1:] + x[:-1]) / 2]), lo, hi)
    j = np.searchsorted(x, t).clip(1, len(x) - 1)
    dist = np.minimum(np.abs(t - x[j - 1]), np.abs(t - x[j]))
    return max(out, float(dist.max()))


def brute_force_iterates(A, B, J0, depth):
    """Phi^depth({J0}) for the vertex IFS, all k^depth compositions, no merging."""
    K = np.asarray(J0, float)[None]
    for _ in range(depth):
        K = (np.matmul(A[None], K[:, None]) + B[None]).reshape(-1, *K.shape[1:])
    return K


def implicit_points(A, B):
    n = A.shape[1]
    return np.linalg.solve(np.eye(n)[None] - A, B)


CANTOR_DEPTH = 12


def cantor_reference():
    """Endpoints of the 2^12 intervals of depth 12: within 3^-12 / 2 of the Cantor set."""
    left = np.array(list(itertools.product([0, 2], repeat=CANTOR_DEPTH))) @ (
        3.0 ** -np.arange(1, CANTOR_DEPTH + 1))
    return np.concatenate([left, left + 3.0 ** -CANTOR_DEPTH]).reshape(-1, 1, 1)


# --------------------------------------------------------------------------------------------
# Worked examples in one dimension


@pytest.mark.parametrize("hull", [False, True])
def test_binary_expansions_fill_the_unit_interval(hull):
    # x/2 and x/2 + 1/2: K = K/2 ∪ (K/2 + 1/2) is solved by [0, 1] (binary expansions); the hull
    # attractor lies between K_v = [0, 1] and conv K_v = [0, 1].
    A, B = scalars([0.5, 0.5], [0.0, 0.5])
    att = ifs_attractor(A, B, hull=hull, tol=1e-4)
    assert att.hausdorff_bound <= 1e-4
    assert att.rho == 0.5 and att.hull is hull
    assert interval_distance(att.points, 0.0, 1.0) <= att.points_bound
    assert att.points.shape[1:] == (1, 1)
    assert len(att.intervals) < 40_000  # bounded by the geometry, not 2^iterations


def test_cantor_set_vertices_and_its_hull():
    # x/3 and x/3 + 2/3: the middle-thirds Cantor set; the hull maps fill [0, 1].
    A, B = scalars([1 / 3, 1 / 3], [0.0, 2 / 3])
    tol = 1e-4
    att = ifs_attractor(A, B, hull=False, tol=tol)
    ref = cantor_reference()
    ref_err = 3.0 ** -CANTOR_DEPTH / 2
    bound = att.hausdorff_bound
    assert excess(att.points, ref) <= bound + ref_err  # every point is near the Cantor set
    assert excess(ref, att.points) <= bound + ref_err  # and covers it
    x = att.points.ravel()
    for gap_lo, gap_hi in [(1 / 3, 2 / 3), (1 / 9, 2 / 9), (7 / 9, 8 / 9), (1 / 27, 2 / 27),
                           (25 / 27, 26 / 27)]:
        assert not np.any((x > gap_lo + bound) & (x < gap_hi - bound)), (gap_lo, gap_hi)
    assert len(att.intervals) < 3000  # ~ (1/eps)^(log 2 / log 3): the gaps are kept

    full = ifs_attractor(A, B, hull=True, tol=tol)
    assert interval_distance(full.points, 0.0, 1.0) <= full.points_bound


@pytest.mark.parametrize("hull", [False, True])
def test_reflected_pair_gives_an_interval(hull):
    # f1(x) = x/2 + 1, f2(x) = -x/2. Try K = [a, b]: f1(K) = [a/2 + 1, b/2 + 1] and
    # f2(K) = [-b/2, -a/2]. The right end is f1's fixed point b = 2, the left end a = -b/2 = -1;
    # then f1(K) = [1/2, 2] and f2(K) = [-1, 1/2] overlap at 1/2, so K_v = [-1, 2] and,
    # squeezed between K_v and conv K_v, K_h = [-1, 2] as well.
    A, B = scalars([0.5, -0.5], [1.0, 0.0])
    att = ifs_attractor(A, B, hull=hull, tol=1e-4)
    assert interval_distance(att.points, -1.0, 2.0) <= att.points_bound
    np.testing.assert_allclose(att.hull_vertices().ravel(), [-1.0, 2.0], atol=1e-4)


def test_countable_attractor():
    # f1(x) = x/2 (A = 1/2, B = 0), f2(x) = 1 (A = 0, B = 1). K = K/2 ∪ {1} is solved by the
    # countable set {0} ∪ {2^-j : j >= 0} (1, its halvings, and their limit 0). The hull maps
    # give the union over x in K of [x/2, 1], which for x = 0 is [0, 1]: K_h = [0, 1].
    A, B = scalars([0.5, 0.0], [0.0, 1.0])
    tol = 1e-4
    att = ifs_attractor(A, B, hull=False, tol=tol)
    ref = np.concatenate([[0.0], 2.0 ** -np.arange(80)]).reshape(-1, 1, 1)
    assert hausdorff(att.points, ref) <= att.points_bound
    assert len(att.intervals) <= 40  # about log2(1/tol) intervals
    x = att.points.ravel()
    b = att.hausdorff_bound
    assert not np.any((x > 0.5 + b) & (x < 1 - b))
    assert not np.any((x > 0.25 + b) & (x < 0.5 - b))
    full = ifs_attractor(A, B, hull=True, tol=tol)
    assert interval_distance(full.points, 0.0, 1.0) <= full.points_bound


@pytest.mark.parametrize("hull", [False, True])
def test_finite_attractor_with_rho_zero(hull):
    # Constant maps 0 and 1: K_v = {0, 1} after one step; K_h = [0, 1].
    A, B = scalars([0.0, 0.0], [0.0, 1.0])
    att = ifs_attractor(A, B, hull=hull, tol=1e-3)
    assert att.rho == 0.0 and att.dimension == 1
    if hull:
        assert interval_distance(att.points, 0.0, 1.0) <= att.points_bound
    else:     # two degenerate intervals around 0 and 1 (outward rounding only)
        np.testing.assert_allclose(att.intervals, [[0.0, 0.0], [1.0, 1.0]], atol=1e-15)


def test_single_map_gives_its_fixed_point():
    att = ifs_attractor([[[0.5, 0.1], [0.0, 0.3]]], [[[1.0], [2.0]]], hull=True, tol=1e-8)
    expected = np.linalg.solve(np.eye(2) - [[0.5, 0.1], [0.0, 0.3]], [[1.0], [2.0]])
    assert att.dimension == 0  # one map: a single point
    np.testing.assert_allclose(att.points[0], expected, atol=1e-12)


def test_start_point_does_not_matter_beyond_the_bound():
    A, B = scalars([0.5, -0.4], [0.3, -0.2])
    a = ifs_attractor(A, B, hull=False, tol=1e-3)
    b = ifs_attractor(A, B, hull=False, tol=1e-3, J0=[[25.0]])
    assert hausdorff(a.points, b.points) <= a.points_bound + b.points_bound


# --------------------------------------------------------------------------------------------
# Properties against independent references


def random_scalar_system(draw_seed, k):
    rng = np.random.default_rng(draw_seed)
    return scalars(rng.uniform(-0.6, 0.6, k), rng.uniform(-1, 1, k))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.booleans(),
       st.sampled_from([None, 0.25, 4.0]))
def test_bound_holds_in_one_dimension(seed, k, hull, p):
    A, B = random_scalar_system(seed, k)
    P = None if p is None else [[p]]
    att = ifs_attractor(A, B, hull=hull, P=P, tol=2e-2)
    assert att.hausdorff_bound <= 2e-2
    rho = float(np.max(np.abs(A)))
    if not hull:
        # independent reference: all compositions of depth L from a point of K*
        J0 = implicit_points(A, B)[0]
        L = 9 if k <= 2 else 7
        ref = brute_force_iterates(A, B, J0, L)
        D0 = float(np.max(np.abs(A[:, 0, 0] * J0[0, 0] + B[:, 0, 0] - J0[0, 0])))
        ref_err = rho ** L * D0 / (1 - rho) + 1e-12
    else:
        fine = ifs_attractor(A, B, hull=True, tol=1e-3)
        ref, ref_err = fine.points, fine.hausdorff_bound
        vert = ifs_attractor(A, B, hull=False, tol=1e-3)  # K_v ⊆ K_h ⊆ conv K_v
        assert excess(vert.points, att.points) <= att.hausdorff_bound + vert.hausdorff_bound
        lo, hi = vert.bounding_box(rigorous=True)
        assert np.all(att.points >= lo - att.hausdorff_bound)
        assert np.all(att.points <= hi + att.hausdorff_bound)
    assert hausdorff(att.points, ref) <= att.points_bound + ref_err
    # implicit points (I - A_i)^-1 B_i are fixed points of the maps, hence in the attractor
    assert excess(implicit_points(A, B), att.points) <= att.hausdorff_bound


def random_planar_system(seed, k, *, weighted):
    """k vertices (n=2, m=1) contracting by 0.5 in a random P (or the identity)."""
    rng = np.random.default_rng(seed)
    if weighted:
        M = rng.standard_normal((2, 2))
        P = M @ M.T + 0.3 * np.eye(2)
    else:
        P = np.eye(2)
    L = np.linalg.cholesky(P)
    C = rng.standard_normal((k, 2, 2))
    C *= rng.uniform(0.1, 0.5, (k, 1, 1)) / np.linalg.norm(C, 2, axis=(1, 2))[:, None, None]
    A = np.linalg.solve(L.T, C) @ L.T  # L^T A L^-T = C, so ||A||_P = ||C||_2 <= 0.5
    B = rng.uniform(-0.3, 0.3, (k, 2, 1)) / np.sqrt(np.linalg.eigvalsh(P)[1])
    return A, B, P


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.booleans(), st.booleans())
def test_bound_holds_for_planar_systems(seed, k, hull, weighted):
    if hull:
        k = min(k, 2)  # filling triangles is costly: covered by the 1-D and the example tests
    A, B, P = random_planar_system(seed, k, weighted=weighted)
    tol = 0.05
    att = ifs_attractor(A, B, hull=hull, P=P, rho=0.5, tol=tol)
    assert att.hausdorff_bound <= tol
    assert att.points.shape[1:] == (2, 1)
    lmin = np.linalg.eigvalsh(P)[0]
    if not hull:
        J0 = implicit_points(A, B)[0]
        L = {1: 1, 2: 11, 3: 8}[k]
        ref = brute_force_iterates(A, B, J0, L)
        D0 = max(np.sqrt(np.trace(D.T @ P @ D)) for D in A @ J0 + B - J0)
        ref_err = 0.5 ** L * D0 / 0.5 / np.sqrt(lmin) + 1e-12
    else:
        fine = ifs_attractor(A, B, hull=True, P=P, rho=0.5, tol=tol / 2.5)
        ref, ref_err = fine.points, fine.hausdorff_bound
        vert = ifs_attractor(A, B, hull=False, P=P, rho=0.5, tol=tol)  # K_v ⊆ K_h
        assert excess(vert.points, att.points) <= att.hausdorff_bound + vert.hausdorff_bound
    assert hausdorff(att.points, ref) <= att.points_bound + ref_err
    assert excess(implicit_points(A, B), att.points) <= att.hausdorff_bound


@pytest.mark.parametrize("hull", [False, True])
@pytest.mark.parametrize("P", [None, [[2.0, 0.5], [0.5, 1.0]]])
def test_planar_segment_attractor(hull, P):
    # A_1 = A_2 = I/2, B_1 = 0, B_2 = (1, 1/2): with u = (2, 1), the maps are s u -> (s/2) u and
    # s u -> (s/2 + 1/2) u, the binary expansions along u, so K_v = {s u : s in [0, 1]}. The
    # hull maps add t (1, 1/2) for t in [0, 1], which gives the same segment: K_h = K_v.
    A = np.array([np.eye(2) / 2, np.eye(2) / 2])
    B = np.array([[[0.0], [0.0]], [[1.0], [0.5]]])
    att = ifs_attractor(A, B, hull=hull, P=P, rho=0.5, tol=2e-2)
    segment = np.linspace(0, 1, 20_001)[:, None, None] * np.array([[2.0], [1.0]])
    assert hausdorff(att.points, segment) <= att.points_bound + 1e-4


def test_norm_from_certificate_is_needed_and_used():
    # ||A_1||_2 > 1, but with P = diag(1, 4): L^T A_1 L^-T = [[0.5, 0.5], [0, 0.5]], norm ~0.81.
    A = np.array([[[0.5, 1.0], [0.0, 0.5]], [[0.5, 0.0], [0.0, -0.5]]])
    B = np.array([[[1.0], [0.0]], [[0.0], [1.0]]])
    assert np.linalg.norm(A[0], 2) > 1
    with pytest.raises(NotContractingError, match="cv.ifs_attractor"):
        ifs_attractor(A, B, hull=False, tol=0.05)  # identity norm: no contraction
    P = np.diag([1.0, 4.0])
    att = ifs_attractor(A, B, hull=False, P=P, rho=0.81, tol=0.02)
    assert att.rho == 0.81
    np.testing.assert_array_equal(att.P, P)
    J0 = implicit_points(A, B)[0]
    ref = brute_force_iterates(A, B, J0, 14)
    D0 = max(np.sqrt(np.trace(D.T @ P @ D)) for D in A @ J0 + B - J0)
    ref_err = 0.81 ** 14 * D0 / 0.19  # lambda_min(P) = 1
    assert hausdorff(att.points, ref) <= att.points_bound + ref_err


def test_planar_hull_with_three_vertices():
    A = np.array([np.diag([0.3, 0.3]), [[0.2, -0.1], [0.1, 0.2]], np.diag([-0.3, 0.2])])
    B = np.array([[[0.2], [0.0]], [[0.0], [0.2]], [[-0.2], [-0.2]]])
    hull = ifs_attractor(A, B, hull=True, tol=0.05)
    vert = ifs_attractor(A, B, hull=False, tol=0.01)
    assert excess(vert.points, hull.points) <= hull.hausdorff_bound + vert.hausdorff_bound
    # K_h ⊆ conv K_v: no hull point violates a facet inequality of conv(vertex points) by more
    # than the two bounds (P = I here, so the bounds are in the Euclidean norm)
    from scipy.spatial import ConvexHull
    facets = ConvexHull(vert.hull_vertices().reshape(-1, 2)).equations  # n.x + c <= 0 inside
    pts = hull.points.reshape(-1, 2)
    violation = float(np.max(pts @ facets[:, :2].T + facets[:, 2]))
    assert violation <= hull.hausdorff_bound + vert.hausdorff_bound
    assert violation > -0.05  # and the hull attractor reaches the boundary of conv K_v
    assert excess(implicit_points(A, B), hull.points) <= hull.hausdorff_bound


def test_matrix_valued_jacobians():
    # n = 2, m = 2: J has 4 entries; vertex case with two maps.
    A = np.array([np.diag([0.4, 0.2]), [[0.0, 0.3], [0.3, 0.0]]])
    B = np.array([np.eye(2), [[0.0, 1.0], [-1.0, 0.0]]])
    att = ifs_attractor(A, B, hull=False, tol=0.05)
    assert att.points.shape[1:] == (2, 2)
    J0 = implicit_points(A, B)[0]
    ref = brute_force_iterates(A, B, J0, 12)
    D0 = max(np.linalg.norm(D) for D in A @ J0 + B - J0)
    assert hausdorff(att.points, ref) <= att.points_bound + 0.4 ** 12 * D0 / 0.6
    with pytest.raises(SetTooLargeError, match="n\\*m <= 3"):
        att.hull_vertices()


# --------------------------------------------------------------------------------------------
# The Attractor value


def test_attractor_value_api():
    A, B = scalars([0.5, -0.5], [1.0, 0.0])
    att = ifs_attractor(A, B, hull=True, tol=1e-3)
    assert isinstance(att, Attractor)
    lo, hi = att.bounding_box()
    assert lo.shape == hi.shape == (1, 1)
    rlo, rhi = att.bounding_box(rigorous=True)
    assert rlo[0, 0] <= -1.0 <= rhi[0, 0] and rlo[0, 0] <= 2.0 <= rhi[0, 0]
    np.testing.assert_allclose([lo[0, 0], hi[0, 0]], [-1.0, 2.0], atol=1e-12)
    text = repr(att)
    assert "Attractor(" in text and "Hausdorff error" in text and "convex hull" in text
    assert len(text.splitlines()) <= 8 and att.tol == 1e-3
    with pytest.raises(ValueError):
        att.points[0, 0, 0] = 5.0  # read-only
    with pytest.raises(AttributeError):
        att.rho = 0.1  # frozen


def test_hull_vertices_in_two_and_three_dimensions():
    # Three constant maps in the plane: K = the three points, hull = the triangle's corners.
    B = np.array([[[0.0], [0.0]], [[1.0], [0.0]], [[0.0], [1.0]]])
    att = ifs_attractor(np.zeros((3, 2, 2)), B, hull=False, tol=1e-6)
    assert len(att.hull_vertices()) == 3
    # Collinear set in 3-D (all J on a line): handled in its affine hull.
    B3 = np.array([[[0.0], [0.0], [0.0]], [[1.0], [1.0], [1.0]], [[2.0], [2.0], [2.0]]])
    att3 = ifs_attractor(np.zeros((3, 3, 3)), B3, hull=False, tol=1e-6)
    np.testing.assert_allclose(att3.hull_vertices().reshape(-1, 3), [[0, 0, 0], [2, 2, 2]],
                               atol=1e-12)
    # A full tetrahedron of 4 constant maps plus its centre.
    B4 = np.concatenate([np.zeros((1, 3, 1)), np.eye(3)[:, :, None], np.full((1, 3, 1), 0.25)])
    att4 = ifs_attractor(np.zeros((5, 3, 3)), B4, hull=False, tol=1e-6)
    assert len(att4.hull_vertices()) == 4


# --------------------------------------------------------------------------------------------
# Failure paths


def test_rho_at_least_one_is_refused():
    A, B = scalars([0.5, 0.5], [0.0, 1.0])
    for rho in (1.0, 1.5):
        with pytest.raises(NotContractingError, match="rho"):
            ifs_attractor(A, B, hull=False, rho=rho)
    with pytest.raises(NotContractingError):
        ifs_attractor(*scalars([1.0, 0.5], [0.0, 1.0]), hull=True)  # measured norm 1


def test_a_claimed_contraction_is_rechecked():
    A, B = scalars([0.9, 0.5], [0.0, 1.0])
    with pytest.raises(NotContractingError) as info:
        ifs_attractor(A, B, hull=False, P=[[1.0]], rho=0.5)
    message = str(info.value)
    assert message.startswith("cv.ifs_attractor") and "vertex 0" in message and "0.9" in message
    # within the floating-point slack it is accepted
    ifs_attractor(A, B, hull=False, rho=0.9 * (1 - 1e-12), tol=1e-2)


@pytest.mark.parametrize("kwargs, error", [
    (dict(A=np.zeros((2, 2, 3)), B=np.zeros((2, 2, 1))), ShapeError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((3, 2, 1))), ShapeError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 3, 1))), ShapeError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), J0=np.zeros((2, 2))), ShapeError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), P=np.eye(3)), ShapeError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), P=[[1, 0], [0, -1]]), InputError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), P=[[1, 1], [0, 1]]), InputError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), hull="yes"), InputError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), tol=0.0), InputError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), tol=float("nan")), InputError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), rho=-0.1), InputError),
    (dict(A=np.zeros((2, 2, 2)), B=np.zeros((2, 2, 1)), max_points=0), InputError),
    (dict(A=np.full((2, 2, 2), np.nan), B=np.zeros((2, 2, 1))), InputError),
])
def test_bad_input(kwargs, error):
    kwargs.setdefault("hull", False)
    with pytest.raises(error) as info:
        ifs_attractor(**kwargs)
    assert str(info.value).startswith("cv.ifs_attractor")


def test_too_many_points_says_what_to_do():
    # the Cantor set at 1e-6 needs about 2^13 intervals: refused at once with a tolerance that
    # the levels already computed show to fit, and that tolerance works
    A, B = scalars([1 / 3, 1 / 3], [0.0, 2 / 3])
    with pytest.raises(SetTooLargeError, match="measured to fit") as info:
        ifs_attractor(A, B, hull=False, tol=1e-6, max_points=100)
    assert isinstance(info.value, ConservativeError) and info.value.suggested_tol > 1e-6
    fits = ifs_attractor(A, B, hull=False, tol=info.value.suggested_tol, max_points=100)
    assert len(fits.intervals) <= 100 and fits.hausdorff_bound <= info.value.suggested_tol
    A3 = np.array([np.diag([0.5, 0.5]), np.diag([0.5, -0.5]), [[0.0, 0.5], [0.5, 0.0]]])
    with pytest.raises(SetTooLargeError, match="max_points"):
        ifs_attractor(A3, np.ones((3, 2, 1)) * [[[1.0]], [[0.0]], [[-1.0]]], hull=True,
                      tol=1e-3, max_points=10_000)


def test_non_strict_mode_enlarges_the_tolerance_and_warns():
    A, B = scalars([1 / 3, 1 / 3], [0.0, 2 / 3])
    with pytest.warns(RuntimeWarning, match="max_points=100"):
        att = ifs_attractor(A, B, hull=False, tol=1e-6, max_points=100, strict=False)
    assert len(att.intervals) <= 100 and att.tol > 1e-6
    assert att.hausdorff_bound <= att.tol
    assert excess(cantor_reference(), att.points) <= att.points_bound + 3.0 ** -CANTOR_DEPTH
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning, nothing changed when it fits
        coarse = ifs_attractor(A, B, hull=False, tol=1e-2, max_points=1000, strict=False)
    assert coarse.tol == 1e-2


def test_tolerance_below_rounding_is_refused():
    with pytest.raises(InputError, match="floating-point"):
        ifs_attractor(*scalars([0.5, 0.5], [0.0, 1e6]), hull=False, tol=1e-12)


@pytest.mark.slow
def test_hull_with_more_vertices_than_dimension_plus_one_meets_its_bound():
    # a ReLU layer at a kink: four vertices in a 2-D Jacobian space, so the polytopes are
    # filled through their triangles (Caratheodory); compare with a finer run
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    D = [np.diag(d) for d in ([0, 0], [0, 1], [1, 0], [1, 1])]
    A = np.array([d @ W for d in D])
    B = np.array([d @ np.ones((2, 1)) for d in D])
    P = np.array([[0.61705853, 0.2133256], [0.2133256, 0.88876118]])
    coarse = ifs_attractor(A, B, hull=True, P=P, rho=0.41, tol=0.3)
    fine = ifs_attractor(A, B, hull=True, P=P, rho=0.41, tol=0.2)
    gap = hausdorff(coarse.points.reshape(len(coarse), -1), fine.points.reshape(len(fine), -1))
    # .points are within points_bound of the attractor (cell centres of a cover are farther
    # from it than the cover itself, whose distance is hausdorff_bound)
    assert gap <= coarse.points_bound + fine.points_bound
    # the hull attractor contains the finite one's points within the bound
    finite = ifs_attractor(A, B, hull=False, P=P, rho=0.41, tol=0.05)
    assert excess(finite.points.reshape(len(finite), -1),
                  coarse.points.reshape(len(coarse), -1)) <= \
        coarse.points_bound + finite.points_bound
