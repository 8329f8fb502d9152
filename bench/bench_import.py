"""Importing JAX programs: import time of a 1000-equation jaxpr, and the imported map's speed.

1. ``cv.from_jax`` on a deep unrolled network whose jaxpr has 1000 equations (target: < 1 s),
   split into ``jax.make_jaxpr`` itself and the translation.
2. Evaluation of imported maps against the same maps written with the DSL (target: ratio
   <= 1.2): a DEQ layer ``relu(W z + U theta + b)`` at n = 200, and a forward-backward Lasso
   step with jaxopt's ``prox_lasso`` form ``sign(z) * relu(|z| - t)`` at p = 2000. Value, one
   JVP and the conservative Jacobian set.

BLAS is pinned to one thread (set before NumPy is imported) and each figure is the median of
interleaved trials, so that the ratio compares like with like on a shared machine.

    python bench/bench_import.py
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import conservative as cv  # noqa: E402


def best_time(fn, repeat=3, number=10):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def interleaved(ours, ref, trials=9, number=10):
    pairs = [(best_time(ours, number=number), best_time(ref, number=number))
             for _ in range(trials)]
    return float(np.median([a for a, _ in pairs])), float(np.median([b for _, b in pairs]))


def count_equations(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        subs = [v for v in eqn.params.values() if hasattr(v, "eqns") or hasattr(v, "jaxpr")]
        total += 1 if not subs else sum(count_equations(getattr(s, "jaxpr", s)) for s in subs)
    return total


def deep_network(depth, n=8, seed=0):
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(size=(n, n)) / np.sqrt(n) for _ in range(depth)]

    def fn(x, t):
        z = x
        for W in Ws:
            z = jnp.tanh(W @ z + t) + 0.5 * jnp.maximum(z, 0.0)
        return z

    return fn


def import_time(target_equations=1000):
    depth = 1
    with jax.enable_x64(True):
        spec = (jax.ShapeDtypeStruct((8,), np.float64), jax.ShapeDtypeStruct((), np.float64))
        while count_equations(jax.make_jaxpr(deep_network(depth))(*spec).jaxpr) < \
                target_equations:
            depth += 10 if depth < 100 else 1
    totals, traces = [], []
    for trial in range(5):
        # a new function each time: JAX caches the trace of a function it has seen
        fn = deep_network(depth, seed=trial)
        t0 = time.perf_counter()
        with jax.enable_x64(True):
            closed = jax.make_jaxpr(fn)(jax.ShapeDtypeStruct((8,), np.float64),
                                        jax.ShapeDtypeStruct((), np.float64))
        t1 = time.perf_counter()
        F = cv.from_jax(deep_network(depth, seed=trial), (8,), ())
        t2 = time.perf_counter()
        traces.append(t1 - t0)
        totals.append(t2 - t1)
    n_eqns = count_equations(closed.jaxpr)
    print(f"import of a {n_eqns}-equation jaxpr ({len(F.program.steps)} nodes), median of 5, "
          "each a function JAX has not seen:")
    print(f"  cv.from_jax total       {np.median(totals) * 1e3:8.1f} ms   (target < 1000 ms)")
    print(f"  of which make_jaxpr     {np.median(traces) * 1e3:8.1f} ms   (measured alone)")
    return float(np.median(totals))


def compare(name, F_imported, F_native, x, t, dx, dt):
    rows = [("value", lambda F: (lambda: F(x, t)), 10),
            ("value + JVP", lambda F: (lambda: F.jvp(x, t, dx, dt)), 10),
            ("Jacobian set", lambda F: (lambda: F.jacobian(x, t)), 1)]
    np.testing.assert_allclose(F_imported(x, t), F_native(x, t), rtol=1e-12, atol=1e-12)
    print(f"{name}: imported / native DSL (median of 9 interleaved trials)")
    ratios = []
    for label, make, number in rows:
        a, b = interleaved(make(F_imported), make(F_native), number=number)
        ratios.append(a / b)
        print(f"  {label:<14} imported {a * 1e6:9.1f} us   native {b * 1e6:9.1f} us   "
              f"ratio {a / b:5.2f}   (target <= 1.2)")
    return ratios


def main():
    import_s = import_time()
    rng = np.random.default_rng(1)

    n, m = 200, 20
    W = rng.normal(size=(n, n)) * 0.5 / np.sqrt(n)
    U = rng.normal(size=(n, m)) / np.sqrt(m)
    b = rng.normal(size=n) * 0.1
    deq_jax = cv.from_jax(lambda z, t: jax.nn.relu(W @ z + U @ t + b), (n,), (m,))
    deq_dsl = cv.trace(lambda z, t: cv.relu(W @ z + U @ t + b), (n,), (m,))
    z, t = rng.normal(size=n), rng.normal(size=m)
    ratios = compare(f"DEQ layer relu(W z + U theta + b), n={n}, m={m}", deq_jax, deq_dsl, z, t,
                     rng.normal(size=(n, 1)), rng.normal(size=(m, 1)))

    n_samples, p = 500, 2000
    X = rng.normal(size=(n_samples, p))
    y = rng.normal(size=n_samples)
    step = 1.0 / np.linalg.norm(X, 2) ** 2
    Xt, Xty = np.ascontiguousarray(X.T) * step, X.T @ y * step
    G = np.ascontiguousarray(X.T @ X) * step

    def fb_jax(w, lam):
        z = w - (G @ w - Xty)
        return jnp.sign(z) * jax.nn.relu(jnp.abs(z) - step * lam)   # jaxopt's prox_lasso

    fb_imp = cv.from_jax(fb_jax, (p,), ())
    fb_dsl = cv.trace(lambda w, lam: cv.soft_threshold(w - (G @ w - Xty), step * lam), (p,), ())
    lam = 0.1 * np.max(np.abs(X.T @ y))
    w = cv.iterate(fb_dsl, np.zeros(p), lam, 20)[-1]
    ratios += compare(f"forward-backward Lasso step (prox_lasso form), p={p}", fb_imp, fb_dsl, w,
                      lam, rng.normal(size=(p, 1)), np.ones((1,)))
    print(f"summary: import {import_s * 1e3:.0f} ms, worst evaluation ratio {max(ratios):.2f}")


if __name__ == "__main__":
    main()
