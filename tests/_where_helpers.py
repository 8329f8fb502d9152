"""Test helpers for enclosures of maps with ``cv.where``: a fresh enclosure (caches cleared,
optionally without the centred first test), "refused" (not proven, or a jump met by the float
evaluation itself), exact containment of a rational point, the where nodes of a trace, and a
vector where with one jumping element among continuous ones."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

import conservative as cv
import conservative.fixed_point_set as fps


def enclose(F, theta, x0, *, centred=True):
    """``cv.fixed_point_enclosure`` with the caches cleared before and after; ``centred=False``
    skips the centred first test (the general Krawczyk loop decides)."""
    real = fps._centred_test
    fps._RECENT.clear()
    if not centred:
        fps._centred_test = lambda *a: None
    try:
        return cv.fixed_point_enclosure(F, theta, np.asarray(x0, dtype=float))
    finally:
        fps._centred_test = real
        fps._RECENT.clear()


def refused(F, theta, x0, centred=True) -> bool:
    try:
        return not enclose(F, theta, x0, centred=centred).proven
    except cv.DiscontinuityError:
        return True


def holds(enc, point) -> bool:
    """Whether the box holds ``point`` (rationals), compared exactly."""
    lo, hi = np.ravel(enc.lo), np.ravel(enc.hi)
    return all(Fraction(float(l)) <= Fraction(p) <= Fraction(float(h))
               for l, p, h in zip(lo, point, hi))


def where_nodes(F):
    return [v for v in F.program.order if F.program.graph.nodes[v]["prim"].name == "select"]


def one_jumping_element(m, jumping):
    """``where(x - 100 > 0, a, b)`` on m elements, continuous at 100 except element
    ``jumping``, whose branches differ by d = 2**-8 there (gap ``-d - (x - 100)/4``, closing at
    100 - 4d, the start of that element; 100 elsewhere): ``(F, x0, Fraction(d))``."""
    d = 2.0 ** -8
    jump = np.zeros(m)
    jump[jumping] = 1.0
    k = 0.25 * jump

    def f(x, t):
        a = 0.5 * x + 50.0 - jump * (d / 2)
        b = (0.5 + k) * (x - 100.0) + 100.0 + jump * (d / 2)
        return cv.where(x - 100.0 > 0, a, b) + 0.0 * t
    x0 = np.full(m, 100.0)
    x0[jumping] = 100.0 - 4 * d
    return cv.trace(f, (m,), ()), x0, Fraction(d)
