"""The affine hull of an attractor, decided exactly, and the IFS restricted to it.

For affine maps ``f_i(J) = A_i J + B_i`` (``J`` of shape (n, m), ``A_i`` acting on its columns) the
attractor ``K*`` spans the smallest affine subspace invariant under every ``f_i``: ``aff K*`` is
invariant (``f_i(K*) ⊆ K*``), and the attractor of the IFS restricted to an invariant closed
subspace is ``K*`` itself (uniqueness). With ``p0`` the fixed point of one map (a point of ``K*``),
that subspace is ``p0 + D`` where ``D`` is the smallest subspace containing every
``f_i(p0) - p0`` and invariant under every ``J -> A_i J``. The convex hull of the vertices has the
same affine hull (``K_vertex ⊆ K_hull ⊆ conv K_vertex``).

Everything here is exact rational arithmetic on the float64 data (:class:`fractions.Fraction`,
sparse vectors), so the dimension is never underestimated by a rounding: a tiny but non-zero
direction counts. The basis is in reduced echelon form: each basis vector ``q_a`` has a *pivot*
entry ``J[pivot_a]`` equal to 1 and the other pivots 0, and the origin ``o`` has zero pivots, so a
point ``J = o + sum_a c_a q_a`` of the hull has coordinates ``c_a = J[pivot_a]``: entries of the
derivative itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .._exact import solve_exact

__all__ = ["ReducedSystem", "reduce_to_affine_hull", "to_float_down", "to_float_up"]


def to_float_up(q: Fraction) -> float:
    """Smallest float >= q."""
    f = float(q)
    while Fraction(f) < q:
        f = float(np.nextafter(f, np.inf))
    return f


def to_float_down(q: Fraction) -> float:
    """Largest float <= q."""
    f = float(q)
    while Fraction(f) > q:
        f = float(np.nextafter(f, -np.inf))
    return f


@dataclass(frozen=True)
class ReducedSystem:
    """The IFS in the coordinates of the attractor's affine hull.

    Attributes
    ----------
    dimension : int
        ``D``, the dimension of the affine hull (exact unless ``exact`` is False, then an upper
        bound: the structurally free entries).
    exact : bool
        Whether the dimension was decided exactly.
    pivots : tuple of int
        Flat (C-order) indices of the entries of J used as coordinates.
    origin : ndarray (n, m)
        ``o``, rounded to float (``origin_q`` exact).
    basis : ndarray (D, n, m)
        ``q_a``, rounded (``basis_q`` exact).
    R : ndarray (k, D, D), t : ndarray (k, D)
        The maps ``c -> R_i c + t_i`` (rounded; ``R_q``, ``t_q`` exact when ``exact``).
    """

    dimension: int
    exact: bool
    pivots: tuple
    origin: np.ndarray
    basis: np.ndarray
    R: np.ndarray
    t: np.ndarray
    R_q: list | None = None
    t_q: list | None = None
    origin_q: dict | None = None
    basis_q: list | None = None

    def embed(self, c: np.ndarray) -> np.ndarray:
        """Points J (N, n, m) of coordinates c (N, D)."""
        c = np.asarray(c, dtype=float).reshape(len(c), self.dimension)
        return self.origin[None] + np.tensordot(c, self.basis, axes=(1, 0))

    def coordinates(self, J: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(c, off): coordinates of the projection onto the hull and the Frobenius distance of
        each J (N, n, m) to its projection's point ``o + sum c_a q_a`` (0 on the hull)."""
        flat = J.reshape(len(J), -1)
        c = flat[:, list(self.pivots)] - self.origin.ravel()[list(self.pivots)]
        off = np.linalg.norm(flat - self.embed(c).reshape(len(J), -1), axis=1)
        return c, off


def _sparse(M: np.ndarray) -> list[dict]:
    """Rows of a float matrix as {column: Fraction} (exact)."""
    return [{int(c): Fraction(float(M[r, c])) for c in np.flatnonzero(M[r])} for r in range(len(M))]


def _apply(A_rows: list[dict], v: dict, m: int) -> dict:
    """(A V) as a sparse vector over flat indices r*m + s, V the (n, m) matrix of v."""
    by_row: dict[int, dict[int, Fraction]] = {}
    for idx, val in v.items():
        c, s = divmod(idx, m)
        by_row.setdefault(c, {})[s] = val
    out: dict[int, Fraction] = {}
    for r, row in enumerate(A_rows):
        for c, a in row.items():
            cols = by_row.get(c)
            if cols:
                for s, val in cols.items():
                    key = r * m + s
                    out[key] = out.get(key, Fraction(0)) + a * val
    return {k: x for k, x in out.items() if x != 0}


def _fixed_point(A_rows: list[dict], B: np.ndarray) -> dict | None:
    """Exact solution p of (I - A) p = B as a sparse dict over flat indices (None: singular)."""
    n, m = B.shape
    active = [r for r in range(n) if A_rows[r]]
    p = {r * m + s: Fraction(float(B[r, s])) for r in range(n) if not A_rows[r]
         for s in range(m) if B[r, s] != 0}
    if not active:
        return p
    pos = {r: i for i, r in enumerate(active)}
    size = len(active)
    # rows of [I - A_SS | B_S + A_SZ p_Z]
    M = []
    for r in active:
        row = [Fraction(0)] * size + [Fraction(float(B[r, s])) for s in range(m)]
        row[pos[r]] += 1
        for c, a in A_rows[r].items():
            if c in pos:
                row[pos[c]] -= a
            else:
                for s in range(m):
                    row[size + s] += a * p.get(c * m + s, Fraction(0))
        M.append(row)
    X = solve_exact([row[:size] for row in M], [row[size:] for row in M])
    if X is None:
        return None
    for r in active:
        for s, val in enumerate(X[pos[r]]):
            if val != 0:
                p[r * m + s] = val
    return p


def _subtract_multiple(q: dict, f: Fraction, v: dict) -> None:
    """``q -= f v`` for sparse rational vectors (dicts), dropping entries that become 0."""
    for k, x in v.items():
        y = q.get(k, Fraction(0)) - f * x
        if y:
            q[k] = y
        else:
            q.pop(k, None)


def _reduce(v: dict, basis: dict) -> dict:
    v = dict(v)
    for piv, q in basis.items():
        f = v.get(piv)
        if f:
            _subtract_multiple(v, f, q)
    return v


def _add(basis: dict, v: dict) -> None:
    """Add a reduced non-zero v to an echelon basis (pivot entries 1, other pivots 0)."""
    piv = min(v)
    inv = 1 / v[piv]
    v = {k: x * inv for k, x in v.items()}
    for q in basis.values():                      # clear the new pivot from the others
        f = q.get(piv)
        if f:
            _subtract_multiple(q, f, v)
    basis[piv] = v


def _exact_closure(A, B, max_dim: int, deadline: float):
    """(p0, basis) or None when the budget (dimension or time) is exceeded."""
    k, n, _ = A.shape
    m = B.shape[2]
    rows = [_sparse(Ai) for Ai in A]
    order = sorted(range(k), key=lambda i: sum(len(r) for r in rows[i]))
    p0 = None
    for i0 in order:                             # the cheapest invertible vertex map
        p0 = _fixed_point(rows[i0], B[i0])
        if p0 is not None:
            break
    if p0 is None:
        return None
    basis: dict = {}
    queue = []
    for i in range(k):
        image = _apply(rows[i], p0, m)
        for r in range(n):
            for s in range(m):
                if B[i, r, s] != 0:
                    key = r * m + s
                    image[key] = image.get(key, Fraction(0)) + Fraction(float(B[i, r, s]))
        for key, x in p0.items():
            image[key] = image.get(key, Fraction(0)) - x
        queue.append({key: x for key, x in image.items() if x != 0})
    while queue:
        if time.monotonic() > deadline:
            return None
        v = _reduce(queue.pop(), basis)
        if not v:
            continue
        if len(basis) >= max_dim:
            return None
        _add(basis, v)
        new = basis[min(v)] if min(v) in basis else v
        queue.extend(_apply(rows[i], new, m) for i in range(k))
    return p0, basis


def _from_exact(A, B, p0, basis) -> ReducedSystem:
    k, n, _ = A.shape
    m = B.shape[2]
    rows = [_sparse(Ai) for Ai in A]
    pivots = sorted(basis)
    Q = [basis[p] for p in pivots]
    origin = dict(p0)
    for p, q in zip(pivots, Q):                   # o = p0 - sum p0[pivot] q
        f = p0.get(p)
        if f:
            _subtract_multiple(origin, f, q)
    D = len(pivots)
    R_q = [[[Fraction(0)] * D for _ in range(D)] for _ in range(k)]
    t_q = [[Fraction(0)] * D for _ in range(k)]
    for i in range(k):
        for b, q in enumerate(Q):
            image = _apply(rows[i], q, m)
            for a, p in enumerate(pivots):
                R_q[i][a][b] = image.get(p, Fraction(0))
        image = _apply(rows[i], origin, m)
        for a, p in enumerate(pivots):
            r, s = divmod(p, m)
            t_q[i][a] = image.get(p, Fraction(0)) + Fraction(float(B[i, r, s]))
    dense = np.zeros(n * m)
    for key, x in origin.items():
        dense[key] = float(x)
    basis_f = np.zeros((D, n * m))
    for a, q in enumerate(Q):
        for key, x in q.items():
            basis_f[a, key] = float(x)
    R = np.array([[[float(x) for x in row] for row in Ri] for Ri in R_q]).reshape(k, D, D)
    t = np.array([[float(x) for x in ti] for ti in t_q]).reshape(k, D)
    return ReducedSystem(D, True, tuple(pivots), dense.reshape(n, m),
                         basis_f.reshape(D, n, m), R, t, R_q, t_q, origin, Q)


def _structural(A, B) -> ReducedSystem:
    """The entries that can vary at all (no exact decision): an upper bound on the hull."""
    k, n, _ = A.shape
    m = B.shape[2]
    moving_rows = np.any(A != 0, axis=(0, 2))
    varies = np.any(B != B[:1], axis=0) | moving_rows[:, None]
    free = np.flatnonzero(varies.ravel())
    fixed = np.setdiff1d(np.arange(n * m), free)
    origin = np.zeros(n * m)
    origin[fixed] = B[0].ravel()[fixed]
    D = len(free)
    basis = np.zeros((D, n * m))
    basis[np.arange(D), free] = 1.0
    o = origin.reshape(n, m)
    R = np.zeros((k, D, D))
    t = np.zeros((k, D))
    for i in range(k):
        images = np.einsum("ij,djs->dis", A[i], basis.reshape(D, n, m)).reshape(D, -1)
        R[i] = images[:, free].T
        t[i] = (A[i] @ o + B[i]).ravel()[free]
    return ReducedSystem(D, False, tuple(int(f) for f in free), o, basis.reshape(D, n, m), R, t)


def reduce_to_affine_hull(A: np.ndarray, B: np.ndarray, *, max_dim: int = 12,
                          seconds: float = 1.0) -> ReducedSystem:
    """The IFS ``J -> A_i J + B_i`` in the coordinates of its attractor's affine hull.

    Decided exactly (rational arithmetic) when the hull has dimension at most ``max_dim`` and
    the closure finishes within ``seconds``; otherwise the structurally free entries (a sound
    upper bound, ``exact=False``).

    Examples
    --------
    Two maps of the plane whose attractor is the segment from (0, 0) to (2, 1):

    >>> A = np.array([np.eye(2) / 2, np.eye(2) / 2])
    >>> B = np.array([[[0.0], [0.0]], [[1.0], [0.5]]])
    >>> red = reduce_to_affine_hull(A, B)
    >>> red.dimension, red.pivots, red.basis.ravel().tolist()
    (1, (0,), [1.0, 0.5])
    """
    closure = _exact_closure(A, B, max_dim, time.monotonic() + seconds)
    if closure is None:
        return _structural(A, B)
    return _from_exact(A, B, *closure)
