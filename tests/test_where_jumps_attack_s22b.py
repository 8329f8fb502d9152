"""Adversarial checks (session 22, second round) of ``conservative/where_jumps.py`` after the
s22 mends (three boundary starts, centred hull comparison, point-by-point evaluation).

A ``cv.where`` that jumps inside a Krawczyk box must make the enclosure refuse the box. Every
map below has NO fixed point (checked exactly with Fractions on the dyadic data, or by the
closed form in the docstring), unless it is a guard of a continuous map whose fixed point must
be held. Not repeated here: tests/test_where_jumps_attack_s22.py.

The trace-time sampling of continuity is left on: none of these boundaries is near the origin.

Five gaps, each a proved box for a map with no fixed point; 2, 3 and 5 were mended the same
session (secant steps along the gradient's magnitudes where its sign is undecided on the box;
the hull comparison is one direction along the segment, whatever the dimension; the probe
segments are decided at the centre of the theta box), 1 and 4 are strict xfails:

1. **three probe starts** (``_boundary_points``): the boundary is probed only from ``x`` and the
   two points ``x -/+ reach * sign(slope.mid)``. A gap ``C d (R^2 - d^2)``, ``d = v - V0``,
   vanishes at all three (``d = 0, +-R``, ``R`` the box's half-width in ``v``) and nowhere else.
2. **a zero mean gradient** (``_boundary_points``): ``grad.mid`` of the condition over the box
   is the only direction ever used; for ``(x - 1)^2 - e^2 > 0`` on a box centred at 1 it is 0,
   ``ok`` is False for every start and nothing is probed (from 1 - e/2 the chord steps with
   the box's mean slope do not reach the boundary within ``_NEWTON_STEPS`` either).
3. **more than MAX_CENTRED_COLUMNS moving coordinates** (``_apart_on_hull``): a condition on
   ``sum(x)``, n = 128, moves every coordinate of the probe segment; with a shared wide term
   ``S s - S s`` the plain comparison fails and the centred one is skipped (n = 64 is refused).
4. **more than MAX_FLOAT_PROBES candidates** (``jumping_where``): 257 elements whose gap at x
   ties at 0; the stable sort keeps the first 256 and the jumping last one is never probed.
5. **a parameter box** (``parametric_enclosure``): the branch picks are decided over the whole
   theta box, so a condition ``x > theta + 100`` is undecided on every probe segment shorter
   than the theta box; a jump that closes inside the box escapes method 1 too. The same map at
   the point theta is refused. (A jump at one theta of the box is enough to refuse.)
"""

from fractions import Fraction

import numpy as np
import pytest

import conservative as cv
import conservative.fixed_point_set as fps
from conservative.where_jumps import MAX_FLOAT_PROBES

from _where_helpers import enclose, holds, one_jumping_element, refused

#: the former limit of the centred hull comparison (unit seeds on at most 64 coordinates; it is
#: one direction along the segment since, whatever the dimension)
MAX_CENTRED_COLUMNS = 64


def refused_box(F, theta_box, x0) -> bool:
    fps._RECENT.clear()
    try:
        return not fps.parametric_enclosure(F, theta_box, np.asarray(x0, dtype=float)).proven
    except cv.DiscontinuityError:
        return True
    finally:
        fps._RECENT.clear()


# === 1. a gap vanishing at the three probe starts =================================================
#
# (u, v): v -> v/2 + (V0 + 2 RHO)/2 on both branches (v̄ = V0 + 2 RHO = V0 + R/2), and
#     u -> u/2 + 50 - gap  where u > 100,   u -> u/2 + 50 + gap  elsewhere,
# gap = C d (R^2 - d^2), d = v - V0. Started at v = V0 the box is v in V0 +- (R + a few ulps):
# x, x + R e_v and x - R e_v (the three starts, projected onto u = 100) all have gap 0 (to
# ~1e-16), while at v̄ the branches differ by 2 gap(v̄) = 3 * 2**-15.

C1, V0, R1, RHO = 2.0 ** 14, 1.0, 2.0 ** -9, 2.0 ** -11
V_BAR1 = V0 + 2 * RHO


def _cubic_gap(r):
    def f(x, t):
        u, v = x[0], x[1]
        d = v - V0
        gap = C1 * d * (r * r - d * d)
        a = cv.stack([0.5 * u + 50.0 - gap, 0.5 * v + 0.5 * V_BAR1])
        b = cv.stack([0.5 * u + 50.0 + gap, 0.5 * v + 0.5 * V_BAR1])
        return cv.where(u > 100.0, a, b) + 0.0 * t
    return cv.trace(f, (2,), ())


def _no_fixed_point_cubic(r):
    v = Fraction(V_BAR1)
    assert v / 2 + Fraction(V_BAR1) / 2 == v
    d = v - Fraction(V0)
    gap = Fraction(C1) * d * (Fraction(r) ** 2 - d * d)
    assert gap > 0
    u_a, u_b = 100 - 2 * gap, 100 + 2 * gap                 # u = u/2 + 50 -+ gap
    assert u_a / 2 + 50 - gap == u_a and not u_a > 100
    assert u_b / 2 + 50 + gap == u_b and not u_b <= 100


CUBIC_STARTS = [(100.0, V0), (np.nextafter(100.0, 200.0), V0), (np.nextafter(100.0, 0.0), V0)]


@pytest.mark.xfail(strict=True, reason="F = cv.trace(lambda x, t: cv.where(x[0] > 100, [u/2+50-g, "
                   "v/2+V/2], [u/2+50+g, v/2+V/2]), (2,), ()), g = 2**14 d (2**-18 - d*d), "
                   "d = x[1]-1, V = 1+2**-10; cv.fixed_point_enclosure(F, 0.0, [100.0, 1.0])"
                   ".proven is True: no fixed point")
@pytest.mark.parametrize("x0", CUBIC_STARTS)
def test_gap_vanishing_at_the_three_starts_is_refused(x0):
    _no_fixed_point_cubic(R1)
    F = _cubic_gap(R1)
    enc = enclose(F, 0.0, x0)
    # the box the attack is built for (v's half-width R1 to a few ulps)
    assert abs(float(enc.hi[1]) - V0 - R1) < 1e-12 or not enc.proven
    assert not enc.proven


@pytest.mark.parametrize("r", [3 * 2.0 ** -11, 2.0 ** -8])
def test_gap_not_vanishing_at_the_starts_is_refused(r):
    """Guard (passes today): the same jump with the cubic's outer zeros off the box's edge
    (d = +-r, r != R1) is found from the starts."""
    _no_fixed_point_cubic(r)
    for x0 in CUBIC_STARTS:
        assert refused(_cubic_gap(r), 0.0, x0), (r, x0)


def test_gap_vanishing_at_the_starts_is_refused_from_the_fixed_v():
    """Guard (passes today): started at v = v̄ the projection of x has gap 3 * 2**-16."""
    assert refused(_cubic_gap(R1), 0.0, (100.0, V_BAR1))


# === 2. a condition whose mean gradient over the box is 0 =========================================

E2 = 2.0 ** -20


def _ring():
    """where((x-1)^2 - E^2 > 0, 1 - (x-1)/2 - E/4, 1 + (x-1)/2 + E). |x - 1| > E: x - 1 =
    -(x-1)/2 - E/4 gives x - 1 = -E/6 (|x - 1| <= E); |x - 1| <= E: x - 1 = 2E (> E): no
    fixed point. On the boundary the branches differ by E/4 (at 1 - E) and 9E/4 (at 1 + E)."""
    return cv.trace(lambda x, t: cv.where((x - 1.0) ** 2 - E2 * E2 > 0,
                                          1.0 - 0.5 * (x - 1.0) - E2 / 4,
                                          1.0 + 0.5 * (x - 1.0) + E2) + 0.0 * t, (), ())


def _no_fixed_point_ring():
    e = Fraction(E2)
    out = lambda x: (x - 1) ** 2 - e * e > 0                       # noqa: E731
    x_a = 1 - e / 6
    assert x_a == 1 - (x_a - 1) / 2 - e / 4 and not out(x_a)
    x_b = 1 + 2 * e
    assert x_b == 1 + (x_b - 1) / 2 + e and out(x_b)
    for x in (1 - e, 1 + e):                                        # the jump on the boundary
        assert (1 - (x - 1) / 2 - e / 4) != (1 + (x - 1) / 2 + e)


@pytest.mark.parametrize("x0", [1.0, 1.0 - E2 / 2])
def test_ring_boundary_with_zero_mean_gradient_is_refused(x0):
    _no_fixed_point_ring()
    assert refused(_ring(), 0.0, x0)


@pytest.mark.parametrize("x0", [1.0 + E2 / 2, 1.0 + 2 * E2])
def test_ring_boundary_off_centre_is_refused(x0):
    """Guard (passes today): from these starts the chord steps reach the boundary."""
    _no_fixed_point_ring()
    assert refused(_ring(), 0.0, x0)


def test_continuous_ring_is_proved():
    """Guard: where((x-1)^2 - E^2 > 0, 1 + (x-1)/2 + ((x-1)^2 - E^2), 1 + (x-1)/2) is
    continuous; its fixed point 1 (inside the ring, x - 1 = (x-1)/2) is proved and held."""
    F = cv.trace(lambda x, t: cv.where((x - 1.0) ** 2 - E2 * E2 > 0,
                                       1.0 + 0.5 * (x - 1.0) + ((x - 1.0) ** 2 - E2 * E2),
                                       1.0 + 0.5 * (x - 1.0)) + 0.0 * t, (), ())
    for x0 in (1.0, 1.0 + E2 / 4, 1.0 - E2 / 4):
        enc = enclose(F, 0.0, x0)
        assert enc.proven and holds(enc, [Fraction(1)]), x0


# === 3. more than MAX_CENTRED_COLUMNS moving coordinates ==========================================

D3, S3 = 2.0 ** -20, 2.0 ** 40


def _sum_map(n, s_wide):
    """F(x) = x/2 + (f(s) - s/2)/n * ones, s = sum(x), f(s) = where(s > n, n + (s-n)/2 - D/2,
    n + 3(s-n)/4 + D/2) (+ s_wide s - s_wide s in both branches, exactly 0). x = F(x) iff
    x = (s/n) ones and f(s) = s; f has no fixed point (s > n gives s = n - D, s <= n gives
    s = n + 2D)."""
    def f(x, t):
        s = cv.sum(x)
        sh = s_wide * s - s_wide * s
        fs = cv.where(s > float(n), n + 0.5 * (s - n) - D3 / 2 + sh,
                      n + 0.75 * (s - n) + D3 / 2 + sh)
        return 0.5 * x + (fs - 0.5 * s) * (1.0 / n) + 0.0 * t
    return cv.trace(f, (n,), ())


def _no_fixed_point_sum(n):
    d = Fraction(D3)
    s_a, s_b = n - d, n + 2 * d
    assert n + (s_a - n) / 2 - d / 2 == s_a and not s_a > n
    assert n + Fraction(3, 4) * (s_b - n) + d / 2 == s_b and not s_b <= n
    # F(x) = x  =>  x = 2 c ones, c = (f(s) - s/2)/n  =>  s = 2 n c = 2 f(s) - s  =>  f(s) = s
    assert Fraction(1, n) * n == 1


SUM_STARTS = [-4.0, -1.0, 2.0]                     # s - n in units of D


@pytest.mark.parametrize("k", SUM_STARTS)
def test_jump_along_128_coordinates_with_a_shared_wide_term_is_refused(k):
    n = 2 * MAX_CENTRED_COLUMNS
    _no_fixed_point_sum(n)
    F = _sum_map(n, S3)
    assert refused(F, 0.0, np.full(n, (n + k * D3) / n))


@pytest.mark.parametrize("n, s_wide", [(MAX_CENTRED_COLUMNS, S3), (2 * MAX_CENTRED_COLUMNS, 0.0),
                                       (2 * MAX_CENTRED_COLUMNS, 1.0)])
def test_jump_along_many_coordinates_is_refused(n, s_wide):
    """Guard (passes today): 64 moving coordinates (the centred comparison runs), or no wide
    shared term (the plain comparison suffices)."""
    _no_fixed_point_sum(n)
    F = _sum_map(n, s_wide)
    for k in SUM_STARTS:
        assert refused(F, 0.0, np.full(n, (n + k * D3) / n)), k


# === 4. more than MAX_FLOAT_PROBES candidates =====================================================

def _many_elements_map(m, jumping):
    """Elementwise where(x - 100 > 0, A, B): every element but ``jumping`` continuous (x/2 + 50
    on both branches, fixed at 100); element ``jumping`` jumps by d = 2**-8 at 100 with a gap
    -d - (x - 100)/4 closing at 100 - 4d (its gap at the start, 0, ties with the others')."""
    return one_jumping_element(m, jumping)


def _no_fixed_point_element(d):
    x_a, x_b = 100 - d, 100 + 2 * d
    assert x_a / 2 + 50 - d / 2 == x_a and not x_a > 100
    assert Fraction(3, 4) * (x_b - 100) + 100 + d / 2 == x_b and not x_b <= 100


@pytest.mark.xfail(strict=True, reason="the 257-element where(x - 100 > 0, x/2 + 50 - j d/2, "
                   "(1/2 + j/4)(x - 100) + 100 + j d/2), j = e_256, d = 2**-8; "
                   "fixed_point_enclosure(F, 0.0, x0), x0 = 100 but x0[256] = 100 - 4d: "
                   ".proven is True: no fixed point")
def test_jump_behind_256_tied_elements_is_refused():
    m = MAX_FLOAT_PROBES + 1
    F, x0, d = _many_elements_map(m, m - 1)
    _no_fixed_point_element(d)
    assert refused(F, 0.0, x0)


@pytest.mark.parametrize("m, jumping", [(MAX_FLOAT_PROBES, MAX_FLOAT_PROBES - 1),
                                        (MAX_FLOAT_PROBES + 1, 0)])
def test_jump_within_the_float_probes_is_refused(m, jumping):
    """Guard (passes today): the jumping element among the first 256 candidates."""
    F, x0, d = _many_elements_map(m, jumping)
    _no_fixed_point_element(d)
    assert refused(F, 0.0, x0)


# === 5. a condition on theta over a parameter box =================================================

D5 = 2.0 ** -20


def _theta_map():
    """c = theta + 100; where(x > c, c + (x-c)/2 - D/2, c + 3(x-c)/4 + D/2): for EVERY theta,
    x > c gives x = c - D (not > c) and x <= c gives x = c + 2D (not <= c): no fixed point."""
    def f(x, t):
        c = t + 100.0
        return cv.where(x > c, c + 0.5 * (x - c) - D5 / 2, c + 0.75 * (x - c) + D5 / 2)
    return cv.trace(f, (), ())


def _no_fixed_point_theta(thetas):
    d = Fraction(D5)
    for t in thetas:
        c = Fraction(t) + 100
        x_a, x_b = c - d, c + 2 * d
        assert c + (x_a - c) / 2 - d / 2 == x_a and not x_a > c
        assert c + Fraction(3, 4) * (x_b - c) + d / 2 == x_b and not x_b <= c


THETA_STARTS = [100.0, 100.0 - 4 * D5, 100.0 - D5, 100.0 + 2 * D5]


@pytest.mark.parametrize("w", [D5 / 4, D5, 16 * D5])
@pytest.mark.parametrize("x0", THETA_STARTS)
def test_theta_dependent_jump_over_a_parameter_box_is_refused(w, x0):
    _no_fixed_point_theta([-w, 0.0, w])
    assert refused_box(_theta_map(), (-w, w), x0)


@pytest.mark.parametrize("x0", THETA_STARTS)
def test_theta_dependent_jump_at_a_point_or_a_thin_box_is_refused(x0):
    """Guard (passes today): theta = 0, and theta boxes far thinner than the jump."""
    _no_fixed_point_theta([0.0, -2.0 ** -40, 2.0 ** -40, 2.0 ** -26])
    F = _theta_map()
    assert refused(F, 0.0, x0)
    for w in (2.0 ** -40, 2.0 ** -26):
        assert refused_box(F, (-w, w), x0), w


def test_continuous_theta_dependent_where_over_a_parameter_box_is_proved():
    """Guard: the branches c + (x-c)/2 and c + 3(x-c)/4 agree at c; x̄(theta) = theta + 100 for
    every theta, held by the box for theta = -w, 0, w."""
    w = D5
    F = cv.trace(lambda x, t: cv.where(x > t + 100.0, (t + 100.0) + 0.5 * (x - t - 100.0),
                                       (t + 100.0) + 0.75 * (x - t - 100.0)), (), ())
    fps._RECENT.clear()
    enc = fps.parametric_enclosure(F, (-w, w), 100.0)
    fps._RECENT.clear()
    assert enc.proven
    for t in (-w, 0.0, w):
        assert holds(enc, [Fraction(t) + 100])
