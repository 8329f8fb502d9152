"""Tracing, evaluation and the DSL's failure paths."""

import numpy as np
import pytest

import conservative as cv


def test_trace_records_graph_and_prints_program():
    F = cv.trace(lambda x, t: cv.relu(x - t), (3,), ())
    assert F.state_shape == (3,) and F.param_shape == ()
    names = [d["prim"].name for _, d in F.graph.nodes(data=True)]
    assert "relu" in names and "sub" in names
    text = str(F)
    assert "relu" in text and "[nonsmooth]" in text and "test_dsl.py" in text
    import networkx as nx
    with pytest.raises(nx.NetworkXError, match="^Frozen graph can't be modified$"):
        F.graph.add_node(99)
    with pytest.raises(nx.NetworkXError, match="^Frozen graph can't be modified$"):
        F.graph.add_edge(0, 1)


def test_evaluation_matches_numpy_and_batches():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(3, 3))

    def fn(x, t):
        return cv.tanh(M @ x) * t[0] + cv.exp(-x * x) - cv.sum(x) / 3.0 + x[::-1] ** 2 * t[1]

    F = cv.trace(fn, (3,), (2,))
    xs = rng.normal(size=(4, 5, 3))
    t = np.array([0.3, -0.2])
    ref = np.tanh(xs @ M.T) * t[0] + np.exp(-xs * xs) - xs.sum(-1, keepdims=True) / 3 \
        + xs[..., ::-1] ** 2 * t[1]
    np.testing.assert_allclose(F(xs, t), ref, rtol=1e-13)
    ts = rng.normal(size=(4, 5, 2))
    out = F(xs, ts)
    for i in range(4):
        for j in range(5):
            np.testing.assert_allclose(out[i, j], F(xs[i, j], ts[i, j]), rtol=1e-13)


def test_ndarray_on_the_left_defers_to_symbolic():
    X = np.arange(6.0).reshape(2, 3)
    F = cv.trace(lambda x, t: X.T @ (X @ x) + np.ones(3) * t - np.exp(x), (3,), ())
    x = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(F(x, 2.0), X.T @ (X @ x) + 2.0 - np.exp(x))


def test_shape_functions():
    def fn(x, t):
        m = cv.reshape(x, (2, 3))
        s = cv.stack([m[0], m[1] * t], axis=0)            # (2, 3)
        c = cv.concatenate([s.T, s.T], axis=1)            # (3, 4)
        return cv.reshape(c[:, :2].T, (6,)) + cv.max(m, axis=0).sum() - cv.min(x)

    F = cv.trace(fn, (6,), ())
    x = np.array([1.0, -2.0, 3.0, 0.5, 4.0, -1.0])
    m = x.reshape(2, 3)
    s = np.stack([m[0], m[1] * 2.0])
    c = np.concatenate([s.T, s.T], axis=1)
    np.testing.assert_allclose(F(x, 2.0), c[:, :2].T.reshape(6) + m.max(0).sum() - x.min())


def test_functions_on_plain_numbers_compute_values():
    assert cv.relu(-2.0) == 0.0
    np.testing.assert_allclose(cv.soft_threshold(np.array([3.0, -0.5]), 1.0), [2.0, 0.0])
    np.testing.assert_allclose(cv.clip(np.array([-3.0, 0.2, 5.0]), -1.0, 1.0), [-1, 0.2, 1])
    assert cv.max(np.array([1.0, 3.0, 2.0])) == 3.0


def test_bool_on_symbolic_value_names_expression_and_line():
    def fn(x, t):
        if x > t:  # noqa: the error under test
            return x
        return -x

    with pytest.raises(cv.SymbolicBoolError) as err:
        cv.trace(fn, (), ())
    msg = str(err.value)
    assert "(x - theta)" in msg and "test_dsl.py" in msg and "if x > t" in msg
    assert "cv.where" in msg and "cv.maximum" in msg and "cv.relu" in msg


def test_float_and_asarray_of_symbolic_value_refused():
    with pytest.raises(cv.SymbolicBoolError):
        cv.trace(lambda x, t: x * float(t), (), ())
    with pytest.raises(cv.SymbolicBoolError):
        cv.trace(lambda x, t: x * np.asarray(t), (), ())


def test_where_evaluates_and_refuses_discontinuous_branches():
    F = cv.trace(lambda x, t: cv.where(x > 1.0, 2.0 * x - 1.0, x * x), (), ())
    assert F(3.0, 0.0) == 5.0 and F(0.5, 0.0) == 0.25
    with pytest.raises(cv.DiscontinuityError) as err:
        cv.trace(lambda x, t: cv.where(x > 0.5, x + 1.0, x), (), ())
    assert "where" in str(err.value) and "test_dsl.py" in str(err.value)


def test_where_discontinuity_found_when_evaluated_on_the_boundary():
    # the boundary x == 7 lies far from where the trace-time sampler looks
    F = cv.trace(lambda x, t: cv.where(x >= 7.0, x + 1.0, x), (), ())
    assert F(8.0, 0.0) == 9.0
    with pytest.raises(cv.DiscontinuityError):
        F(7.0, 0.0)
    with pytest.raises(cv.DiscontinuityError):
        F.jacobian(7.0, 0.0)


def test_where_requires_a_condition():
    with pytest.raises(cv.TracingError):
        cv.trace(lambda x, t: cv.where(np.array(True), x, -x), (), ())


def test_equality_comparison_refused():
    with pytest.raises(cv.TracingError):
        cv.trace(lambda x, t: cv.where(x == t, x, t), (), ())


def test_wrong_output_shape_and_type():
    with pytest.raises(cv.ShapeError) as err:
        cv.trace(lambda x, t: cv.sum(x), (3,), ())
    assert "cv.trace" in str(err.value) and "(3,)" in str(err.value)
    with pytest.raises(cv.TracingError):
        cv.trace(lambda x, t: 1.0, (), ())
    with pytest.raises(cv.TracingError):
        cv.trace(lambda x, t: (x, t), (), ())


def test_bad_shapes_in_operations():
    with pytest.raises(cv.ShapeError):
        cv.trace(lambda x, t: x + np.ones(4), (3,), ())
    with pytest.raises(cv.ShapeError):
        cv.trace(lambda x, t: np.ones((2, 2)) @ x, (3,), ())
    with pytest.raises(cv.ShapeError):
        cv.trace(lambda x, t: x[5] + x, (3,), ())


def test_bad_inputs_at_the_boundary():
    F = cv.trace(lambda x, t: x * t, (2,), ())
    with pytest.raises(cv.ShapeError) as err:
        F(np.zeros(3), 1.0)
    assert "Map.__call__" in str(err.value) and "(3,)" in str(err.value)
    with pytest.raises(cv.NonFiniteError):
        F(np.array([np.nan, 0.0]), 1.0)
    with pytest.raises(cv.InputError):
        F(np.array([1 + 1j, 0.0]), 1.0)
    with pytest.raises(cv.InputError):
        F(np.array([True, False]), 1.0)
    with pytest.raises(cv.ShapeError):
        cv.trace(lambda x, t: x, (-1,), ())


def test_domain_errors_name_the_operation():
    F = cv.trace(lambda x, t: cv.log(x), (), ())
    with pytest.raises(cv.NonFiniteError) as err:
        F(-1.0, 0.0)
    assert "log" in str(err.value)
    G = cv.trace(lambda x, t: cv.sqrt(x * x), (), ())
    with pytest.raises(cv.NonFiniteError) as err:
        G.jacobian(0.0, 0.0)
    assert "Lipschitz" in str(err.value)


def test_negative_threshold_and_inverted_clip_refused():
    F = cv.trace(lambda x, t: cv.soft_threshold(x, t), (), ())
    with pytest.raises(cv.InputError) as err:
        F(1.0, -0.5)
    assert "soft_threshold" in str(err.value)
    G = cv.trace(lambda x, t: cv.clip(x, t, 0.0), (), ())
    with pytest.raises(cv.InputError):
        G(0.5, 1.0)


def test_setitem_refused():
    def fn(x, t):
        x[0] = t
        return x

    with pytest.raises(cv.TracingError):
        cv.trace(fn, (2,), ())


def test_numpy_ufunc_dispatch_and_unsupported_ufunc():
    F = cv.trace(lambda x, t: np.maximum(np.exp(x), t) + np.abs(x), (2,), ())
    x = np.array([0.0, -1.0])
    np.testing.assert_allclose(F(x, 0.5), np.maximum(np.exp(x), 0.5) + np.abs(x))
    with pytest.raises(cv.TracingError) as err:
        cv.trace(lambda x, t: np.floor(x), (), ())
    assert "np.floor" in str(err.value)


def test_fixed_point_reports_divergence_instead_of_overflowing_into_success():
    # y <- y - (|y| - x) has no fixed point for x < 0; the iterates overflow
    F = cv.trace(lambda y, x: y - (cv.abs(y) - x), (), ())
    with pytest.raises(cv.NotConvergedError) as err:
        cv.fixed_point(F, 0.05, -0.1)
    assert "diverged" in str(err.value)
