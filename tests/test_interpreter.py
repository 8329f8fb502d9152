"""The one interpreter walk: seeding, error relabelling (attributes kept), freeing, and the one
reverse-mode pipeline (``jacobian.pullback``) against forward mode and the old path."""

import numpy as np
import pytest

import conservative as cv
from conservative.errors import InputError, NotConvergedError
from conservative.evaluate import evaluate
from conservative.interpreter import seed, walk
from conservative.jacobian import input_seeds, jvp, linearise, pullback, tangent_matrix, vjp


def _lasso_map(p=6, seed_=0):
    rng = np.random.default_rng(seed_)
    X = rng.normal(size=(4, p))
    y = rng.normal(size=4)
    F = cv.algorithms.forward_backward_lasso(X, y)
    return F, rng


def test_walk_relabels_errors_and_keeps_the_exception_and_its_attributes():
    F = cv.trace(lambda x, t: cv.relu(x) * t, (2,), ())
    program = F.program
    relu_node = next(s.node for s in program.steps if s.prim.name == "relu")
    raised = NotConvergedError("inner detail", steps=7, residual=0.5)

    def rule(step, ins):
        if step.node == relu_node:
            raise raised
        return step.impl(*ins)

    env = seed(program, np.zeros((1, 2)), np.ones(1))
    with pytest.raises(NotConvergedError) as info:
        walk(program, env, rule, call="my_call")
    exc = info.value
    assert exc is raised and exc.steps == 7 and exc.residual == 0.5
    text = str(exc)
    assert text.startswith("my_call: inner detail") and "relu(x)" in text
    assert "test_interpreter.py" in text                  # the user's line of the node


def test_errors_of_a_primitive_name_the_node_and_the_call():
    A = np.array([[1.0, 2.0], [2.0, 4.0]])                  # singular
    F = cv.trace(lambda x, t: cv.linalg.solve(A * t, x), (2,), ())
    with pytest.raises(InputError, match=r"(?s)Map.__call__: cv.linalg.solve.*singular.*in `"):
        F(np.ones(2), 1.0)


def test_free_drops_dead_values_but_keeps_the_output():
    F = cv.trace(lambda x, t: cv.tanh(cv.exp(x) * t) + x, (3,), ())
    program = F.program
    env = seed(program, np.ones((1, 3)), np.ones(1))
    out = walk(program, env, lambda step, ins: step.impl(*ins), call="demo", free=True)
    assert set(out) == {program.out_node}            # inputs and constants dropped too
    kept = evaluate(program, np.ones((1, 3)), np.ones(1), call="demo", keep=True)
    assert np.array_equal(out[program.out_node], kept[program.out_node])
    assert len(kept) == len(program.graph)


def test_pullback_is_reusable_and_agrees_with_forward_mode_and_the_old_path():
    F, rng = _lasso_map()
    w = rng.normal(size=6)
    lam = 0.3
    xb, tb = F.point(w, lam, call="test")
    back = pullback(F.program, xb, tb, call="test")
    D = F.jacobian(w, lam).default                          # (n, n + m)
    values = evaluate(F.program, xb, tb, call="test", keep=True)
    lin = linearise(F.program, values, tol=0.0, call="test", with_pieces=False)
    for _ in range(3):
        c = rng.normal(size=(1, 6))
        ct_x, ct_t = back(c)
        np.testing.assert_allclose(ct_x[0], c[0] @ D[:, :6], atol=1e-12)
        np.testing.assert_allclose(ct_t, c[0] @ D[:, 6:], atol=1e-12)
        old = vjp(F.program, values, lin.partials, c, call="test")
        assert np.array_equal(old[F.program.x_node], ct_x)
    np.testing.assert_allclose(back.value[0], F(w, lam))
    # forward mode through the same walk gives the transpose
    seeds = input_seeds(F.program)
    tangent = jvp(F.program, values, lin.partials, seeds)
    np.testing.assert_allclose(tangent_matrix(tangent, 6, 7)[0], D, atol=1e-12)


def test_pullback_refuses_infinite_derivatives_and_names_the_node():
    F = cv.trace(lambda x, t: cv.sqrt(x) + t, (), ())
    xb, tb = F.point(0.0, 1.0, call="test")
    with pytest.raises(cv.NonFiniteError, match=r"(?s)test: the derivative of `sqrt`.*sqrt\(x\)"):
        pullback(F.program, xb, tb, call="test")
    with pytest.raises(cv.NonFiniteError, match="Map.vjp"):
        F.vjp(0.0, 1.0, 1.0)


def test_pullback_with_possible_pieces_takes_the_selection_on_the_kink():
    from conservative import interval as iv
    from conservative.enclose import possible_pieces
    F = cv.trace(lambda x, t: cv.relu(x) + t, (), ())
    xb, tb = F.point(1e-14, 0.0, call="test")            # just right of the kink
    assert pullback(F.program, xb, tb, call="test")(np.ones((1,)))[0][0] == 1.0
    possible = possible_pieces(F.program, iv.Interval(-1e-13, 1e-13), iv.Interval(0.0))
    back = pullback(F.program, xb, tb, call="test", possible=possible)
    assert back(np.ones((1,)))[0][0] == 0.0                  # relu'(0) = 0 on the kink
