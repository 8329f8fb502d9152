"""Attractors on a line: unions of intervals, with outward rounding.

In the coordinate ``c`` of a one-dimensional affine hull the maps are ``c -> r_i c + t_i`` with
``|r_i| < 1`` (exact rationals, enclosed by float intervals). Every image below is computed with
outward rounding (``nextafter`` after each operation), so each computed set contains the exact
image of the set it came from.

* **Outer covers.** ``X_0 = [-M, M]`` with ``M = max|t_i| / (1 - max|r_i|)`` is mapped into
  itself, hence contains the attractor ``K*``; so does every ``X_{j+1} ⊇ Phi(X_j)``.
* **Hull (connected) case.** ``Phi_hull`` maps an interval to the interval
  ``[min_i min(r_i a, r_i b) + t_i, max_i ...]`` (a union of segments through the connected
  ``f_1([a, b])`` is connected), so ``K*_hull = [a*, b*]``. The outer interval converges to it
  from outside; an *inner* interval, started from the images of the exact fixed point of a map
  and computed with inward rounding, converges from inside (``Phi(I) ⊆ K*`` when ``I ⊆ K*``).
  The Hausdorff distance between the outer interval and ``K*`` is at most the gap between the
  two, typically a few ulps.
* **Finite case.** The union of the images of the intervals, with gaps of at most ``g`` merged
  (still an outer cover); ``d_H(X_{j+1}, K*) <= max|r_i| d_H(X_j, K*) + g / 2``. Gaps wider
  than ``g`` are kept, so a Cantor set keeps its structure above the resolution. The gap is
  halved level by level (GAIO-style subdivision) while the number of intervals fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ._affine_hull import to_float_down, to_float_up
from ..errors import InputError, fail_message
from ._budget import Budget

__all__ = ["LineResult", "line_attractor"]

_DOWN, _UP = -np.inf, np.inf


@dataclass(frozen=True)
class LineResult:
    """Intervals (N, 2) in the line coordinate, containing the attractor, and the proved
    Hausdorff distance ``bound`` between their union and the attractor."""

    intervals: np.ndarray
    bound: float
    iterations: int
    complete: bool
    gap: float


def _encl(values):
    """Float enclosures (lo, hi) of exact rationals."""
    return (np.array([to_float_down(v) for v in values]),
            np.array([to_float_up(v) for v in values]))


def _images(lo, hi, r_lo, r_hi, t_lo, t_hi):
    """Outward-rounded images of the intervals [lo, hi] (N,) under every map: (N, k) each."""
    cands = np.stack([r_lo[None] * lo[:, None], r_lo[None] * hi[:, None],
                      r_hi[None] * lo[:, None], r_hi[None] * hi[:, None]])
    p_lo = np.nextafter(cands.min(axis=0), _DOWN)
    p_hi = np.nextafter(cands.max(axis=0), _UP)
    return np.nextafter(p_lo + t_lo[None], _DOWN), np.nextafter(p_hi + t_hi[None], _UP)


def _inner_step(alpha, beta, r_lo, r_hi, t_lo, t_hi):
    """An interval inside Phi_hull([alpha, beta]): the min of upper bounds, max of lower ones."""
    ends = np.array([alpha, beta])
    up = np.nextafter(np.maximum(r_lo[None] * ends[:, None], r_hi[None] * ends[:, None]), _UP)
    dn = np.nextafter(np.minimum(r_lo[None] * ends[:, None], r_hi[None] * ends[:, None]), _DOWN)
    return (float(np.min(np.nextafter(up + t_hi[None], _UP))),
            float(np.max(np.nextafter(dn + t_lo[None], _DOWN))))


def _hull_interval(r, t, enc):
    """(outer lo, outer hi, inner lo, inner hi) of the hull attractor [a*, b*]."""
    r_lo, r_hi, t_lo, t_hi = enc
    rho = max(abs(x) for x in r)
    M = to_float_up(max(abs(x) for x in t) / (1 - rho))
    a, b = -M, M
    for _ in range(20_000):                   # outer: a decreasing sequence of floats
        lo, hi = _images(np.array([a]), np.array([b]), *enc)
        na, nb = max(a, float(lo.min())), min(b, float(hi.max()))
        if na == a and nb == b:
            break
        a, b = na, nb
    i0 = min(range(len(r)), key=lambda i: abs(r[i]))
    star = t[i0] / (1 - r[i0])                # exact fixed point of one map: a point of K*
    images = [ri * star + ti for ri, ti in zip(r, t)]
    alpha, beta = to_float_up(min(images)), to_float_down(max(images))
    if alpha > beta:                          # a spread below the float resolution
        return a, b, None, None
    for _ in range(20_000):                   # inner: an increasing sequence
        na, nb = _inner_step(alpha, beta, r_lo, r_hi, t_lo, t_hi)
        na, nb = min(alpha, na), max(beta, nb)
        if na == alpha and nb == beta:
            break
        alpha, beta = na, nb
    return a, b, alpha, beta


def _merge(lo, hi, gap):
    """Union of intervals, merging those separated by at most ``gap``."""
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    start = np.ones(len(lo), dtype=bool)
    start[1:] = lo[1:] > reach[:-1] + gap
    first = np.flatnonzero(start)
    return lo[first], np.maximum.reduceat(hi, first)


def line_attractor(r: list, t: list, *, hull: bool, tol: float | None, budget: Budget
                   ) -> LineResult:
    """The attractor of ``c -> r_i c + t_i`` (exact rationals) as a union of intervals.

    ``tol`` (None: the finest the budget allows) bounds the Hausdorff distance in the
    coordinate c. See the module docstring for the method and its proof.
    """
    enc = (*_encl(r), *_encl(t))
    rho = float(max(abs(x) for x in r))
    rho_up = to_float_up(max(abs(x) for x in r))
    a, b, alpha, beta = _hull_interval(r, t, enc)
    scale = max(abs(a), abs(b), 1e-300)
    floor = 8 * scale * np.finfo(float).eps           # outward rounding per step
    if alpha is None:
        inner_gap = b - a
    else:
        inner_gap = max(alpha - a, b - beta, 0.0)
    if hull:
        bound = to_float_up(Fraction(inner_gap) + Fraction(floor))
        return LineResult(np.array([[a, b]]), bound, 0, True, 0.0)
    return _finite(enc, rho, rho_up, a, b, inner_gap, floor, tol, budget)


def _finite(enc, rho, rho_up, a, b, inner_gap, floor, tol, budget) -> LineResult:
    width = max(b - a, floor)
    lo, hi = np.array([a]), np.array([b])
    e = width / 2 + inner_gap + floor                 # d_H([a, b], K*) (module docstring)
    gap = width / 16
    target_gap = max(floor, (1 - rho_up) * tol) if tol is not None else floor
    if tol is not None and (target_gap / 2 + floor) / (1 - rho_up) * 1.05 > tol:
        raise InputError(fail_message(
            budget.call, f"tol={tol:.3g} in the line's coordinate, below the floating-point "
            f"resolution of this set (about {floor / (1 - rho_up):.3g})", "pass a larger tol, "
            "or tol=None for the finest the floats resolve"))
    j, complete = 0, True
    counts = []
    while True:
        done_refining = gap <= target_gap
        steady = (max(gap, target_gap) / 2 + floor) / (1 - rho_up) * 1.05
        # an explicit tol is met with room (0.6 tol) so that samples of the intervals fit too
        goal = max(0.6 * tol, steady) if tol is not None else steady
        if done_refining and e <= goal:
            break
        if budget.expired():
            complete = tol is None
            break
        next_gap = gap if done_refining else max(target_gap, gap / 2)
        if next_gap < gap and not budget.allows(
                len(lo), counts, "intervals", tol, achieved=e,
                suggestion=(gap / 2 + floor) / (1 - rho_up) * 2):
            if tol is None:                           # the finest level that fits
                target_gap = gap
                continue
        gap = next_gap
        ilo, ihi = _images(lo, hi, *enc)
        lo, hi = _merge(ilo.ravel(), ihi.ravel(), gap)
        counts.append(len(lo))
        budget.tick(len(lo))
        e = rho_up * e + gap / 2 + floor
        j += 1
    return LineResult(np.stack([lo, hi], axis=1), e, j, complete, gap)
