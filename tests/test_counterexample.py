"""cv.find_counterexample on the user's own maps, re-checked independently (cv.piggyback, the
map's own Jacobian sets, exact characteristic polynomials)."""

import json
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

import conservative as cv


def exact_growth(mats, word):
    n = mats.shape[1]
    P = sp.eye(n)
    for i in word:
        P = sp.Matrix(n, n, lambda a, b: sp.Rational(Fraction(float(mats[i][a, b])))) * P
    lam = sp.symbols("lam")
    poly = sp.Poly(P.charpoly(lam).as_expr(), lam)
    while poly.degree() > 0 and poly.eval(0) == 0:           # zero eigenvalues
        poly = sp.Poly(sp.quo(poly.as_expr(), lam), lam)
    if poly.degree() == 0:
        return 0.0
    roots = poly.nroots(n=30, maxsteps=500)
    return max(abs(complex(r)) for r in roots) ** (1 / len(word))


def check(ce):
    """Every claim of a counterexample, without the code that built it."""
    F, theta = ce.map, ce.theta
    xs, Js = cv.piggyback(F, ce.x0, theta, ce.steps, selection=ce.selection)
    np.testing.assert_array_equal(Js, ce.run()[1])                     # the same run
    assert np.max(np.abs(xs - xs[-1])) < 1e-12                          # iterates converge
    own = F.jacobian(ce.x0, theta, hull=False)
    for k in (0, ce.steps // 2, ce.steps - 1):                         # selected = own elements
        M = F.jacobian(xs[k], theta, hull=False).vertices[ce.selection[k]]
        assert any(np.array_equal(M, V) for V in own.vertices)
    assert exact_growth(ce.matrices, ce.word) == pytest.approx(ce.growth, rel=1e-9)
    norms = np.linalg.norm(Js.reshape(len(Js), -1), axis=1)
    assert norms[-1] >= 1e6                                             # long enough to see
    tail = len(ce.word) * 10
    assert (norms[-1] / norms[-1 - tail]) ** (1 / tail) == pytest.approx(ce.growth, rel=2e-2)


def test_heavy_ball_reference():
    def grad(x, t):
        d = x - t[0]
        return cv.where(d > 0, 9.0 * d, 1.0 * d)
    F = cv.algorithms.heavy_ball(grad, 0.25, 0.25, 1)
    ce = cv.find_counterexample(F, [0.0], np.zeros(2))
    assert ce.word == (0, 1) and ce.growth == pytest.approx((1 + np.sqrt(2)) / 2, rel=1e-12)
    check(ce)


def _rotation_layer(u_scale=1.0):
    """A ReLU layer with an exact fixed point whose units 0 and 1 sit on the kink; switching
    both on gives a rotation scaled by 1.6."""
    n = 6
    rng = np.random.default_rng(3)
    W = np.round(rng.normal(size=(n, n)) * 0.2 * 64) / 64
    W[np.ix_([0, 1], [0, 1])] = [[0.0, 1.6], [-1.6, 0.0]]
    W[0, 2:] = W[1, 2:] = 0.0
    W[2:, 2:] *= 0.5
    x = np.zeros(n)
    x[2:] = np.round((1.0 + rng.random(n - 2)) * 64) / 64
    b = x - W @ x
    b[[0, 1]] = 0.0
    u = np.ones(n) * u_scale
    F = cv.trace(lambda z, t: cv.relu(W @ z + b + u * t), (n,), ())
    assert np.array_equal(F(x, 0.0), x)                                # exact fixed point
    return F, x


def test_a_relu_layer_of_the_users_own():
    F, x = _rotation_layer()
    ce = cv.find_counterexample(F, 0.0, x)
    assert ce.growth == pytest.approx(1.6, rel=1e-9) and ce.true_derivative is None
    check(ce)
    assert not cv.certify_contraction(F, 0.0, x).certified


def test_a_map_whose_parameters_miss_the_divergent_directions_is_explained():
    G, x = _rotation_layer(u_scale=0.0)
    with pytest.raises(cv.NoCounterexampleError, match="stays at J = 0") as info:
        cv.find_counterexample(G, 0.0, x)
    assert info.value.lower == pytest.approx(1.6, rel=1e-9)


def test_no_counterexample_is_an_error_with_the_best_bound():
    X, y = cv.datasets.lasso_small()
    F = cv.algorithms.forward_backward_lasso(X, y)
    lam_max = float(np.max(np.abs(X.T @ y)))
    with pytest.raises(cv.NoCounterexampleError) as info:
        cv.find_counterexample(F, lam_max, np.zeros(8))
    err = info.value
    assert isinstance(err, cv.ConservativeError) and "cv.find_counterexample" in str(err)
    assert 0 < err.lower < 1 and err.word is not None
    A = F.jacobian(np.zeros(8), lam_max, hull=False).A.vertices
    assert exact_growth(A, err.word) == pytest.approx(err.lower, rel=1e-9)


def test_counterexamples_read_well_and_serialise():
    ce = cv.examples.momentum_divergence()
    text = repr(ce)
    assert len(text.splitlines()) <= 8 and "1.207" in text and "Schur stable" in text
    assert "<table" in ce._repr_html_()
    d = json.loads(json.dumps(ce.to_dict()))
    assert d["word"] == list(ce.word) and d["steps"] == ce.steps


@pytest.mark.parametrize("make", [cv.examples.momentum_divergence,
                                  cv.examples.spurious_relu_gradient,
                                  lambda: cv.examples.find_momentum_counterexample(0)])
def test_runs_are_long_enough_to_be_seen(make):
    ce = make()
    _, Js = ce.run()
    assert np.linalg.norm(Js[-1]) >= 1e6


def test_bad_input():
    F, x = _rotation_layer()
    with pytest.raises(cv.ShapeError, match="cv.find_counterexample"):
        cv.find_counterexample(F, 0.0, np.zeros(3))
    with pytest.raises(cv.InputError, match="cv.find_counterexample"):
        cv.find_counterexample(F, 0.0, x, max_length=0)
