"""Pinned conservative Jacobians at every kink of every nonsmooth primitive, and the defaults.

Each set is written out by hand from the primitive's pieces (``conservative/rules/nonsmooth.py``)
and checked three ways: the enumerated vertices, membership of points that must be in, and
non-membership of points that must be out. Other frameworks' conventions (PyTorch's
``abs'(0) = 0`` and ``clamp' = 1`` at a bound, JAX's 1/2 split at ties) are checked as
*members*. The documented default selection of each primitive is pinned by value, through
``JacobianSet.default`` and through ``Map.jvp`` (what an AD run returns).
"""

from __future__ import annotations

import numpy as np
import pytest

import conservative as cv


def jac(fn, S, P, x, theta, *, hull=True, tol=0.0):
    return cv.trace(fn, S, P).jacobian(x, theta, hull=hull, tol=tol)


def as_set(matrices):
    """A set of matrices as a set of rounded tuples (for order-free comparison)."""
    return {tuple(np.round(np.ravel(M), 12)) for M in np.asarray(matrices, dtype=float)}


def assert_set(js, expected):
    got = as_set(js.vertices)
    want = as_set(np.asarray(expected, dtype=float).reshape((len(expected),) + js.shape))
    assert got == want, f"vertices {sorted(got)} != expected {sorted(want)}"


def jvp_default(fn, S, P, x, theta):
    """The [A B] an AD run returns: Map.jvp with the identity tangents."""
    F = cv.trace(fn, S, P)
    dx = np.eye(F.n, F.n + F.m).reshape(F.state_shape + (F.n + F.m,))
    dt = np.eye(F.m, F.n + F.m, k=F.n).reshape(F.param_shape + (F.n + F.m,))
    _, tangent = F.jvp(x, theta, dx, dt)
    return tangent.reshape(F.n, F.n + F.m)


# --- relu ----------------------------------------------------------------------------------------

RELU = (lambda x, t: cv.relu(x), (), ())


def test_relu_at_zero():
    fn, S, P = RELU
    assert_set(jac(fn, S, P, 0.0, 0.0, hull=False).A, [[[0.0]], [[1.0]]])
    hull = jac(fn, S, P, 0.0, 0.0, hull=True).A
    finite = jac(fn, S, P, 0.0, 0.0, hull=False).A
    for inside in (0.0, 0.25, 0.5, 1.0):
        assert hull.contains([[inside]])
    for outside in (-0.01, 1.01, 2.0):
        assert not hull.contains([[outside]])
    assert finite.contains([[0.0]]) and finite.contains([[1.0]])
    assert not finite.contains([[0.5]])
    assert hull.bounding_box()[0].item() == 0.0 and hull.bounding_box()[1].item() == 1.0


def test_relu_default_is_zero_at_zero_and_away_from_it_the_derivative():
    fn, S, P = RELU
    assert jac(fn, S, P, 0.0, 0.0).default.tolist() == [[0.0, 0.0]]
    assert jvp_default(fn, S, P, 0.0, 0.0).tolist() == [[0.0, 0.0]]
    assert jac(fn, S, P, 1e-300, 0.0).vertices.tolist() == [[[1.0, 0.0]]]
    assert jac(fn, S, P, -1e-300, 0.0).vertices.tolist() == [[[0.0, 0.0]]]


def test_relu_tol_activates_both_pieces_near_zero():
    fn, S, P = RELU
    assert jac(fn, S, P, 1e-7, 0.0).is_singleton
    assert_set(jac(fn, S, P, 1e-7, 0.0, tol=1e-6, hull=False).A, [[[0.0]], [[1.0]]])


# --- abs -----------------------------------------------------------------------------------------

def test_abs_at_zero():
    fn = lambda x, t: cv.abs(x)  # noqa: E731
    finite = jac(fn, (), (), 0.0, 0.0, hull=False).A
    hull = jac(fn, (), (), 0.0, 0.0, hull=True).A
    assert_set(finite, [[[-1.0]], [[1.0]]])
    assert hull.contains([[0.0]])            # PyTorch's abs'(0)
    assert hull.contains([[1.0]])            # JAX's abs'(0)
    assert not finite.contains([[0.0]])
    assert not hull.contains([[1.5]]) and not hull.contains([[-1.5]])
    assert jac(fn, (), (), 0.0, 0.0).default.tolist() == [[1.0, 0.0]]
    assert jvp_default(fn, (), (), 0.0, 0.0).tolist() == [[1.0, 0.0]]
    assert jac(fn, (), (), -2.0, 0.0).vertices.tolist() == [[[-1.0, 0.0]]]


# --- maximum / minimum ---------------------------------------------------------------------------

@pytest.mark.parametrize("prim", [cv.maximum, cv.minimum], ids=["maximum", "minimum"])
def test_maximum_and_minimum_at_a_tie(prim):
    fn = lambda x, t: prim(x, t)  # noqa: E731
    finite = jac(fn, (), (), 0.7, 0.7, hull=False)
    hull = jac(fn, (), (), 0.7, 0.7, hull=True)
    assert_set(finite, [[[1.0, 0.0]], [[0.0, 1.0]]])
    assert hull.contains([[0.5, 0.5]])       # JAX's split
    assert not finite.contains([[0.5, 0.5]])
    assert hull.contains([[0.2, 0.8]])
    assert not hull.contains([[0.5, 0.6]])   # off the segment
    assert not hull.contains([[1.0, 1.0]])
    # default: the first argument
    assert hull.default.tolist() == [[1.0, 0.0]]
    assert jvp_default(fn, (), (), 0.7, 0.7).tolist() == [[1.0, 0.0]]


def test_maximum_default_follows_the_argument_order():
    fn = lambda x, t: cv.maximum(t, x)  # noqa: E731
    assert jac(fn, (), (), 0.7, 0.7).default.tolist() == [[0.0, 1.0]]


def test_maximum_away_from_a_tie_picks_the_larger():
    fn = lambda x, t: cv.stack([cv.maximum(x[0], t), cv.minimum(x[1], t)])  # noqa: E731
    js = jac(fn, (2,), (), np.array([2.0, 2.0]), 1.0)
    assert js.vertices.tolist() == [[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]


# --- max / min reductions ------------------------------------------------------------------------

@pytest.mark.parametrize("red", [cv.max, cv.min], ids=["max", "min"])
def test_reduction_of_three_tied_entries_is_the_simplex(red):
    fn = lambda x, t: red(t) + 0.0 * x  # noqa: E731
    args = ((), (3,), 0.0, np.array([2.0, 2.0, 2.0]))
    finite = jac(fn, *args, hull=False).B
    hull = jac(fn, *args, hull=True).B
    assert_set(finite, np.eye(3)[:, None, :])
    third = np.full((1, 3), 1.0 / 3.0)
    assert hull.contains(third)              # JAX's equal split
    assert not finite.contains(third)
    assert hull.contains([[0.5, 0.0, 0.5]])
    assert not hull.contains([[0.5, 0.5, 0.5]])   # weights must sum to 1
    assert not hull.contains([[1.2, -0.1, -0.1]])  # and be non-negative
    assert hull.default.tolist() == [[1.0, 0.0, 0.0]]   # the first tied entry


def test_reduction_ties_only_among_the_extreme_entries():
    fn = lambda x, t: cv.max(t) + 0.0 * x  # noqa: E731
    finite = jac(fn, (), (4,), 0.0, np.array([1.0, 3.0, -2.0, 3.0]), hull=False).B
    assert_set(finite, [[[0.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, 1.0]]])
    assert finite.default.tolist() == [[0.0, 1.0, 0.0, 0.0]]


# --- soft threshold ------------------------------------------------------------------------------

SOFT = lambda x, t: cv.soft_threshold(x, t)  # noqa: E731


@pytest.mark.parametrize("z, t, pieces", [
    (0.5, 0.5, [[1.0, -1.0], [0.0, 0.0]]),
    (-0.5, 0.5, [[1.0, 1.0], [0.0, 0.0]]),
    (0.0, 0.0, [[1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]),
], ids=["z==t>0", "z==-t", "z==t==0"])
def test_soft_threshold_at_its_kinks(z, t, pieces):
    finite = jac(SOFT, (), (), z, t, hull=False)
    hull = jac(SOFT, (), (), z, t, hull=True)
    assert_set(finite, [[p] for p in pieces])
    # the zero piece is the default at |z| == t
    assert finite.default.tolist() == [[0.0, 0.0]]
    assert jvp_default(SOFT, (), (), z, t).tolist() == [[0.0, 0.0]]
    for p in pieces:
        assert finite.contains([p])
    mid = np.mean(pieces[:2], axis=0)
    assert hull.contains([mid]) and not finite.contains([mid])
    assert not hull.contains([[0.5, 0.6]])
    assert not hull.contains([[1.1, 0.0]])


def test_soft_threshold_three_piece_hull_is_a_triangle():
    hull = jac(SOFT, (), (), 0.0, 0.0, hull=True)
    assert hull.contains([[1.0, 0.0]])       # midpoint of (1, -1) and (1, 1)
    assert hull.contains([[0.5, 0.5]])
    assert not hull.contains([[0.5, 0.51]])
    assert not jac(SOFT, (), (), 0.0, 0.0, hull=False).contains([[1.0, 0.0]])


def test_soft_threshold_away_from_kinks():
    assert jac(SOFT, (), (), 2.0, 0.5).vertices.tolist() == [[[1.0, -1.0]]]
    assert jac(SOFT, (), (), -2.0, 0.5).vertices.tolist() == [[[1.0, 1.0]]]
    assert jac(SOFT, (), (), 0.2, 0.5).vertices.tolist() == [[[0.0, 0.0]]]


def test_soft_threshold_with_a_symbolic_threshold_chains_through_t():
    # t = theta**2 at theta = 1, z = 1: pieces (1, -dt/dtheta) = (1, -2) and (0, 0)
    finite = jac(lambda x, th: cv.soft_threshold(x, th * th), (), (), 1.0, 1.0, hull=False)
    assert_set(finite, [[[1.0, -2.0]], [[0.0, 0.0]]])


# --- clip ----------------------------------------------------------------------------------------

CLIP = lambda x, t: cv.clip(x, t[0], t[1])  # noqa: E731


@pytest.mark.parametrize("z, lo, hi, pieces", [
    (-1.0, -1.0, 2.0, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
    (2.0, -1.0, 2.0, [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
    (1.0, 1.0, 1.0, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
], ids=["z==lo<hi", "z==hi>lo", "z==lo==hi"])
def test_clip_at_a_bound(z, lo, hi, pieces):
    theta = np.array([lo, hi])
    finite = jac(CLIP, (), (2,), z, theta, hull=False)
    hull = jac(CLIP, (), (2,), z, theta, hull=True)
    assert_set(finite, [[p] for p in pieces])
    assert finite.contains([[1.0, 0.0, 0.0]])        # PyTorch's clamp derivative 1
    # default: the identity piece
    assert finite.default.tolist() == [[1.0, 0.0, 0.0]]
    assert jvp_default(CLIP, (), (2,), z, theta).tolist() == [[1.0, 0.0, 0.0]]
    mid = np.mean(pieces[:2], axis=0)
    assert hull.contains([mid]) and not finite.contains([mid])   # JAX's 1/2 split at z == lo
    assert not hull.contains([[0.5, 0.5, 0.5]])


def test_clip_with_constant_bounds_and_inside_outside():
    fn = lambda x, t: cv.clip(x * t, -1.0, 1.0)  # noqa: E731
    finite = jac(fn, (), (), 1.0, 1.0, hull=False)
    assert_set(finite, [[[1.0, 1.0]], [[0.0, 0.0]]])
    assert jac(CLIP, (), (2,), 0.0, np.array([-1.0, 2.0])).vertices.tolist() == \
        [[[1.0, 0.0, 0.0]]]
    assert jac(CLIP, (), (2,), -3.0, np.array([-1.0, 2.0])).vertices.tolist() == \
        [[[0.0, 1.0, 0.0]]]
    assert jac(CLIP, (), (2,), 3.0, np.array([-1.0, 2.0])).vertices.tolist() == \
        [[[0.0, 0.0, 1.0]]]


# --- where ---------------------------------------------------------------------------------------

# branches agree at x == 0 (value 0) with different Jacobians in (x, t): (2, 0) and (-t, -x)
@pytest.mark.parametrize("cond, picked", [
    (lambda x: x > 0, "b"), (lambda x: x >= 0, "a"),
    (lambda x: x < 0, "b"), (lambda x: x <= 0, "a"),
    (lambda x: ~(x > 0), "a"), (lambda x: ~(x >= 0), "b"),
], ids=["x>0", "x>=0", "x<0", "x<=0", "~(x>0)", "~(x>=0)"])
def test_where_at_the_boundary_has_both_branches_and_picks_as_the_condition(cond, picked):
    def fn(x, t):
        return cv.where(cond(x), 2.0 * x, -t * x)

    a, b = [2.0, 0.0], [-3.0, 0.0]
    finite = jac(fn, (), (), 0.0, 3.0, hull=False)
    assert_set(finite, [[a], [b]])
    hull = jac(fn, (), (), 0.0, 3.0, hull=True)
    assert hull.contains([[0.0, 0.0]]) and not finite.contains([[0.0, 0.0]])
    # the default is the branch that the condition (NumPy semantics at x == 0) picks
    assert picked == ("a" if bool(np.asarray(cond(np.float64(0.0)))) else "b")
    want = a if picked == "a" else b
    assert finite.default.tolist() == [want]
    assert jvp_default(fn, (), (), 0.0, 3.0).tolist() == [want]


def test_where_away_from_the_boundary_is_the_picked_branch():
    fn = lambda x, t: cv.where(x > 0, 2.0 * x, -t * x)  # noqa: E731
    assert jac(fn, (), (), 0.5, 3.0).vertices.tolist() == [[[2.0, 0.0]]]
    assert jac(fn, (), (), -0.5, 3.0).vertices.tolist() == [[[-3.0, 0.5]]]


MIXED = [
    lambda x: (x > 0) & (x + 1.0 >= 0),
    lambda x: (x + 1.0 >= 0) & (x > 0),
    lambda x: (x > 0) | (x - 1.0 >= 0),
    lambda x: ~((x > 0) & (x + 1.0 >= 0)),
]


@pytest.mark.parametrize("cond", MIXED, ids=["> & >=", ">= & >", "> | >=", "~(> & >=)"])
def test_where_refuses_mixed_strictness(cond):
    # a single comparison of min/max(g1, g2) cannot reproduce a mixed default on the boundary,
    # so mixing is refused rather than silently picking the wrong branch
    with pytest.raises(cv.TracingError) as err:
        cv.trace(lambda x, t: cv.where(cond(x), 2.0 * x + t, -x + t), (), ())
    assert "strict" in str(err.value)


SAME = [
    (lambda x: (x > 0) & (x + 1.0 > 0), False),
    (lambda x: (x >= 0) & (x + 1.0 >= 0), True),
    (lambda x: (x > 0) | (x - 1.0 > 0), False),
    (lambda x: ~((x > 0) & (x + 1.0 > 0)), True),
]


@pytest.mark.parametrize("cond,truth", SAME, ids=["> & >", ">= & >=", "> | >", "~(> & >)"])
def test_where_with_combined_conditions_picks_the_branch_the_condition_picks(cond, truth):
    fn = lambda x, t: cv.where(cond(x), 2.0 * x + t, -x + t)  # noqa: E731
    assert truth == bool(np.asarray(cond(np.float64(0.0))))
    want = [[2.0, 1.0]] if truth else [[-1.0, 1.0]]
    js = jac(fn, (), (), 0.0, 1.0, hull=False)
    assert as_set(js.vertices) >= as_set([[[2.0, 1.0]], [[-1.0, 1.0]]])
    assert js.default.tolist() == want
    assert jvp_default(fn, (), (), 0.0, 1.0).tolist() == want


# --- the program-level example of docs/reference_values.md ---------------------------------------

def test_relu_x_minus_relu_minus_x_at_zero_is_zero_one_two():
    F = cv.trace(lambda x, t: cv.relu(x) - cv.relu(-x), (), ())
    assert F(0.3, 0.0) == pytest.approx(0.3) and F(-0.3, 0.0) == pytest.approx(-0.3)
    finite = F.jacobian(0.0, 0.0, hull=False).A
    hull = F.jacobian(0.0, 0.0, hull=True).A
    assert_set(finite, [[[0.0]], [[1.0]], [[2.0]]])
    for v in (0.0, 0.5, 1.0, 1.5, 2.0):
        assert hull.contains([[v]])
    for v in (-0.1, 2.1):
        assert not hull.contains([[v]])
    assert not finite.contains([[0.5]])
    lo, hi = hull.bounding_box()
    assert (lo.item(), hi.item()) == (0.0, 2.0)
    assert hull.default.tolist() == [[0.0]]      # relu'(0) = 0 at both nodes
    assert F.jacobian(0.0, 0.0).n_selections == 4


# --- a ReLU layer with 40 coordinates at a kink: factored, never enumerated ----------------------

def test_relu_layer_with_2_to_the_40_selections_is_handled_without_enumeration():
    k = 40
    rng = np.random.default_rng(0)
    W = rng.standard_normal((k, k))
    c = rng.standard_normal(k)
    F = cv.trace(lambda x, t: cv.relu(W @ x + t * c), (k,), ())
    hull = F.jacobian(np.zeros(k), 0.0, hull=True)
    finite = F.jacobian(np.zeros(k), 0.0, hull=False)
    WB = np.hstack([W, c[:, None]])              # every element is diag(d) @ [W c]
    assert hull.n_selections == 2 ** 40 and finite.n_selections == 2 ** 40
    with pytest.raises(cv.SetTooLargeError):
        hull.vertices
    with pytest.raises(cv.SetTooLargeError):
        finite.vertices

    lo, hi = hull.bounding_box()
    np.testing.assert_allclose(lo, np.minimum(WB, 0.0))
    np.testing.assert_allclose(hi, np.maximum(WB, 0.0))

    d = np.linspace(0.0, 1.0, k)
    assert hull.contains(d[:, None] * WB)
    assert not finite.contains(d[:, None] * WB)
    mask = (np.arange(k) % 3 == 0).astype(float)
    assert finite.contains(mask[:, None] * WB)
    assert hull.contains(mask[:, None] * WB)
    assert finite.contains(finite.default)
    np.testing.assert_array_equal(finite.default, np.zeros((k, k + 1)))
    bad = mask[:, None] * WB
    bad[3, 5] += 0.1                           # not a row scaling any more
    assert not hull.contains(bad)
    assert not finite.contains(bad)

    def row_scalings(samples):
        ratios = samples / WB[None]               # diag(d) [W c] / [W c]: constant per row
        dd = ratios[:, :, 0]
        np.testing.assert_allclose(ratios, np.repeat(dd[:, :, None], k + 1, axis=2),
                                   atol=1e-12)
        return dd

    dh = row_scalings(hull.sample(20, rng=1))
    assert np.all((dh >= -1e-12) & (dh <= 1 + 1e-12))
    assert np.any((dh > 0.01) & (dh < 0.99))     # genuinely interior weights
    df = row_scalings(finite.sample(20, rng=2))
    assert np.all(np.isin(np.round(df, 12), [0.0, 1.0]))
    assert 0 < df.mean() < 1


# --- regressions and known bugs ------------------------------------------------------------------

# regression: the trace-time continuity sampler once evaluated bisection points without the
# batch axis and crashed on these (fixed in 328fd12)
@pytest.mark.parametrize("fn, value", [
    (lambda x, t: cv.where(x > 0, x + 10 * x * x, x) + cv.sum(x), 14.0),
    (lambda x, t: cv.where(x[0] > 0, x + 10 * x[0] * x[0], x), 11.0),
], ids=["sum", "index"])
def test_trace_of_a_continuous_where_next_to_a_reduction(fn, value):
    F = cv.trace(fn, (3,), ())
    np.testing.assert_allclose(F(np.ones(3), 0.0), np.full(3, value))
    assert F.jacobian(np.ones(3), 0.0).is_singleton


def test_default_and_samples_are_fresh_writable_arrays_for_nested_kinks():
    F = cv.trace(lambda x, t: cv.relu(cv.relu(x) - t), (), ())
    js = F.jacobian(0.0, 0.0, hull=False)
    assert js.n_selections == 4           # nested: the lazy generator
    D = js.default
    S = js.sample(3, rng=0)
    D[0, 0] = 5.0
    S[0, 0, 0] = 5.0
    assert js.default[0, 0] != 5.0


def test_a_compound_condition_away_from_its_boundary_adds_no_kink():
    F = cv.trace(lambda x, t: cv.where((x > 0) & (t > 0), x * t, 0.0 * x), (), ())
    js = F.jacobian(0.5, 0.5)
    assert js.vertices.shape == (1, 1, 2)
    assert js.is_singleton
