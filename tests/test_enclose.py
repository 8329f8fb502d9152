"""Interval enclosures of values and conservative Jacobians over boxes (soundness)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import conservative as cv

RNG = np.random.default_rng(11)
M3 = RNG.normal(size=(3, 3))
IDX = np.array([2, 0])


def mixed(x, t):
    m = cv.reshape(x, (3, 1))
    a = cv.tanh((M3 @ m)[:, 0] * t[0]) + cv.exp(-x * x) / (2.0 + cv.sin(x))
    b = cv.concatenate([a[IDX], cv.stack([cv.max(x), cv.sum(x * x) / 3.0 + cv.sigmoid(x[0])])])
    return (b[:3] * t[1] + cv.clip(x, -0.5, t[1]) + cv.where(x > 0.2, x - 0.2, 0.0 * x)
            + cv.soft_threshold(x, t[0] ** 2) + cv.sqrt(x * x + 1.0) - cv.abs(x[::-1])
            + cv.minimum(x, t[0]) + cv.cos(x) * cv.log(1.0 + x * x))


F_MIXED = cv.trace(mixed, (3,), (2,))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), width=st.floats(1e-6, 0.6))
def test_values_and_every_jacobian_element_lie_in_the_enclosure(seed, width):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=3)
    t0 = np.abs(rng.normal(size=2)) + 0.3
    lo, hi = x0 - width, x0 + width
    tlo, thi = t0 - width / 4, t0 + width / 4
    val, M = F_MIXED.enclose((lo, hi), (tlo, thi), value=True)
    points = [(rng.uniform(lo, hi), rng.uniform(tlo, thi)) for _ in range(15)]
    # corners and kinks inside the box: x = 0.2 (where), x = -0.5 (clip), x = 0 (abs, relu...)
    points.append((np.clip(np.array([0.2, -0.5, 0.0]), lo, hi), t0))
    for x, t in points:
        assert np.all(val.contains(F_MIXED(x, t)))
        js = F_MIXED.jacobian(x, t, hull=False, tol=1e-12)
        for V in js.enumerate(max_vertices=4096):
            assert M.contains(V), (x, t)


def test_kink_inside_the_box_widens_to_the_piece_hull():
    F = cv.trace(lambda x, t: cv.relu(x) * t, (), ())
    M = F.enclose((-1.0, 2.0), (0.5, 1.0))
    np.testing.assert_array_equal(M.lo, [[0.0, 0.0]])
    np.testing.assert_array_equal(M.hi, [[1.0, 2.0]])
    M = F.enclose((0.5, 2.0), (0.5, 1.0))          # no kink: d/dx = t in [0.5, 1]
    np.testing.assert_array_equal(M.lo, [[0.5, 0.5]])
    np.testing.assert_array_equal(M.hi, [[1.0, 2.0]])


def test_point_box_is_tight_on_a_lasso_step():
    X, y = cv.datasets.lasso_small()
    F = cv.algorithms.forward_backward_lasso(X, y)
    w = cv.fixed_point(F, np.zeros(8), 5.0).x
    M = F.enclose(w, 5.0)
    J = F.jacobian(w, 5.0).default
    assert M.contains(J) and np.max(M.hi - M.lo) < 1e-12


def test_undecided_domain_and_bad_boxes_raise():
    F = cv.trace(lambda x, t: cv.log(x) * t, (), ())
    with pytest.raises(cv.UndecidedError):
        F.enclose((-1.0, 1.0), (0.0, 1.0))
    with pytest.raises(cv.InputError):
        F.enclose((2.0, 1.0), (0.0, 1.0))
    with pytest.raises(cv.ShapeError):
        F.enclose((np.zeros(2), np.ones(2)), (0.0, 1.0))
