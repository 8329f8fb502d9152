"""Demanded rows in forward mode: the tangent pass computes only the rows that a later 0/1 mask
keeps, through linear nodes; results equal the full pass. Constants prepared once."""

import numpy as np
import pytest

import conservative as cv
from conservative.evaluate import evaluate
from conservative.jacobian import demanded, input_seeds, jvp, linearise, value_and_jvp


def _lasso(p=120, n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X[:, :5] @ rng.normal(size=5)
    s = 1.0 / np.linalg.norm(X, 2) ** 2
    lam = 0.3 * float(np.max(np.abs(X.T @ y)))
    F = cv.trace(lambda w, t: cv.soft_threshold(w - s * (X.T @ (X @ w - y)), s * t), (p,), ())
    w = cv.fixed_point(F, np.zeros(p), lam).x
    return F, w, lam, rng


def _shapes_program(seed=1):
    """A matmul followed by reshape, transpose, indexing, concatenation, a sum and a broadcast
    before the kinks: demand must travel back through each of them."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(100, 100))

    def fn(x, t):
        z = (M @ x).reshape(10, 10).T
        u = cv.concatenate([z[5:], z[:5]]) - t
        head = cv.relu(u).reshape(100)
        return cv.soft_threshold(head + 0.01 * cv.sum(u[0]), 0.5 + 0.0 * t)

    return cv.trace(fn, (100,), ()), rng


def _full_and_demanded(F, x, theta, seeds):
    xb, tb = F.point(x, theta, call="test")
    values = evaluate(F.program, xb, tb, call="test", keep=True)
    lin = linearise(F.program, values, tol=0.0, call="test", with_pieces=False)
    full = jvp(F.program, values, lin.partials, seeds, keep=True)[F.program.out_node]
    value, fast = value_and_jvp(F.program, xb, tb, seeds, call="test")
    return values, lin, full, fast


@pytest.mark.parametrize("make", [_lasso, _shapes_program])
def test_demanded_rows_give_the_full_tangent(make):
    F, *rest = make()
    rng = rest[-1]
    for _ in range(3):
        x = rng.normal(size=F.state_shape) if make is _shapes_program else rest[0]
        theta = 0.1 if make is _shapes_program else rest[1]
        seeds = input_seeds(F.program)
        values, lin, full, fast = _full_and_demanded(F, x, theta, seeds)
        np.testing.assert_allclose(fast, full, rtol=1e-12, atol=1e-14)
        D = F.jacobian(x, theta).default
        np.testing.assert_allclose(fast[0].reshape(D.shape), D, rtol=1e-12, atol=1e-14)
        dx = rng.normal(size=F.state_shape + (2,))
        value, tangent = F.jvp(x, theta, dx=dx)
        np.testing.assert_allclose(tangent.reshape(F.n, 2), D[:, :F.n] @ dx.reshape(F.n, 2),
                                   rtol=1e-10, atol=1e-12)


def test_the_soft_threshold_support_is_what_the_product_computes():
    F, w, lam, _ = _lasso()
    xb, tb = F.point(w, lam, call="test")
    values = evaluate(F.program, xb, tb, call="test", keep=True)
    lin = linearise(F.program, values, tol=0.0, call="test", with_pieces=False)
    needs = demanded(F.program, values, lin.partials)
    support = np.flatnonzero(w)
    assert 0 < len(support) < 20
    products = [s.node for s in F.program.steps if s.prim.name == "matmul"]
    inner, outer = products                          # X @ w, then X^T (...)
    assert np.array_equal(np.flatnonzero(needs[outer]), support)   # only the support rows
    assert np.ndim(needs[inner]) == 0                # all of X w: every row feeds them
    # a tiny program gains nothing: no demand pass at all
    G = cv.trace(lambda x, t: cv.relu(x - t), (3,), ())
    assert demanded(G.program, evaluate(G.program, np.ones((1, 3)), np.ones(1), call="t",
                                        keep=True), {}) is None


def test_derivative_runs_agree_with_the_closed_form_on_the_support():
    F, w, lam, _ = _lasso()
    Js = cv.fpad(F, lam, w, 400)
    S = np.flatnonzero(w)
    X = F.program.consts[next(n for n, v in F.program.consts.items() if v.shape == (30, 120))]
    closed = -np.linalg.solve(X[:, S].T @ X[:, S], np.sign(w[S]))
    np.testing.assert_allclose(Js[-1, S, 0], closed, rtol=1e-8)
    assert np.all(Js[-1, np.setdiff1d(np.arange(120), S)] == 0.0)
    # reverse mode through the prepared transpose: the same hypergradient
    g = np.random.default_rng(3).normal(size=120)
    np.testing.assert_allclose(cv.fpad_vjp(F, lam, w, g), g[S] @ closed, rtol=1e-8)


# --- the compiled small calls ---------------------------------------------------------------------

def _small_programs():
    W = np.array([[0.5, -1.0, 0.2], [0.3, 0.1, -0.4], [1.0, 0.0, 0.5]])
    yield cv.trace(lambda x, t: cv.concatenate([cv.relu(W @ x - t[0]), x[:1] * t[1]])[:3]
                   + cv.sum(x) * 0.5, (3,), (2,))
    yield cv.trace(lambda x, t: cv.soft_threshold(x - 0.25 * (x - 1.0), t) + cv.tanh(x) * t,
                   (4,), ())
    yield cv.trace(lambda x, t: cv.where(x > t, x * x, 2.0 * t * x - t * t) + cv.abs(x),
                   (2,), ())


@pytest.mark.parametrize("k", range(3))
def test_compiled_calls_equal_the_walk(k):
    from conservative.compiled import values_function
    from conservative.interpreter import seed, value_rule, walk
    from conservative.jacobian import _values_and_tangents
    F = list(_small_programs())[k]
    rng = np.random.default_rng(k)
    for _ in range(5):
        x, t = rng.normal(size=F.state_shape), np.abs(rng.normal(size=F.param_shape))
        xb, tb = F.point(x, t, call="test")
        env = walk(F.program, seed(F.program, xb, tb), value_rule, call="test")
        np.testing.assert_array_equal(values_function(F.program)(xb, tb),
                                      env[F.program.out_node])
        for seeds in ({F.program.x_node: rng.normal(size=(1,) + F.state_shape + (3,))},
                      {F.program.theta_node: rng.normal(size=(1,) + F.param_shape + (3,))},
                      input_seeds(F.program)):
            fast = value_and_jvp(F.program, xb, tb, seeds, call="test")
            slow = _values_and_tangents(F.program, xb, tb, seeds, call="test")
            np.testing.assert_array_equal(fast[0], slow[0][F.program.out_node])
            np.testing.assert_array_equal(fast[1], slow[1])


def test_compiled_calls_fall_back_to_the_walk_for_errors_and_nan():
    F = cv.trace(lambda x, t: cv.log(x) + cv.soft_threshold(x, t), (2,), ())
    with pytest.raises(cv.NonFiniteError, match=r"(?s)Map.__call__.*`log`.*log\(x\)"):
        F(np.array([-1.0, 1.0]), 0.5)
    with pytest.raises(cv.InputError, match=r"(?s)Map.__call__: cv.soft_threshold.*negative"):
        F(np.array([1.0, 1.0]), -0.5)
    with pytest.raises(cv.NonFiniteError, match="Map.jvp"):
        F.jvp(np.array([-1.0, 1.0]), 0.5, dx=np.ones((2, 1)))
    # the user's arrays are never written to, and results are fresh arrays
    x = np.array([1.0, 2.0])
    out = F(x, 0.5)
    out[:] = 0.0
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_array_equal(F(x, 0.5), np.log(x) + np.array([0.5, 1.5]))


# --- the compiled derivative step of large programs ---------------------------------------------

def _walked(F, xb, tb, seeds):
    """Value and tangent by the interpreter walks (values and partials, demand, tangents)."""
    from conservative.jacobian import _values_and_partials
    values, partials = _values_and_partials(F.program, xb, tb, call="test")
    return values[F.program.out_node], jvp(F.program, values, partials, seeds, call="test")


def _theta_heavy(seed=2):
    """theta reaches the output through its own chain (a product, a square, a broadcast) and
    through x * theta; x is used twice by one node (x * x)."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(80, 80)) / 9.0

    def fn(x, t):
        shift = cv.tanh(M[:, :3] @ (t * t))
        return cv.soft_threshold(M @ (x * x) - shift + x * t[0], 0.3 + 0.0 * t[1])

    return cv.trace(fn, (80,), (3,)), rng


def _theta_direct(seed=3):
    """theta used as it is by a node that depends on x (no node of its own before)."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(70, 70)) / 8.0
    return cv.trace(lambda x, t: cv.soft_threshold(M @ x + x * t, 0.2), (70,), (70,)), rng


@pytest.mark.parametrize("make", [_lasso, _shapes_program, _theta_heavy, _theta_direct])
def test_compiled_derivative_step_equals_the_walks(make, monkeypatch):
    from conservative import jacobian
    from conservative.compiled import demand_source
    from conservative.jacobian import jvp_run
    F, *rest = make()
    rng = rest[-1]
    p = F.program
    assert "def prologue" in demand_source(p, (True, True))
    for trial in range(3):
        x = rest[0] if make is _lasso and trial == 0 else rng.normal(size=F.state_shape)
        theta = rest[1] if make is _lasso else np.abs(rng.normal(size=F.param_shape))
        xb, tb = F.point(x, theta, call="test")
        tx = rng.normal(size=(1,) + F.state_shape + (4,))
        tt = rng.normal(size=(1,) + F.param_shape + (4,))
        all_seeds = ({p.x_node: tx, p.theta_node: tt}, {p.x_node: tx}, {p.theta_node: tt})
        refs = [_walked(F, xb, tb, seeds) for seeds in all_seeds]
        with monkeypatch.context() as m:       # the compiled step only, no walk behind it
            m.setattr(jacobian, "_values_and_partials", None)
            for seeds, (ref_value, ref_tangent) in zip(all_seeds, refs):
                value, tangent = value_and_jvp(p, xb, tb, seeds, call="test")
                np.testing.assert_array_equal(value, ref_value)
                np.testing.assert_array_equal(tangent, ref_tangent)
            run = jvp_run(p, tb, tt, call="test")
            for _ in range(2):                 # one prologue, many steps
                value, tangent = run(xb, tx)
                np.testing.assert_array_equal(value, refs[0][0])
                np.testing.assert_array_equal(tangent, refs[0][1])


def test_compiled_derivative_step_falls_back_to_the_walks_for_errors_and_nan():
    from conservative.jacobian import jvp_run
    rng = np.random.default_rng(4)
    M = rng.normal(size=(70, 70))
    F = cv.trace(lambda x, t: cv.soft_threshold(cv.log(M @ x) + x, t), (70,), ())
    xb, tb = F.point(rng.normal(size=70), 0.1, call="test")       # M @ x < 0 somewhere
    seeds = {F.program.x_node: np.ones((1, 70, 1))}
    with pytest.raises(cv.NonFiniteError, match=r"(?s)my call.*`log`"):
        value_and_jvp(F.program, xb, tb, seeds, call="my call")
    with pytest.raises(cv.NonFiniteError, match=r"(?s)my run.*`log`"):
        jvp_run(F.program, tb, None, call="my run")(xb, seeds[F.program.x_node])
    # a negative threshold: the soft-threshold's own error, relabelled with the call
    with pytest.raises(cv.InputError, match=r"(?s)my run: cv.soft_threshold.*negative"):
        jvp_run(F.program, -tb, None, call="my run")(np.abs(xb), seeds[F.program.x_node])
