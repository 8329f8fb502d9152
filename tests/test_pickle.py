"""A Map pickles with the standard pickle module: primitives by name, constants as arrays, the
frozen graph; unpickled maps give identical values, Jacobian sets and enclosures, here and in
worker processes."""

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import conservative as cv
from conservative.primitives import Nonsmooth


def _maps():
    rng = np.random.default_rng(0)
    X, y = cv.datasets.lasso_small()
    W = rng.normal(size=(3, 3))
    S = np.cov(rng.normal(size=(3, 20)))
    H = np.array([[3.0, 1.0], [1.0, 2.0]])
    return {
        "lasso (zoo)": (cv.algorithms.forward_backward_lasso(X, y), np.zeros(8), 5.0),
        "group lasso (zoo)": (cv.algorithms.group_lasso_forward_backward(
            X, y, [0, 0, 1, 1, 2, 2, 3, 3]), np.full(8, 0.1), 2.0),
        "heavy ball (zoo)": (cv.algorithms.heavy_ball(lambda x, t: H @ x - t, 0.1, 0.5, 2,
                                                      param_shape=(2,)),
                             np.array([1.0, 2.0, 0.5, 0.1]), np.array([0.3, 0.2])),
        "douglas-rachford (zoo)": (cv.algorithms.douglas_rachford_lasso(X, y, gamma=0.1),
                                   np.zeros(8), 3.0),
        "sparse inverse covariance (zoo)": (cv.algorithms.sparse_inverse_covariance(
            S, gamma=1.0), np.eye(3), 0.1),
        "relu layer with where and huber": (cv.trace(
            lambda x, t: cv.where(x[0] > t, cv.relu(W @ x), cv.relu(W @ x) + (x[0] - t) * x)
            + cv.huber(x, 0.5) * 0.1, (3,), ()), np.array([0.2, -0.1, 0.4]), 0.2),
    }


@pytest.mark.parametrize("name", list(_maps()))
def test_a_pickled_map_gives_identical_values_sets_and_enclosures(name):
    F, x, theta = _maps()[name]
    G = pickle.loads(pickle.dumps(F))
    assert type(G) is type(F) and str(G) == str(F)
    assert G.state_shape == F.state_shape and G.param_shape == F.param_shape
    for _ in range(3):
        np.testing.assert_array_equal(G(x, theta), F(x, theta))
        a, b = F.jacobian(x, theta, hull=False), G.jacobian(x, theta, hull=False)
        np.testing.assert_array_equal(a.vertices, b.vertices)
        np.testing.assert_array_equal(a.default, b.default)
        x = F(x, theta)
    box = (x - 1e-3, x + 1e-3)
    ma, mb = F.enclose(box, theta), G.enclose(box, theta)
    np.testing.assert_array_equal(ma.lo, mb.lo)
    np.testing.assert_array_equal(ma.hi, mb.hi)
    if hasattr(F, "solution"):
        np.testing.assert_array_equal(G.solution(x), F.solution(x))


def test_a_kink_set_survives_pickling():
    F = cv.trace(lambda x, t: cv.relu(x) - cv.relu(-x) + cv.soft_threshold(x, t), (2,), ())
    G = pickle.loads(pickle.dumps(F))
    a, b = F.jacobian(np.zeros(2), 0.0, hull=False), G.jacobian(np.zeros(2), 0.0, hull=False)
    assert a.n_selections == b.n_selections == 3 ** 2 * 2 ** 4
    np.testing.assert_array_equal(a.vertices, b.vertices)


def test_broadcast_constants_stay_small():
    F = cv.trace(lambda x, t: 0.5 * x + t, (100_000,), ())
    assert len(pickle.dumps(F)) < 20_000              # 0.5 is one number, not 100,000
    G = pickle.loads(pickle.dumps(F))
    np.testing.assert_array_equal(G(np.ones(100_000), 1.0), np.full(100_000, 1.5))


def test_primitives_pickle_by_name_and_unknown_names_say_what_to_do():
    from conservative.primitives import get, registered
    relu_p = get("relu")
    assert pickle.loads(pickle.dumps(relu_p)) is relu_p
    with pytest.raises(cv.InputError, match="import the module that defines it"):
        registered("no_such_primitive")
    assert isinstance(relu_p, Nonsmooth)


def _evaluate_in_worker(payload):
    F, x, theta = pickle.loads(payload)
    box = F.enclose((x - 1e-3, x + 1e-3), theta)
    return F(x, theta), F.jacobian(x, theta).default, box.lo, box.hi


@pytest.mark.parametrize("method", ["forkserver", "spawn"])   # no fork: JAX may be loaded
def test_a_map_runs_in_a_process_pool_worker(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    F, x, theta = _maps()["lasso (zoo)"]
    x = cv.iterate(F, x, theta, 5)[-1]
    with ProcessPoolExecutor(max_workers=1,
                             mp_context=multiprocessing.get_context(method)) as pool:
        # the map itself goes through the executor's pickling too
        value, jac, lo, hi = pool.submit(_evaluate_in_worker, pickle.dumps((F, x, theta))).result()
        direct = pool.submit(F, x, theta).result()
    np.testing.assert_array_equal(value, F(x, theta))
    np.testing.assert_array_equal(direct, F(x, theta))
    np.testing.assert_array_equal(jac, F.jacobian(x, theta).default)
    box = F.enclose((x - 1e-3, x + 1e-3), theta)
    np.testing.assert_array_equal(lo, box.lo)
    np.testing.assert_array_equal(hi, box.hi)


def test_imported_maps_pickle():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    W = np.array([[0.5, -0.3], [0.2, 0.4]])
    F = cv.from_jax(lambda z, t: jax.nn.relu(jnp.asarray(W) @ z + t), (2,), (2,))
    G = pickle.loads(pickle.dumps(F))
    z, t = np.array([0.3, -0.2]), np.array([0.0, 0.08])
    np.testing.assert_array_equal(G(z, t), F(z, t))
    np.testing.assert_array_equal(G.jacobian(z, t).vertices, F.jacobian(z, t).vertices)
