"""Support functions of an attractor: rigorous brackets of ``h(u) = max_{c in K*} u . c``.

The attractor satisfies ``K* = ∪_i f_i(K*)`` (the convex hull of the selections has the same
convex hull), so its support function solves the contracting fixed-point equation
``h(u) = max_i (u . t_i + h(R_i^T u))``. Unrolled along words ``w``::

    h(u) = max_w [ s_w + h(V_w) ],   s_w = sum_j V_{w_<j} . t_{w_j},   V_w = R_w^T u,

and ``h(V) ∈ [V . c0, V . c0 + r ||V||_*]`` for a point ``c0`` of ``K*`` (the fixed point of a
map) and a ball ``||c - c0||_G <= r`` containing ``K*`` (the Banach-Picard a priori bound, with
``||V||_* = sqrt(V^T G^{-1} V)`` the dual norm). The search goes level by level, merges words that
reach the same direction V (keeping the best s), and drops words whose upper bound is below the
best lower bound: the bracket narrows by the contraction factor per level. Rounding is covered by
a relative slack on every bound.
"""

from __future__ import annotations

import numpy as np

__all__ = ["support_bracket"]

_U = np.finfo(float).eps


def support_bracket(R: np.ndarray, t: np.ndarray, c0: np.ndarray, radius: float,
                    G_inv: np.ndarray, u: np.ndarray, *, eps: float = 1e-9,
                    max_nodes: int = 200_000) -> tuple[float, float]:
    """(lo, hi) with ``lo <= h(u) <= hi`` for the attractor of ``c -> R_i c + t_i``."""
    V = np.asarray(u, dtype=float)[None]
    s = np.zeros(1)
    best_lo = -np.inf
    hi = np.inf
    scale = float(np.max(np.abs(t))) + float(np.max(np.abs(c0))) + radius + 1e-300
    nodes = 0
    while True:
        dual = np.sqrt(np.maximum(np.einsum("na,ab,nb->n", V, G_inv, V), 0.0))
        base = s + V @ c0
        slack = 64 * _U * (np.abs(s) + np.abs(V).sum(axis=1) * scale + 1.0) * (1 + nodes) ** 0.5
        lower = base - slack
        upper = base + radius * dual * (1 + 1e-12) + slack
        best_lo = max(best_lo, float(lower.max()))
        keep = upper >= best_lo
        V, s, upper = V[keep], s[keep], upper[keep]
        hi = min(hi, float(upper.max()))
        if hi - best_lo <= eps * (1 + abs(best_lo)) or nodes >= max_nodes or len(V) == 0:
            return best_lo, hi
        # children: (s + V . t_i, R_i^T V) for every map i
        s = (s[:, None] + V @ t.T).ravel()
        V = np.einsum("iab,na->nib", R, V).reshape(-1, V.shape[1])
        nodes += len(V)
        # merge words that reach the same direction (exactly equal rows): keep the best s
        order = np.lexsort(np.concatenate([V, -s[:, None]], axis=1).T[::-1])
        V, s = V[order], s[order]
        first = np.ones(len(V), dtype=bool)
        first[1:] = np.any(V[1:] != V[:-1], axis=1)
        V, s = V[first], s[first]
