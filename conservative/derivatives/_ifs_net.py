"""The epsilon-net engine: a finite point set within a proved Hausdorff distance of the attractor.

Used in the coordinates of the attractor's affine hull when its dimension is 2 or more. At a
fixed point the maps are ``J -> A_i J + B_i`` (vertices ``[A_i B_i]``, i = 1..k); with
``hull=False`` the Hutchinson operator ``Phi(K) = {A J + B : [A B] in S, J in K}`` uses the
vertices, with ``hull=True`` their convex hull, whose image of one J is the polytope
``conv{A_i J + B_i}``.

A quadratic contraction certificate ``P ≻ 0``, ``A_i^T P A_i ≼ rho^2 P`` (rho < 1) makes
``||A J||_P <= rho ||J||_P`` for every A of conv S, with ``||J||_P = sqrt(trace(J^T P J))``, so Phi
is a rho-contraction for the Hausdorff distance in that norm.

**The iteration.** Phi is iterated from ``{J0}`` on an epsilon-net: after each application the
points are snapped to a grid of cubes of diameter ``2 eps`` in the P-norm
(:class:`conservative.distances.CellSnapper`: one point per occupied cube, the input point itself
when it is within eps of everything in its cube, else the cube's centre). For ``hull=True`` the
polytopes are filled exactly when ``k = 2`` (the grid cubes crossed by each segment, found per
grid plane) and otherwise by convex combinations with weights on a simplex lattice, fine enough
that the sampling error is a third of the per-iteration error.

**Error bound.** With ``eps`` the per-iteration error (P-norm), the computed iterates satisfy
``d_P(K_{j+1}, Phi(K_j)) <= eps``, hence
``d_P(K_j, K*) <= rho^j d_P(K_0, K*) + eps (1 - rho^j) / (1 - rho)`` and, by the Banach-Picard
a priori bound, ``d_P(K_0, K*) <= max_i ||A_i J0 + B_i - J0||_P / (1 - rho)`` (the farthest point
of a polytope is a vertex). A slack for floating point (a multiple of the unit roundoff times the
sizes involved and ``sqrt(cond(P))``) is added to ``eps`` and to that distance, and rho is
inflated by ``16 n u``: the bound is rigorous up to this modelled rounding, not
interval-verified. It is converted to the Frobenius norm with
``||J||_F <= ||J||_P / sqrt(lambda_min(P))``.

**Levels.** :func:`net_attractor` runs the iteration at tolerances halving from a coarse one
(each level measured: its size and time predict the next through :class:`Budget`), down to the
requested tol or, with ``tol=None``, to the finest that fits.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..distances import CellSnapper
from ..errors import InputError, NotContractingError, SetTooLargeError, fail_message
from ._budget import Budget

__all__ = ["NetProblem", "NetResult", "net_problem", "net_attractor"]

#: Candidate points handled per chunk (bounds temporary memory).
_CHUNK = 1 << 18
#: Share of the tolerance given to the per-iteration net error (the rest to the iteration count).
_NET_SHARE = 0.8
_U = np.finfo(float).eps


@dataclass(frozen=True)
class NetResult:
    """Points (N, n, m) and their proved Hausdorff bound (Frobenius), from one level."""

    points: np.ndarray
    bound: float
    iterations: int
    complete: bool
    net_radius: float
    tol: float


@dataclass(frozen=True, eq=False)
class NetProblem:
    """Validated, immutable data of one net computation (see :func:`net_problem`)."""

    A: np.ndarray
    B: np.ndarray
    hull: bool
    P: np.ndarray
    L: np.ndarray
    Lt_inv: np.ndarray
    sqrt_lmin: float
    rho: float
    rho_bound: float
    J0: np.ndarray
    max_points: int
    call: str

    @property
    def k(self):
        return self.A.shape[0]

    @property
    def n(self):
        return self.A.shape[1]

    @property
    def m(self):
        return self.B.shape[2]

    @property
    def d(self):
        return self.n * self.m

    def pnorm(self, X: np.ndarray) -> np.ndarray:
        """P-norms of the matrices X (..., n, m)."""
        Y = np.matmul(self.L.T, X)
        return np.sqrt(np.sum(Y * Y, axis=(-2, -1)))

    def flat(self, X: np.ndarray) -> np.ndarray:
        """Coordinates vec(L^T J) (N, d) in which the P-norm is Euclidean."""
        return np.matmul(self.L.T, X).reshape(X.shape[0], -1)

    def images(self, K: np.ndarray) -> np.ndarray:
        """All vertex images A_i J + B_i, shape (N, k, n, m)."""
        return np.matmul(self.A[None], K[:, None]) + self.B[None]


class _Level:
    """One run of the iteration: a problem, a tolerance and a deadline (nothing is mutated)."""

    __slots__ = ("problem", "tol", "deadline")

    def __init__(self, problem: NetProblem, tol: float, deadline):
        self.problem, self.tol, self.deadline = problem, tol, deadline

    def __getattr__(self, name):
        return getattr(self.problem, name)


def net_problem(A, B, *, hull: bool, L: np.ndarray, rho: float, verified: bool,
                max_points: int, call: str, J0=None) -> NetProblem:
    """Check the contraction once (unless ``verified``: an exactly checked certificate) and
    freeze the data. ``L`` is the Cholesky factor of P (``P = L L^T``)."""
    from scipy.linalg import solve_triangular
    k, n, _ = A.shape
    P = L @ L.T
    sqrt_lmin = math.sqrt(max(float(np.linalg.eigvalsh((P + P.T) / 2)[0]), 0.0))
    Lt_inv = solve_triangular(L, np.eye(n), lower=True).T
    M = np.einsum("ji,kjl,lm->kim", L, A, Lt_inv)
    norms = np.linalg.norm(M, ord=2, axis=(1, 2))
    worst = int(np.argmax(norms))
    contraction = float(norms[worst])
    if not verified and contraction > rho * (1 + 1e-9):
        raise NotContractingError(fail_message(
            call, f"rho={rho:.6g}, but vertex {worst} has ||P^(1/2) A P^(-1/2)||_2 = "
            f"{contraction:.6g} > rho", "pass the P and rho of a valid contraction "
            "certificate for these vertices (cv.certify_contraction)"))
    # an exact certificate bounds the exact maps; the measured norm covers their rounding
    rho_bound = max(rho, contraction * (1 + 16 * n * _U)) if not verified else \
        max(rho * (1 + 16 * n * _U), contraction * (1 + 16 * n * _U))
    if rho_bound >= 1:
        raise NotContractingError(fail_message(
            call, f"a contraction factor {contraction!r}, 1 up to rounding",
            "pass vertices that contract by a margin (rho < 1 - 1e-12)"))
    if J0 is None:
        J0 = np.linalg.solve(np.eye(n) - A[0], B[0])  # fixed point of map 0
    return NetProblem(A, B, hull, P, L, Lt_inv, sqrt_lmin, max(rho, contraction), rho_bound,
                      np.asarray(J0, dtype=float), max_points, call)


def net_attractor(pb: NetProblem, tol: float | None, budget: Budget) -> NetResult:
    """Levels of :func:`_compute` at halving tolerances (module docstring)."""
    D0 = float(np.max(pb.pnorm(pb.images(pb.J0[None])[0] - pb.J0[None])))
    scale = max(D0 / (1 - pb.rho_bound) / max(pb.sqrt_lmin, 1e-300), 1e-300)
    if tol is not None and tol >= scale:
        return _compute(_Level(pb, tol, budget.deadline))
    level_tol = scale / 2
    best, counts = None, []
    while True:
        if tol is not None and level_tol <= tol * 1.5:
            level_tol = tol
        try:
            result = _compute(_Level(pb, level_tol, budget.deadline))
        except InputError:                    # below the floating-point resolution
            if tol is not None or best is None:
                raise
            return best
        except SetTooLargeError:
            if best is None or tol is not None:
                suggestion = best.tol if best is not None else None
                raise SetTooLargeError(fail_message(
                    pb.call, f"tol={tol if tol is not None else level_tol:.3g}, which needs "
                    f"more than max_points={pb.max_points} points",
                    (f"pass tol >= {suggestion:.3g} (a level measured to fit), " if suggestion
                     else "") + "or a larger max_points"), suggested_tol=suggestion) from None
            return best
        budget.tick(len(result.points))
        counts.append(len(result.points))
        if not result.complete or (tol is not None and level_tol == tol):
            return result if result.complete or best is None else result
        best = result
        if not budget.allows(len(result.points), counts, "points", tol,
                             achieved=result.bound, suggestion=result.tol):
            return best
        level_tol /= 2


@functools.lru_cache(maxsize=64)
def _simplex_lattice(q: int, k: int) -> np.ndarray:
    """All weights w >= 0 with sum 1 and q*w integer, shape (C(q+k-1, k-1), k)."""
    if k == 1:
        return np.ones((1, 1))
    if k == 2:
        t = np.arange(q + 1) / q
        return np.stack([t, 1.0 - t], axis=1)
    bars = np.array(list(itertools.combinations(range(q + k - 1), k - 1)))
    edges = np.concatenate([np.full((len(bars), 1), -1), bars,
                            np.full((len(bars), 1), q + k - 1)], axis=1)
    w = (np.diff(edges, axis=1) - 1) / q
    w.setflags(write=False)
    return w


def _lattice_size(q: int, k: int) -> int:
    return math.comb(q + k - 1, k - 1)




def _compute(pb: "_Level") -> NetResult:
    """One run at ``pb.tol``: the iteration with its error bound (module docstring)."""
    rho = pb.rho_bound
    tol_p = pb.tol * pb.sqrt_lmin
    K = pb.J0[None].copy()
    D0 = float(np.max(pb.pnorm(pb.images(K)[0] - pb.J0[None])))
    eps = _NET_SHARE * (1.0 - rho) * tol_p
    # Floating-point slack per iteration (products, sums, the transforms between J and
    # vec(L^T J)); the same slack is added to the computed D0.
    cond = math.sqrt(float(np.linalg.cond(pb.P)))
    radius_bound = float(pb.pnorm(pb.J0)) + 2 * D0 / (1.0 - rho) + tol_p
    a_max = float(np.max(np.abs(pb.A))) * pb.n
    b_max = float(np.max(pb.pnorm(pb.B)))
    slack = 64 * (pb.n + pb.m + pb.k + 4) * _U * cond * ((1 + a_max) * radius_bound + b_max)
    bound0 = (D0 + slack) / (1.0 - rho)
    if slack > 0.1 * eps:
        raise InputError(fail_message(
            pb.call, f"tol={pb.tol:.3g}, below the floating-point resolution of this set "
            f"(rounding of about {slack:.3g} per iteration in the P-norm)",
            "pass a larger tol"))
    target = tol_p - (eps + slack) / (1.0 - rho)
    if bound0 <= target:
        iterations = 0
    elif rho == 0.0:
        iterations = 1
    else:
        iterations = max(1, math.ceil(math.log(target / bound0) / math.log(rho)))
    done = 0
    for j in range(iterations):
        try:
            K = _step(pb, K, eps, j, iterations)
        except _TimeUp:
            break
        done = j + 1
    proved_p = rho ** done * bound0 + (eps + slack) * (1 - rho ** done) / (1 - rho)
    if done == 0:
        proved_p = bound0
    bound = proved_p / pb.sqrt_lmin * (1 + 64 * _U * cond ** 2)
    return NetResult(K, bound, done, done == iterations, eps, pb.tol)




class _TimeUp(Exception):
    """The time limit ran out inside an iteration (its partial result is dropped)."""


def _check_time(pb) -> None:
    if pb.deadline.expired():
        raise _TimeUp


def _too_large(pb, count: int, what: str, j: int, iterations: int, dim: float,
               limit: int | None = None):
    limit = pb.max_points if limit is None else limit
    factor = max(2.0, (count / limit) ** (1.0 / max(dim, 1.0)) * 1.5)
    return SetTooLargeError(fail_message(
        pb.call, f"tol={pb.tol:.3g}: {what} {count} points at iteration {j + 1} of {iterations} "
        f"(limit {limit}, from max_points={pb.max_points})",
        f"pass a larger tol (at least about {pb.tol * factor:.2g}) or a larger max_points; "
        "the number of points grows like tol**(-dim) for a set of dimension dim"),
        suggested_tol=pb.tol * factor)


def _step(pb, K: np.ndarray, eps: float, j: int, iterations: int) -> np.ndarray:
    """One application of Phi followed by the epsilon-net merge (total error <= eps)."""
    _check_time(pb)
    if not pb.hull or pb.k == 1:
        out = _merge_chunks(pb, (pb.images(K[s:s + _CHUNK // pb.k]).reshape(-1, pb.n, pb.m)
                                 for s in range(0, len(K), _CHUNK // pb.k)), eps)
    elif pb.d == 1:
        out = _hull_step_1d(pb, K, eps, j, iterations)
    elif pb.k == 2:
        out = _hull_step_segments(pb, K, eps, j, iterations)
    else:
        out = _hull_step_nd(pb, K, eps, j, iterations)
    if len(out) > pb.max_points:
        raise _too_large(pb, len(out), "the net of the attractor holds", j, iterations, pb.d)
    return out


def _merge_chunks(pb, chunks, radius: float) -> np.ndarray:
    """Snap the union of candidate chunks to a grid: Hausdorff error at most ``radius``.

    ``chunks`` yields arrays X (c, n, m), or pairs (X, Z) with Z = vec(L^T X) precomputed.
    See :func:`conservative.distances.net_snap`: a cube's point is kept exactly when it is
    within ``radius`` of the whole cube's content, else replaced by the cube's centre.
    """
    snapper = CellSnapper(pb.d, radius, call=pb.call)
    for item in chunks:
        _check_time(pb)
        X, Z = item if isinstance(item, tuple) else (item, pb.flat(item))
        snapper.add(Z, X.reshape(len(X), -1))
    Z, X, member = snapper.result()
    X = X.reshape(-1, pb.n, pb.m)
    if not np.all(member):
        X[~member] = np.matmul(pb.Lt_inv, Z[~member].reshape(-1, pb.n, pb.m))
    return X


def _hull_step_1d(pb, K: np.ndarray, eps: float, j: int, iterations: int):
    """Phi_hull for scalars: union of intervals [min_i, max_i] of a_i x + b_i, gridded.

    The union is computed exactly (sorted, overlapping intervals merged), then each merged
    interval [l, u] is sampled at l, l + h, l + 2h, ..., and u with h = 2 eps (P-norm), so every
    point of the union is within eps of a sample.
    """
    V = (pb.A[:, 0, 0][None, :] * K[:, 0, 0][:, None]) + pb.B[:, 0, 0][None, :]
    lo, hi = V.min(axis=1), V.max(axis=1)
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    start = np.ones(len(lo), dtype=bool)
    start[1:] = lo[1:] > reach[:-1]
    first = np.flatnonzero(start)
    L, U = lo[first], np.maximum.reduceat(hi, first)
    h = 2 * eps / pb.L[0, 0]  # P-norm of a scalar J is L[0, 0] |J|
    counts = np.floor((U - L) / h).astype(np.int64) + 1
    total = int(counts.sum()) + len(U)
    if total > pb.max_points:
        raise _too_large(pb, total, "filling the intervals needs", j, iterations, 1.0)
    offsets = np.arange(total - len(U)) - np.repeat(np.cumsum(counts) - counts, counts)
    inner = np.minimum(np.repeat(L, counts) + h * offsets, np.repeat(U, counts))
    samples = np.unique(np.concatenate([inner, U]))
    return samples.reshape(-1, 1, 1)


def _hull_step_segments(pb, K: np.ndarray, eps: float, j: int, iterations: int):
    """Phi_hull for two vertices and n*m >= 2: the grid cubes crossed by the segments.

    The polytope of J is the segment from ``v_1 = A_1 J + B_1`` to ``v_2 = A_2 J + B_2``. In the
    coordinates z = vec(L^T J), the cubes it meets are those of its end points and, at each
    crossing of a grid plane (found exactly, per coordinate), the two cubes on either side of
    the crossing point: a segment enters every other cube it meets through such a crossing.
    Every marked cube returns its centre, within eps of the whole cube and hence of the piece of
    segment in it, and every point of a segment lies in a marked cube: the Hausdorff error is
    eps, with no sampling error (the cubes have diameter 2 eps).
    """
    snapper = CellSnapper(pb.d, eps, call=pb.call)
    V = pb.images(K)
    Z0 = np.matmul(pb.L.T, V[:, 0]).reshape(len(K), -1)
    Z1 = np.matmul(pb.L.T, V[:, 1]).reshape(len(K), -1)
    k0, k1 = snapper.keys(Z0), snapper.keys(Z1)
    per_segment = np.abs(k1 - k0).sum(axis=1)  # grid planes crossed
    total = 2 * int(per_segment.sum()) + 2 * len(K)
    if total > 50 * pb.max_points:
        raise _too_large(pb, total, "the segments conv{A_1 J + B_1, A_2 J + B_2} cross", j,
                         iterations, pb.d + 1, 50 * pb.max_points)
    snapper.add_cells(np.concatenate([k0, k1]))
    bounds = np.concatenate([[0], np.cumsum(per_segment)])
    cuts = np.searchsorted(bounds, np.arange(0, bounds[-1], _CHUNK), side="right") - 1
    cuts = np.unique(np.concatenate([cuts, [len(K)]]))
    for a, b in zip(cuts[:-1], cuts[1:]):
        snapper.add_cells(_crossing_cells(Z0[a:b], Z1[a:b], k0[a:b], k1[a:b], snapper.side))
    Z, _, _ = snapper.result()
    return np.matmul(pb.Lt_inv, Z.reshape(-1, pb.n, pb.m))


def _crossing_cells(Z0, Z1, k0, k1, side):
    """Cubes on both sides of every grid-plane crossing of the segments [Z0_s, Z1_s]."""
    N, d = Z0.shape
    lo = np.minimum(k0, k1)
    count = np.abs(k1 - k0).ravel()
    if count.sum() == 0:
        return np.zeros((0, d), dtype=np.int64)
    group = np.repeat(np.arange(N * d), count)  # (segment, coordinate) of each crossing
    offset = np.arange(len(group)) - np.repeat(np.cumsum(count) - count, count)
    seg, coord = np.divmod(group, d)
    g = lo.ravel()[group] + 1 + offset  # the plane z_coord = g * side is crossed
    delta = Z1[seg] - Z0[seg]
    t = np.clip((g * side - Z0[seg, coord]) / delta[np.arange(len(seg)), coord], 0.0, 1.0)
    keys = np.floor((Z0[seg] + t[:, None] * delta) / side).astype(np.int64)
    rows = np.arange(len(seg))
    keys[rows, coord] = g
    before = keys.copy()
    before[rows, coord] = g - 1
    return np.concatenate([keys, before])


def _hull_step_nd(pb, K: np.ndarray, eps: float, j: int, iterations: int):
    """Phi_hull for n*m >= 2: simplex-lattice samples of each polytope, then a grid merge.

    For weights w on the simplex, rounding to the lattice ``{w' : q w' integer}`` (largest
    remainders) gives ``||w - w'||_1 <= k / (2 q)``; since sum(w - w') = 0,
    ``||sum (w_i - w'_i) v_i||_P <= ||w - w'||_1 max_i ||v_i - c||_P`` for any centre c. So with
    ``q >= k R / (2 delta)``, R = max_i ||v_i - c||_P, every point of the polytope is within delta
    of a sample. Here delta = eps / 3 and the samples are snapped to the grid at radius
    2 eps / 3 (the split that minimises the work for a two-dimensional union of segments).
    """
    delta, radius = eps / 3, 2 * eps / 3
    V = pb.images(K)  # (N, k, n, m)
    Z = np.matmul(pb.L.T, V).reshape(len(K), pb.k, -1)
    V = V.reshape(len(K), pb.k, -1)
    k = pb.k
    subsets = list(itertools.combinations(range(k), pb.d + 1)) if k > pb.d + 1 else []
    if subsets and len(subsets) * (pb.d + 1) < _lattice_size(4, k):
        # Caratheodory: conv of k points in R^d is the union of the simplices on their
        # (d+1)-subsets, each needing O(q^d) lattice points instead of O(q^(k-1))
        idx = np.array(subsets)
        V = V[:, idx].reshape(-1, pb.d + 1, V.shape[-1])
        Z = Z[:, idx].reshape(-1, pb.d + 1, Z.shape[-1])
        k = pb.d + 1
    R = np.sqrt(np.max(np.sum((Z - Z.mean(axis=1, keepdims=True)) ** 2, axis=2), axis=1))
    q = np.maximum(1, np.ceil(k * R / (2 * delta))).astype(np.int64)
    q = np.ceil(2.0 ** (np.ceil(4 * np.log2(q)) / 4)).astype(np.int64)  # few distinct lattices
    levels = np.unique(q)
    sizes = {int(lv): _lattice_size(int(lv), k) for lv in levels}
    total = sum(sizes[int(lv)] * int(np.sum(q == lv)) for lv in levels)
    if total > 50 * pb.max_points:
        raise _too_large(pb, total, "filling the polytopes conv{A_i J + B_i} needs", j,
                         iterations, pb.d + min(k - 1, pb.d), 50 * pb.max_points)

    def chunks():
        for lv in levels:
            W = _simplex_lattice(int(lv), k)
            group_v, group_z = V[q == lv], Z[q == lv]
            per = max(1, _CHUNK // len(W))
            for s in range(0, len(group_v), per):
                X = np.matmul(W, group_v[s:s + per]).reshape(-1, pb.n, pb.m)
                yield X, np.matmul(W, group_z[s:s + per]).reshape(len(X), -1)

    return _merge_chunks(pb, chunks(), radius)
