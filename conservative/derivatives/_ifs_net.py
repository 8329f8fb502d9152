"""The set-valued Banach-Picard attractor of the piggyback derivative iteration.

At a fixed point, the conservative Jacobian of the algorithm map is given by its vertices
``[A_i B_i]``, ``A_i`` (n, n), ``B_i`` (n, m), i = 1..k. The set-valued piggyback map on compact
sets K of Jacobians ``J`` (n, m) is the Hutchinson operator

.. math::

    \\Phi(K) = \\{A J + B : [A\\ B] \\in S,\\ J \\in K\\}.

* ``hull=False``: S is the finite vertex set, so Phi is the Hutchinson operator of an iterated
  function system (IFS) of k affine maps; its attractor can be finite, countable, Cantor-like, an
  interval, a fractal.
* ``hull=True``: S is the convex hull of the vertices. For a fixed J the image
  ``{A J + B : [A B] in conv S}`` is the polytope ``conv{A_i J + B_i}`` (affine in the weights),
  so ``Phi_hull(K)`` is the union over J in K of these polytopes, and the hull attractor satisfies
  ``K_vertex ⊆ K_hull ⊆ conv(K_vertex)``.

A quadratic contraction certificate ``P ≻ 0``, ``A_i^T P A_i ≼ rho^2 P`` (rho < 1) makes
``||A J||_P <= rho ||J||_P`` for every A of conv S, with ``||J||_P = sqrt(trace(J^T P J))``, so Phi
is a rho-contraction for the Hausdorff distance in that norm and has a unique compact fixed point,
the attractor ``K*`` (Banach-Picard / Hutchinson). :func:`ifs_attractor` computes a finite point
set within a proved Hausdorff distance of ``K*``.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .._types import as_float_array, as_matrix_stack, check_bool
from ..distances import CellSnapper, norm_factor
from ..errors import (InputError, NotContractingError, SetTooLargeError, ShapeError,
                     fail_message)

__all__ = ["Attractor", "ifs_attractor"]

_CALL = "cv.ifs_attractor"
#: Candidate points handled per chunk (bounds temporary memory).
_CHUNK = 1 << 18
#: Share of the tolerance given to the per-iteration net error (the rest to the iteration count).
_NET_SHARE = 0.8
_U = np.finfo(float).eps


@dataclass(frozen=True, eq=False, repr=False)
class Attractor:
    """A finite approximation of the attractor of a set-valued piggyback map, with its error.

    Attributes
    ----------
    points : ndarray of shape (N, n, m)
        The point set (read-only). Its Hausdorff distance to the true attractor, in the
        Frobenius norm, is at most ``hausdorff_bound``.
    rho : float
        Contraction factor of the Hutchinson operator in the ``P``-norm (the given rho, or the
        re-measured one when it is larger within the accepted 1e-9 relative slack).
    hausdorff_bound : float
        Proved bound on ``d_H(points, K*)`` in the Frobenius (Euclidean) norm.
    hull : bool
        Whether the Jacobian set was the convex hull of the vertices (True) or the vertices.
    P : ndarray of shape (n, n)
        Matrix of the norm ``||J||_P = sqrt(trace(J^T P J))`` in which Phi contracts.
    iterations : int
        Number of applications of Phi.
    net_radius : float
        Hausdorff error allowed per iteration, in the P-norm: the grid-snapping radius plus,
        for ``hull=True``, the resolution at which the polytopes were filled.
    tol : float
        The requested bound.
    complete : bool
        False when a time limit stopped the iteration early: ``points`` are then the last
        complete iterate and ``hausdorff_bound`` (larger than ``tol``) is proved for it.
    """

    points: np.ndarray
    rho: float
    hausdorff_bound: float
    hull: bool
    P: np.ndarray
    iterations: int
    net_radius: float
    tol: float
    complete: bool = True

    def __post_init__(self):
        for name in ("points", "P"):
            arr = np.array(getattr(self, name), dtype=float)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for name in ("rho", "hausdorff_bound", "net_radius", "tol"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "iterations", int(self.iterations))
        object.__setattr__(self, "hull", bool(self.hull))

    @property
    def shape(self) -> tuple[int, int]:
        """Shape (n, m) of one Jacobian J."""
        return self.points.shape[1:]

    def __len__(self) -> int:
        return self.points.shape[0]

    def bounding_box(self, *, rigorous: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Entrywise bounds (lo, hi), each of shape (n, m).

        Parameters
        ----------
        rigorous : bool
            If False (default), the bounding box of ``points``. If True, widened by
            ``hausdorff_bound`` so that it contains the true attractor (every point of ``K*`` is
            within ``hausdorff_bound`` of a point, in Frobenius norm, hence in each entry).

        Examples
        --------
        >>> att = ifs_attractor([[[0.5]]] * 2, [[[0.0]], [[0.5]]], hull=False, tol=1e-3)
        >>> lo, hi = att.bounding_box()
        >>> round(lo.item(), 2), round(hi.item(), 2)
        (0.0, 1.0)
        >>> lo, hi = att.bounding_box(rigorous=True)
        >>> bool(lo.item() <= 0.0 and hi.item() >= 1.0)
        True
        """
        rigorous = check_bool(rigorous, name="rigorous", call="Attractor.bounding_box")
        lo = self.points.min(axis=0)
        hi = self.points.max(axis=0)
        if rigorous:
            lo, hi = lo - self.hausdorff_bound, hi + self.hausdorff_bound
        return lo, hi

    def hull_vertices(self) -> np.ndarray:
        """Points of ``points`` that are vertices of their convex hull, shape (h, n, m).

        For ``n*m == 1`` the minimum and maximum; for ``n*m`` in {2, 3} the vertices found by
        :class:`scipy.spatial.ConvexHull` (a flat set is handled in its affine hull). The convex
        hull of the true attractor is within ``hausdorff_bound`` of the hull of these vertices.

        Raises
        ------
        SetTooLargeError
            If ``n*m > 3``: use ``points`` or :meth:`bounding_box` instead.

        Examples
        --------
        >>> att = ifs_attractor([[[0.5]], [[-0.5]]], [[[1.0]], [[0.0]]], hull=True, tol=1e-3)
        >>> np.round(att.hull_vertices().ravel(), 3)
        array([-1.,  2.])
        """
        Z = self.points.reshape(len(self), -1)
        d = Z.shape[1]
        if d > 3:
            raise SetTooLargeError(fail_message(
                "Attractor.hull_vertices", f"an attractor of matrices of shape {self.shape} "
                f"(dimension {d})", "use .points or .bounding_box(); convex hull vertices are "
                "enumerated only for n*m <= 3"))
        return self.points[_hull_indices(Z)]

    def __repr__(self) -> str:
        n, m = self.shape
        text = (f"Attractor(shape=({n}, {m}), hull={self.hull}, points={len(self)}, "
                f"rho={self.rho:.6g}, hausdorff_bound={self.hausdorff_bound:.3g}, "
                f"iterations={self.iterations}")
        if n * m == 1:
            lo, hi = self.bounding_box()
            text += f", range=[{lo.item():.6g}, {hi.item():.6g}]"
        if not self.complete:
            text += ", PARTIAL: stopped by the time limit"
        return text + ")"


def _hull_indices(Z: np.ndarray) -> np.ndarray:
    """Indices of the convex hull vertices of the rows of Z (d <= 3), handling flat sets."""
    if Z.shape[1] == 1:  # [min, max], in that order
        lo, hi = int(np.argmin(Z[:, 0])), int(np.argmax(Z[:, 0]))
        return np.array([lo] if Z[lo, 0] == Z[hi, 0] else [lo, hi])
    center = Z.mean(axis=0)
    C = Z - center
    scale = float(np.max(np.abs(C))) if C.size else 0.0
    if scale == 0.0:
        return np.array([0])
    _, s, Vt = np.linalg.svd(C, full_matrices=False)
    rank = int(np.sum(s > 1e-10 * s[0]))
    coords = C @ Vt[:rank].T
    if rank == 1:
        return np.array([np.argmin(coords[:, 0]), np.argmax(coords[:, 0])])
    from scipy.spatial import ConvexHull  # scipy is imported where used (import time)
    return np.sort(ConvexHull(coords).vertices)


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


class _Problem:
    """Validated data of one attractor computation."""

    def __init__(self, A, B, hull, P, rho, tol, max_points, J0, call=_CALL):
        self.call = call
        self.A = as_matrix_stack(A, name="A", call=call)
        k, n, _ = self.A.shape
        B = as_float_array(B, name="B", call=call)
        if B.ndim == 2:
            B = B[None]
        if B.ndim != 3 or B.shape[0] != k or B.shape[1] != n or B.shape[2] == 0:
            raise ShapeError(fail_message(
                call, f"A of shape {self.A.shape} and B of shape {B.shape}",
                f"pass B of shape ({k}, {n}, m): one (n, m) block per vertex [A_i B_i]"))
        self.B = B
        self.k, self.n, self.m = k, n, B.shape[2]
        self.d = self.n * self.m
        if not isinstance(hull, (bool, np.bool_)):
            raise InputError(fail_message(call, f"hull={hull!r}",
                                          "pass hull=True (convex hull) or hull=False (vertices)"))
        self.hull = bool(hull)
        L = norm_factor(P, n, call=call)
        self.L = np.eye(n) if L is None else L
        self.P = self.L @ self.L.T if P is None else np.asarray(P, dtype=float)
        self.sqrt_lmin = math.sqrt(float(np.linalg.eigvalsh((self.P + self.P.T) / 2)[0]))
        # Contraction factors ||L^T A_i L^{-T}||_2 = ||P^{1/2} A_i P^{-1/2}||_2.
        from scipy.linalg import solve_triangular
        self.Lt_inv = Lt_inv = solve_triangular(self.L, np.eye(n), lower=True).T
        M = np.einsum("ji,kjl,lm->kim", self.L, self.A, Lt_inv)
        norms = np.linalg.norm(M, ord=2, axis=(1, 2))
        worst = int(np.argmax(norms))
        self.contraction = float(norms[worst])
        if rho is None:
            if not self.contraction < 1:
                raise NotContractingError(fail_message(
                    call, f"vertices whose largest P-norm is {self.contraction:.6g} "
                    f"(vertex {worst})", "pass P and rho from a contraction certificate "
                    "(cv.certify_contraction); the attractor is defined only for rho < 1"))
            rho = self.contraction
        try:
            rho = float(rho)
        except (TypeError, ValueError):
            raise InputError(fail_message(call, f"rho={rho!r}", "pass a float in [0, 1)"))
        if not math.isfinite(rho) or rho < 0:
            raise InputError(fail_message(call, f"rho={rho!r}", "pass a float in [0, 1)"))
        if rho >= 1:
            raise NotContractingError(fail_message(
                call, f"rho={rho:.6g} >= 1", "the set-valued iteration is a contraction only "
                "for rho < 1: pass a certified rho < 1 (cv.certify_contraction) or check the "
                "map with cv.jsr"))
        if self.contraction > rho * (1 + 1e-9):
            raise NotContractingError(fail_message(
                call, f"rho={rho:.6g}, but vertex {worst} has ||P^(1/2) A P^(-1/2)||_2 = "
                f"{self.contraction:.6g} > rho", "pass the P and rho of a valid contraction "
                "certificate for these vertices (cv.certify_contraction)"))
        self.rho = max(rho, self.contraction)
        # used in the bound: covers the rounding of the computed norms
        self.rho_bound = max(rho, self.contraction * (1 + 16 * n * _U))
        if self.rho_bound >= 1:
            raise NotContractingError(fail_message(
                call, f"a contraction factor {self.contraction!r}, 1 up to rounding",
                "pass vertices that contract by a margin (rho < 1 - 1e-12)"))
        try:
            tol = float(tol)
        except (TypeError, ValueError, OverflowError):
            tol = float("nan")
        if not (math.isfinite(tol) and tol > 0):
            raise InputError(fail_message(call, f"tol={tol!r}", "pass a positive finite tol"))
        self.tol = tol
        if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) \
                or max_points < 1:
            raise InputError(fail_message(call, f"max_points={max_points!r}",
                                          "pass a positive integer"))
        self.max_points = int(max_points)
        if J0 is None:
            J0 = np.linalg.solve(np.eye(n) - self.A[0], self.B[0])  # fixed point of map 0
        self.J0 = as_float_array(J0, name="J0", call=call, shape=(n, self.m))

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


def ifs_attractor(A, B, *, hull, P=None, rho=None, tol=1e-6, max_points=200_000,
                  J0=None, strict=True, time_limit: float | None = None,
                  call: str = _CALL) -> Attractor:
    """Attractor of the set-valued piggyback map ``Phi(K) = {A J + B : [A B] in S, J in K}``.

    Iterates Phi from ``{J0}`` on an epsilon-net: after each application the points are
    snapped to a grid of cubes of diameter ``2 eps`` in the P-norm
    (:func:`conservative.distances.net_snap`: one point per occupied cube, the input point itself
    when it is within eps of everything in its cube, else the cube's centre), so the number of
    points is bounded by the geometry of the set (about ``(diam / eps)^dim``), not by
    ``k^iterations``. For ``hull=True`` the polytopes ``conv{A_i J + B_i}`` are filled: exactly
    as intervals (merged, then gridded at spacing ``2 eps``) when ``n*m == 1``; otherwise by the
    convex combinations with weights on the simplex lattice ``{w : q w integer}``, q chosen per
    point so that the sampling resolution is a third of the per-iteration error. The work of the
    latter grows like ``N (diam / eps)^min(k-1, n*m)`` per iteration (N points), so it is meant
    for small k and moderate tolerances (about 1e-2 of the diameter in the plane with k = 2).

    **Error bound.** Let ``eps`` be the per-iteration error in the P-norm (snapping radius plus
    polytope sampling resolution), so the computed iterates satisfy
    ``d_P(K_{j+1}, Phi(K_j)) <= eps``. Since Phi is a rho-contraction for the Hausdorff
    distance ``d_P`` in the P-norm, with ``K*`` its fixed point,

    .. math::

        d_P(K_{j+1}, K^*) \\le \\varepsilon + \\rho\\, d_P(K_j, K^*)
        \\quad\\Rightarrow\\quad
        d_P(K_j, K^*) \\le \\rho^j d_P(K_0, K^*) + \\varepsilon \\frac{1 - \\rho^j}{1 - \\rho},

    and the Banach-Picard a priori bound gives
    ``d_P(K_0, K*) <= d_P(K_0, Phi(K_0)) / (1 - rho)`` where, for ``K_0 = {J0}``,
    ``d_P(K_0, Phi(K_0)) = max_i ||A_i J0 + B_i - J0||_P`` (the farthest point of a polytope is a
    vertex). ``eps`` is set to 80% of ``(1 - rho) tol sqrt(lambda_min(P))`` and the number of
    iterations j to the smallest making the total at most ``tol sqrt(lambda_min(P))``. For
    floating point, a slack (a multiple of the unit roundoff times the sizes involved and
    ``sqrt(cond(P))``) is added to ``eps`` and to the computed ``d_P(K_0, Phi(K_0))``, and rho
    is taken as ``max(rho, measured norm * (1 + 16 n u))``: the bound is rigorous up to this
    modelled rounding, not interval-verified. The bound is converted to the Frobenius norm with
    ``||J||_F <= ||J||_P / sqrt(lambda_min(P))``, and the value actually proved is reported as
    ``hausdorff_bound`` (<= tol).

    Parameters
    ----------
    A : array_like of shape (k, n, n)
        The blocks ``A_i = d F / d x`` of the vertices of the Jacobian set at the fixed point.
    B : array_like of shape (k, n, m)
        The blocks ``B_i = d F / d theta`` (same vertex order).
    hull : bool
        True: S is the convex hull of the vertices (Clarke-like); False: the vertices only.
    P : array_like of shape (n, n), optional
        Symmetric positive definite matrix of the certificate; default identity.
    rho : float, optional
        Certified contraction factor, ``0 <= rho < 1``, with ``A_i^T P A_i <= rho^2 P``. It is
        re-checked in floating point: ``max_i ||P^(1/2) A_i P^(-1/2)||_2 <= rho (1 + 1e-9)``.
        Default: that maximum itself (a floating-point value, not a certificate).
    tol : float
        Required bound on the Frobenius Hausdorff distance between the points and the attractor.
    max_points : int
        Largest point set held (after merging); also bounds the polytope samples at 50 times.
    J0 : array_like of shape (n, m), optional
        Start point. Default: the fixed point ``(I - A_0)^{-1} B_0`` of the first vertex map,
        which lies in the attractor.
    time_limit : float, optional
        Seconds. When it runs out the iteration stops within one chunk of work and the last
        complete iterate is returned with its own proved bound (``complete=False``).
    strict : bool
        If True (default), raise :class:`SetTooLargeError` when ``tol`` needs more than
        ``max_points`` points. If False, retry with larger tolerances until the set fits and
        return that attractor (its ``tol`` and ``hausdorff_bound`` say what was achieved), with
        a ``RuntimeWarning``.

    Returns
    -------
    Attractor

    Raises
    ------
    NotContractingError
        If ``rho >= 1`` or a vertex does not contract by rho in the P-norm.
    ShapeError
        If A is not (k, n, n), B not (k, n, m) or J0 not (n, m).
    InputError
        If ``hull`` is not a bool, P is not symmetric positive definite, rho is negative, or
        ``tol``/``max_points`` are not positive.
    SetTooLargeError
        If the requested tolerance needs more than ``max_points`` points (the message suggests
        a tolerance that fits), or too many polytope samples; only with ``strict=True``.

    Warns
    -----
    RuntimeWarning
        With ``strict=False``, when the tolerance had to be enlarged.

    Examples
    --------
    The binary expansions: x/2 and x/2 + 1/2 have the attractor [0, 1].

    >>> att = ifs_attractor([[[0.5]], [[0.5]]], [[[0.0]], [[0.5]]], hull=False, tol=1e-3)
    >>> att.hausdorff_bound <= 1e-3, att.rho
    (True, 0.5)
    >>> lo, hi = att.bounding_box(rigorous=True)
    >>> bool(lo[0, 0] <= 0.0 and hi[0, 0] >= 1.0)
    True

    The middle-thirds Cantor set (vertices) versus the whole interval [0, 1] (hull):

    >>> A, B = [[[1 / 3]], [[1 / 3]]], [[[0.0]], [[2 / 3]]]
    >>> cantor = ifs_attractor(A, B, hull=False, tol=1e-3)
    >>> bool(np.all((cantor.points < 0.34) | (cantor.points > 0.66)))
    True
    >>> full = ifs_attractor(A, B, hull=True, tol=1e-3)
    >>> bool(np.any((full.points > 0.4) & (full.points < 0.6)))
    True
    """
    pb = _Problem(A, B, hull, P, rho, tol, max_points, J0, call)
    pb.deadline = math.inf if time_limit is None else time.monotonic() + float(time_limit)
    if strict:
        return _compute(pb)
    for _ in range(30):
        try:
            att = _compute(pb)
        except SetTooLargeError as err:
            pb.tol = err.suggested_tol
            continue
        if pb.tol != tol:
            warnings.warn(fail_message(
                pb.call,
                f"tol={tol:.3g}, which needs more than max_points={pb.max_points} points",
                f"returned the attractor at tol={pb.tol:.3g} (hausdorff_bound="
                f"{att.hausdorff_bound:.3g}); pass a larger max_points for a finer set"),
                RuntimeWarning, stacklevel=2)
        return att
    raise SetTooLargeError(fail_message(pb.call, f"tol={tol:.3g}", "pass a larger max_points"))


def _compute(pb: _Problem) -> Attractor:
    """The iteration of :func:`ifs_attractor` with the error bound, on validated data."""
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
    return Attractor(points=K, rho=pb.rho, hausdorff_bound=bound, hull=pb.hull, P=pb.P,
                     iterations=done, net_radius=eps, tol=pb.tol, complete=done == iterations)


class _TimeUp(Exception):
    """The time limit ran out inside an iteration (its partial result is dropped)."""


def _check_time(pb: _Problem) -> None:
    if time.monotonic() > getattr(pb, "deadline", math.inf):
        raise _TimeUp


def _too_large(pb: _Problem, count: int, what: str, j: int, iterations: int, dim: float,
               limit: int | None = None):
    limit = pb.max_points if limit is None else limit
    factor = max(2.0, (count / limit) ** (1.0 / max(dim, 1.0)) * 1.5)
    return SetTooLargeError(fail_message(
        pb.call, f"tol={pb.tol:.3g}: {what} {count} points at iteration {j + 1} of {iterations} "
        f"(limit {limit}, from max_points={pb.max_points})",
        f"pass a larger tol (at least about {pb.tol * factor:.2g}) or a larger max_points; "
        "the number of points grows like tol**(-dim) for a set of dimension dim"),
        suggested_tol=pb.tol * factor)


def _step(pb: _Problem, K: np.ndarray, eps: float, j: int, iterations: int) -> np.ndarray:
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


def _merge_chunks(pb: _Problem, chunks, radius: float) -> np.ndarray:
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


def _hull_step_1d(pb: _Problem, K: np.ndarray, eps: float, j: int, iterations: int):
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


def _hull_step_segments(pb: _Problem, K: np.ndarray, eps: float, j: int, iterations: int):
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


def _hull_step_nd(pb: _Problem, K: np.ndarray, eps: float, j: int, iterations: int):
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
