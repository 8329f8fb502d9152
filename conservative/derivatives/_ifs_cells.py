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

__all__ = ["CellResult", "cell_attractor"]

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

    def start(self, lo, hi, depth):
        """Pairs (poly, keys, level) of the cells at each polytope's start level that meet its
        bounding box [lo, hi]: the finest level whose side exceeds the box's extent."""
        extent = np.maximum(np.max(hi - lo, axis=1), 1e-300)
        lv = np.clip(np.floor(np.log2(self.S / extent)).astype(np.int64), 0, depth)
        out = []
        for level in np.unique(lv):
            idx = np.flatnonzero(lv == level)
            s, top = self.side(level), 2 ** int(level) - 1
            k0 = np.clip(np.floor((lo[idx] - self.lo) / s), 0, top).astype(np.int64)
            k1 = np.clip(np.floor((hi[idx] - self.lo) / s), 0, top).astype(np.int64)
            for off in itertools.product(range(3), repeat=self.D):
                keys = k0 + np.array(off)
                ok = np.all(keys <= k1, axis=1)
                out.append((int(level), idx[ok], keys[ok]))
        return out


class _Polys:
    """Convex sets by supports h (P, f) in directions F (P, f, D) (or shared F (f, D)), with
    bounding boxes; ``outer`` sets test meeting, inner sets test containment."""

    def __init__(self, F, h, lo, hi):
        self.F, self.h, self.lo, self.hi = F, h, lo, hi

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


def _descend(grid, polys, depth, delta, *, inner):
    """Level-by-level pairs (cell, polytope). Outer: the cells at ``depth`` that meet some
    polytope (not inside inner cells); a cell inside one polytope is *covered* and carries no
    pairs (all its descendants meet it). Inner: adds the cells contained in some polytope."""
    D = grid.D
    starts = grid.start(polys.lo - delta, polys.hi + delta, depth)
    carry = (np.zeros(0, np.int64), np.zeros((0, D), np.int64))
    covered = np.zeros((0, D), np.int64)
    children = np.array(list(itertools.product((0, 1), repeat=D)), dtype=np.int64)
    for level in range(depth + 1):
        p = np.concatenate([carry[0]] + [q for lv, q, _ in starts if lv == level])
        keys = np.concatenate([carry[1]] + [k for lv, _, k in starts if lv == level])
        live = ~grid.in_inner(keys, level) if len(p) else np.zeros(0, bool)
        p, keys = p[live], keys[live]
        if len(covered):
            covered = covered[~grid.in_inner(covered, level)]
        keep_p, keep_k, cover = [p[:0]], [keys[:0]], [covered]
        for a in range(0, len(p), _CHUNK):
            pp, kk = p[a:a + _CHUNK], keys[a:a + _CHUNK]
            c, half = grid.centres(kk, level)
            hi_ex, lo_ex = polys.excess(pp, c, np.full(len(pp), half))
            meets = np.all(lo_ex <= delta, axis=1)
            inside = meets & np.all(hi_ex <= -delta, axis=1)
            if inner and np.any(inside):
                grid.add_inner(np.unique(kk[inside], axis=0), level)
            elif np.any(inside):
                cover.append(kk[inside])
            meets &= ~inside
            keep_p.append(pp[meets])
            keep_k.append(kk[meets])
        p, keys = np.concatenate(keep_p), np.concatenate(keep_k)
        covered = np.unique(np.concatenate(cover), axis=0) if len(cover) > 1 else covered
        if len(p) and (inner or len(covered)):
            drop = grid.in_inner(keys, level) if inner else \
                np.isin(grid.code(keys), grid.code(covered))
            p, keys = p[~drop], keys[~drop]
        if level == depth:
            kept = np.concatenate([keys, covered])
            return np.unique(kept, axis=0) if len(kept) else kept
        p = np.repeat(p, len(children))
        keys = 2 * np.repeat(keys, len(children), axis=0) + np.tile(children, (len(keys), 1))
        covered = (2 * np.repeat(covered, len(children), axis=0)
                   + np.tile(children, (len(covered), 1)))
        s = grid.side(level + 1)
        lo_c = grid.lo + keys * s
        ok = np.all((lo_c <= polys.hi[p] + delta) & (lo_c + s >= polys.lo[p] - delta), axis=1)
        carry = (p[ok], keys[ok])


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


def _point_polys(M, s, V, D):
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
    return _Polys(F, h, pts.min(axis=1), pts.max(axis=1))


def _box_polys(M, s, boxes, D):
    """The parallelograms / parallelepipeds M_i C + s_i of boxes C, for invertible M_i."""
    c = (boxes[:, 0] + boxes[:, 1]) / 2
    half = (boxes[:, 1] - boxes[:, 0]) / 2
    Fs, hs, los, his = [], [], [], []
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
    if not Fs:
        return None
    return _Polys(np.concatenate(Fs), np.concatenate(hs), np.concatenate(los),
                  np.concatenate(his))


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
                  np.concatenate([a.lo, b.lo]), np.concatenate([a.hi, b.hi]))


def _exact_fixed_point(R_q, t_q):
    """The fixed point of c -> R c + t in exact rationals (Gauss-Jordan on I - R)."""
    D = len(t_q)
    A = [[(1 if a == b else 0) - R_q[a][b] for b in range(D)] + [t_q[a]] for a in range(D)]
    for col in range(D):
        piv = next(r for r in range(col, D) if A[r][col] != 0)
        A[col], A[piv] = A[piv], A[col]
        inv = 1 / A[col][col]
        A[col] = [x * inv for x in A[col]]
        for r in range(D):
            if r != col and A[r][col] != 0:
                f = A[r][col]
                A[r] = [x - f * y for x, y in zip(A[r], A[col])]
    return np.array([float(Fraction(A[a][D])) for a in range(D)])


class _Setup:
    """The maps in orthonormal frame coordinates, the root cube and the rounding slack."""

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


def _bound(grid, keys, depth, delta):
    """Largest distance from a boundary cell (keys at ``depth``) to the inner cells."""
    if len(keys) == 0:
        return 0.0
    inner = grid.inner_boxes()
    if len(inner) == 0:
        return math.inf
    from scipy.spatial import cKDTree
    c, half = grid.centres(keys, depth)
    D = grid.D
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=D)))
    corners = c[:, None] + half * signs[None]                     # (Nb, 2^D, D)
    centres = inner.mean(axis=1)
    cand = [cKDTree(centres).query(c, k=min(8, len(inner)))[1].reshape(len(c), -1)]
    sides = inner[:, 1, 0] - inner[:, 0, 0]
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


def cell_attractor(space, *, P, rho, tol, budget, max_level: int = 16):
    """The cover of the hull attractor of a D = 2, 3 dimensional reduced system (module
    docstring); ``tol`` (Frobenius, None: the finest that fits) bounds the Hausdorff distance.
    Returns None when no cell can be proved inside (the epsilon-net is used instead)."""
    st = _Setup(space, P, rho)
    D = st.D
    grid = _Grid(st.root_lo, st.S, D)
    W = _directions(st.M, D)
    delta = st.delta
    boxes = np.array([[st.root_lo, st.root_lo + st.S]])
    seed = _point_polys(st.M, st.s, st.y_star[None], D)
    if tol is None:
        target = 1
    else:
        target = int(np.clip(math.ceil(math.log2(st.S * 2 / tol)), 1, max_level))
    depth, best, counts, j, at_depth = 0, None, [], 0, 0
    fresh_polys = seed
    last = None
    while True:
        if budget.expired() and best is not None:
            return _partial(best)
        depth_up = depth < target
        depth = min(depth + 1, target)
        outer = _outer_polys(st.M, st.s, W, boxes)
        ipolys = fresh_polys if not depth_up else _merge(fresh_polys, seed)
        grid.fresh = []
        if ipolys is not None:
            _descend(grid, ipolys, depth, delta, inner=True)
        bnd = _descend(grid, outer, depth, delta, inner=False)
        fresh_polys = _fresh_polys(grid, st)
        inner_boxes = grid.inner_boxes()
        c, h = grid.centres(bnd, depth)
        boxes = np.concatenate([inner_boxes, np.stack([c - h, c + h], axis=1)])
        j += 1
        at_depth = at_depth + 1 if not depth_up else 0
        budget.tick(len(boxes))
        state = (len(bnd), len(inner_boxes))
        settled = depth == target and (state == last or at_depth >= 25)
        last = state
        if not settled:
            continue
        bound = _bound(grid, bnd, depth, delta) * (1 + st.frame_slack)
        if not math.isfinite(bound) and (target >= max_level or budget.expired()):
            return best
        result = CellResult(boxes, np.arange(len(boxes)) < len(inner_boxes), bound, j, True,
                            grid.side(depth), st.frame, tol if tol is not None else bound)
        counts.append(len(boxes))
        if math.isfinite(bound) and (best is None or bound < best.bound):
            best = result
        if tol is not None and bound <= tol:
            return result
        if target >= max_level:
            return best
        if best is not None and not budget.allows(len(boxes), counts, "cells", tol,
                                                  achieved=best.bound, suggestion=best.bound):
            return best
        target += 1


def _partial(best):
    return CellResult(best.boxes, best.inner, best.bound, best.iterations, False, best.side,
                      best.frame, best.tol)


def _fresh_polys(grid, st):
    """Inner sets from the cells proved inside since the last look: P(v) at their corners and
    M_i C + s_i."""
    if not grid.fresh:
        return None
    out = []
    for level, keys in grid.fresh:
        c, h = grid.centres(keys, level)
        out.append(np.stack([c - h, c + h], axis=1))
    boxes = np.concatenate(out)
    signs = np.array(list(itertools.product((-1.0, 1.0), repeat=st.D)))
    c = boxes.mean(axis=1)
    half = (boxes[:, 1] - boxes[:, 0]) / 2
    corners = np.unique((c[:, None] + half[:, None] * signs[None]).reshape(-1, st.D), axis=0)
    polys = _point_polys(st.M, st.s, corners, st.D)
    return _merge(polys, _box_polys(st.M, st.s, boxes, st.D))
