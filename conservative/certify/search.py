"""Search over products: lower bounds on the JSR, and upper bounds by norms of products.

``rho(A_w)^{1/|w|}`` is a lower bound on the joint spectral radius for every product
``A_w = A_{w[-1]} ... A_{w[0]}``; a word with value above 1 is a divergent switching. Upper
bounds here are float estimates (norms of all products of a length, Gripenberg's branch and
bound); only the norms of :mod:`conservative.certify.norms` are proved.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .._spectral import spectral_lower_bound
from .matrices import balanced, canonical_rotation, norm2, one_per_necklace, spectral_radius

__all__ = ["Search", "gripenberg", "brute_upper", "product_lower_bound"]


@dataclass
class Search:
    """Result of :func:`gripenberg`: best product found and the branch-and-bound bound."""

    alpha: float
    word: tuple
    upper: float
    complete: bool


def _rho_roots(prods: np.ndarray, k: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        return spectral_radius(prods) ** (1.0 / k)


def _chunked(fn, count: int, deadline: float, *, fill: float, chunk: int = 1024) -> np.ndarray:
    """``fn(slice)`` over ``range(count)`` in chunks; entries after the deadline get ``fill``."""
    out = np.full(count, fill)
    for start in range(0, count, chunk):
        if start and time.monotonic() > deadline:
            break
        sel = slice(start, min(start + chunk, count))
        out[sel] = fn(sel)
    return out


def _extend(mats, prods, words, bounds, k, deadline):
    """Products one letter longer (the new factor applied last) and their prefix bounds."""
    m, n, _ = mats.shape
    new = np.einsum("aij,bjk->abik", mats, prods).reshape(-1, n, n)
    if not np.isfinite(np.abs(new).max()):
        return None
    words = np.concatenate([np.tile(words, (m, 1)),
                            np.repeat(np.arange(m), words.shape[0])[:, None]], axis=1)
    # a product whose norm was not computed before the deadline keeps its parent's bound (the
    # minimum over prefixes is at most that), so the upper bound stays valid
    with np.errstate(all="ignore"):
        norms = _chunked(lambda sel: norm2(new[sel]) ** (1.0 / (k + 1)), len(new), deadline,
                         fill=np.inf)
        bounds = np.minimum(np.tile(bounds, m), norms)
    return new, words, bounds


def gripenberg(mats: np.ndarray, *, alpha: float = 0.0, word: tuple = (), delta: float = 1e-6,
               max_length: int = 30, max_nodes: int = 20000,
               deadline: float = math.inf, stop_above: float = math.inf) -> Search:
    """Gripenberg's branch and bound in the 2-norm of ``mats`` (pass P-norm transformed ones).

    A product's bound is ``min_{j<=k} ||A_{w[:j]}||^{1/j}`` over its prefixes. Products whose
    bound is ``<= alpha + delta`` are pruned (``alpha`` = best lower bound so far); any infinite
    product splits into such blocks, hence

        JSR <= max(alpha + delta, bounds of the survivors at the last level and of those dropped
                   for lack of room).

    Lower bounds ``rho(A_w)^{1/|w|}`` are computed once per class of cyclic rotations. The
    search ends after the first level whose best product exceeds ``stop_above`` (a caller that
    only asks whether some product does).
    """
    m = mats.shape[0]
    prods, words, bounds = mats.copy(), np.arange(m)[:, None], norm2(mats)
    dropped = 0.0
    best_alpha, best_word = alpha, tuple(word)
    for k in range(1, max_length + 1):
        # a rotation pruned elsewhere in the tree may survive here, so evaluate one
        # representative per rotation class among the survivors
        reps = one_per_necklace(words)
        rr = _chunked(lambda sel: _rho_roots(prods[reps[sel]], k), len(reps), deadline,
                      fill=-np.inf)
        j = int(np.nanargmax(rr)) if np.isfinite(rr).any() else -1
        if j >= 0 and rr[j] > best_alpha * (1 + 1e-13):
            best_alpha, best_word = float(rr[j]), tuple(int(i) for i in words[reps[j]])
        keep = bounds > best_alpha + delta
        prods, words, bounds = prods[keep], words[keep], bounds[keep]
        if prods.shape[0] == 0:
            return Search(best_alpha, best_word, max(best_alpha + delta, dropped), dropped == 0)
        if k == max_length or time.monotonic() > deadline or best_alpha > stop_above:
            break
        if prods.shape[0] * m > max_nodes:
            order = np.argsort(-bounds)
            cut = max(max_nodes // m, 1)
            dropped = max(dropped, float(bounds[order[cut:]].max()))
            sel = order[:cut]
            prods, words, bounds = prods[sel], words[sel], bounds[sel]
        grown = _extend(mats, prods, words, bounds, k, deadline)
        if grown is None:
            break
        prods, words, bounds = grown
    upper = max(best_alpha + delta, dropped, float(bounds.max()) if bounds.size else 0.0)
    return Search(best_alpha, best_word, upper, False)


def brute_upper(mats: np.ndarray, max_products: int = 4096,
                deadline: float = math.inf) -> tuple[float, int]:
    """``max_{|w|=k} ||A_w||_2^{1/k}`` for the largest k with m^k <= max_products (k >= 1);
    shorter products once the deadline has passed."""
    m = mats.shape[0]
    best = (float(norm2(mats).max()), 1)
    prods = mats
    k = 1
    while prods.shape[0] * m <= max_products and k < 12 and time.monotonic() < deadline:
        prods = np.einsum("aij,bjk->abik", mats, prods).reshape(-1, *mats.shape[1:])
        k += 1
        val = float(norm2(prods).max()) ** (1.0 / k)
        if val < best[0]:
            best = (val, k)
    return best


def product_lower_bound(mats: np.ndarray, *, deadline: float,
                        stop_above: float = math.inf) -> tuple[float, tuple]:
    """``(rho(A_w)^(1/|w|), w)`` for the best product ``A_w`` of ``mats`` found by a short
    branch-and-bound search (a lower bound on the JSR of ``mats``, proved where the exact
    test applies). With ``stop_above`` the search ends at the first length whose best product
    exceeds it (then the value may be below the best the full search finds).

    Rows that every matrix sends to zero are dropped first: the products' spectral radii are
    those of the blocks on the other rows.

    Examples
    --------
    >>> M = lambda c: [[1.25 - 0.25 * c, -0.25], [1.0, 0.0]]       # heavy ball, curvature c
    >>> lower, word = product_lower_bound(np.array([M(1), M(9)]), deadline=math.inf)
    >>> round(lower, 6), word
    (1.207107, (0, 1))
    """
    keep = np.flatnonzero(np.any(mats != 0, axis=(0, 2)))
    if len(keep) == 0:
        return 0.0, (0,)
    sub = mats[:, keep[:, None], keep[None, :]]
    B, _, s, _ = balanced(sub)
    rho1 = spectral_radius(B)
    # products cost n^3 each: single matrices only beyond 200 rows (still a valid lower bound)
    length = 8 if len(keep) <= 50 else (2 if len(keep) <= 200 else 1)
    quick = gripenberg(B, alpha=float(rho1.max()), word=(int(rho1.argmax()),), delta=1e-3,
                       max_length=length,
                       max_nodes=2000 if len(keep) <= 50 else 64, deadline=deadline,
                       stop_above=stop_above / s)       # B is the input divided by s
    word = canonical_rotation(quick.word)
    estimate = quick.alpha * s
    if estimate > 0:               # a float eigenvalue can overshoot: prove the bound
        estimate, _ = spectral_lower_bound(sub, word, estimate)
    return estimate, word
