"""Distances between finite point sets of matrices, and epsilon-nets.

A *point set* is an array of shape ``(N, d)`` (N vectors) or ``(N, n, m)`` (N matrices, e.g. N
Jacobians ``J = dx/dtheta``). Matrices are compared in the Frobenius norm, or, when a symmetric
positive definite ``norm_matrix`` P (n, n) is given, in the weighted norm

.. math::

    \\|J\\|_P = \\sqrt{\\operatorname{trace}(J^T P J)} = \\|L^T J\\|_F, \\qquad P = L L^T,

which is the norm in which a quadratic contraction certificate (``A^T P A <= rho^2 P``) makes the
piggyback map ``J -> A J + B`` a contraction. For an ``(N, d)`` input P is (d, d) (each vector is
a (d, 1) matrix). Every function works on the transformed coordinates ``L^T J``, where the P-norm
is Euclidean, with exact nearest-neighbour queries (:class:`scipy.spatial.cKDTree`) run in chunks to
bound memory.

Definitions, for non-empty compact X, Y:

* excess (one-sided Hausdorff distance) ``e(X, Y) = sup_{x in X} dist(x, Y)``;
* Hausdorff distance ``d_H(X, Y) = max(e(X, Y), e(Y, X))``.

``e(X, Y) <= r`` means every point of X is within r of Y (X is "inside Y up to r");
``d_H(X, Y) <= r`` means each set is within r of the other.
"""

from __future__ import annotations

import numpy as np

from ._types import as_float_array
from .errors import InputError, ShapeError, fail_message

__all__ = ["hausdorff", "excess", "net_merge", "net_snap", "norm_factor", "hull_vertex_indices"]

#: Number of query points handled per chunk (bounds the temporary memory of the queries).
_CHUNK = 1 << 16


def norm_factor(norm_matrix, size: int, *, call: str) -> np.ndarray | None:
    """Return the Cholesky factor L (lower, ``P = L L^T``) of a norm matrix, or None for identity.

    Parameters
    ----------
    norm_matrix : array_like of shape (size, size) or None
        Symmetric positive definite matrix P; None means the Frobenius/Euclidean norm.
    size : int
        Required side of P (the row count n of the matrices measured).
    call : str
        Public call name, used in error messages.

    Raises
    ------
    ShapeError
        If P is not (size, size).
    InputError
        If P is not symmetric (relative tolerance 1e-10) or not positive definite.

    Examples
    --------
    >>> norm_factor([[4.0, 0.0], [0.0, 1.0]], 2, call="demo")
    array([[2., 0.],
           [0., 1.]])
    """
    if norm_matrix is None:
        return None
    P = as_float_array(norm_matrix, name="norm_matrix", call=call, shape=(size, size))
    scale = max(float(np.max(np.abs(P))), np.finfo(float).tiny)
    if np.max(np.abs(P - P.T)) > 1e-10 * scale:
        raise InputError(fail_message(call, "a non-symmetric norm_matrix P",
                                      "pass a symmetric positive definite matrix (P + P.T) / 2"))
    from scipy.linalg import cholesky  # scipy is imported where used (import time)
    try:
        L = cholesky((P + P.T) / 2, lower=True)
    except np.linalg.LinAlgError:
        L = None
    if L is None or not np.all(np.diag(L) > 0):
        eig = np.linalg.eigvalsh((P + P.T) / 2)
        raise InputError(fail_message(
            call, f"a norm_matrix P that is not positive definite (smallest eigenvalue "
                  f"{eig[0]:.3g})", "pass a symmetric positive definite matrix"))
    return L


def _flat_coordinates(X, *, name: str, call: str, L: np.ndarray | None) -> np.ndarray:
    """(N, n, m) or (N, d) -> (N, n*m) coordinates in which the P-norm is Euclidean."""
    if X.ndim == 2:
        X = X[:, :, None]
    if L is not None:
        X = np.einsum("ji,njm->nim", L, X)  # L^T J
    return X.reshape(X.shape[0], -1)


def _prepare(X, Y, norm_matrix, call: str):
    X = as_float_array(X, name="X", call=call)
    Y = as_float_array(Y, name="Y", call=call)
    for name, arr in (("X", X), ("Y", Y)):
        if arr.ndim not in (2, 3):
            raise ShapeError(fail_message(
                call, f"{name} of shape {arr.shape}",
                "pass a point set of shape (N, d) or (N, n, m) (N points)"))
        if arr.shape[0] == 0:
            raise InputError(fail_message(call, f"an empty point set {name}",
                                          "pass at least one point in each set"))
    if X.shape[1:] != Y.shape[1:]:
        raise ShapeError(fail_message(
            call, f"X of shape {X.shape} and Y of shape {Y.shape}",
            "pass two point sets whose points have the same shape"))
    L = norm_factor(norm_matrix, X.shape[1], call=call)
    return (_flat_coordinates(X, name="X", call=call, L=L),
            _flat_coordinates(Y, name="Y", call=call, L=L))


def _excess_flat(X: np.ndarray, Y: np.ndarray) -> float:
    """sup_{x in X} min_{y in Y} ||x - y||_2 for flat (N, d) arrays (exact, chunked)."""
    from scipy.spatial import cKDTree
    tree = cKDTree(Y)
    worst = 0.0
    for start in range(0, X.shape[0], _CHUNK):
        dist, _ = tree.query(X[start:start + _CHUNK], k=1)
        worst = max(worst, float(np.max(dist)))
    return worst


def excess(X, Y, *, norm_matrix=None) -> float:
    """Excess of X over Y: ``sup_{x in X} min_{y in Y} ||x - y||``.

    The one-sided Hausdorff distance. It is 0 exactly when X is contained in Y (for finite sets),
    and ``excess(X, Y) <= r`` means every point of X has a point of Y within r.

    Parameters
    ----------
    X, Y : array_like of shape (N, d) or (N, n, m)
        Non-empty point sets with the same point shape.
    norm_matrix : array_like of shape (n, n), optional
        P defining ``||J||_P = sqrt(trace(J^T P J))`` (for (N, d) input, P is (d, d)).
        Default: Frobenius (Euclidean) norm.

    Returns
    -------
    float

    Raises
    ------
    ShapeError
        If a set is not 2-D or 3-D or the point shapes differ.
    InputError
        If a set is empty, or the norm matrix is not symmetric positive definite.

    Examples
    --------
    >>> excess([[0.0], [1.0]], [[0.0], [0.25], [5.0]])
    0.75
    >>> excess([[0.0], [0.25], [5.0]], [[0.0], [1.0]])
    4.0
    """
    Xf, Yf = _prepare(X, Y, norm_matrix, "cv.excess")
    return _excess_flat(Xf, Yf)


def hausdorff(X, Y, *, norm_matrix=None) -> float:
    """Hausdorff distance ``max(excess(X, Y), excess(Y, X))`` between two finite point sets.

    Parameters
    ----------
    X, Y : array_like of shape (N, d) or (N, n, m)
        Non-empty point sets with the same point shape.
    norm_matrix : array_like of shape (n, n), optional
        P defining ``||J||_P = sqrt(trace(J^T P J))``; default Frobenius.

    Returns
    -------
    float

    Raises
    ------
    ShapeError, InputError
        As in :func:`excess`.

    Examples
    --------
    >>> hausdorff([[0.0], [1.0]], [[0.0], [0.25], [5.0]])
    4.0
    >>> X = [[[1.0], [0.0]]]; Y = [[[0.0], [0.0]]]
    >>> hausdorff(X, Y), hausdorff(X, Y, norm_matrix=[[4.0, 0.0], [0.0, 1.0]])
    (1.0, 2.0)
    """
    Xf, Yf = _prepare(X, Y, norm_matrix, "cv.hausdorff")
    return max(_excess_flat(Xf, Yf), _excess_flat(Yf, Xf))


def _net_input(points, radius, norm_matrix, call: str):
    """Validated points, radius, norm factor and flat coordinates for the ε-net functions."""
    pts = as_float_array(points, name="points", call=call)
    if pts.ndim not in (2, 3) or pts.shape[0] == 0:
        raise ShapeError(fail_message(call, f"points of shape {pts.shape}",
                                      "pass a non-empty point set of shape (N, d) or (N, n, m)"))
    radius = float(radius)
    if not (np.isfinite(radius) and radius > 0):
        raise InputError(fail_message(call, f"radius={radius!r}", "pass a positive finite radius"))
    L = norm_factor(norm_matrix, pts.shape[1], call=call)
    return pts, radius, L, _flat_coordinates(pts, name="points", call=call, L=L)


def net_merge(points, radius: float, *, norm_matrix=None, return_index: bool = False):
    """Keep a subset of the points such that every point is within ``radius`` of a kept one.

    Grid hashing: the space of transformed coordinates ``z = vec(L^T J)`` (P = L L^T, so that
    ``||J||_P = ||z||_2``) is cut into cubes of side ``radius / sqrt(d)`` (diameter ``radius``)
    anchored at the origin, and the first point of each occupied cube, in input order, is kept.
    Hence

    * the kept points are a subset of the input (``excess(kept, points) = 0``), and
    * ``excess(points, kept) <= radius``, so ``hausdorff(kept, points) <= radius``.

    Because the grid is fixed, merging the union of merged chunks gives the same cubes as merging
    everything at once: chunked merging does not accumulate error. The number of kept points is at
    most the number of cubes meeting the set (about ``(diam / radius)^dim`` for a set of dimension
    ``dim``), whatever the number of inputs.

    Parameters
    ----------
    points : array_like of shape (N, d) or (N, n, m)
    radius : float
        Positive covering radius, in the (P-)norm.
    norm_matrix : array_like of shape (n, n), optional
        P of the norm ``sqrt(trace(J^T P J))``; default Frobenius.
    return_index : bool
        Also return the indices of the kept points (sorted increasingly).

    Returns
    -------
    kept : ndarray
        The kept points, same trailing shape as ``points``, in input order.
    index : ndarray of int, optional
        Their indices in ``points`` (with ``return_index=True``).

    Raises
    ------
    InputError
        If ``radius`` is not positive and finite, the set is empty, or the grid would overflow
        64-bit integers (radius far below the size of the coordinates).
    ShapeError
        If ``points`` is not 2-D or 3-D.

    Examples
    --------
    >>> net_merge([[0.0], [0.1], [0.25], [1.0]], 0.5)
    array([[0.],
           [1.]])
    >>> net_merge([[0.0], [0.1], [0.25], [1.0]], 0.5, return_index=True)[1]
    array([0, 3])
    """
    call = "cv.net_merge"
    pts, radius, L, Z = _net_input(points, radius, norm_matrix, call)
    index = grid_representatives(Z, radius, call=call)
    kept = pts[index]
    return (kept, index) if return_index else kept


def net_snap(points, radius: float, *, norm_matrix=None):
    """Replace the points by at most one point per grid cube, within ``radius`` of all of them.

    The transformed coordinates ``z = vec(L^T J)`` (P = L L^T) are cut into cubes of diameter
    ``2 radius`` (side ``2 radius / sqrt(d)``) anchored at the origin. In each occupied cube the
    first point is kept if every point of the cube is within ``radius`` of it (so isolated and
    repeated points stay exact), and the cube's centre is used otherwise (it is within
    ``radius`` of the whole cube). Hence ``hausdorff(net_snap(X, r), X) <= r``, with about
    ``2^d`` times fewer points than :func:`net_merge` at the same radius, at the price of
    returning centres that are not input points.

    Parameters
    ----------
    points : array_like of shape (N, d) or (N, n, m)
    radius : float
        Positive Hausdorff radius, in the (P-)norm.
    norm_matrix : array_like of shape (n, n), optional
        P of the norm ``sqrt(trace(J^T P J))``; default Frobenius.

    Returns
    -------
    ndarray
        The snapped points, same trailing shape as ``points``, ordered by cube.

    Raises
    ------
    InputError, ShapeError
        As in :func:`net_merge`.

    Examples
    --------
    >>> net_snap([[0.0], [0.1], [0.2], [0.3], [5.0]], 0.25)
    array([[0.25],
           [5.  ]])
    """
    call = "cv.net_snap"
    pts, radius, L, Z = _net_input(points, radius, norm_matrix, call)
    snapper = CellSnapper(Z.shape[1], radius, call=call)
    step = _CHUNK * 8
    for start in range(0, len(Z), step):
        snapper.add(Z[start:start + step], pts[start:start + step].reshape(-1, Z.shape[1]))
    Zs, Xs, member = snapper.result()
    if L is not None and not np.all(member):
        from scipy.linalg import solve_triangular
        n = pts.shape[1]
        centres = Zs[~member].reshape(-1, n, Xs.shape[1] // n)
        Xs[~member] = solve_triangular(L.T, centres.transpose(1, 0, 2).reshape(n, -1),
                                       lower=False).reshape(n, len(centres), -1) \
            .transpose(1, 0, 2).reshape(len(centres), -1)
    elif not np.all(member):
        Xs[~member] = Zs[~member]
    return Xs.reshape(-1, *pts.shape[1:])


class CellSnapper:
    """Chunk-wise grid snapping (see :func:`net_snap`), used by the attractor iteration.

    Feed chunks with :meth:`add` (coordinates ``Z`` in which the norm is Euclidean, and a payload
    ``X`` of the same rows, e.g. the matrices themselves); :meth:`result` returns, per occupied
    cube of diameter ``2 radius``, the kept coordinates, the kept payload row and whether it is
    an input row (True) or the cube's centre (False, payload to be recomputed by the caller from
    the centre). Every input row is within ``radius`` of its cube's output, and every output is
    within ``radius`` of an input row, whatever the chunking.
    """

    def __init__(self, d: int, radius: float, *, call: str):
        self.d, self.radius, self.call = d, float(radius), call
        self.side = 2.0 * self.radius / np.sqrt(d)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def keys(self, Z: np.ndarray) -> np.ndarray:
        """Integer cube indices of the rows of Z."""
        with np.errstate(over="ignore"):
            top = float(np.max(np.abs(Z))) / self.side if Z.size else 0.0
        if not top < 2.0 ** 62:
            raise InputError(fail_message(
                self.call, f"radius {self.radius:.3g} for coordinates of size up to "
                f"{top * self.side:.3g}", "pass a larger tolerance or radius (the grid cell index "
                "would overflow 64-bit integers)"))
        return np.floor(Z / self.side).astype(np.int64)

    @staticmethod
    def _reduce(keys, Z, X, spread):
        """Per cube: first row, and an upper bound on its distance to all the cube's rows."""
        first, inverse = _unique_rows(keys)
        if len(first) == len(keys):
            return keys, Z, X, spread
        kept = Z[first]
        reach = spread + np.sqrt(np.sum((Z - kept[inverse]) ** 2, axis=1))
        out = np.zeros(len(first))
        np.maximum.at(out, inverse, reach)
        return keys[first], kept, X[first], out

    def add(self, Z: np.ndarray, X: np.ndarray, *, exact: bool = True) -> None:
        """Add a chunk of rows (coordinates Z, payload X).

        With ``exact=False`` the rows only mark their cubes as occupied (e.g. points of a
        segment standing for the whole piece of it inside the cube): those cubes always
        return their centre.
        """
        spread = np.zeros(len(Z)) if exact else np.full(len(Z), np.inf)
        self._parts.append(self._reduce(self.keys(Z), Z, X, spread))

    def add_cells(self, keys: np.ndarray) -> None:
        """Mark cubes (integer indices, as returned by :meth:`keys`) as occupied; they return
        their centres."""
        first, _ = _unique_rows(keys)
        keys = keys[first]
        self._parts.append((keys, np.zeros(keys.shape), np.zeros(keys.shape),
                            np.full(len(keys), np.inf)))

    def result(self):
        """(Z, X, member): one row per occupied cube."""
        parts = self._parts
        keys, Z, X, spread = (np.concatenate([p[i] for p in parts]) for i in range(4))
        if len(parts) > 1:
            keys, Z, X, spread = self._reduce(keys, Z, X, spread)
        member = spread <= self.radius
        Z = Z.copy()
        X = X.copy()
        Z[~member] = (keys[~member] + 0.5) * self.side
        return Z, X, member


def grid_representatives(Z: np.ndarray, radius: float, *, call: str) -> np.ndarray:
    """Indices (increasing) of the first point of Z (N, d) in each cube of diameter ``radius``.

    Cubes have side ``radius / sqrt(d)`` and are anchored at the origin. Chunked to bound memory.
    """
    d = Z.shape[1]
    side = radius / np.sqrt(d)
    with np.errstate(over="ignore"):
        top = float(np.max(np.abs(Z))) / side if Z.size else 0.0
    if not top < 2.0 ** 62:
        raise InputError(fail_message(
            call, f"radius {radius:.3g} for coordinates of size up to {top * side:.3g}",
            "pass a larger radius (the grid cell index would overflow 64-bit integers)"))
    reps_idx = []
    reps_key = []
    for start in range(0, Z.shape[0], _CHUNK * 8):
        keys = np.floor(Z[start:start + _CHUNK * 8] / side).astype(np.int64)
        first, _ = _unique_rows(keys)
        reps_idx.append(first + start)
        reps_key.append(keys[first])
    idx = np.concatenate(reps_idx)
    if len(reps_idx) > 1:
        first, _ = _unique_rows(np.concatenate(reps_key))
        idx = idx[first]
    return np.sort(idx)


def _unique_rows(keys: np.ndarray):
    """First occurrence of each distinct row of an int64 (N, d) array, and each row's group.

    Returns ``(first, inverse)``: ``keys[first]`` are the distinct rows (sorted), and
    ``keys[first][inverse] == keys``.
    """
    if keys.shape[1] == 1:
        flat = keys[:, 0]
    else:
        # Collapse rows to single int64 keys when the ranges allow it (faster than axis=0).
        lo = keys.min(axis=0)
        span = keys.max(axis=0) - lo + 1
        if np.sum(np.log2(span.astype(float))) < 62:
            radix = np.cumprod(np.concatenate(([1], span[:0:-1])))[::-1]
            flat = (keys - lo) @ radix
        else:
            _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            return first, inverse.ravel()
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    return first, inverse


def hull_vertex_indices(Z: np.ndarray, *, max_dim: int = 3) -> np.ndarray | None:
    """Indices (increasing) of the rows of Z (N, d) that are vertices of their convex hull.

    The one rule for flat sets: the points are first expressed in their own affine hull (an
    SVD; a direction counts when its singular value exceeds ``1e-12`` of the largest, so only
    sets flat up to rounding are treated as flat), and the hull is taken there: one point, the
    two ends of a segment, or :class:`scipy.spatial.ConvexHull`'s vertices. Returns None when
    the affine hull has more than ``max_dim`` dimensions (the caller keeps every point).

    Examples
    --------
    >>> hull_vertex_indices(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.5, 0.5]]))
    array([0, 2])
    >>> hull_vertex_indices(np.array([[0.0, 0], [1, 0], [0, 1], [0.2, 0.2]]))
    array([0, 1, 2])
    """
    Z = np.asarray(Z, dtype=float)
    if len(Z) == 0:
        return np.zeros(0, dtype=np.int64)
    C = Z - Z.mean(axis=0)
    if not np.any(C):
        return np.array([0])
    _, s, Vt = np.linalg.svd(C, full_matrices=False)
    rank = int(np.sum(s > 1e-12 * s[0]))
    if rank > max_dim:
        return None
    coords = C @ Vt[:rank].T
    if rank == 1:
        lo, hi = int(np.argmin(coords[:, 0])), int(np.argmax(coords[:, 0]))
        return np.array(sorted({lo, hi}))
    from scipy.spatial import ConvexHull, QhullError  # imported where used (import time)
    try:
        return np.sort(ConvexHull(coords).vertices).astype(np.int64)
    except QhullError:                 # degenerate beyond the SVD's view: keep every point
        return np.arange(len(Z))
