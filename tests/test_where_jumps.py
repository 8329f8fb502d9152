"""A ``cv.where`` that jumps inside a box is never trusted by a proof over the box.

``conservative.where_jumps.jumping_where`` proves a jump either from the branch gap over the
whole box or from a short segment across the boundary (opposite branches picked at its ends,
branches apart on its hull). The maps below have no fixed point at all (checked exactly), or a
continuous where whose fixed point must still be proved.
"""

from fractions import Fraction

import numpy as np
import pytest

import conservative as cv
import conservative.fixed_point_set as fps
import conservative.interval as iv
from conservative.where_jumps import jumping_where

from _where_helpers import enclose, refused, where_nodes


# The boundaries sit far from the origin: the trace-time sampling of where's continuity (random
# lines near 0) does not see these jumps, so the box-level proof must.

@pytest.mark.parametrize("x0", [102.0, 102.0 + 1e-9, 102.0 - 1e-9, 102.25])
def test_nonlinear_boundary_with_a_jump_is_refused(x0):
    """g = (x - 100)^3 - 8 (boundary at 102); the branches x/2 + 50.875 and -x/2 + 153.125
    cross at 102.25 but differ by 1/4 on the boundary: x > 102 gives x = 101.75, x <= 102
    gives x = 102 + 1/12: no fixed point."""
    assert Fraction(101.75) <= 102 < Fraction(153125, 1000) * Fraction(2, 3)
    F = cv.trace(lambda x, t: cv.where((x - 100.0) ** 3 - 8.0 > 0, 0.5 * x + 50.875 + 0.0 * t,
                                       -0.5 * x + 153.125), (), ())
    assert refused(F, 0.0, x0)


@pytest.mark.parametrize("x0", [[100.5, 99.5], [100.5 + 1e-12, 99.5], [100.25, 99.75]])
def test_diagonal_boundary_with_a_jump_is_refused(x0):
    """The boundary x0 + x1 = 200 is not a coordinate hyperplane; on it the branches differ by
    1/2 in the first element. x0 + x1 > 200: x = (100.5, 99.5) has sum 200 (not > 200);
    x0 + x1 <= 200: x = (101, 99.5) has sum 200.5: no fixed point."""
    def f(x, t):
        s = x[0] + x[1] - 200.0
        return cv.where(s > 0, cv.stack([100.5 + 0.0 * s, 99.5 + 0.0 * s]),
                        cv.stack([101.0 + 0.0 * s, 99.5 + 0.0 * s])) + 0.0 * t
    F = cv.trace(f, (2,), ())
    np.testing.assert_array_equal(F(np.array([100.0, 99.5]), 0.0), [101.0, 99.5])
    assert refused(F, 0.0, x0)


def test_continuous_nonlinear_where_is_still_proved():
    """g = x^2 - 2 with branches agreeing on it (x/2 + 1/x and the same written differently):
    the fixed point sqrt 2 is on the boundary and is proved, with the caveat."""
    F = cv.trace(lambda x, t: cv.where(x * x - 2.0 > 0, 0.5 * x + 1.0 / x,
                                       0.5 * x + 1.0 / x + 0.1 * (x * x - 2.0)) + 0.0 * t, (), ())
    enc = enclose(F, 0.0, np.sqrt(2.0))
    assert enc.proven and enc.caveat
    assert float(enc.lo) <= np.sqrt(2.0) <= float(enc.hi)
    assert float(enc.hi) - float(enc.lo) < 1e-12


def test_continuous_vector_where_at_many_boundaries_is_proved():
    """Soft-threshold written with where, the fixed point with several coordinates exactly on
    the boundary |z| = lam (continuous there): proved, and jumping_where names no node."""
    rng = np.random.default_rng(3)
    n = 12
    W = np.triu(rng.integers(-2, 3, size=(n, n)).astype(float), 1) / 8
    lam = 0.25

    def st(z):
        return cv.where(z - lam > 0, z - lam, cv.where(-z - lam > 0, z + lam, 0.0 * z))
    xs = np.where(np.arange(n) % 3 == 0, 0.0, 1.0)
    c = xs + lam - W @ xs
    c[::3] = lam - (W @ xs)[::3]               # z = lam exactly on every third coordinate
    F = cv.trace(lambda x, t: st(W @ x + c + 0.0 * t), (n,), ())
    assert np.array_equal(F(xs, 0.0), xs)
    enc = enclose(F, 0.0, xs)
    assert enc.proven
    assert np.all(enc.lo <= xs) and np.all(xs <= enc.hi)


def test_jump_found_for_every_theta_of_a_box():
    """Over a parameter box, where(x - t - 100 > 0, (x + t + 100)/2 - 1/4, (x + t + 100)/2 +
    1/4) jumps by 1/2 at x = t + 100 for every t (no fixed point): the parametric enclosure is
    refused."""
    F = cv.trace(lambda x, t: cv.where(x - t - 100.0 > 0, 0.5 * x + 0.5 * (t + 100.0) - 0.25,
                                       0.5 * x + 0.5 * (t + 100.0) + 0.25), (), ())
    for x0 in (101.0, 101.0 + 1e-9, 100.75):
        fps._RECENT.clear()
        assert not fps.parametric_enclosure(F, (0.999, 1.001), x0).proven


def test_jumping_where_directly_on_a_box_that_misses_the_jump():
    """The same where on a box that holds its boundary x = 100 only as a continuous point:
    branches agree at 100 (a jump elsewhere, outside the box, is not this box's business)."""
    F = cv.trace(lambda x, t: cv.where(x - 100.0 > 0, 0.5 * x + 50.0, -0.5 * x + 150.0
                                       + 0.0 * t + 0.0 * (x - 300.0)), (), ())
    node = where_nodes(F)
    x, lo, hi = np.array([100.0]), np.array([99.0]), np.array([101.0])
    assert jumping_where(F.program, x, lo, hi, iv.Interval(np.array(0.0)), node, "test") == []
    # and a box where the branches cross but the boundary is not met at all: nothing to refuse
    G = cv.trace(lambda x, t: cv.where(x - 100.0 > 0, 0.5 * x + 49.75, -0.5 * x + 150.75)
                 + 0.0 * t, (), ())
    x, lo, hi = np.array([100.5]), np.array([100.25]), np.array([100.75])
    assert jumping_where(G.program, x, lo, hi, iv.Interval(np.array(0.0)), [], "test") == []
    assert Fraction(100) + Fraction(2, 3) * Fraction(1, 4) > 100   # reference of the s20 case
