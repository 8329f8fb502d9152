"""The value :func:`~conservative.derivatives.attractor.attractor` returns."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from .. import _display
from .._types import as_float_array, check_bool
from ..distances import hull_vertex_indices
from ..errors import InputError, ShapeError, fail_message
from ._affine_hull import ReducedSystem

__all__ = ["Attractor", "entry_name"]

#: Points drawn from an interval representation for ``.points`` (pictures, distances).
_SAMPLES = 20_000
_U = np.finfo(float).eps


def entry_name(flat: int, m: int, names=None) -> str:
    """``∂x_i/∂θ_j`` for the flat (C-order) entry of an (n, m) Jacobian, or the user's name."""
    i, j = divmod(int(flat), m)
    if names is not None:
        return str(names[flat])
    return f"∂x{_sub(i)}/∂θ{_sub(j)}"


def _row_norms(M: np.ndarray) -> np.ndarray:
    """Euclidean norms of the rows of M without overflow (entries up to 1.8e308)."""
    scale = np.max(np.abs(M), axis=1, keepdims=True)
    safe = np.where(scale > 0, scale, 1.0)
    return np.linalg.norm(M / safe, axis=1) * safe[:, 0]


def _fmt(x: float) -> str:
    """A value for reading: the outward rounding of 0 (a subnormal) reads as 0."""
    return "0" if abs(x) < 1e-300 else f"{x:.6g}"


def _sub(k: int) -> str:
    return str(k).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


@dataclass(frozen=True, eq=False, repr=False)     # repr from _display.Summary
class Attractor(_display.Summary):
    """The attractor ``K*`` of the piggyback iteration at a fixed point, with a proved error.

    The set is represented in its own affine hull (``dimension`` D, decided exactly): a point
    (D = 0), a union of intervals of one entry of J (D = 1, ``intervals``), a cover by cubes of
    a quadtree / octree (D = 2, 3 with ``hull=True``, ``cells``), a convex polytope (D = 2, 3
    with ``hull=True`` when all maps share one linear part: the attractor is convex then,
    ``vertices``) or an epsilon-net of points.

    Attributes
    ----------
    hausdorff_bound : float
        Proved bound on the Hausdorff distance (Frobenius norm) between the representation (the
        point, the union of segments, the cells, the polytope, the net) and the true
        attractor.
    points : ndarray (N, n, m)
        A finite sample of the representation (read-only): the net itself, for D = 1 points
        spread along the intervals, cell centres, or a lattice inside a polytope with its facets
        sampled, plus the fixed points of the maps ``[A_i B_i]`` (which lie in ``K*``). Every
        point of ``K*`` is within :attr:`points_bound` of one.
    points_bound : float
        Hausdorff bound of :attr:`points` (equal to ``hausdorff_bound`` for a net).
    dimension : int
        Dimension of the affine hull of ``K*`` (an upper bound when ``hull_exact`` is False).
    rho, P : float, ndarray (n, n)
        The contraction factor and quadratic norm ``sqrt(trace(J^T P J))`` used (verified).
    hull : bool
        Convex hull of the selections (True) or the finite set of selections (False).
    tol : float
        The requested tolerance, or (``tol=None``) the bound the budget allowed.
    complete : bool
        False when a time limit stopped the computation: the bound still holds for the
        returned set, but may exceed ``tol``.
    iterations : int
        Applications of the set-valued map.
    """

    hull: bool
    rho: float
    P: np.ndarray
    hausdorff_bound: float
    tol: float
    complete: bool
    iterations: int
    space: ReducedSystem
    fixed_points: np.ndarray
    net_radius: float = 0.0
    hull_exact: bool = True
    line: np.ndarray | None = field(default=None)      # intervals (N, 2) in the coordinate
    net: np.ndarray | None = field(default=None)       # points (N, n, m) of a net
    cell_boxes: np.ndarray | None = field(default=None)   # boxes (N, 2, D) in frame coords
    cell_inner: np.ndarray | None = field(default=None)   # (N,) proved inside K*
    frame: np.ndarray | None = field(default=None)        # (D, n, m), orthonormal
    poly_vertices: np.ndarray | None = field(default=None)  # (N, D) in frame coords
    names: tuple | None = None
    max_points: int = 200_000
    verified: bool = True

    def __post_init__(self):
        for name in ("P", "fixed_points", "line", "net", "cell_boxes", "frame",
                     "poly_vertices"):
            value = getattr(self, name)
            if value is not None:
                arr = np.array(value, dtype=float)
                arr.setflags(write=False)
                object.__setattr__(self, name, arr)

    # --- what the set is --------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """Shape (n, m) of one Jacobian J."""
        return tuple(self.space.origin.shape)

    @property
    def dimension(self) -> int:
        return self.space.dimension

    @property
    def kind(self) -> str:
        """"point", "intervals", "cells", "polytope" or "net"."""
        if self.cell_boxes is not None:
            return "cells"
        if self.poly_vertices is not None:
            return "polytope"
        return "intervals" if self.line is not None else "net" if self.net is not None \
            else "point"

    @property
    def cells(self) -> np.ndarray | None:
        """For a cover by cells: the cubes (N, 2, D) as (lo, hi) in the orthonormal coordinates
        y of the affine hull, ``J = origin + sum_a y_a frame[a]``; their union contains ``K*``
        and lies within ``hausdorff_bound`` of it. None for other representations."""
        return self.cell_boxes

    @property
    def cell_size(self) -> float | None:
        """Side of the finest cells of a cover (Frobenius), or None."""
        if self.cell_boxes is None:
            return None
        return float(np.min(self.cell_boxes[:, 1, 0] - self.cell_boxes[:, 0, 0]))

    @property
    def vertices(self) -> np.ndarray | None:
        """For a polytope: its vertices (N, D) in the orthonormal coordinates y of the affine
        hull, ``J = origin + sum_a y_a frame[a]``; their convex hull is within
        ``hausdorff_bound`` of ``K*`` (and contains it). None for other representations."""
        if self.poly_vertices is None:
            return None
        return self.poly_vertices[self._polytope.vertices]

    @functools.cached_property
    def _polytope(self):
        from scipy.spatial import ConvexHull
        return ConvexHull(self.poly_vertices)

    def _frame_coordinates(self, J: np.ndarray):
        """(y, off): frame coordinates of the projection of each J on the hull, and the
        Frobenius distance of J to it."""
        E = self.frame.reshape(self.dimension, -1)
        w = (J - self.space.origin[None]).reshape(len(J), -1)
        y = w @ E.T
        return y, _row_norms(w - y @ E)

    @property
    def intervals(self) -> np.ndarray:
        """For dimension 1: the intervals (N, 2) of the entry :attr:`axis_entry` whose union,
        along the line ``J = origin + c * direction``, is within ``hausdorff_bound`` of ``K*``
        (it contains ``K*``: an outer cover)."""
        if self.line is None:
            raise InputError(fail_message(
                "Attractor.intervals", f"an attractor of dimension {self.dimension}",
                "intervals describe one-dimensional attractors; use .points or .distance()"))
        return self.line

    @property
    def axis_entry(self) -> tuple[int, int] | None:
        """(i, j): the entry ``J[i, j]`` that parametrises a one-dimensional attractor."""
        if self.dimension != 1:
            return None
        return divmod(self.space.pivots[0], self.shape[1])

    @property
    def direction(self) -> np.ndarray:
        """The line's direction (n, m) (its pivot entry is 1), for dimension 1."""
        return self.space.basis[0]

    # --- samples ----------------------------------------------------------------------------

    @functools.cached_property
    def _sample(self) -> tuple[np.ndarray, float]:
        q_norm = self._basis_norm()
        if self.line is not None:
            L = self.line
            total = float(np.sum(L[:, 1] - L[:, 0]))
            step = max(total / _SAMPLES, 1e-300)
            if self.tol > self.hausdorff_bound and q_norm > 0:     # points within tol if they fit
                fine = 2 * (self.tol - self.hausdorff_bound) / q_norm * (1 - 1e-9)
                if total / fine <= self.max_points:
                    step = max(min(step, fine), 1e-300)
            counts = np.floor((L[:, 1] - L[:, 0]) / step).astype(np.int64) + 1
            # lo + step j (j < count) on every interval, and its upper end: one vector
            j = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            parts = np.concatenate([np.repeat(L[:, 0], counts) + step * j, L[:, 1]])
            c = np.unique(np.clip(parts, L[:, 0].min(), L[:, 1].max()))
            pts = self.space.embed(c[:, None])
            bound = self.hausdorff_bound + step / 2 * q_norm * (1 + 1e-12)
        elif self.cell_boxes is not None:
            from ._ifs_cells import subdivide
            side = self.cell_size
            sides = self.cell_boxes[:, 1, 0] - self.cell_boxes[:, 0, 0]
            D = self.dimension
            limit = max(5 * _SAMPLES, 3 * len(sides))
            while np.sum(np.maximum(1.0, sides / side) ** D) > limit:
                side *= 2
            y = subdivide(self.cell_boxes, side)
            E = self.frame.reshape(D, -1)
            pts = self.space.origin[None] + (y @ E).reshape((len(y),) + self.shape)
            radius = float(np.max(np.minimum(sides, side))) * math.sqrt(D) / 2
            bound = max(self.hausdorff_bound, radius * (1 + 1e-9))
        elif self.poly_vertices is not None:
            from ._ifs_polytope import polytope_sample
            y, spacing = polytope_sample(self._polytope, 5 * _SAMPLES)
            E = self.frame.reshape(self.dimension, -1)
            pts = self.space.origin[None] + (y @ E).reshape((len(y),) + self.shape)
            bound = self.hausdorff_bound + spacing * (1 + 1e-9)
        elif self.net is not None:
            pts, bound = self.net, self.hausdorff_bound
        else:
            pts, bound = self.space.origin[None], self.hausdorff_bound
        pts = np.concatenate([pts, self.fixed_points])
        pts.setflags(write=False)
        return pts, bound

    @property
    def points(self) -> np.ndarray:
        return self._sample[0]

    @property
    def points_bound(self) -> float:
        return self._sample[1]

    def __len__(self) -> int:
        return len(self.points)

    def _basis_norm(self) -> float:
        if self.dimension == 0:
            return 0.0
        Q = self.space.basis.reshape(self.dimension, -1)
        return float(np.linalg.norm(Q, 2)) * (1 + 1e-12)

    # --- questions --------------------------------------------------------------------------

    def _as_points(self, J, call):
        n, m = self.shape
        arr = as_float_array(J, name="J", call=call)
        if arr.shape == (n, m) or (arr.ndim == 1 and arr.shape == (n * m,)):
            return arr.reshape(1, n, m), True
        if arr.ndim == 3 and arr.shape[1:] == (n, m):
            return arr, False
        raise ShapeError(fail_message(call, f"J of shape {arr.shape}",
                                      f"pass a Jacobian of shape ({n}, {m}) or a stack (N, {n}, "
                                      f"{m})"))

    def distance(self, J):
        """Frobenius distance from J (n, m), or from each of a stack (N, n, m), to the
        representation; the distance to the true attractor differs by at most
        ``hausdorff_bound``.

        Examples
        --------
        >>> import conservative as cv
        >>> F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
        >>> att = cv.attractor(F, 0.0, 0.0)                 # the interval [1/2, 1]
        >>> round(att.distance([[1.25]]), 12), att.contains([[0.75]])
        (0.25, True)
        """
        pts, single = self._as_points(J, "Attractor.distance")
        if self.cell_boxes is not None:
            from ._ifs_cells import box_distance
            y, off = self._frame_coordinates(pts)
            dist = np.hypot(off, box_distance(y, self.cell_boxes))
        elif self.poly_vertices is not None:
            from ._ifs_polytope import polytope_distance
            y, off = self._frame_coordinates(pts)
            dist = np.hypot(off, polytope_distance(y, self._polytope))
        elif self.line is not None:
            w = (pts - self.space.origin[None]).reshape(len(pts), -1)
            q = self.direction.ravel()
            c = w @ q / float(q @ q)
            lo, hi = self.line[:, 0], self.line[:, 1]
            k = np.clip(np.searchsorted(lo, c, side="right") - 1, 0, len(lo) - 1)
            best = np.clip(c, lo[k], hi[k])
            k2 = np.clip(k + 1, 0, len(lo) - 1)
            alt = np.clip(c, lo[k2], hi[k2])
            near = np.where(np.abs(alt - c) < np.abs(best - c), alt, best)
            dist = _row_norms(w - near[:, None] * q[None])
        else:
            ref = (self.net if self.net is not None else self.space.origin[None])
            from scipy.spatial import cKDTree
            scale = max(float(np.max(np.abs(ref))), float(np.max(np.abs(pts))), 1e-300)
            dist, _ = cKDTree(ref.reshape(len(ref), -1) / scale).query(
                pts.reshape(len(pts), -1) / scale)
            dist = dist * scale                          # no overflow for entries near 1e300
        return float(dist[0]) if single else np.asarray(dist, dtype=float)

    def contains(self, J, atol=None):
        """Whether J may belong to the attractor: ``distance(J) <= hausdorff_bound + atol``.

        Never False for a point of the true attractor; True means J is within
        ``2 hausdorff_bound + atol`` of it. ``atol=None``: a rounding allowance
        ``1e-12 (1 + max|J|)``.
        """
        pts, single = self._as_points(J, "Attractor.contains")
        dist = np.atleast_1d(self.distance(pts))
        if atol is None:
            slack = 1e-12 * (1 + np.max(np.abs(pts.reshape(len(pts), -1)), axis=1))
        else:
            slack = float(as_float_array(atol, name="atol", call="Attractor.contains"))
            if not slack >= 0:
                raise InputError(fail_message("Attractor.contains", f"atol={atol!r}",
                                              "pass a non-negative atol or None"))
        inside = dist <= self.hausdorff_bound + slack
        return bool(inside[0]) if single else inside

    def bounding_box(self, *, rigorous: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Entrywise bounds (lo, hi), each (n, m), of the representation; with
        ``rigorous=True`` widened by ``hausdorff_bound`` so that they contain ``K*``.

        Examples
        --------
        >>> import conservative as cv
        >>> att = cv.attractor(cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ()), 0.0, 0.0)
        >>> [round(float(v.item()), 9) for v in att.bounding_box()]
        [0.5, 1.0]
        """
        rigorous = check_bool(rigorous, name="rigorous", call="Attractor.bounding_box")
        if self.line is not None:
            ends = self.space.embed(np.array([[self.line[0, 0]], [self.line[-1, 1]]]))
            lo, hi = ends.min(axis=0), ends.max(axis=0)
        else:
            pts = self._corners() if self.cell_boxes is not None else \
                self._embed_frame(self.vertices) if self.poly_vertices is not None else \
                self.net if self.net is not None else self.space.origin[None]
            lo, hi = pts.min(axis=0), pts.max(axis=0)
        if rigorous:
            lo, hi = lo - self.hausdorff_bound, hi + self.hausdorff_bound
            if self.net is not None or self.cell_boxes is not None or \
                    self.poly_vertices is not None:                  # the support function
                slo, shi = self._support_box
                lo, hi = np.maximum(lo, slo), np.minimum(hi, shi)
        return lo, hi

    @functools.cached_property
    def _support_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Entrywise brackets of K* from its support function (see ``_support``)."""
        from ._support import support_bracket
        space, (n, m) = self.space, self.shape
        D = space.dimension
        Q = space.basis.reshape(D, n, m)
        G = np.einsum("ais,ij,bjs->ab", Q, self.P, Q)
        G = (G + G.T) / 2
        G_inv = np.linalg.inv(G)
        R, t = space.R, space.t
        c0 = np.linalg.solve(np.eye(D) - R[0], t[0])
        step = np.einsum("kab,b->ka", R, c0) + t - c0
        rho = min(self.rho * (1 + 1e-9), 1 - 1e-12)
        radius = float(np.sqrt(np.max(np.einsum("ka,ab,kb->k", step, G, step)))) / (1 - rho)
        radius = radius * (1 + 1e-9) + 1e-300
        flat_o = space.origin.ravel()
        lo, hi = np.full(n * m, -np.inf), np.full(n * m, np.inf)
        for e in range(n * m):
            u = Q.reshape(D, -1)[:, e]
            if not np.any(u):
                lo[e] = hi[e] = flat_o[e]
                continue
            _, upper = support_bracket(R, t, c0, radius, G_inv, u, max_nodes=20_000)
            _, neg = support_bracket(R, t, c0, radius, G_inv, -u, max_nodes=20_000)
            pad = 4 * _U * (abs(flat_o[e]) + max(abs(upper), abs(neg)))
            hi[e], lo[e] = flat_o[e] + upper + pad, flat_o[e] - neg - pad
        return lo.reshape(n, m), hi.reshape(n, m)

    def hull_vertices(self) -> np.ndarray:
        """Vertices (h, n, m) of the convex hull of the representation, for dimension <= 3;
        the convex hull of ``K*`` is within ``hausdorff_bound`` of their hull.

        Examples
        --------
        >>> from conservative.derivatives.attractor import ifs_attractor
        >>> att = ifs_attractor([[[0.5]], [[-0.5]]], [[[1.0]], [[0.0]]], hull=True)
        >>> np.round(att.hull_vertices().ravel(), 12)
        array([-1.,  2.])
        """
        if self.line is not None:
            return self.space.embed(np.array([[self.line[0, 0]], [self.line[-1, 1]]]))
        if self.cell_boxes is not None:
            y = self._corner_coordinates()
            keep = hull_vertex_indices(y, max_dim=3)
            return self._corners()[keep]
        if self.poly_vertices is not None:
            return self._embed_frame(self.vertices)
        if self.net is None:
            return self.space.origin[None].copy()
        c, _ = self.space.coordinates(self.net)
        keep = hull_vertex_indices(c, max_dim=3)
        if keep is None:
            from ..errors import SetTooLargeError
            raise SetTooLargeError(fail_message(
                "Attractor.hull_vertices", f"an attractor of dimension {self.dimension}",
                "use .points or .bounding_box(); convex hull vertices are enumerated only up "
                "to dimension 3 (n*m <= 3 or a flat set)"))
        return self.net[keep]

    def _corner_coordinates(self) -> np.ndarray:
        """Frame coordinates of the corners of the cells (duplicates removed)."""
        import itertools
        b = self.cell_boxes
        D = self.dimension
        pick = np.array(list(itertools.product((0, 1), repeat=D)))
        y = b[:, pick, np.arange(D)]                       # (N, 2^D, D)
        return np.unique(y.reshape(-1, D), axis=0)

    def _corners(self) -> np.ndarray:
        """The corners of the cells as Jacobians (N, n, m)."""
        return self._embed_frame(self._corner_coordinates())

    def _embed_frame(self, y: np.ndarray) -> np.ndarray:
        """Jacobians (N, n, m) of frame coordinates y (N, D)."""
        E = self.frame.reshape(self.dimension, -1)
        return self.space.origin[None] + (y @ E).reshape((len(y),) + self.shape)

    # --- reading it -------------------------------------------------------------------------

    def _summary(self) -> tuple[str, list[tuple[str, str]]]:
        n, m = self.shape
        what = "a single point" if self.kind == "point" else \
            f"a net of {0 if self.net is None else len(self.net)} points"
        if self.kind == "cells":
            what = (f"a cover of {len(self.cell_boxes)} cells ({int(np.sum(self.cell_inner))} "
                    f"proved inside), finest side {self.cell_size:.3g}")
        if self.kind == "polytope":
            what = f"a convex polytope with {len(self.vertices)} vertices"
        if self.kind == "intervals":
            name = self.names[self.space.pivots[0]] if self.names else entry_name(
                self.space.pivots[0], m)
            lo, hi = self.line[0, 0], self.line[-1, 1]
            what = (f"{len(self.line)} interval{'s' if len(self.line) > 1 else ''} of {name} "
                    f"in [{_fmt(lo)}, {_fmt(hi)}]")
        rows = [("Jacobians", f"{n} x {m}, {'convex hull' if self.hull else 'finite selections'}"),
                ("dimension", f"{self.dimension} ({'exact' if self.hull_exact else 'upper bound'})"
                              f", {what}"),
                ("Hausdorff error", f"<= {self.hausdorff_bound:.3g} (tol {self.tol:.3g})"),
                ("contraction", f"rho = {self.rho:.6g} in the quadratic norm .P"
                                f"{' (verified exactly)' if self.verified else ''}")]
        if not self.complete:
            rows.append(("PARTIAL", "stopped by the time limit: the bound holds, above tol"))
        return f"Attractor({rows[0][1]})", rows[1:]

    def to_dict(self) -> dict:
        """JSON-ready dictionary (arrays as nested lists)."""
        def num(x):
            return None if x is None or not math.isfinite(x) else float(x)
        return {
            "shape": list(self.shape), "hull": self.hull, "dimension": self.dimension,
            "dimension_exact": self.hull_exact, "kind": self.kind,
            "hausdorff_bound": num(self.hausdorff_bound), "tol": num(self.tol),
            "complete": self.complete, "rho": num(self.rho), "P": self.P.tolist(),
            "iterations": self.iterations,
            "axis_entry": None if self.axis_entry is None else list(self.axis_entry),
            "origin": self.space.origin.tolist(), "basis": self.space.basis.tolist(),
            "intervals": None if self.line is None else self.line.tolist(),
            "points": None if self.net is None else self.net.tolist(),
            "cells": None if self.cell_boxes is None else self.cell_boxes.tolist(),
            "cells_inner": None if self.cell_inner is None else
            np.asarray(self.cell_inner).tolist(),
            "frame": None if self.frame is None else self.frame.tolist(),
            "vertices": None if self.poly_vertices is None else self.vertices.tolist(),
            "fixed_points": self.fixed_points.tolist(),
        }
