"""Adding a primitive with ``conservative.extend`` only: the example of docs/adding_a_primitive.md.

A leaky ReLU with slope 1/8 (a power of two: the interval rule is exact) is written as one block,
checked for completeness, and used in traced maps: values, the set at the kink, finite
differences away from it, enclosures, pickling, printing and the sympy export.
"""

import pickle

import numpy as np
import pytest

import conservative as cv
from conservative import extend

SLOPE = 0.125


def _active(vals, tol):
    """Pieces (slope x for x <= 0, x for x >= 0), within tol."""
    return vals[0] <= tol, vals[0] >= -tol


def _possible(ivs, tol):
    """The same pieces on a box: where each may be active."""
    return ivs[0].lo <= tol, ivs[0].hi >= -tol


leaky_relu_p = extend.defpieces(
    "example_leaky_relu",
    lambda x: np.where(x >= 0, x, SLOPE * x),
    piece_partials=((SLOPE,), (1.0,)),
    active=_active,
    default=lambda vals: vals[0] > 0,
    default_partials=lambda vals, out: (np.where(vals[0] > 0, 1.0, SLOPE),),
    interval=lambda x: extend.maximum(x, extend.multiply(SLOPE, x)),
    interval_active=_possible,
    kink_default=0,
    default_rule="at 0 the slope piece is selected (1/8), as relu's zero piece; the set at 0 "
                 "is {1/8, 1}",
    sympy=lambda x: extend.lazy_sympy.Max(x, extend.lazy_sympy.Rational(1, 8) * x),
    doc="max(x, x / 8)")


def leaky_relu(x):
    """``max(x, x / 8)``; at 0 the set of derivatives is {1/8, 1}, default 1/8."""
    return leaky_relu_p.bind(x)


def _layer():
    W = np.array([[1.0, -2.0], [0.5, 1.0]])
    return cv.trace(lambda x, t: leaky_relu(W @ x + t) + 0.25 * x, (2,), (2,)), W


def test_the_block_is_complete():
    assert extend.missing_rules(leaky_relu_p) == []
    assert leaky_relu_p.kind == "elementwise" and not leaky_relu_p.smooth


def test_values_numeric_and_traced():
    z = np.array([-2.0, -0.0, 0.0, 3.0])
    np.testing.assert_array_equal(leaky_relu(z), [-0.25, 0.0, 0.0, 3.0])
    F, W = _layer()
    rng = np.random.default_rng(0)
    xs, ts = rng.normal(size=(5, 2)), rng.normal(size=2)
    pre = xs @ W.T + ts
    np.testing.assert_allclose(F(xs, ts), np.maximum(pre, SLOPE * pre) + 0.25 * xs, rtol=1e-14)


def test_set_at_the_kink_and_the_default():
    F = cv.trace(lambda x, t: leaky_relu(x) * t, (), ())
    js = F.jacobian(0.0, 2.0, hull=False)
    assert sorted(js.A.vertices.ravel().tolist()) == [2 * SLOPE, 2.0]
    np.testing.assert_array_equal(js.default, [[2 * SLOPE, 0.0]])
    assert F.jacobian(0.0, 2.0).A.contains([[1.0]])               # the hull
    assert F.jacobian(1e-3, 2.0).is_singleton


def test_jacobian_matches_finite_differences_away_from_kinks():
    F, _ = _layer()
    rng = np.random.default_rng(1)
    h = 1e-6
    for _ in range(5):
        x, t = rng.normal(size=2), rng.normal(size=2)
        js = F.jacobian(x, t)
        assert js.is_singleton
        cols = []
        for e in np.eye(4):
            cols.append((F(x + h * e[:2], t + h * e[2:]) - F(x - h * e[:2], t - h * e[2:]))
                        / (2 * h))
        np.testing.assert_allclose(js.default, np.array(cols).T, atol=1e-7)


@pytest.mark.parametrize("z", [-1.5, 0.0, 2.0])
def test_default_partials_equal_the_default_piece(z):
    vals = [np.array([[z]])]
    pc = leaky_relu_p.pieces(vals, leaky_relu_p.impl(*vals), 0.0)
    direct = leaky_relu_p.default_partials(vals, None)[0]
    assert direct.item() == leaky_relu_p.piece_partials[int(pc.default.item())][0]


def test_enclosure_contains_sampled_jacobians_and_values():
    F, _ = _layer()
    lo, hi = np.array([-1.0, -0.5]), np.array([0.5, 1.0])
    t = np.array([0.2, -0.1])
    value, M = F.enclose((lo, hi), t, value=True)
    rng = np.random.default_rng(2)
    for x in rng.uniform(lo, hi, size=(50, 2)):
        assert np.all(value.contains(F(x, t)))
        for V in F.jacobian(x, t, tol=1e-12).vertices:
            assert M.contains(V)


def test_a_box_around_the_kink_counts_both_pieces():
    F = cv.trace(lambda x, t: leaky_relu(x - t), (), ())
    js = F.jacobian(1e-14, 0.0, box=((-1e-13, 1e-13), 0.0))
    assert js.n_selections == 2
    assert js.default[0, 0] == SLOPE                     # the choice made on the kink


def test_maps_with_it_pickle_print_and_export():
    F, _ = _layer()
    G = pickle.loads(pickle.dumps(F))                  # the primitive goes by its name
    x, t = np.array([0.3, -0.2]), np.array([0.1, 0.4])
    np.testing.assert_array_equal(G(x, t), F(x, t))
    assert "example_leaky_relu(" in str(F) and "[nonsmooth]" in str(F)
    H = cv.trace(lambda x, t: leaky_relu(x - t), (), ())
    expr, xs, ts = cv.symbolic.to_sympy(H)
    assert float(expr[()].subs({xs[()]: -2, ts[()]: 0})) == -0.25


def test_a_second_block_of_the_same_name_is_refused_and_gaps_are_reported():
    with pytest.raises(cv.InputError, match="example_leaky_relu"):
        extend.defsmooth("example_leaky_relu", np.tanh, lambda vals, out: (1 - out ** 2,),
                         interval=extend.tanh, interval_partials=lambda ivs, out, tol: (1.0,),
                         sympy=extend.lazy_sympy.tanh)
    unregistered = extend.Nonsmooth(
        name="example_unregistered", impl=np.abs, shape_rule=extend.same_shape,
        piece_partials=((-1.0,), (1.0,)), active=lambda vals, tol: (vals[0] <= tol,),
        default=lambda vals: vals[0] >= 0, interval=None, interval_active=_possible,
        kink_default=lambda: 3, default_rule="", sympy=None)
    problems = extend.missing_rules(unregistered)
    for rule in ("interval", "sympy", "registered", "default_rule", "active (one mask",
                 "kink_default"):
        assert any(p.startswith(rule) for p in problems), (rule, problems)


# --- declared offsets: the affine fixed-point test ------------------------------------------

def _hinge_block(name, offsets):
    return extend.defpieces(
        name, lambda z: np.maximum(1.0 - z, 0.0),
        piece_partials=((-1.0,), (0.0,)),                      # 1 - z, and 0
        active=lambda vals, tol: (vals[0] <= 1.0 + tol, vals[0] >= 1.0 - tol),
        default=lambda vals: vals[0] >= 1.0,
        interval=lambda z: extend.maximum(extend.subtract(1.0, z), 0.0),
        interval_active=lambda ivs, tol: (ivs[0].lo <= 1.0 + tol, ivs[0].hi >= 1.0 - tol),
        kink_default=1, default_rule="at z == 1 the zero piece", piece_offsets=offsets,
        sympy=lambda z: extend.lazy_sympy.Max(1 - z, 0))


def test_offsets_that_disagree_with_impl_are_refused():
    with pytest.raises(cv.InputError, match=r"piece_offsets\[0\] = 0.0 does not match"):
        _hinge_block("example_hinge_wrong", (0.0, 0.0))
    with pytest.raises(cv.InputError, match="2 pieces"):
        _hinge_block("example_hinge_short", (1.0,))


def test_a_primitive_with_offsets_takes_the_affine_test():
    # hinge(z) = max(1 - z, 0) has the pieces 1 - z (offset 1) and 0; x = hinge(x / 2 + 1/4)
    # has the fixed point 1/2 on the first piece
    hinge_p = _hinge_block("example_hinge", (1.0, 0.0))
    F = cv.trace(lambda x, t: hinge_p.bind(0.5 * x + t), (1,), ())
    import conservative.fixed_point_set as fps
    fps._RECENT.clear()
    enc = cv.fixed_point_enclosure(F, 0.25, [0.5 + 1e-14])
    assert enc.proven and enc.block is not None               # the affine test decided
    assert enc.lo[0] <= 0.5 <= enc.hi[0] and enc.radius < 1e-12
