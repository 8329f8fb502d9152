"""The invariant polytope algorithm (Guglielmi & Protasov 2013), real case.

Started from a candidate extremal product, it builds a symmetric polytope ``absconv(V)`` that
every matrix maps into itself scaled by ``r = rho(A_w)^{1/|w|}``; then the polytope norm proves
``JSR <= r``, closing the bracket. Floating LPs only choose bases; the bound is computed in
exact rational arithmetic (:func:`conservative._exact.polytope_norm_bound`).
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np

from .. import _exact
from .matrices import product

__all__ = ["absconv_value", "AbsConvNorm", "leading_real_vector", "invariant_polytope",
           "polytope_bound", "polytope_values"]


def absconv_value(V: np.ndarray, y: np.ndarray):
    """``min ||lam||_1 s.t. V lam = y`` by LP; returns (value, support indices)."""
    from scipy.optimize import linprog

    N = V.shape[1]
    res = linprog(np.ones(2 * N), A_eq=np.hstack([V, -V]), b_eq=y, bounds=(0, None),
                  method="highs")
    if res.status != 0:
        return math.inf, ()
    lam = res.x[:N] - res.x[N:]
    big = np.abs(lam).max() if lam.size else 0.0
    support = tuple(int(i) for i in np.argsort(-np.abs(lam)) if abs(lam[i]) > 1e-12 * big)
    return float(res.fun), support


class AbsConvNorm:
    """Float evaluation of the polytope norm ``||y||_V = min{||lam||_1 : V lam = y}``.

    In dimensions 2 to 4 through the facets of ``conv(±V)`` (qhull): ``||y|| = max_k a_k . y``
    and the facet's vertices form the basis for the later exact check; otherwise one LP per
    point.
    """

    def __init__(self, V: np.ndarray):
        self.V = V
        self._rebuild()

    def _rebuild(self):
        from scipy.spatial import ConvexHull

        self.facets = None
        n, N = self.V.shape
        if 2 <= n <= 4 and np.linalg.matrix_rank(self.V) == n:
            try:
                hull = ConvexHull(np.hstack([self.V, -self.V]).T)
            except Exception:  # noqa: BLE001 -- qhull trouble: use LPs instead
                return
            off = -hull.equations[:, -1]
            if np.all(off > 0):
                self.facets = hull.equations[:, :-1] / off[:, None]
                self.simplices = hull.simplices % N

    def add(self, Y: np.ndarray):
        self.V = np.hstack([self.V, Y])
        self._rebuild()

    def values(self, Y: np.ndarray, deadline: float = math.inf):
        """Norms of the columns of Y and, for each, indices of a representing basis (None
        when the deadline passes between two linear programs)."""
        if self.facets is not None:
            G = self.facets @ Y
            k = G.argmax(axis=0)
            return G[k, np.arange(Y.shape[1])], [tuple(self.simplices[kk]) for kk in k]
        out = []
        for c in range(Y.shape[1]):
            if time.monotonic() > deadline:
                return None
            out.append(absconv_value(self.V, Y[:, c]))
        return np.array([o[0] for o in out]), [o[1] for o in out]


def leading_real_vector(Aw: np.ndarray):
    """Leading eigenvalue modulus and real eigenvector, or None if the leader is complex or
    not unique in modulus (then a real polytope cannot be extremal from this product)."""
    lam, vecs = np.linalg.eig(Aw)
    order = np.argsort(-np.abs(lam))
    top = lam[order[0]]
    if abs(top) == 0 or abs(top.imag) > 1e-12 * abs(top):
        return None
    if len(lam) > 1 and np.abs(lam[order[1]]) > abs(top) * (1 - 1e-9) and \
            not np.isclose(lam[order[1]], top, rtol=1e-9):
        return None
    v = np.real(vecs[:, order[0]])
    return abs(top), v / np.abs(v).max()


def invariant_polytope(mats: np.ndarray, word: tuple, *, max_vertices: int = 200,
                       deadline: float = math.inf, tol: float = 1e-9):
    """Invariant polytope algorithm (Guglielmi-Protasov) from the candidate product ``A_word``.

    Scale by ``r = rho(A_w)^{1/|w|}``; start from the leading (real, simple in modulus)
    eigenvector v of ``A_w`` and its cyclic images; generation by generation add the images
    ``A_i x / r`` of new vertices that leave the symmetric convex hull. If the process stops,
    the hull is invariant: ``||A_i||_V <= r`` in the polytope norm, so JSR = r. The bound is
    then recomputed *exactly* for the unscaled matrices (:func:`polytope_bound`). A flat hull
    (reducible set) gets small complement vectors added once, to become full-dimensional.

    Returns ``(upper, V)`` with ``upper`` a float >= the exact bound, or None (complex or
    multiple leading eigenvalue, too many vertices, time out).

    Examples
    --------
    >>> A = np.array([[[1., 1.], [0., 1.]], [[1., 0.], [1., 1.]]])
    >>> upper, V = invariant_polytope(A, (0, 1))
    >>> abs(upper - (1 + 5 ** 0.5) / 2) < 1e-9, V.shape[0]
    (True, 2)
    """
    n, k = mats.shape[1], len(word)
    lead = leading_real_vector(product(mats, word))
    if lead is None:
        return None
    r = lead[0] ** (1.0 / k)
    S = mats / r
    roots = [lead[1]]
    for i in word[:-1]:
        roots.append(S[i] @ roots[-1])
    norm = AbsConvNorm(np.stack(roots, axis=1))
    new = list(range(norm.V.shape[1]))
    supports: dict = {}
    padded = False
    while True:
        while new:
            if norm.V.shape[1] > max_vertices or time.monotonic() > deadline:
                return None
            pairs = [(i, j) for i in range(S.shape[0]) for j in new]
            Y = np.stack([S[i] @ norm.V[:, j] for i, j in pairs], axis=1)
            got = norm.values(Y, deadline)
            if got is None:
                return None
            vals, sups = got
            out = vals > 1 + tol
            start = norm.V.shape[1]
            for c, (pair, sup) in enumerate(zip(pairs, sups)):
                if not out[c]:
                    supports[pair] = sup
            for pos, c in enumerate(np.flatnonzero(out)):
                supports[pairs[c]] = (start + pos,)
            new = list(range(start, start + int(out.sum())))
            if new:
                norm.add(Y[:, out])
        if np.linalg.matrix_rank(norm.V) == n:
            break
        if padded:
            return None
        # flat polytope (reducible set): add a small basis of the complement and continue
        rank = np.linalg.matrix_rank(norm.V)
        extra = 1e-3 * np.linalg.svd(norm.V)[0][:, rank:]
        start = norm.V.shape[1]
        norm.add(extra)
        new = list(range(start, norm.V.shape[1]))
        padded = True
    if time.monotonic() > deadline:
        return None                                  # no exact check after the deadline
    bound = polytope_bound(mats, norm.V, supports)
    return None if bound is None else (bound, norm.V)


def polytope_values(mats: np.ndarray, V: np.ndarray):
    """Float ``max_i ||A_i||_V`` and, for every pair (i, j), a basis representing ``A_i v_j``
    optimally: from the facets of ``conv(+-V)`` in dimensions 2 to 4 (one product with the
    facet normals, no LP); None when the facets are not available (then LPs choose)."""
    norm = AbsConvNorm(np.asarray(V, dtype=float))
    if norm.facets is None:
        return None
    m, N = mats.shape[0], V.shape[1]
    Y = np.einsum("aij,jk->aik", mats, V).transpose(1, 0, 2).reshape(V.shape[0], m * N)
    vals, sups = norm.values(Y)
    supports = {(i, j): sups[i * N + j] for i in range(m) for j in range(N)}
    return float(np.max(vals)), supports


def polytope_bound(mats: np.ndarray, V: np.ndarray, supports: dict | None = None, *,
                   limit: float = math.inf):
    """Exact bound on ``max_i ||A_i||_V`` (unit ball ``absconv(V)``), rounded up to a float.

    Float LPs (or, in dimensions 2 to 4, the facets of the polytope) only choose bases; the
    bound itself is computed in rationals. A relative slack of 1e-12 is added so that anyone
    re-checking with another optimal LP basis (which may differ in the last bits) still
    confirms the bound. ``limit``: None without the exact computation when the float value
    is clearly not below it (a bound that could not be used).
    """
    if supports is None:
        found = polytope_values(mats, V)
        if found is not None:
            if not found[0] < limit * (1 - 1e-9):
                return None
            supports = found[1]
        else:
            supports = {}
            for i, a in enumerate(mats):
                for j in range(V.shape[1]):
                    supports[(i, j)] = absconv_value(V, a @ V[:, j])[1]
    q = _exact.polytope_norm_bound(mats, V, supports)
    return None if q is None else _exact.float_at_least(q * (1 + Fraction(1, 10 ** 12)))
