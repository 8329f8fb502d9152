"""Adversarial checks (session 22) of ``conservative/where_jumps.py`` (``jumping_where``).

A ``cv.where`` that jumps inside a Krawczyk box must make ``cv.fixed_point_enclosure`` refuse
the box: the proof assumes F continuous there, and a jump can give a proved box for a map with
no fixed point at all. Every map below has NO fixed point (checked exactly with Fractions on
the dyadic data, or by the closed form in the docstring), unless it is a guard of a continuous
map whose exact fixed point must be held.

Three gaps were found, each a proved box for a map with no fixed point, and mended the same
session (each was a strict xfail first; the tests below are the reproductions):

1. **one boundary point probed** (:func:`where_jumps._boundary_points`): the boundary was
   looked for only at the chord-step projection of ``x`` along the condition's gradient. When
   the branch gap vanishes at that projection but not elsewhere on the boundary inside the box
   (the gap depends on a coordinate the condition does not), no jump is found, and method 1
   (gap bounded away from 0 on the whole box) fails because the gap closes on the box.
2. **plain enclosures on the hull** (:func:`where_jumps._apart_on_hull`): the branches are
   compared by separate interval enclosures over the segment's hull, not in centred form.
   A term shared by both branches whose interval extension is wide (``S*x - S*x``: exactly 0,
   tangent exactly 0) hides a jump of 2**-20 at all three segment lengths.
3. **probe budget** (:data:`MAX_BOUNDARY_PROBES` = 8): when the float chord steps land on the
   jump itself, ``evaluate`` raises DiscontinuityError, ``_boundary_points`` returns every
   candidate unfiltered (in gap order), and only the first 8 are tested: 8 continuous elements
   ahead of the jumping one hide it.

The trace-time sampling of the where's continuity is switched off (as in
tests/test_interval_kernels_attack.py) where it would refuse a map at trace time: the
enclosure itself must refuse.
"""

from fractions import Fraction

import numpy as np
import pytest

import conservative as cv
import conservative.interval as iv
from conservative.map import Map
from conservative.where_jumps import MAX_BOUNDARY_PROBES, jumping_where

from _where_helpers import enclose, holds, one_jumping_element, refused, where_nodes

ETA = 5e-324                                            # 2**-1074


@pytest.fixture
def no_sampling(monkeypatch):
    monkeypatch.setattr(Map, "_sample_where_continuity", lambda self, *a, **k: None)


# === 1. the gap vanishes at the probed boundary point only ======================================
#
# In (u, v): v -> v/2 + VB/2 on both branches (so v̄ = VB), and
#     u -> u/2 + B/2 - C (v - V0)   where the condition holds (u "above" the boundary B),
#     u -> u/2 + B/2 + C (v - V0)   elsewhere.
# The gap 2 C (v - V0) is 0 on the boundary at v = V0 only. At v̄ = VB > V0 the first branch's
# u-fixed point is B - 2 C (VB - V0) (below B) and the second's B + 2 C (VB - V0) (above B):
# no fixed point anywhere. Started at v = V0, the chord step from x lands at (B, V0), where the
# branches agree: the jump at (B, v), v != V0, inside the box is never looked at.

C, V0, VB = 2.0 ** -20, 1.0, 1.0 + 2.0 ** -10
DELTA = Fraction(VB) - Fraction(V0)


def _uv(u, v, gap):
    a = cv.stack([0.5 * u + 50.0 - gap, 0.5 * v + 0.5 * VB])
    b = cv.stack([0.5 * u + 50.0 + gap, 0.5 * v + 0.5 * VB])
    return a, b


def _coord(x, t):
    return cv.where(x[0] > 100.0, *_uv(x[0], x[1], C * (x[1] - V0))) + 0.0 * t


def _theta(x, t):                           # the boundary u = t (theta = 100 below)
    return cv.where(x[0] - t > 0, *_uv(x[0], x[1], C * (x[1] - V0)))


def _square(x, t):                          # nonlinear condition u*u > 10000 (u = 100 here)
    return cv.where(x[0] * x[0] - 10000.0 > 0, *_uv(x[0], x[1], C * (x[1] - V0))) + 0.0 * t


def _abs_gap(x, t):                         # the gap 2 C |v - V0|
    return cv.where(x[0] > 100.0, *_uv(x[0], x[1], C * cv.abs(x[1] - V0))) + 0.0 * t


def _relu_gap(x, t):                        # the gap 2 C (relu(v) - V0); relu(VB) = VB
    return cv.where(x[0] > 100.0, *_uv(x[0], x[1], C * (cv.relu(x[1]) - V0))) + 0.0 * t


def _vector_cond(x, t):                     # elementwise condition; v's boundary far away
    cut = np.array([100.0, -50.0])
    return cv.where(x - cut > 0, *_uv(x[0], x[1], C * (x[1] - V0))) + 0.0 * t


W2 = np.array([[1.0, 1.0], [1.0, -1.0]])    # W2 @ W2 = 2 I: 0.5 W2 is its exact inverse


def _rotated(x, t):
    """F(x) = W2^-1 H(W2 x), H the `_coord` map in (s + 100, w) = W2 x: x = F(x) iff z = W2 x
    is a fixed point of H, which has none. The condition is on a row of the matmul."""
    z = W2 @ x
    s, w = z[0] - 100.0, z[1]
    a = cv.stack([0.5 * s + 150.0 - C * (w - V0), 0.5 * w + 0.5 * VB])
    b = cv.stack([0.5 * s + 150.0 + C * (w - V0), 0.5 * w + 0.5 * VB])
    return 0.5 * (W2 @ cv.where(s > 100.0, a, b)) + 0.0 * t


def _no_fixed_point_uv(above):
    """Exact: with v̄ = VB, the first branch's u-fixed point is not `above` the boundary and
    the second's is (``above(u)``: the condition as a Fraction predicate on u)."""
    v_bar = Fraction(VB)                                     # v = v/2 + VB/2
    assert v_bar / 2 + Fraction(VB) / 2 == v_bar
    gap = Fraction(C) * (v_bar - Fraction(V0))               # relu(VB) = |VB - V0| + V0 here
    assert gap > 0
    u_a, u_b = 100 - 2 * gap, 100 + 2 * gap                  # u = u/2 + 50 -+ gap
    assert u_a / 2 + 50 - gap == u_a and u_b / 2 + 50 + gap == u_b
    assert not above(u_a) and above(u_b)


D1_STARTS = [(100.0, V0), (np.nextafter(100.0, 200.0), V0), (np.nextafter(100.0, 0.0), V0),
             (100.0 - 2.0 ** -29, V0), (100.0 + 2.0 ** -29, V0)]     # +- the branch u-points

D1_MAPS = {"coordinate": (_coord, 0.0, lambda u: u > 100),
           "theta": (_theta, 100.0, lambda u: u - 100 > 0),
           "square": (_square, 0.0, lambda u: u * u > 10000),
           "abs": (_abs_gap, 0.0, lambda u: u > 100),
           "relu": (_relu_gap, 0.0, lambda u: u > 100),
           "vector_condition": (_vector_cond, 0.0, lambda u: u > 100)}


@pytest.mark.parametrize("name", list(D1_MAPS))
@pytest.mark.parametrize("start", range(len(D1_STARTS)))
def test_jump_off_the_probed_boundary_point_is_refused(no_sampling, name, start):
    f, theta, above = D1_MAPS[name]
    _no_fixed_point_uv(above)
    F = cv.trace(f, (2,), ())
    assert refused(F, theta, D1_STARTS[start])


@pytest.mark.parametrize("z0", [(200.0, V0), (200.0 - 2.0 ** -29, V0), (200.0 + 2.0 ** -29, V0)])
def test_jump_off_the_probed_boundary_point_through_a_matmul_is_refused(no_sampling, z0):
    _no_fixed_point_uv(lambda u: u > 100)                    # H in (s, w), s = z0 - 100
    assert np.array_equal(W2 @ W2, 2 * np.eye(2))
    F = cv.trace(_rotated, (2,), ())
    assert refused(F, 0.0, 0.5 * W2 @ np.array(z0))


@pytest.mark.parametrize("x0", [(0.0, 0.0), (ETA, 0.0), (-ETA, 0.0)])
def test_subnormal_jump_off_the_probed_boundary_point_is_refused(no_sampling, x0):
    """v̄ = E = 2**-1070; u > 0 gives u = -2E, u <= 0 gives u = 2E: no fixed point (exact:
    every constant is dyadic and representable)."""
    E = 2.0 ** -1070
    v_bar = Fraction(E)
    assert v_bar / 2 + Fraction(E) / 2 == v_bar and not (-2 * v_bar > 0) and 2 * v_bar > 0
    def f(x, t):
        a = cv.stack([0.5 * x[0] - x[1], 0.5 * x[1] + 0.5 * E])
        b = cv.stack([0.5 * x[0] + x[1], 0.5 * x[1] + 0.5 * E])
        return cv.where(x[0] > 0, a, b) + 0.0 * t
    F = cv.trace(f, (2,), ())
    assert refused(F, 0.0, x0)


@pytest.mark.parametrize("name", ["coordinate", "square", "theta"])
def test_jump_at_the_probed_boundary_point_is_refused(no_sampling, name):
    """Guard (passes today): the same maps started at v = VB, where the projection of x onto
    the boundary has gap 2C(VB - V0) > 0, are refused (centred test on and off)."""
    f, theta, _ = D1_MAPS[name]
    F = cv.trace(f, (2,), ())
    for x0 in ((100.0, VB), (np.nextafter(100.0, 200.0), VB), (100.0 - 2.0 ** -29, VB)):
        for centred in (True, False):
            assert refused(F, theta, x0, centred), (name, x0, centred)


def test_jumping_where_on_the_box_that_fools_it():
    """The direct call: on the box [100 +- 2**-9] x [V0 - 2**-9, VB + 2**-9] the where jumps
    (at (100, VB) by 2C(VB - V0)); jumping_where names it from (100, V0), where the gap at the
    boundary point nearest the start vanishes, as from (100, VB)."""
    F = cv.trace(_coord, (2,), ())
    node = where_nodes(F)
    r = 2.0 ** -9
    lo, hi = np.array([100 - r, V0 - r]), np.array([100 + r, VB + r])
    t = iv.Interval(np.array(0.0))
    assert jumping_where(F.program, np.array([100.0, VB]), lo, hi, t, node, "test") == node
    found = jumping_where(F.program, np.array([100.0, V0]), lo, hi, t, node, "test")
    assert found == node                # from the start where the gap vanishes too


# === 2. a shared wide term hides the jump from _apart_on_hull ==================================

D2, S = 2.0 ** -20, 2.0 ** 40


def _shared_term_map(s):
    """where(x > 1, 1 + (x-1)/2 - D/2 + (s x - s x), 1 + 3(x-1)/4 + D/2 + (s x - s x)): the real
    map ignores ``s`` (s x - s x = 0 and its tangent is exactly 0)."""
    return cv.trace(lambda x, t: cv.where(x > 1.0, 1 + 0.5 * (x - 1) - D2 / 2 + (s * x - s * x),
                                          1 + 0.75 * (x - 1) + D2 / 2 + (s * x - s * x))
                    + 0.0 * t, (), ())


def _no_fixed_point_shared():
    """x > 1: x - 1 = (x - 1)/2 - D/2 gives x = 1 - D (not > 1); x <= 1: (x - 1)/4 = D/2
    gives x = 1 + 2D (not <= 1). The gap at 1 is D = 2**-20, closing at 1 - 4D."""
    d = Fraction(D2)
    x_a, x_b = 1 - d, 1 + 2 * d
    assert 1 + (x_a - 1) / 2 - d / 2 == x_a and not x_a > 1
    assert 1 + Fraction(3, 4) * (x_b - 1) + d / 2 == x_b and not x_b <= 1


@pytest.mark.parametrize("x0", [1 - 4 * D2, 1 - D2, 1 + 2 * D2, np.nextafter(1.0, 0.0)])
def test_jump_hidden_by_a_shared_wide_term_is_refused(no_sampling, x0):
    _no_fixed_point_shared()
    assert refused(_shared_term_map(S), 0.0, x0)


@pytest.mark.parametrize("x0", [1 - 4 * D2, 1 - D2, 1 + 2 * D2, np.nextafter(1.0, 0.0), 1.0])
def test_same_jump_without_the_shared_term_is_refused(no_sampling, x0):
    """Guard (passes today): s = 1 (narrow enclosures) and s = 0: refused from every start."""
    _no_fixed_point_shared()
    for s in (0.0, 1.0):
        for centred in (True, False):
            assert refused(_shared_term_map(s), 0.0, x0, centred), (s, x0, centred)


# === 3. the probe budget ========================================================================

def _budget_map(m):
    """Elementwise where(x - 100 > 0, A, B): elements 0..m-2 continuous (x/2 + 50 both), the
    last one jumps by D3 = 2**-8 at 100 with a gap -D3 - (x - 100)/4 closing at 100 - 4 D3."""
    return one_jumping_element(m, m - 1)


def _no_fixed_point_budget(d):
    """The last coordinate: x > 100 gives x = 100 - D (not > 100); x <= 100 gives
    (x - 100)/4 = D/2, x = 100 + 2D (not <= 100)."""
    x_a, x_b = 100 - d, 100 + 2 * d
    assert x_a / 2 + 50 - d / 2 == x_a and not x_a > 100
    assert Fraction(3, 4) * (x_b - 100) + 100 + d / 2 == x_b and not x_b <= 100


def test_jump_behind_eight_continuous_elements_is_refused(no_sampling):
    F, x0, d = _budget_map(MAX_BOUNDARY_PROBES + 1)
    _no_fixed_point_budget(d)
    assert refused(F, 0.0, x0)


def test_jump_behind_seven_continuous_elements_is_refused(no_sampling):
    """Guard (passes today): within the budget the jump is found."""
    F, x0, d = _budget_map(MAX_BOUNDARY_PROBES)
    _no_fixed_point_budget(d)
    for centred in (True, False):
        assert refused(F, 0.0, x0, centred)


# === 4. guards: continuous wheres of the same shapes are still proved ============================

def test_continuous_gap_in_another_coordinate_is_proved(no_sampling):
    """The gap C (u - 100)(v - V0) vanishes on the whole boundary u = 100 (continuous): the
    fixed point (100, VB) is proved and held (it solves both branches: u = u/2 + 50)."""
    F = cv.trace(lambda x, t: cv.where(x[0] > 100.0, *_uv(x[0], x[1], C * (x[0] - 100.0)
                                                          * (x[1] - V0))) + 0.0 * t, (2,), ())
    for x0 in ((100.0, VB), (100.0, V0 + 2.0 ** -11), (np.nextafter(100.0, 200.0), VB)):
        enc = enclose(F, 0.0, x0)
        assert enc.proven and enc.caveat, x0
        assert holds(enc, [Fraction(100), Fraction(VB)])


def test_continuous_rotated_where_is_proved(no_sampling):
    """`_rotated` with gaps C (s - 100): continuous on the boundary; z̄ = (200, VB), so
    x̄ = W2 z̄ / 2 = (100 + VB/2, 100 - VB/2) (dyadic), proved and held."""
    def f(x, t):
        z = W2 @ x
        s, w = z[0] - 100.0, z[1]
        a = cv.stack([0.5 * s + 150.0 - C * (s - 100.0), 0.5 * w + 0.5 * VB])
        b = cv.stack([0.5 * s + 150.0 + C * (s - 100.0), 0.5 * w + 0.5 * VB])
        return 0.5 * (W2 @ cv.where(s > 100.0, a, b)) + 0.0 * t
    F = cv.trace(f, (2,), ())
    xbar = [100 + Fraction(VB) / 2, 100 - Fraction(VB) / 2]
    enc = enclose(F, 0.0, [float(v) for v in xbar])
    assert enc.proven and holds(enc, xbar)


def test_relu_of_a_jumping_where_is_refused(no_sampling):
    """relu(where(x > 1/2, x/2 + 1/4 - e, x/2 + 1/4 + e)) + 0: the where jumps by 2e at 1/2
    (x > 1/2 gives 1/2 - 2e, x <= 1/2 gives 1/2 + 2e: no fixed point, and relu is the identity
    on these positive values)."""
    e = 2.0 ** -30
    assert Fraction(1, 2) - 2 * Fraction(e) > 0
    F = cv.trace(lambda x, t: cv.relu(cv.where(x > 0.5, 0.5 * x + 0.25 - e, 0.5 * x + 0.25 + e))
                 + 0.0 * t, (), ())
    for x0 in (0.5, np.nextafter(0.5, 1.0), np.nextafter(0.5, 0.0), 0.5 - 2 * e, 0.5 + 2 * e):
        for centred in (True, False):
            assert refused(F, 0.0, x0, centred), (x0, centred)
