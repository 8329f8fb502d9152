"""Tests of conservative.distances: Hausdorff distance, excess, epsilon-nets."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conservative.distances import excess, hausdorff, net_merge, net_snap
from conservative.errors import InputError, ShapeError


def brute_excess(X, Y, P=None):
    """sup_x min_y ||x - y||_P by the formula, on (N, n, m) arrays."""
    D = X[:, None] - Y[None]  # (N1, N2, n, m)
    P = np.eye(X.shape[1]) if P is None else P
    sq = np.einsum("abim,ij,abjm->ab", D, P, D)
    return float(np.max(np.sqrt(np.min(np.maximum(sq, 0), axis=1))))


def random_spd(rng, n):
    M = rng.standard_normal((n, n))
    return M @ M.T + 0.5 * np.eye(n)


sets = st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 3), st.integers(1, 2),
                 st.integers(0, 2**32 - 1), st.booleans())


@settings(max_examples=40, deadline=None)
@given(sets)
def test_distances_match_brute_force(params):
    n1, n2, n, m, seed, weighted = params
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n1, n, m))
    Y = rng.standard_normal((n2, n, m)) * 2
    P = random_spd(rng, n) if weighted else None
    exy, eyx = brute_excess(X, Y, P), brute_excess(Y, X, P)
    assert excess(X, Y, norm_matrix=P) == pytest.approx(exy, rel=1e-9, abs=1e-12)
    assert excess(Y, X, norm_matrix=P) == pytest.approx(eyx, rel=1e-9, abs=1e-12)
    assert hausdorff(X, Y, norm_matrix=P) == pytest.approx(max(exy, eyx), rel=1e-9, abs=1e-12)
    assert hausdorff(X, X, norm_matrix=P) == 0.0


def test_flat_vectors_are_column_matrices():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((7, 3)), rng.standard_normal((5, 3))
    P = random_spd(rng, 3)
    assert hausdorff(X, Y, norm_matrix=P) == pytest.approx(
        hausdorff(X[:, :, None], Y[:, :, None], norm_matrix=P))
    assert excess(X, Y) == pytest.approx(brute_excess(X[:, :, None], Y[:, :, None]))


def test_weighted_norm_is_trace_formula():
    # ||J||_P^2 = trace(J^T P J); for J = e_1 (column) and P = diag(4, 1) it is 4.
    assert hausdorff([[[1.0], [0.0]]], [[[0.0], [0.0]]], norm_matrix=np.diag([4.0, 1.0])) == 2.0
    J = np.array([[[1.0, 2.0], [3.0, -1.0]]])
    P = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert excess(J, np.zeros((1, 2, 2)), norm_matrix=P) == pytest.approx(
        np.sqrt(np.trace(J[0].T @ P @ J[0])))


def test_excess_is_one_sided():
    X = [[0.0], [1.0]]
    Y = [[0.0], [0.5], [1.0], [3.0]]
    assert excess(X, Y) == 0.0
    assert excess(Y, X) == 2.0
    assert hausdorff(X, Y) == 2.0


def test_large_sets_are_chunked():
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, size=(150_000, 1))
    Y = np.linspace(0, 1, 101)[:, None]
    assert excess(X, Y) <= 0.005 + 1e-15
    assert excess(Y, X) < 1e-3


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 3), st.floats(0.01, 2.0), st.integers(0, 2**32 - 1),
       st.booleans())
def test_net_merge_covers_within_radius(N, n, radius, seed, weighted):
    rng = np.random.default_rng(seed)
    pts = rng.standard_normal((N, n, 1))
    P = random_spd(rng, n) if weighted else None
    kept, index = net_merge(pts, radius, norm_matrix=P, return_index=True)
    np.testing.assert_array_equal(kept, pts[index])  # a subset, in input order
    assert np.all(np.diff(index) > 0)
    assert brute_excess(pts, kept, P) <= radius * (1 + 1e-12)
    # merging again changes nothing (same grid), merging merged halves covers the union
    np.testing.assert_array_equal(net_merge(kept, radius, norm_matrix=P), kept)
    half = N // 2
    if half:
        union = np.concatenate([net_merge(pts[:half], radius, norm_matrix=P),
                                net_merge(pts[half:], radius, norm_matrix=P)])
        assert brute_excess(pts, net_merge(union, radius, norm_matrix=P), P) <= radius * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 3), st.integers(1, 2), st.floats(0.01, 2.0),
       st.integers(0, 2**32 - 1), st.booleans())
def test_net_snap_is_within_radius(N, n, m, radius, seed, weighted):
    rng = np.random.default_rng(seed)
    pts = rng.standard_normal((N, n, m))
    P = random_spd(rng, n) if weighted else None
    snapped = net_snap(pts, radius, norm_matrix=P)
    assert snapped.shape[1:] == (n, m) and len(snapped) <= N
    assert hausdorff(snapped, pts, norm_matrix=P) <= radius * (1 + 1e-9)


def test_net_snap_keeps_isolated_and_repeated_points_exact():
    pts = np.array([[0.0], [0.0], [1.0], [1.0 + 1e-3], [3.0], [3.1], [3.2], [3.3]])
    snapped = net_snap(pts, 0.25)
    assert {0.0, 1.0}.issubset(set(snapped.ravel()))  # within 0.25 of their whole cube
    # the cube [3, 3.5) holds 3.0 ... 3.3, not all within 0.25 of 3.0: replaced by its centre
    np.testing.assert_array_equal(snapped.ravel(), [0.0, 1.0, 3.25])
    assert hausdorff(snapped, pts) <= 0.25
    line = np.linspace(0, 1, 100_001)[:, None]
    assert len(net_snap(line, 0.01)) <= 51  # cubes of diameter 2 * radius
    big = np.random.default_rng(4).uniform(0, 1, size=(700_000, 2))  # more than one chunk
    assert hausdorff(net_snap(big, 0.05), big[::7]) <= 0.05 + 1e-12


def test_net_merge_size_is_set_by_geometry():
    pts = np.linspace(0, 1, 100_001)[:, None]
    kept = net_merge(pts, 0.01)
    assert 99 <= len(kept) <= 102
    assert excess(pts, kept) <= 0.01
    many = np.random.default_rng(3).uniform(0, 1, size=(700_000, 2))  # more than one chunk
    kept = net_merge(many, 0.1)
    assert len(kept) <= 15**2
    assert excess(many[::50], kept) <= 0.1


@pytest.mark.parametrize("call", [
    lambda: hausdorff(np.zeros((3, 2)), np.zeros((3, 3))),
    lambda: hausdorff(np.zeros(3), np.zeros(3)),
    lambda: excess(np.zeros((2, 2, 1)), np.zeros((2, 1, 2))),
    lambda: hausdorff(np.zeros((3, 2, 1)), np.zeros((3, 2, 1)), norm_matrix=np.eye(3)),
    lambda: net_merge(np.zeros((0, 2)), 0.1),
    lambda: net_snap(np.zeros(4), 0.1),
])
def test_shape_errors(call):
    with pytest.raises(ShapeError):
        call()


@pytest.mark.parametrize("call, needle", [
    (lambda: excess(np.zeros((0, 2)), np.zeros((3, 2))), "empty"),
    (lambda: hausdorff(np.zeros((2, 2)), np.zeros((2, 2)), norm_matrix=[[1, 2], [0, 1]]),
     "symmetric"),
    (lambda: hausdorff(np.zeros((2, 2)), np.zeros((2, 2)), norm_matrix=[[1, 0], [0, -1]]),
     "positive definite"),
    (lambda: net_merge(np.zeros((2, 2)), 0.0), "radius"),
    (lambda: net_merge(np.zeros((2, 2)), float("nan")), "radius"),
    (lambda: net_snap(np.zeros((2, 2)), -1.0), "radius"),
    (lambda: net_merge(np.array([[1e300]]), 1e-300), "overflow"),
    (lambda: hausdorff(np.zeros((2, 2), dtype=complex), np.zeros((2, 2))), "complex"),
])
def test_input_errors_name_the_call(call, needle):
    with pytest.raises(InputError, match=needle) as info:
        call()
    assert str(info.value).startswith("cv.")
