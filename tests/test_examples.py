"""Counterexamples, re-verified independently of the code that built them."""

import numpy as np
import pytest

import conservative as cv


def _check_momentum(ce):
    F, theta = ce.map, ce.theta
    xs = cv.iterate(F, ce.x0, theta, ce.steps)
    assert np.max(np.abs(xs[-1] - F(xs[-1], theta))) < 1e-10          # iterates converge
    js = F.jacobian(xs[-1], theta, hull=False)
    A = js.A.vertices
    used = sorted(set(ce.selection))
    for i in used:                                                     # Schur stable each
        assert np.max(np.abs(np.linalg.eigvals(A[i]))) < 1
    prod = np.eye(A.shape[1])
    for i in ce.word:
        prod = A[i] @ prod
    lower = np.max(np.abs(np.linalg.eigvals(prod))) ** (1 / len(ce.word))
    assert lower > 1 and abs(lower - ce.growth) < 1e-9                 # recomputed bound
    sel = (tuple(ce.word) * 200)[:200]
    _, Js = cv.piggyback(F, ce.x0, theta, 200, selection=sel)
    norms = np.linalg.norm(Js.reshape(201, -1), axis=1)
    measured = (norms[200] / norms[100]) ** (1 / 100)
    assert measured == pytest.approx(ce.growth, rel=1e-3)              # diverges at .growth
    # implicit differentiation is exact: every selection's fixed point is the true derivative
    imp = cv.implicit_jacobian(F, theta, xs[-1], hull=False).vertices
    np.testing.assert_allclose(imp, np.broadcast_to(ce.true_derivative, imp.shape), atol=1e-9)


def test_selection_is_usable_directly_in_piggyback():
    ce = cv.examples.momentum_divergence()
    xs, Js = cv.piggyback(ce.map, ce.x0, ce.theta, ce.steps, selection=ce.selection)
    np.testing.assert_array_equal(Js, ce.run()[1])
    assert np.linalg.norm(Js[-1]) > 1e4


def test_momentum_divergence_reference_values():
    ce = cv.examples.momentum_divergence()
    assert ce.growth == pytest.approx((1 + np.sqrt(2)) / 2, rel=1e-12)
    A = ce.map.jacobian(ce.x0, ce.theta, hull=False).A.vertices
    np.testing.assert_allclose(np.max(np.abs(np.linalg.eigvals(A)), axis=1), [0.5, 0.5])
    _check_momentum(ce)
    assert "Schur stable" in repr(ce) and "1.207" in repr(ce)
    with pytest.raises(cv.NotContractingError):
        cv.attractor(ce.map, ce.theta, ce.x0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generator_finds_new_verified_counterexamples(seed):
    ce = cv.examples.find_momentum_counterexample(seed)
    _check_momentum(ce)
    bracket = cv.jsr(ce.map.jacobian(ce.x0, ce.theta, hull=False).A.vertices)
    assert bracket.lower > 1 and bracket.lower <= bracket.upper


def test_generator_is_seeded_and_varied():
    a = cv.examples.find_momentum_counterexample(3)
    b = cv.examples.find_momentum_counterexample(3)
    c = cv.examples.find_momentum_counterexample(4)
    assert a.description == b.description and a.description != c.description
    with pytest.raises(cv.InputError):
        cv.examples.find_momentum_counterexample("x")


def test_spurious_default_diverges_in_jax_too():
    ce = cv.examples.spurious_relu_gradient(alpha=0.5, steps=30)
    js = ce.map.jacobian(ce.x0, ce.theta, hull=False)
    assert sorted(js.A.vertices.ravel()) == [-0.5, 0.5, 1.5]          # {1-3a, 1-a, 1+a}
    assert js.A.contains([[0.5]])                                      # the true one is there
    _, Js = cv.piggyback(ce.map, ce.x0, ce.theta, 30)
    np.testing.assert_allclose(Js[:, 0, 0], 1 - 1.5 ** np.arange(31))  # J_k = 1 - 1.5^k
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def unrolled(theta):
        x = jnp.asarray(1.0)
        for _ in range(30):
            d = x - theta
            x = x - 0.5 * (2.0 * (jax.nn.relu(d) - jax.nn.relu(-d)) - d)
        return x

    assert float(unrolled(1.0)) == 1.0                                 # iterates at solution
    np.testing.assert_allclose(float(jax.jacfwd(unrolled)(1.0)), Js[-1, 0, 0], rtol=1e-12)
