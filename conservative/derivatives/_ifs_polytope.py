"""Convex hull attractors as polytopes, refined level by level (dimensions 2 and 3).

In the orthonormal frame coordinates y of the attractor's affine hull the vertex maps are
``f_i(y) = M_i y + s_i`` and, with ``hull=True``, ``Phi(K) = U_{y in K} P(y)``,
``P(y) = conv{f_i(y)}``. This K* need not be convex: ``y -> (y_1 / 2, 0)`` and
``y -> (1/2 - y_1 / 2, 1)`` give a bow-tie. It is convex, and computed here, when proved so:

* **One linear part** (every ``M_i`` equal, exactly; kinks only in the parameter's Jacobian, as
  ``x <- x / 2 + relu(theta)``): ``Phi(K) = M K + conv{s_i}`` maps convex sets to convex sets,
  and ``K* = S + M S + M^2 S + ...``.
* **Elementwise kinks** (J of one column, the vertex set the product of its rows, as for
  ``relu(W z + t)``: row i of ``[A B]`` takes its values in a set ``R_i`` independently):
  ``P(J)_i = [min_j g_ij(J), max_j g_ij(J)]`` with ``g_ij`` affine. If on a convex set holding
  K* one choice is the largest and one the smallest in every row (checked at the vertices of
  the polytope widened by its bound), the graph of P is a polyhedron there, Phi keeps convex
  sets convex, and the nested sets ``Phi^n(conv K*)`` (convex, shrinking to K*) make K*
  convex. Unproved: None (the caller takes the cells).

The method:

* **Start.** A box ``B0`` that contains K*: its support function in the axis directions,
  bracketed rigorously (``_support``), widened by the drift of computed points.
* **Levels.** ``O_(L+1) = conv U_i f_i(O_L)``, ``O_0 = B0``: the vertices of level L + 1 are
  the extreme points among ``f_i(v)`` for the vertices v of level L. ``O_L`` contains K*
  (``Phi(K) ⊂ conv U_i f_i(K)``, monotone), and each of its vertices ``f_w(c)`` (c a corner of
  B0, w a word of length L) lies within ``|f_w(c) - f_w(y*)|`` of the point ``f_w(y*)`` of K*
  (``y*`` the fixed point of a map); K* being convex, the farthest point of ``O_L`` from it is
  a vertex. That distance is ``||M^L (c - y*)||`` for one linear part (float powers with
  their rounding error, and products of bounds of smaller powers), else at most rho^L times
  ``||c - y*||`` in the certificate's norm (converted to Frobenius by its eigenvalues).
* **Rounding and pruning.** Images are rounded (a modelled slack per level, as in the cells) and
  points are dropped only when qhull calls them interior *and* they are rebuilt as a convex
  combination of the kept vertices (the centroid and the corners of the facet where the ray
  from the centroid through the point leaves) to within a residual, which is added to the
  error of that level. The error of level l reaches level L multiplied by ``||M^(L - l)||``
  (or rho^(L - l) in the certificate's norm).

Measured: the cube ``J <- J / 2 + b``, b a corner of ``[0, 1]^3`` (K* = [0, 2]^3), keeps 8
vertices and halves its bound per level (1e-11 in a few milliseconds); the 3-D ReLU layer of
the tests reaches 1e-2 of its diameter with 29 vertices in about 0.2 s.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import SetTooLargeError, fail_message
from ._ifs_cells import HullFrame
from ._support import support_bracket

__all__ = ["PolytopeResult", "one_linear_part", "polytope_attractor", "polytope_distance",
           "polytope_sample", "row_structure", "rows_keep_their_order"]

_U = np.finfo(float).eps
_MAX_LEVEL = 10_000


@dataclass(frozen=True)
class PolytopeResult:
    """Vertices (N, D) in frame coordinates of a polytope within ``bound`` of K*."""

    vertices: np.ndarray
    bound: float
    iterations: int
    complete: bool
    frame: np.ndarray        # (D, n, m): J = origin + sum_a y_a frame[a]


def one_linear_part(space) -> bool:
    """Whether all maps of the reduced system have exactly the same linear part (rationals)."""
    if not space.exact or space.R_q is None or len(space.R_q) == 0:
        return False
    first = space.R_q[0]
    return all(Ri == first for Ri in space.R_q[1:])


def _initial_box(st) -> tuple[np.ndarray, np.ndarray]:
    """A box (lo, hi) that contains K*: rigorous support brackets in the axis directions,
    intersected with the box of the a-priori ball, widened by the drift of computed points."""
    D = st.D
    G_inv = np.linalg.inv(st.Gy)
    half = st.radius * np.sqrt(np.maximum(np.diag(G_inv), 0.0)) * (1 + 1e-9)
    lo, hi = st.y_star - half, st.y_star + half
    for a in range(D):
        e = np.eye(D)[a]
        _, up = support_bracket(st.M, st.s, st.y_star, st.radius, G_inv, e, max_nodes=20_000)
        _, down = support_bracket(st.M, st.s, st.y_star, st.radius, G_inv, -e,
                                  max_nodes=20_000)
        hi[a], lo[a] = min(hi[a], up), max(lo[a], -down)
    pad = st.delta + st.point_err + 4 * _U * float(np.max(np.abs(np.concatenate([lo, hi]))))
    return lo - pad, hi + pad


class _Powers:
    """Upper bounds of ``||M^j||_2`` and the float powers ``M^j`` with their error bounds."""

    def __init__(self, M):
        self.M, self.D = M, len(M)
        self.float = [np.eye(self.D)]
        self.err = [0.0]                 # ||fl(M^j) - M^j||_2 <= err[j]
        self.ub = [1.0]
        self._abs = np.eye(self.D)

    def extend(self) -> None:
        j = len(self.float)
        self.float.append(self.M @ self.float[-1])
        self._abs = np.abs(self.M) @ self._abs
        err = j * (self.D + 1) * _U * float(np.linalg.norm(self._abs)) * (1 + 1e-6)
        self.err.append(err)
        direct = float(np.linalg.norm(self.float[-1], 2)) * (1 + 1e-12) + err
        split = min((self.ub[a] * self.ub[j - a] for a in range(1, j)), default=math.inf)
        self.ub.append(min(direct, split) * (1 + 1e-15))


def _prune(X: np.ndarray, scale: float):
    """(kept points, Hausdorff cost, full-dimensional): the extreme points of X, dropping only
    points rebuilt as convex combinations of kept ones within a residual (the cost)."""
    from scipy.spatial import ConvexHull, QhullError
    X = np.unique(X, axis=0)                          # exact duplicates: conv unchanged
    D = X.shape[1]
    try:
        hull = ConvexHull(X)
    except QhullError:
        return X, 0.0, False                          # flat: keep every point (sound)
    keep = np.zeros(len(X), dtype=bool)
    keep[hull.vertices] = True
    rest = np.flatnonzero(~keep)
    if len(rest) == 0:
        return X, 0.0, True
    step = max(1, 2_000_000 // len(hull.equations))           # points x facets per chunk
    resid = np.concatenate([_rebuild_residual(X[rest[a:a + step]], X, hull)
                            for a in range(0, len(rest), step)])
    drop = resid <= 1e-9 * scale
    keep[rest[~drop]] = True
    if not np.any(drop):
        return X, 0.0, True
    mag = float(np.max(np.abs(X)))
    cost = float(np.max(resid[drop])) * (1 + 1e-12) + \
        4 * (len(hull.vertices) + D + 2) * _U * mag * math.sqrt(D)
    return X[keep], cost, True


def _rebuild_residual(p, X, hull, tries: int = 6):
    """|p - q| for q a convex combination of hull vertices: the ray from their centroid c
    through p leaves through the facet maximising ``n.(p - c) / (b - n.c)`` at the point z;
    q = (1 - a) c + a z', with z' the clipped barycentric combination of that facet's corners.
    Coplanar triangles tie (a face cut in two): the best of the leading few is taken."""
    D = X.shape[1]
    c = X[hull.vertices].mean(axis=0)
    n, off = hull.equations[:, :D], hull.equations[:, D]
    depth = np.maximum(-(n @ c + off), 1e-300)                   # c below every facet plane
    ratio = ((p - c) @ n.T) / depth[None]
    tries = min(tries, len(n))
    lead = np.argpartition(-ratio, tries - 1, axis=1)[:, :tries]
    best = np.full(len(p), np.inf)
    with np.errstate(all="ignore"):                      # degenerate facets give inf / nan
        for f in lead.T:
            best = np.fmin(best, _through_facet(p, c, X, hull, f, ratio[np.arange(len(p)), f]))
    return np.where(np.isnan(best), np.inf, best)


def _through_facet(p, c, X, hull, f, ratio):
    """|p - q| for the convex combination q of c and the corners of facets f (one per p)."""
    D = X.shape[1]
    n = hull.equations[:, :D]
    alpha = np.clip(ratio, 1e-300, 1.0)
    z = c + (p - c) / alpha[:, None]
    corners = X[hull.simplices[f]]                           # (P, D, D)
    base = corners[:, -1]
    Mf = np.concatenate([np.swapaxes(corners[:, :-1] - base[:, None], 1, 2),
                         n[f][:, :, None]], axis=2)
    try:
        sol = np.linalg.solve(Mf, (z - base)[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return np.full(len(p), np.inf)                       # kept: always sound
    g = np.concatenate([sol[:, :-1], 1 - sol[:, :-1].sum(axis=1, keepdims=True)], axis=1)
    g = np.clip(g, 0.0, None)
    g /= np.maximum(g.sum(axis=1, keepdims=True), 1e-300)
    q = (1 - alpha)[:, None] * c + alpha[:, None] * np.einsum("pj,pjd->pd", g, corners)
    return np.linalg.norm(p - q, axis=1)


def _level_bound(st, pw, corners, errors, reach) -> tuple[float, float]:
    """(tail, floor): the proved bound (Frobenius) of the level ``L = len(errors)`` is their
    sum; the tail shrinks with L, the floor (rounding carried, embedding) does not."""
    L = len(errors)
    rel = corners - st.y_star
    far = float(np.max(np.linalg.norm(rel, axis=1)))
    tail = float(np.max(np.linalg.norm(rel @ pw.float[L].T, axis=1))) * (1 + 1e-12)
    tail = min(tail + pw.err[L] * far, pw.ub[L] * far) + pw.ub[L] * st.delta
    carried = sum(pw.ub[L - 1 - i] * e for i, e in enumerate(errors))
    return tail * (1 + st.frame_slack), carried * (1 + st.frame_slack) + reach


class _Contraction:
    """Level bounds when the linear parts differ: every map contracts by rho in the norm
    ``||y||_Gy``, so words of length L move points and Hausdorff distances by rho^L there."""

    def __init__(self, st, rho):
        self.r = min(rho * (1 + 1e-6), 1 - 1e-12)
        eig = np.linalg.eigvalsh((st.Gy + st.Gy.T) / 2)
        self.lmax = float(eig[-1]) * (1 + 1e-9)
        self.lmin = float(eig[0]) - 64 * st.D * _U * self.lmax

    def bound(self, st, corners, errors, reach) -> tuple[float, float]:
        if not self.lmin > 0:
            return math.inf, math.inf
        L = len(errors)
        rel = corners - st.y_star
        dist = float(np.sqrt(np.max(np.einsum("na,ab,nb->n", rel, st.Gy, rel)))) * (1 + 1e-9)
        tail = self.r ** L * (dist + math.sqrt(self.lmax) * st.delta) / math.sqrt(self.lmin)
        carried = sum(self.r ** (L - 1 - i) * e for i, e in enumerate(errors)) * \
            math.sqrt(self.lmax / self.lmin)
        return tail * (1 + st.frame_slack), carried * (1 + st.frame_slack) + reach


def polytope_attractor(space, *, P, rho, tol, budget, convex=None) -> PolytopeResult | None:
    """The hull attractor of a reduced system as a polytope (module docstring), to ``tol``
    (Frobenius; None: the finest that fits ``budget``).

    With one linear part K* is convex. Otherwise ``convex(J, radius)`` must prove it: True when
    K* is convex because it lies within radius of the hull of the Jacobians J (N, n, m); None
    is returned when no level gave that proof (the caller takes the cells)."""
    st = HullFrame(space, P, rho)
    D = st.D
    one = convex is None
    pw, contraction = (_Powers(st.M[0]), None) if one else (None, _Contraction(st, rho))
    lo, hi = _initial_box(st)
    corners = np.array(list(itertools.product(*zip(lo, hi))), dtype=float)
    V = corners
    origin = float(np.linalg.norm(space.origin))
    scale = float(np.max(np.abs(corners))) + 1e-300
    y_max = float(np.max(np.abs(st.y_star))) + st.S

    def level(V, errors):
        reach = 8 * (D + 1) * _U * (float(np.max(np.abs(V))) + origin)
        if one:
            return _level_bound(st, pw, corners, errors, reach)
        return contraction.bound(st, corners, errors, reach)

    def proves(res):                                  # the hull's points as Jacobians
        J = space.origin.reshape(1, -1) + res.vertices @ st.frame.reshape(D, -1)
        return convex(J.reshape((len(J),) + space.origin.shape), res.bound)

    errors: list[float] = []
    tail, floor = level(V, errors)
    best = PolytopeResult(V, tail + floor, 0, True, st.frame)
    proved = one or proves(best)
    counts = [len(V) * len(st.s)]
    while len(errors) < _MAX_LEVEL:
        if not proved and len(errors) >= 8:
            return None                               # the rows swap near K*, most likely
        if tol is not None and best.bound <= tol and proved:
            return best
        if budget.expired() and proved:             # until proved, a few cheap levels more
            return PolytopeResult(best.vertices, best.bound, best.iterations, False,
                                  best.frame)
        if tail <= 0.01 * floor or len(errors) - best.iterations >= 50:   # cannot improve
            if tol is None or not proved:
                return best if proved else None
            raise SetTooLargeError(fail_message(
                budget.call, f"tol={tol:.3g}, below the rounding floor of this attractor "
                f"(reached {best.bound:.3g})", f"pass tol >= {best.bound:.3g} (reached), or "
                "tol=None"), suggested_tol=best.bound)
        if not proved:                              # no level is valid yet: size only
            if budget.predicted(counts[-1], counts)[0] > budget.max_points:
                return None
        elif not budget.allows(counts[-1], counts, "vertices", tol, achieved=best.bound,
                               suggestion=best.bound):
            return best
        X = np.einsum("kab,nb->nka", st.M[:1] if one else st.M, V) + st.s[None]
        grow = max(1.0, float(np.max(np.abs(V))) / y_max)      # delta is sized for |y| <= y_max
        V, cost, full = _prune(X.reshape(-1, D), scale)
        errors.append(st.delta * grow + cost)
        if one:
            pw.extend()
        counts.append(len(V) * len(st.s))
        budget.tick(len(V))
        if not full:
            continue
        tail, floor = level(V, errors)
        if tail + floor < best.bound:
            best = PolytopeResult(V, tail + floor, len(errors), True, st.frame)
        proved = proved or proves(best)
    return best if proved else None


def row_structure(A: np.ndarray, B: np.ndarray) -> list | None:
    """For J of one column: the distinct rows ``[a b]`` (r_i, n + 1) of each row i when the
    vertex set is exactly their product (every combination once, as for elementwise kinks:
    ``D (W J + c)`` with D diagonal); None otherwise. Rows compared exactly."""
    k, n, _ = A.shape
    if B.shape[2] != 1 or k < 2:
        return None
    AB = np.concatenate([A, B], axis=2)
    rows = [np.unique(AB[:, i, :], axis=0) for i in range(n)]
    size = math.prod(len(r) for r in rows)
    if size != k or len(np.unique(AB.reshape(k, -1), axis=0)) != k:
        return None
    return rows


def rows_keep_their_order(rows, J: np.ndarray, radius: float) -> bool:
    """Whether on every point within ``radius`` (Frobenius) of the convex hull of J (N, n, 1),
    each row i has one choice ``[a b]`` whose value ``a . J + b`` is largest and one smallest
    (margins outward-padded). Then ``P(J) = prod_i [min_j g_ij(J), max_j g_ij(J)]`` has a
    convex graph there (linear inequalities), so the hull attractor inside is convex."""
    x = J.reshape(len(J), -1)
    scale = 1.0 + float(np.max(np.abs(x)))
    for R in rows:
        if len(R) == 1:
            continue
        a, b = R[:, :-1], R[:, -1]
        g = x @ a.T + b                                       # (N, r)
        pad = 8 * (x.shape[1] + 2) * _U * scale * (1 + np.max(np.abs(R)))

        def dominates(j, sign):
            diff = sign * (g[:, [j]] - g)                      # >= margin on the hull's points
            need = radius * np.linalg.norm(a[j] - a, axis=1) * (1 + 1e-12) + pad
            return bool(np.all(np.delete(diff - need[None], j, axis=1) >= 0))
        if not any(dominates(j, 1.0) for j in range(len(R))) or \
                not any(dominates(j, -1.0) for j in range(len(R))):
            return False
    return True


def _segment_distance(p, a, b):
    d = b - a
    dd = np.einsum("nd,nd->n", d, d)
    t = np.clip(np.einsum("nd,nd->n", p - a, d) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * d, axis=1)


def _simplex_distance(p, S):
    """Distance from points p (N, D) to boundary simplices S (N, D, D): segments (D = 2) or
    triangles (D = 3): the projection on the plane when it falls inside, else an edge."""
    if S.shape[1] == 2:
        return _segment_distance(p, S[:, 0], S[:, 1])
    a, b, c = S[:, 0], S[:, 1], S[:, 2]
    edges = np.minimum(np.minimum(_segment_distance(p, a, b), _segment_distance(p, b, c)),
                       _segment_distance(p, c, a))
    n = np.cross(b - a, c - a)
    nn = np.einsum("nd,nd->n", n, n)
    safe = np.where(nn > 0, nn, 1.0)
    wa = np.einsum("nd,nd->n", np.cross(c - b, p - b), n) / safe
    wb = np.einsum("nd,nd->n", np.cross(a - c, p - c), n) / safe
    inside = (nn > 0) & (wa >= 0) & (wb >= 0) & (1 - wa - wb >= 0)
    plane = np.abs(np.einsum("nd,nd->n", p - a, n)) / np.sqrt(safe)
    return np.where(inside, plane, edges)


def polytope_distance(y: np.ndarray, hull) -> np.ndarray:
    """Euclidean distance from points y (Q, D) to the convex polytope of a
    :class:`scipy.spatial.ConvexHull`: 0 inside; outside, the nearest point lies on a facet
    whose plane y violates, so only those facets are measured."""
    y = np.asarray(y, dtype=float)
    eq = hull.equations
    simplices = hull.points[hull.simplices]
    D = y.shape[1]
    out = np.zeros(len(y))
    step = max(1, 2_000_000 // max(1, len(eq)))
    for a in range(0, len(y), step):
        yc = y[a:a + step]
        viol = yc @ eq[:, :D].T + eq[:, D] > 0
        qi, fi = np.nonzero(viol)
        if len(qi) == 0:
            continue
        best = np.full(len(yc), np.inf)
        np.minimum.at(best, qi, _simplex_distance(yc[qi], simplices[fi]))
        out[a:a + step] = np.where(np.any(viol, axis=1), best, 0.0)
    return out


def polytope_sample(hull, target: int) -> tuple[np.ndarray, float]:
    """Points (Q, D) of the polytope of a ConvexHull and the largest distance from a point of
    the polytope to them: a lattice of spacing h inside (centres below every facet plane by a
    margin), the facets sampled on barycentric grids of spacing <= h, and the vertices.

    A point x of the polytope has a lattice centre c within ``h sqrt(D) / 2``; either c is
    kept, or c is within the margin of the boundary or outside it (then [x, c] meets it), and
    every boundary point is within h of a facet sample: ``h (sqrt(D) / 2 + 1) + 2 margin``.
    """
    V = hull.points[hull.vertices]
    D = V.shape[1]
    lo, hi = V.min(axis=0), V.max(axis=0)
    h = float(np.prod(hi - lo) / max(target, 1)) ** (1.0 / D)
    h = max(h, float(np.max(hi - lo)) * 1e-6, 1e-300)
    axes = [lo[a] + (np.arange(max(1, math.ceil((hi[a] - lo[a]) / h))) + 0.5) * h
            for a in range(D)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, D)
    margin = 1e-9 * (float(np.max(np.abs(V))) + 1e-300)
    eq = hull.equations
    keep = np.zeros(len(grid), dtype=bool)
    step = max(1, 2_000_000 // max(1, len(eq)))
    for a in range(0, len(grid), step):
        keep[a:a + step] = np.max(grid[a:a + step] @ eq[:, :D].T + eq[:, D], axis=1) <= -margin
    parts = [grid[keep], V]
    S = hull.points[hull.simplices]                               # (F, D, D)
    edge = np.max([np.linalg.norm(S[:, i] - S[:, j], axis=1)
                   for i, j in itertools.combinations(range(D), 2)], axis=0)
    n_sub = np.maximum(1, np.ceil(edge / h)).astype(np.int64)
    for n in np.unique(n_sub):                  # facets with the same grid together
        ticks = [c for c in itertools.product(range(n + 1), repeat=D - 1) if sum(c) <= n]
        W = np.array([list(c) + [n - sum(c)] for c in ticks], dtype=float) / n
        parts.append(np.einsum("wj,fjd->fwd", W, S[n_sub == n]).reshape(-1, D))
    return np.concatenate(parts), h * (math.sqrt(D) / 2 + 1) + 2 * margin
