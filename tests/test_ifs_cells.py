"""The quadtree / octree cover of hull attractors in dimensions 2 and 3 (issue 11), against
closed forms and an independent chaos game."""

import itertools

import numpy as np
import pytest

import conservative as cv
from conservative.derivatives.attractor import ifs_attractor
from conservative.derivatives._ifs_cells import box_distance


def chaos_game_hull(A, B, steps, seed=0, burn=200):
    """Random convex combinations of the maps, from the fixed point of map 0 (in K*): half of
    the steps a vertex map (runs of them reach the extreme points), half uniform weights."""
    rng = np.random.default_rng(seed)
    k, n, _ = A.shape
    J = np.linalg.solve(np.eye(n) - A[0], B[0])
    out = []
    for s in range(steps):
        w = rng.dirichlet(np.ones(k)) if rng.random() < 0.5 else np.eye(k)[rng.integers(k)]
        J = np.einsum("i,ijk->jk", w, A) @ J + np.einsum("i,ijk->jk", w, B)
        if s >= burn:
            out.append(J.copy())
    return np.array(out)


def cube_system(D):
    corners = np.array(list(itertools.product((0.0, 1.0), repeat=D)))
    return np.array([np.eye(D) / 2] * len(corners)), corners[:, :, None]


def box_excess_over_cube(boxes, side):
    """Largest distance from a box (its farthest corner) to the cube [0, side]^D."""
    far = np.maximum(np.abs(boxes[:, 0] - side / 2), np.abs(boxes[:, 1] - side / 2)) - side / 2
    return float(np.max(np.linalg.norm(np.maximum(far, 0.0), axis=1)))


def force_cells(monkeypatch):
    """One linear part, or product vertex sets whose rows keep their order, are polytopes by
    default (tests/test_ifs_polytope.py): the cells are forced."""
    import importlib
    engine = importlib.import_module("conservative.derivatives.attractor")
    monkeypatch.setattr(engine, "one_linear_part", lambda space: False)
    monkeypatch.setattr(engine, "row_structure", lambda A, B: None)


@pytest.mark.parametrize("D, tol", [(2, 0.05), (3, 0.6)])
def test_half_plus_the_unit_cube_is_the_cube_of_side_two(D, tol, monkeypatch):
    force_cells(monkeypatch)
    A, B = cube_system(D)
    att = ifs_attractor(A, B, hull=True, tol=tol)
    assert att.kind == "cells" and att.dimension == D and att.hausdorff_bound <= tol
    boxes = att.cells
    np.testing.assert_allclose(np.abs(att.frame.reshape(D, D)), np.eye(D))   # y = J here
    # every cell is within the bound of the cube, the cells proved inside lie in it
    assert box_excess_over_cube(boxes, 2.0) <= att.hausdorff_bound
    inner = boxes[att.cell_inner]
    assert len(inner) and np.all(inner[:, 0] >= 0) and np.all(inner[:, 1] <= 2)
    # the cube is covered: a grid of its points (faces and corners included) lies in the cells
    g = np.stack(np.meshgrid(*[np.linspace(0, 2, 17)] * D), -1).reshape(-1, D)
    assert np.all(box_distance(g, boxes) == 0.0)
    assert np.all(att.contains(g.reshape(-1, D, 1)))
    far = np.ones((1, D))
    far[0, 0] = 2.0 + 2.1 * att.hausdorff_bound + 1e-9      # 2.1 bounds from K*: not in it
    assert not att.contains(far.reshape(1, D, 1))[0]
    # the cover is thin where the cube is: its volume exceeds 2^D by a boundary layer only
    volume = float(np.sum(np.prod(boxes[:, 1] - boxes[:, 0], axis=1)))
    assert 2.0 ** D <= volume <= (2.0 + 2 * att.hausdorff_bound) ** D
    assert att.points_bound >= att.hausdorff_bound


def test_relu_layer_cover_holds_the_chaos_game_and_stays_near_it(monkeypatch):
    force_cells(monkeypatch)
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    F = cv.trace(lambda z, t: cv.relu(W @ z + t), (2,), ())
    att = cv.attractor(F, 0.0, np.zeros(2), hull=True, tol=0.01)
    assert att.kind == "cells" and att.hausdorff_bound <= 0.01
    AB = F.jacobian(np.zeros(2), 0.0, hull=False).vertices
    samples = chaos_game_hull(AB[:, :, :2], AB[:, :, 2:], steps=50_000)
    # K* lies in the cover: every chaos-game point is in a cell (distance 0 up to rounding)
    assert np.max(att.distance(samples)) <= 1e-12
    # support function in closed form: the maps are J -> D (W J + 1), D diagonal in [0, 1]^2,
    # so h(v) = max_{x in K*} v.x = v+ . 1 + h(W^T v+), summed along v_{k+1} = W^T v_k+
    def support(v):
        total, u = 0.0, v.copy()
        for _ in range(200):
            u = np.maximum(u, 0.0)
            total += u.sum()
            u = W.T @ u
        return total
    ang = np.linspace(0, 2 * np.pi, 181)
    V = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    h = np.array([support(v) for v in V])
    all_c = att.cells.reshape(-1, 2)
    inner_c = att.cells[att.cell_inner].reshape(-1, 2)
    assert np.all(np.max(inner_c @ V.T, axis=0) <= h + 1e-9)      # inside the hull of K*
    reach = np.max(all_c @ V.T, axis=0)
    assert np.all(reach >= h - 1e-9)                              # covers K*
    assert np.all(reach <= h + att.hausdorff_bound + 1e-9)        # and no farther than bound
    hull_v = att.hull_vertices().reshape(-1, 2)
    lo, hi = att.bounding_box()
    assert np.all(samples.reshape(-1, 2) >= lo.ravel() - 1e-12)
    assert np.all(samples.reshape(-1, 2) <= hi.ravel() + 1e-12)
    assert len(hull_v) >= 3
    # the support-function brackets agree with the cover to within its bound
    rlo, rhi = att.bounding_box(rigorous=True)
    assert np.all(np.abs(rhi - hi) <= att.hausdorff_bound + 1e-9)
    assert np.all(np.abs(rlo - lo) <= att.hausdorff_bound + 1e-9)


def test_defaults_pick_the_cover_and_report_the_tolerance(monkeypatch):
    force_cells(monkeypatch)
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    F = cv.trace(lambda z, t: cv.relu(W @ z + t), (2,), ())
    att = cv.attractor(F, 0.0, np.zeros(2))
    assert att.kind == "cells" and att.tol == att.hausdorff_bound < 0.1
    assert "cells" in repr(att) and att.to_dict()["kind"] == "cells"
    pts = att.points.reshape(-1, 2)
    assert len(pts) >= len(att.cells) // 4
    assert np.max(att.distance(att.points)) <= 1e-12        # centres lie in their cells


def test_box_distance_is_exact():
    rng = np.random.default_rng(1)
    lo = rng.uniform(-1, 1, (300, 2))
    side = rng.choice([0.01, 0.04, 0.16], 300)
    boxes = np.stack([lo, lo + side[:, None]], axis=1)
    y = rng.uniform(-2, 2, (500, 2))
    brute = np.min(np.linalg.norm(y[:, None] - np.clip(y[:, None], boxes[None, :, 0],
                                                        boxes[None, :, 1]), axis=2), axis=1)
    np.testing.assert_allclose(box_distance(y, boxes), brute, rtol=0, atol=1e-15)
