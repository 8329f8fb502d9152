"""Hull attractors of dimension 2 and 3 by set-oriented subdivision: a quadtree / octree cover.

In the Frobenius-orthonormal coordinates y of the attractor's affine hull (``J = o + sum_a y_a
E_a``) the maps are ``y -> M_i y + s_i``. With ``hull=True`` the Hutchinson operator maps a cell
(a box C) into ``Psi(C) = conv{M_i v + s_i : i, v a corner of C}``, a superset of ``Phi(C)``.
Following the subdivision algorithm of Dellnitz and Junge (GAIO), the engine keeps a cover of
cubes of a dyadic grid over a box that contains the attractor K*, and refines only where needed:

* **Outer cover.** Each step keeps the cells that meet the image of the current cover. A cell is
  dropped only when a direction w separates it from ``Psi(C)`` (the support of ``Psi(C)`` in w
  is computed exactly from the corners, inflated by a bound ``delta`` on the rounding): the
  separating-axis test over a direction set that holds the axes, the face normals of the
  parallelograms / parallelepipeds ``M_i C + s_i`` and a uniform set. No cell that meets the
  image is dropped, so K* (= Phi(K*) inside the image of any cover of K*) stays covered.
* **Inner cells.** A cell is *proved inside* K* when it lies, with margin ``delta``, in a
  convex set known to lie in K*: ``P(v) = conv{M_i v + s_i}`` for v the fixed point of map 0 or
  a corner of an inner cell (``Phi(K*) = K*`` contains ``P(v)`` for every v in K*), or
  ``M_i C + s_i`` for an inner cell C. Containment in a polytope is decided on all its facet
  normals (every normal of d points of it: a superset of the facets). Inner cells are never
  subdivided; only cells on the boundary reach the finest level.
* **The bound.** K* lies in the cover and every inner cell lies in K*, so the Hausdorff distance
  between the cover and K* is at most the largest distance from a boundary cell to the inner
  cells: for each boundary cell the largest distance from its corners (a box's points are
  farthest from a convex set at a corner) to one nearby inner cell, minimised over a few.

Rounding is modelled, as in the epsilon-net: ``delta`` is a multiple of the unit roundoff
times the sizes involved (and the condition of the frame); each test is inflated by it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .._exact import solve_exact
from ..errors import SetTooLargeError, fail_message

__all__ = ["CellResult", "HullFrame", "cell_attractor", "box_distance", "subdivide"]

_U = np.finfo(float).eps
_BITS = 20                  # bits per coordinate in a cell code (levels <= 20)
_CHUNK = 1 << 17


@dataclass(frozen=True)
class CellResult:
    """Boxes (N, 2, D) of the cover in frame coordinates and their proved Hausdorff bound."""

    boxes: np.ndarray
    inner: np.ndarray
    bound: float
    iterations: int
    complete: bool
    side: float
    frame: np.ndarray        # (D, n, m): J = origin + sum_a y_a frame[a]
    tol: float


class _Grid:
    """Dyadic cubes over a root cube: level l has side ``S / 2**l``, keys in [0, 2**l)^D."""

    def __init__(self, lo: np.ndarray, S: float, D: int):
        self.lo, self.S, self.D = lo, S, D
        self.inner: dict[int, np.ndarray] = {}       # level -> sorted codes of inner cells
        self.fresh: list = []                        # (level, keys) found since the last look

    def side(self, level):
        return self.S / 2.0 ** level

    def centres(self, keys, level):
        s = self.side(level)
        return self.lo + (keys + 0.5) * s, s / 2

    def code(self, keys):
        c = np.zeros(len(keys), dtype=np.int64)
        for a in range(self.D):
            c |= keys[:, a].astype(np.int64) << (_BITS * a)
        return c

    def decode(self, codes):
        mask = (1 << _BITS) - 1
        return np.stack([(codes >> (_BITS * a)) & mask for a in range(self.D)], axis=1)

    def in_inner(self, keys, level):
        """Whether each cell (keys at level) lies in an inner cell (itself or an ancestor)."""
        out = np.zeros(len(keys), dtype=bool)
        for lv, codes in self.inner.items():
            if lv <= level and len(codes):
                c = self.code(keys >> (level - lv))
                pos = np.clip(np.searchsorted(codes, c), 0, len(codes) - 1)
                out |= codes[pos] == c
        return out

    def add_inner(self, keys, level):
        self.fresh.append((level, keys))
        codes = np.unique(np.concatenate([self.inner.get(level, np.zeros(0, np.int64)),
                                          self.code(keys)]))
        self.inner[level] = codes

    def inner_boxes(self):
        out = []
        for lv, codes in sorted(self.inner.items()):
            c, h = self.centres(self.decode(codes), lv)
            out.append(np.stack([c - h, c + h], axis=1))
        return np.concatenate(out) if out else np.zeros((0, 2, self.D))

    def merge_inner(self):
        """Replace 2**D inner siblings by their parent, from the finest level up."""
        for level in sorted(self.inner, reverse=True):
            if level == 0:
                continue
            codes = self.inner[level]
            parents = self.code(self.decode(codes) >> 1)
            uniq, counts = np.unique(parents, return_counts=True)
            full = uniq[counts == 2 ** self.D]
            if len(full):
                self.inner[level] = codes[~np.isin(parents, full)]
                self.inner[level - 1] = np.union1d(self.inner.get(level - 1,
                                                                  np.zeros(0, np.int64)), full)


class _Polys:
    """Convex sets by supports h (P, f) in directions F (P, f, D) (or shared F (f, D)), with
    bounding boxes and supports hW (P, w) in the shared directions of the search tree."""

    def __init__(self, F, h, lo, hi, hW=None):
        self.F, self.h, self.lo, self.hi = F, h, lo, hi
        self.hW = h if hW is None else hW

    def dirs(self, p):
        return self.F if self.F.ndim == 2 else self.F[p]

    def excess(self, p, c, half):
        """max over the box (centre c, half side) of F.x - h, and min of F.x - h, per pair."""
        F = self.dirs(p)
        if F.ndim == 2:
            mid = c @ F.T - self.h[p]
            spread = half[:, None] * np.abs(F).sum(axis=1)[None]
        else:
            mid = np.einsum("pfd,pd->pf", F, c) - self.h[p]
            spread = half[:, None] * np.abs(F).sum(axis=2)
        return mid + spread, mid - spread


def _morton(q, D):
    """Z-order codes of non-negative integer coordinates q (N, D) below 2**10."""
    code = np.zeros(len(q), dtype=np.int64)
    for bit in range(10):
        for a in range(D):
            code |= ((q[:, a] >> bit) & 1).astype(np.int64) << (bit * D + a)
    return code


class _Tree:
    """A bounding-volume hierarchy over convex sets with supports h (N, f) in shared unit
    directions W, in the Z-order of their anchors: level j groups 2**j consecutive sets, and a
    group's supports are the maxima of its members' (those of the hull of their union), so a
    cell separated from a group's hull is separated from every member."""

    def __init__(self, h, anchors, lo, S):
        D = anchors.shape[1]
        q = np.clip(((anchors - lo) / S * 1024).astype(np.int64), 0, 1023)
        self.order = np.argsort(_morton(q, D), kind="stable")
        size = 1 << max(0, math.ceil(math.log2(max(len(h), 1))))
        H = np.full((size, h.shape[1]), -np.inf)
        H[:len(h)] = h[self.order]
        self.levels = [H]
        while len(H) > 1:
            H = np.maximum(H[0::2], H[1::2])
            self.levels.append(H)


def _search(tree, W, c, half, delta, *, contain, cap=8):
    """:func:`_search_chunk` over chunks of cells (bounded memory)."""
    out = [[], [], []]
    step = 8192
    for a in range(0, len(c), step):
        node, member, capped = _search_chunk(tree, W, c[a:a + step], half[a:a + step], delta,
                                             contain=contain, cap=cap)
        out[0].append(node + a)
        out[1].append(member)
        out[2].append(capped)
    if not out[0]:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return tuple(np.concatenate(x) for x in out)


def _search_chunk(tree, W, c, half, delta, *, contain, cap=8):
    node = np.arange(len(c))
    grp = np.zeros(len(c), dtype=np.int64)
    capped = np.zeros(len(c), dtype=bool)
    cW = c @ W.T                                          # (N, f)
    spread = half[0] * np.abs(W).sum(axis=1) if len(c) else 0.0   # one level: one half side
    for j in range(len(tree.levels) - 1, -1, -1):
        mid = cW[node] - tree.levels[j][grp]
        ok = np.all(mid <= -delta - spread, axis=1) if contain else \
            np.all(mid <= delta + spread, axis=1)
        node, grp, mid = node[ok], grp[ok], mid[ok]
        if j == 0 or len(node) == 0:
            break
        first = np.searchsorted(node, node, side="left")      # node stays sorted
        rank = np.arange(len(node)) - first
        if np.any(rank >= cap):
            crowded = np.isin(node, node[rank >= cap])
            capped[node[rank >= cap]] = True
            idx = np.flatnonzero(crowded)
            order = idx[np.lexsort((np.max(mid[idx], axis=1), node[idx]))]
            node_c = node[order]
            rank_c = np.arange(len(order)) - np.searchsorted(node_c, node_c, side="left")
            keep = np.concatenate([np.flatnonzero(~crowded), order[rank_c < cap]])
            keep.sort(kind="stable")
            node, grp = node[keep], grp[keep]
        node, grp = np.repeat(node, 2), (2 * grp[:, None] + np.arange(2)).ravel()
    member = tree.order[np.minimum(grp, len(tree.order) - 1)] if len(grp) else grp
    return node, member, capped


def _directions(M, D):
    """Unit test directions: axes, face normals of the images M_i C, a uniform set."""
    out = []
    if D == 2:
        ang = np.arange(16) * np.pi / 8
        out.append(np.stack([np.cos(ang), np.sin(ang)], axis=1))
        for Mi in M:
            for a in range(2):
                e = Mi[:, a]
                out.append(np.array([[-e[1], e[0]], [e[1], -e[0]]]))
    else:
        grid = np.array([v for v in itertools.product((-1, 0, 1), repeat=3) if any(v)], float)
        out.append(grid)
        eye = np.eye(3)
        for Mi in M:
            for a, b in ((0, 1), (1, 2), (0, 2)):
                n = np.cross(Mi[:, a], Mi[:, b])
                out.append(np.array([n, -n]))
            for a in range(3):
                for c in range(3):
                    n = np.cross(Mi[:, a], eye[c])
                    out.append(np.array([n, -n]))
    W = np.concatenate(out)
    norm = np.linalg.norm(W, axis=1)
    W = W[norm > 1e-12 * max(1.0, norm.max())] / norm[norm > 1e-12 * max(1.0, norm.max()),
                                                       None]
    return np.unique(np.round(W, 12), axis=0)


def _outer_polys(M, s, W, boxes):
    """Supports of Psi(C) = conv{M_i v + s_i} in the directions W, for boxes (N, 2, D)."""
    c = (boxes[:, 0] + boxes[:, 1]) / 2
    half = (boxes[:, 1] - boxes[:, 0]) / 2
    h = np.full((len(c), len(W)), -np.inf)
    lo = np.full(c.shape, np.inf)
    hi = np.full(c.shape, -np.inf)
    for Mi, si in zip(M, s):
        U = W @ Mi                                    # rows M_i^T w
        h = np.maximum(h, c @ U.T + half @ np.abs(U).T + (W @ si)[None])
        centre = c @ Mi.T + si
        spread = half @ np.abs(Mi).T
        lo, hi = np.minimum(lo, centre - spread), np.maximum(hi, centre + spread)
    return _Polys(W, h, lo, hi)


def _point_polys(M, s, V, D, W):
    """P(v) = conv{M_i v + s_i} for points v (N, D), by supports on its facet normals.

    Every facet of the hull of k points is spanned by D of them, so the normals of all D-subsets
    hold the facets; a subset is kept when all points lie on one side of its plane up to a
    tolerance (keeping a non-facet is harmless, dropping a facet is not). A set with a nearly
    degenerate subset (its normal unreliable) is poisoned: it contains nothing.
    """
    pts = np.einsum("kab,nb->nka", M, V) + s[None]          # (N, k, D)
    k = pts.shape[1]
    subsets = np.array(list(itertools.combinations(range(k), D)))
    base = pts[:, subsets[:, 0]]
    if D == 2:
        d = pts[:, subsets[:, 1]] - base
        n = np.stack([-d[..., 1], d[..., 0]], axis=-1)
    else:
        n = np.cross(pts[:, subsets[:, 1]] - base, pts[:, subsets[:, 2]] - base)
    size = np.maximum(np.max(np.ptp(pts, axis=1), axis=1), 1e-300)   # (N,)
    norm = np.linalg.norm(n, axis=2)
    zero = norm == 0                                          # coincident points: no facet
    poisoned = np.any(~zero & (norm < 1e-6 * size[:, None] ** (D - 1)), axis=1)
    n = n / np.where(zero, 1.0, norm)[..., None]
    proj = np.einsum("ntd,nkd->ntk", n, pts)
    v0 = np.einsum("ntd,ntd->nt", n, base)
    eta = 1e-9 * size[:, None]
    up = (proj.max(axis=2) - v0 <= eta) & ~zero
    down = (v0 - proj.min(axis=2) <= eta) & ~zero
    F = np.concatenate([np.where(up[..., None], n, 0.0), np.where(down[..., None], -n, 0.0)],
                       axis=1)
    h = np.concatenate([np.where(up, proj.max(axis=2), np.inf),
                        np.where(down, -proj.min(axis=2), np.inf)], axis=1)
    order = np.argsort(~np.isfinite(h), axis=1, kind="stable")      # facets first
    width = max(1, int(np.max(np.sum(np.isfinite(h), axis=1))) if len(h) else 1)
    order = order[:, :width]
    F = np.take_along_axis(F, order[..., None], axis=1)
    h = np.take_along_axis(h, order, axis=1) - 1e-9 * size[:, None]  # margin: directions
    h[poisoned] = -np.inf
    hW = np.max(np.einsum("nkd,fd->nkf", pts, W), axis=1)
    return _Polys(F, h, pts.min(axis=1), pts.max(axis=1), hW)


def _box_polys(M, s, boxes, D, W):
    """The parallelograms / parallelepipeds M_i C + s_i of boxes C, for invertible M_i."""
    c = (boxes[:, 0] + boxes[:, 1]) / 2
    half = (boxes[:, 1] - boxes[:, 0]) / 2
    Fs, hs, los, his, hWs = [], [], [], [], []
    for Mi, si in zip(M, s):
        scale = max(float(np.max(np.abs(Mi))), 1e-300)
        if abs(np.linalg.det(Mi / scale)) < 1e-6:
            continue
        if D == 2:
            n = np.array([[-Mi[1, a], Mi[0, a]] for a in range(2)])
        else:
            n = np.array([np.cross(Mi[:, a], Mi[:, b]) for a, b in ((1, 2), (0, 2), (0, 1))])
        n = n / np.linalg.norm(n, axis=1, keepdims=True)
        F = np.concatenate([n, -n])
        U = F @ Mi
        centre = c @ Mi.T + si
        Fs.append(np.broadcast_to(F, (len(c),) + F.shape))
        hs.append(centre @ F.T + half @ np.abs(U).T)
        spread = half @ np.abs(Mi).T
        los.append(centre - spread)
        his.append(centre + spread)
        UW = W @ Mi
        hWs.append(centre @ W.T + half @ np.abs(UW).T)
    if not Fs:
        return None
    return _Polys(np.concatenate(Fs), np.concatenate(hs), np.concatenate(los),
                  np.concatenate(his), np.concatenate(hWs))


def _merge(a, b):
    if a is None:
        return b
    if b is None:
        return a
    Fa = a.F if a.F.ndim == 3 else np.broadcast_to(a.F, (len(a.h),) + a.F.shape)
    Fb = b.F if b.F.ndim == 3 else np.broadcast_to(b.F, (len(b.h),) + b.F.shape)
    f = max(Fa.shape[1], Fb.shape[1])

    def pad(F, h):
        extra = f - F.shape[1]
        return (np.concatenate([F, np.zeros((len(F), extra, F.shape[2]))], axis=1),
                np.concatenate([h, np.full((len(h), extra), np.inf)], axis=1))
    Fa, ha = pad(Fa, a.h)
    Fb, hb = pad(Fb, b.h)
    return _Polys(np.concatenate([Fa, Fb]), np.concatenate([ha, hb]),
                  np.concatenate([a.lo, b.lo]), np.concatenate([a.hi, b.hi]),
                  np.concatenate([a.hW, b.hW]))


def _exact_fixed_point(R_q, t_q):
    """The fixed point of c -> R c + t in exact rationals (a solve of (I - R) c = t)."""
    D = len(t_q)
    c = solve_exact([[(1 if a == b else 0) - R_q[a][b] for b in range(D)] for a in range(D)],
                    list(t_q))
    return np.array([float(Fraction(v)) for v in c])


class HullFrame:
    """The maps in orthonormal frame coordinates (``M``, ``s``, the fixed point ``y_star`` of map
    0), a ball ``||y - y_star||_Gy <= radius`` holding K*, the root cube and the rounding slack."""

    def __init__(self, space, P, rho):
        D = space.dimension
        n, m = space.origin.shape
        Q = space.basis.reshape(D, -1)
        LQ = np.linalg.cholesky(Q @ Q.T)
        T = LQ.T
        Tinv = np.linalg.inv(T)
        self.frame = np.linalg.solve(LQ, Q).reshape(D, n, m)
        self.M = np.einsum("ab,kbc,cd->kad", T, space.R, Tinv)
        self.s = space.t @ T.T
        self.D, self.k = D, len(space.R)
        c_star = _exact_fixed_point(space.R_q[0], space.t_q[0])
        self.y_star = T @ c_star
        Qm = space.basis.reshape(D, n, m)
        G = np.einsum("ais,ij,bjs->ab", Qm, P, Qm)
        Gy = Tinv.T @ ((G + G.T) / 2) @ Tinv
        step = np.einsum("kab,b->ka", self.M, self.y_star) + self.s - self.y_star
        radius = float(np.sqrt(np.max(np.einsum("ka,ab,kb->k", step, Gy, step))))
        radius = radius / (1 - min(rho * (1 + 1e-6), 1 - 1e-9)) * 1.01 + 1e-300
        self.Gy, self.radius = Gy, radius
        half = radius * np.sqrt(np.diag(np.linalg.inv(Gy))) * 1.01
        self.S = 2.0 ** math.ceil(math.log2(max(2.2 * float(np.max(half)), 1e-280)))
        # off-centre, so that faces of the attractor through the seed rarely meet cell faces
        self.root_lo = self.y_star - self.S / 2 - self.S * 0.0371
        y_max = float(np.max(np.abs(self.y_star))) + self.S
        kappa = float(np.linalg.cond(T))
        a_max = float(np.max(np.abs(self.M)))
        s_max = float(np.max(np.abs(self.s)))
        self.delta = 64 * (D + self.k + 4) * _U * kappa * (a_max * D * y_max + s_max + y_max)
        self.frame_slack = 64 * _U * kappa ** 2
        # computed points of K* (images of images of exact corners) drift by at most this
        self.point_err = 2 * self.delta * math.sqrt(float(np.linalg.cond(Gy))) / (1 - rho)


def _bound(grid, keys, depth, delta, points, point_err):
    """Largest distance from a boundary cell (keys at ``depth``) to the inner cells and the
    computed points of K*."""
    if len(keys) == 0:
        return 0.0
    inner = grid.inner_boxes()
    if len(points):
        inner = np.concatenate([inner, np.stack([points, points], axis=1)])
        delta = delta + point_err
    if len(inner) == 0:
        return math.inf
    from scipy.spatial import cKDTree
    c, half = grid.centres(keys, depth)
    D = grid.D
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=D)))
    corners = c[:, None] + half * signs[None]                     # (Nb, 2^D, D)
    centres = inner.mean(axis=1)
    cand = [cKDTree(centres).query(c, k=min(6, len(inner)))[1].reshape(len(c), -1)]
    sides = np.max(inner[:, 1] - inner[:, 0], axis=1)
    for side in np.unique(sides):                                # the nearest of each size
        idx = np.flatnonzero(sides == side)
        cand.append(idx[cKDTree(centres[idx]).query(c, k=1)[1]].reshape(-1, 1))
    cand = np.concatenate(cand, axis=1)
    worst = 0.0
    for a in range(0, len(c), _CHUNK // 16):
        cc, kk = corners[a:a + _CHUNK // 16], cand[a:a + _CHUNK // 16]
        lo, hi = inner[kk, 0][:, :, None], inner[kk, 1][:, :, None]   # (b, q, 1, D)
        x = cc[:, None]
        gap = np.linalg.norm(x - np.clip(x, lo, hi), axis=3)          # (b, q, 2^D)
        worst = max(worst, float(np.max(np.min(np.max(gap, axis=2), axis=1))))
    return worst * (1 + 1e-12) + 4 * delta * math.sqrt(D)


def cell_attractor(space, *, P, rho, tol, budget, max_points=None, max_level: int = 16):
    """The cover of the hull attractor of a D = 2, 3 dimensional reduced system (module
    docstring); ``tol`` (Frobenius, None: the finest that fits) bounds the Hausdorff distance.
    Returns None when no cell could be proved inside (the epsilon-net is used instead)."""
    st = HullFrame(space, P, rho)
    D = st.D
    grid = _Grid(st.root_lo, st.S, D)
    W = _directions(st.M, D)
    target = 1 if tol is None else int(np.clip(math.ceil(math.log2(st.S * 4 / tol)), 1,
                                               max_level))
    boundary = np.zeros((1, D), dtype=np.int64)
    points = np.zeros((0, D))
    depth, best, counts, j, at_depth, last = 0, None, [], 0, 0, None
    children = np.array(list(itertools.product((0, 1), repeat=D)), dtype=np.int64)
    while True:
        if budget.expired() and (best is not None or depth == target):
            if best is None:                   # the current cover, with the bound proved for it
                bound = _bound(grid, boundary, depth, st.delta, points, st.point_err)
                if not math.isfinite(bound):
                    return None
                boxes = np.concatenate([grid.inner_boxes(), _boxes(grid, boundary, depth)])
                n_inner = len(boxes) - len(boundary)
                best = CellResult(boxes, np.arange(len(boxes)) < n_inner,
                                  bound * (1 + st.frame_slack), j, True, grid.side(depth),
                                  st.frame, tol if tol is not None else bound)
            return _partial(best)
        new_depth = min(depth + 1, target)
        old = np.concatenate([grid.inner_boxes(), _boxes(grid, boundary, depth)])
        cand = boundary
        if new_depth > depth:
            cand = (2 * np.repeat(boundary, len(children), axis=0)
                    + np.tile(children, (len(boundary), 1)))
        inside, points = _inner_step(grid, st, W, cand, new_depth, points,
                                     4 * len(cand) + 64)
        if np.any(inside):
            grid.add_inner(cand[inside], new_depth)
            grid.merge_inner()
        rest = cand[~inside]
        boundary = rest[_outer_step(grid, st, W, old, rest, new_depth)]
        at_depth = at_depth + 1 if new_depth == depth else 0
        depth, j = new_depth, j + 1
        n_inner = sum(len(v) for v in grid.inner.values())
        budget.tick(len(boundary) + n_inner)
        if n_inner == 0 and depth >= 6:
            return None                        # no interior found: the epsilon-net instead
        if max_points is not None and 2 ** (D - 1) * len(boundary) + n_inner > max_points:
            if tol is None or best is not None and best.bound <= tol:
                return best
            raise SetTooLargeError(fail_message(
                budget.call, f"tol={tol:.3g}, whose cover needs more than max_points="
                f"{max_points} cells (measured {len(boundary) + n_inner} at cells of side "
                f"{grid.side(depth):.3g})", (f"pass tol >= {best.bound:.3g} (a level measured "
                                             "to fit), " if best is not None else "") +
                "tol=None for the finest that fits, or a larger max_points"),
                suggested_tol=None if best is None else best.bound)
        if depth < target:
            continue
        bound = _bound(grid, boundary, depth, st.delta, points, st.point_err) * \
            (1 + st.frame_slack)
        settled = last is not None and not bound < 0.98 * last or at_depth >= 25
        improved = math.isfinite(bound) and (best is None or bound < best.bound)
        last = bound
        if improved:
            boxes = np.concatenate([grid.inner_boxes(), _boxes(grid, boundary, depth)])
            best = CellResult(boxes, np.arange(len(boxes)) < n_inner, bound, j, True,
                              grid.side(depth), st.frame, tol if tol is not None else bound)
        if best is not None and tol is not None and best.bound <= tol:
            return best
        if not settled:
            continue
        if depth >= 6 and not bound <= 7 * grid.side(depth):
            return None           # a boundary layer many cells thick: the subdivision stalls
        counts.append(len(boundary) + n_inner)
        if target >= max_level:
            return best
        if max_points is not None and len(boundary) + n_inner > max_points:
            return best
        if best is not None and not budget.allows(counts[-1], counts, "cells", tol,
                                                  achieved=best.bound, suggestion=best.bound):
            return best
        target, last = target + 1, None


def _boxes(grid, keys, level):
    c, h = grid.centres(keys, level)
    return np.stack([c - h, c + h], axis=1)


def _partial(best):
    return CellResult(best.boxes, best.inner, best.bound, best.iterations, False, best.side,
                      best.frame, best.tol)


def _inner_step(grid, st, W, keys, level, points, limit):
    """Which cells (keys at level) lie, with margin, in one convex set known to lie in K*, and
    the next computed points of K* outside the inner cells (images of corners and points)."""
    inner = grid.inner_boxes()
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=st.D)))
    c = inner.mean(axis=1)
    half = (inner[:, 1] - inner[:, 0]) / 2
    corners = np.unique(np.concatenate([(c[:, None] + half[:, None] * signs[None])
                                        .reshape(-1, st.D), st.y_star[None], points]), axis=0)
    images = (np.einsum("kab,nb->nka", st.M, corners) + st.s[None]).reshape(-1, st.D)
    q = np.floor((images - grid.lo) / grid.side(level)).astype(np.int64)
    ok = np.all((q >= 0) & (q < 2 ** level), axis=1)
    images, q = images[ok], q[ok]
    out = ~grid.in_inner(q, level)
    _, first = np.unique(grid.code(q[out]), return_index=True)
    new_points = images[out][first][:limit]
    polys = _merge(_point_polys(st.M, st.s, corners, st.D, W),
                   _box_polys(st.M, st.s, inner, st.D, W) if len(inner) else None)
    tree = _Tree(polys.hW, (polys.lo + polys.hi) / 2, grid.lo, grid.S)
    cc, h = grid.centres(keys, level)
    hv = np.full(len(cc), h)
    inside = np.zeros(len(cc), dtype=bool)
    todo = np.arange(len(cc))
    margin = st.delta + 4 * st.point_err
    for cap in (4, 64):
        node, member, capped = _search(tree, W, cc[todo], hv[todo], margin, contain=True,
                                       cap=cap)
        node = todo[node]
        for a in range(0, len(node), _CHUNK):
            nn, mm = node[a:a + _CHUNK], member[a:a + _CHUNK]
            hi_ex, _ = polys.excess(mm, cc[nn], hv[nn])
            inside[nn[np.all(hi_ex <= -margin, axis=1)]] = True
        todo = todo[capped & ~inside[todo]]
        if len(todo) == 0:
            break
    return inside, new_points


def _outer_step(grid, st, W, old, keys, level):
    """Which cells (keys at level) may meet the image of the cover ``old`` (boxes): those not
    separated from every Psi(C), or whose search was capped (kept: that is always sound)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=bool)
    outer = _outer_polys(st.M, st.s, W, old)
    tree = _Tree(outer.h, (outer.lo + outer.hi) / 2, grid.lo, grid.S)
    c, h = grid.centres(keys, level)
    meets = np.zeros(len(c), dtype=bool)
    todo = np.arange(len(c))
    for cap in (4, 64, 1024):              # a wider search for the cells not yet decided
        node, _, capped = _search(tree, W, c[todo], np.full(len(todo), h), st.delta,
                                  contain=False, cap=cap)
        meets[todo[node]] = True
        todo = todo[capped & ~meets[todo]]
        if len(todo) == 0:
            break
    meets[todo] = True                     # undecided: kept, which is always sound
    return meets


def box_distance(y: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Euclidean distance from each point y (Q, D) to the union of boxes (N, 2, D), exactly.

    Boxes of one size are searched by their centres: a box whose centre is at distance r from
    y is at distance at least r minus its half-diagonal, so the k nearest centres settle y once
    the k-th is that far beyond the best distance found; k doubles for the points not settled.
    """
    from scipy.spatial import cKDTree
    y = np.asarray(y, dtype=float)
    best = np.full(len(y), np.inf)
    if len(boxes) == 0 or len(y) == 0:
        return best
    sides = np.max(boxes[:, 1] - boxes[:, 0], axis=1)
    groups = [np.flatnonzero(sides == s) for s in np.unique(sides)]
    trees = [cKDTree(boxes[g].mean(axis=1)) for g in groups]
    radii = [float(np.max(np.linalg.norm((boxes[g, 1] - boxes[g, 0]) / 2, axis=1)))
             for g in groups]
    todo = [np.arange(len(y)) for _ in groups]
    k = 8
    while any(len(t) for t in todo):
        for gi, (g, tree, r) in enumerate(zip(groups, trees, radii)):
            q = todo[gi]
            if len(q) == 0:
                continue
            kk = min(k, len(g))
            dist, idx = tree.query(y[q], k=kk)
            dist, idx = dist.reshape(len(q), kk), idx.reshape(len(q), kk)
            lo, hi = boxes[g[idx], 0], boxes[g[idx], 1]
            x = y[q][:, None]
            gap = np.linalg.norm(x - np.clip(x, lo, hi), axis=2).min(axis=1)
            best[q] = np.minimum(best[q], gap)
            settled = (kk == len(g)) | (dist[:, -1] - r >= best[q])
            todo[gi] = q[~settled]
        k *= 4
    return best


def subdivide(boxes: np.ndarray, side: float) -> np.ndarray:
    """Centres of the sub-cubes of side ``side`` (a power-of-two fraction of each box's side)
    that tile the boxes (N, 2, D)."""
    D = boxes.shape[2]
    out = []
    sides = boxes[:, 1, 0] - boxes[:, 0, 0]
    for s in np.unique(sides):
        b = boxes[sides == s]
        n = max(1, int(round(s / side)))
        offs = (np.array(list(itertools.product(range(n), repeat=D))) + 0.5) * (s / n)
        out.append((b[:, None, 0] + offs[None]).reshape(-1, D))
    return np.concatenate(out) if out else np.zeros((0, D))
