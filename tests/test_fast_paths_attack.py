"""Adversarial checks of the floating-point fast paths of matmul (sparse-vector column gathers,
the gather cache, the transpose as a view in reverse mode) and of the shared compiled code
(`compiled._code`), against plain NumPy with the same formula and against JAX.

Tolerance: rtol 1e-12 / atol 1e-12 * scale: the sparse path sums the same non-zero products in
another order than dense BLAS, so only rounding (a few ulps of sum |a_ij b_j|) may differ."""
import copy
import pickle

import numpy as np
import pytest

import conservative as cv

TOL = dict(rtol=1e-12, atol=1e-12)


def _lasso(seed, n=30, p=256):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((n, p)), rng.standard_normal(n)
    F = cv.algorithms.forward_backward_lasso(X, y)
    step = F.info["step"]

    def ref(w, lam):
        z = w - step * (X.T @ (X @ w - y))
        return np.sign(z) * np.maximum(np.abs(z) - step * lam, 0.0)
    return F, X, y, step, ref


def _sparse(rng, p, k):
    w = np.zeros(p)
    w[rng.choice(p, k, replace=False)] = rng.standard_normal(k)
    return w


def test_gather_cache_follows_the_support_between_calls():
    F, X, y, step, ref = _lasso(1)
    rng = np.random.default_rng(2)
    p = X.shape[1]
    supports = [5, 5, 5, 40, 31, 8, 0, 256, 3, 3]        # same count other indices, growth
    w_prev = None
    for k in supports:
        w = _sparse(rng, p, k)
        np.testing.assert_allclose(F(w, 0.3), ref(w, 0.3), **TOL)
        if w_prev is not None and k:
            w2 = w.copy()
            w2[w2 != 0] *= -2.5                              # same indices, new values
            np.testing.assert_allclose(F(w2, 0.3), ref(w2, 0.3), **TOL)
        w_prev = w


@pytest.mark.parametrize("layout", ["C", "F", "neg", "strided"])
def test_layouts_of_the_constant_and_of_the_state(layout):
    rng = np.random.default_rng(3)
    X0 = rng.standard_normal((20, 128))
    X = {"C": X0, "F": np.asfortranarray(X0), "neg": X0[::-1, ::-1].copy()[::-1, ::-1],
         "strided": np.repeat(X0, 2, axis=1)[:, ::2]}[layout]
    F = cv.trace(lambda w, t: w - t * (X.T @ (X @ w)), (128,), ())
    w_big = np.zeros(256)
    w_big[::2][rng.choice(128, 6, replace=False)] = 1.5
    w = w_big[::2] if layout == "strided" else _sparse(rng, 128, 6)[::-1].copy()[::-1]
    np.testing.assert_allclose(F(w, 0.1), w - 0.1 * (X0.T @ (X0 @ w)), **TOL)


def test_batched_states_and_batch_of_one():
    F, X, y, step, ref = _lasso(4)
    rng = np.random.default_rng(5)
    W = np.stack([_sparse(rng, 256, k) for k in (0, 3, 30, 256)])
    out = F(W, 0.2)
    for i in range(len(W)):
        np.testing.assert_allclose(out[i], ref(W[i], 0.2), **TOL)
    np.testing.assert_allclose(F(W[1:2], 0.2)[0], ref(W[1], 0.2), **TOL)
    lams = np.array([0.0, 0.1, 1.0, 5.0])
    out = F(W[1], lams)
    for i, lam in enumerate(lams):
        np.testing.assert_allclose(out[i], ref(W[1], lam), **TOL)


def test_negative_zero_and_subnormal_support():
    X = np.random.default_rng(6).standard_normal((8, 128))
    F = cv.trace(lambda w, t: w + t * cv.concatenate([X @ w, cv.sum(w) * np.zeros(120)]),
                 (128,), ())
    w = -np.zeros(128)
    np.testing.assert_array_equal(F(w, 1.0), w + np.concatenate([X @ w, np.zeros(120)]))
    w[7] = 5e-324                                           # a subnormal is on the support
    expect = w + np.concatenate([X @ w, np.zeros(120)])
    np.testing.assert_array_equal(F(w, 1.0), expect)
    assert np.all(F(w, 1.0)[:8] == w[:8] + X[:, 7] * 5e-324)


def test_large_matrix_without_transpose_copy(monkeypatch):
    from conservative.rules import structural
    monkeypatch.setattr(structural, "_TRANSPOSE_COPY_BYTES", 1)  # take() returns None
    F, X, y, step, ref = _lasso(7)
    rng = np.random.default_rng(8)
    for k in (2, 20, 31, 2):
        w = _sparse(rng, 256, k)
        np.testing.assert_allclose(F(w, 0.4), ref(w, 0.4), **TOL)


def test_jvp_and_vjp_through_the_fast_paths_against_numpy():
    F, X, y, step, ref = _lasso(9)
    rng = np.random.default_rng(10)
    for k in (3, 20, 31, 100):
        w = _sparse(rng, 256, k)
        lam = 0.05
        z = w - step * (X.T @ (X @ w - y))
        mask = (np.abs(z) > step * lam).astype(float)
        A = mask[:, None] * (np.eye(256) - step * X.T @ X)
        Bt = -step * np.sign(z) * mask
        for T in (1, 5, 40):                                 # vector and matrix tangents
            dx = rng.standard_normal((256, T))
            dx[rng.random(256) < 0.8] = 0.0
            v, t = F.jvp(w, lam, dx=dx)
            np.testing.assert_allclose(v, ref(w, lam), **TOL)
            np.testing.assert_allclose(t, A @ dx, **TOL)
        c = rng.standard_normal(256)
        c[rng.random(256) < 0.9] = 0.0
        v, cx, ct = F.vjp(w, lam, c)
        np.testing.assert_allclose(cx, A.T @ c, **TOL)
        np.testing.assert_allclose(ct, Bt @ c, **TOL)


def test_vjp_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    F, X, y, step, ref = _lasso(11)
    rng = np.random.default_rng(12)
    w = _sparse(rng, 256, 12)
    lam = 0.05

    def f(w, lam):
        z = w - step * (X.T @ (X @ w - y))
        return jnp.sign(z) * jnp.maximum(jnp.abs(z) - step * lam, 0.0)
    z = w - step * (X.T @ (X @ w - y))
    assert np.min(np.abs(np.abs(z) - step * lam)) > 1e-8     # away from kinks
    val, back = jax.vjp(f, jnp.asarray(w), jnp.asarray(lam))
    c = rng.standard_normal(256)
    gw, gl = back(jnp.asarray(c))
    v, cx, ct = F.vjp(w, lam, c)
    np.testing.assert_allclose(v, np.asarray(val), **TOL)
    np.testing.assert_allclose(cx, np.asarray(gw), **TOL)
    np.testing.assert_allclose(ct, np.asarray(gl), **TOL)


def test_shared_code_for_maps_of_the_same_shape_interleaved():
    maps = [_lasso(s) for s in (20, 21, 22)]
    steps = [0.001, None, 0.002]
    rng = np.random.default_rng(23)
    built = []
    for (F, X, y, step, ref), s in zip(maps, steps):
        G = cv.algorithms.forward_backward_lasso(X, y, step=s) if s else F
        st = G.info["step"]
        built.append((G, lambda w, lam, X=X, y=y, st=st: np.sign(
            w - st * (X.T @ (X @ w - y))) * np.maximum(
            np.abs(w - st * (X.T @ (X @ w - y))) - st * lam, 0.0)))
    built.append((pickle.loads(pickle.dumps(built[0][0])), built[0][1]))
    built.append((copy.deepcopy(built[1][0]), built[1][1]))
    for rep in range(2):
        for G, r in (built if rep == 0 else built[::-1]):
            w = _sparse(rng, 256, 10)
            np.testing.assert_allclose(G(w, 0.1), r(w, 0.1), **TOL)
            xs = cv.iterate(G, w, 0.5, 15)                   # the run's compiled step
            for k in range(15):
                np.testing.assert_allclose(xs[k + 1], r(xs[k], 0.5), **TOL)
            v, t = G.jvp(w, 0.1, dtheta=np.ones(1))
            np.testing.assert_allclose(v, r(w, 0.1), **TOL)
