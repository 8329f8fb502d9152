"""Hypergradients and inner solves against their peers (issue 13), single BLAS thread.

    OMP_NUM_THREADS=1 python bench/bench_hypergradient.py

Peers: celer (pip install "conservative[bench]") for the inner Lasso solve, and hand-written
NumPy versions of sparho's ``implicit_forward`` (the forward derivative iteration restricted to
the support; sparho itself is not on PyPI here) and of a support-aware piggyback loop. Lasso
``min 1/2 ||Xw - y||^2 + lam ||w||_1``; the held-out loss is ``1/2 ||X_val w - y_val||^2``.
Figures are medians; the ratio is project / peer (lower is better).
"""

import os
import statistics
import time
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import conservative as cv  # noqa: E402


def median_time(fn, repeats=5):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def problems():
    from sklearn.datasets import load_diabetes
    Xd, yd = load_diabetes(return_X_y=True)
    Xd = Xd / np.linalg.norm(Xd, axis=0)
    rng = np.random.default_rng(0)
    n, p = 500, 2000
    X = rng.standard_normal((n, p)) / np.sqrt(n)
    w0 = np.zeros(p)
    w0[rng.choice(p, 16, replace=False)] = rng.standard_normal(16)
    y = X @ w0 + 0.01 * rng.standard_normal(n)
    out = {}
    for name, (A, b), frac in (("diabetes", (Xd, yd), 0.05), ("p = 2000", (X, y), 0.1)):
        half = len(b) // 2
        out[name] = dict(X=A[:half], y=b[:half], Xv=A[half:], yv=b[half:],
                         lam=frac * float(np.max(np.abs(A[:half].T @ b[:half]))))
    return out


def celer_solve(X, y, lam):
    import celer
    n = X.shape[0]
    return celer.Lasso(alpha=lam / n, fit_intercept=False, tol=1e-12, max_iter=10_000,
                       verbose=0).fit(X, y).coef_


def implicit_forward(X, y, w, lam, grad, tol=1e-12, max_iter=100_000):
    """sparho's implicit forward: J_S <- J_S - s (X_S^T X_S J_S + sign w_S), on the support."""
    S = np.flatnonzero(w)
    XS = X[:, S]
    s = 1.0 / np.linalg.norm(X, 2) ** 2
    G = XS.T @ XS
    sign = np.sign(w[S])
    J = np.zeros(len(S))
    for _ in range(max_iter):
        new = J - s * (G @ J + sign)
        if np.max(np.abs(new - J), initial=0.0) <= tol * (1 + np.max(np.abs(new), initial=0.0)):
            J = new
            break
        J = new
    return grad[S] @ J


def hypergradient_rows(probs):
    print("hypergradient at the solution (project route / NumPy implicit_forward)")
    for name, d in probs.items():
        F = cv.algorithms.forward_backward_lasso(d["X"], d["y"])
        w = celer_solve(d["X"], d["y"], d["lam"])
        w = cv.fixed_point(F, w, d["lam"], tol=1e-14).x      # polish to F's fixed point
        grad = d["Xv"].T @ (d["Xv"] @ w - d["yv"])
        t_peer, ref = median_time(lambda: implicit_forward(d["X"], d["y"], w, d["lam"], grad))
        # a fresh Map per run: the enclosure of the fixed point (cached per program) is paid
        maps = iter([cv.algorithms.forward_backward_lasso(d["X"], d["y"]) for _ in range(6)])
        t_fp, h1 = median_time(lambda: cv.fpad_vjp(next(maps), d["lam"], w, grad), 3)
        t_im, J = median_time(lambda: cv.implicit_jacobian(next(maps), d["lam"], w), 3)
        h2 = J.vertices[0, :, 0] @ grad
        print(f"  {name:<10} fpad_vjp {t_fp * 1e3:8.1f} ms ({t_fp / t_peer:6.0f}x)   "
              f"implicit_jacobian {t_im * 1e3:8.1f} ms ({t_im / t_peer:6.0f}x)   peer "
              f"{t_peer * 1e3:6.2f} ms   |diff| {abs(float(h1) - ref):.1e} {abs(h2 - ref):.1e}")


def end_to_end_rows(probs):
    print("end to end: solve + hypergradient (project / celer + implicit forward); "
          "inner solve alone (cv.fixed_point anderson / celer)")
    for name, d in probs.items():
        F = cv.algorithms.forward_backward_lasso(d["X"], d["y"])
        p = d["X"].shape[1]

        def peer():
            w = celer_solve(d["X"], d["y"], d["lam"])
            return implicit_forward(d["X"], d["y"], w, d["lam"],
                                    d["Xv"].T @ (d["Xv"] @ w - d["yv"]))

        fresh = iter([cv.algorithms.forward_backward_lasso(d["X"], d["y"]) for _ in range(4)])

        def ours():                       # a fresh Map: nothing cached from an earlier run
            F = next(fresh)
            try:
                w = cv.fixed_point(F, np.zeros(p), d["lam"], tol=1e-12, accelerate="anderson").x
            except TypeError:
                w = cv.fixed_point(F, np.zeros(p), d["lam"], tol=1e-12).x
            return cv.fpad_vjp(F, d["lam"], w, d["Xv"].T @ (d["Xv"] @ w - d["yv"]))

        t_peer, _ = median_time(peer, 3)
        t_ours, _ = median_time(ours, 3)
        t_celer, _ = median_time(lambda: celer_solve(d["X"], d["y"], d["lam"]), 3)
        try:
            t_aa, r = median_time(lambda: cv.fixed_point(F, np.zeros(p), d["lam"], tol=1e-12,
                                                         accelerate="anderson"), 3)
        except TypeError:                          # a version without accelerate=
            t_aa, r = median_time(lambda: cv.fixed_point(F, np.zeros(p), d["lam"], tol=1e-12), 1)
        t_plain, r0 = median_time(lambda: cv.fixed_point(F, np.zeros(p), d["lam"], tol=1e-12), 1)
        print(f"  {name:<10} end to end {t_ours * 1e3:8.1f} ms ({t_ours / t_peer:5.1f}x)   "
              f"fixed_point anderson {t_aa * 1e3:7.1f} ms ({t_aa / t_celer:5.1f}x, "
              f"{r.steps} steps; plain {t_plain * 1e3:.0f} ms, {r0.steps} steps)   celer "
              f"{t_celer * 1e3:6.1f} ms")


def piggyback_rows(probs):
    d = probs["p = 2000"]
    X, y, lam = d["X"], d["y"], d["lam"]
    n, p = X.shape
    s = 1.0 / np.linalg.norm(X, 2) ** 2
    steps = 30
    lam_vec = np.full(p, lam)
    F = cv.trace(lambda w, t: cv.soft_threshold(w - s * (X.T @ (X @ w - y)), s * t), (p,), (p,))
    w_start = celer_solve(X, y, lam)

    def dense():
        w, J = w_start.copy(), np.zeros((p, p))
        for _ in range(steps):
            z = w - s * (X.T @ (X @ w - y))
            mask = np.abs(z) > s * lam_vec
            J = mask[:, None] * (J - s * (X.T @ (X @ J)) - s * np.diag(np.sign(z)))
            w = np.sign(z) * np.maximum(np.abs(z) - s * lam_vec, 0)
        return J

    def support_aware():
        w, J = w_start.copy(), np.zeros((p, p))
        for _ in range(steps):
            z = w - s * (X.T @ (X @ w - y))
            S = np.flatnonzero(np.abs(z) > s * lam_vec)
            JS = J[S] - s * (X[:, S].T @ (X @ J))
            JS[np.arange(len(S)), S] -= s * np.sign(z[S])
            J = np.zeros((p, p))
            J[S] = JS
            w = np.sign(z) * np.maximum(np.abs(z) - s * lam_vec, 0)
        return J

    def ours():
        return cv.piggyback(F, w_start, lam_vec, steps, history=False)[1][0]

    rows = {}
    for label, fn in (("project", ours), ("support-aware loop", support_aware),
                      ("dense loop", dense)):
        t, J = median_time(fn, 1)
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        rows[label] = (t, peak, J)
    t0, m0, J0 = rows["project"]
    print(f"piggyback m = p = {p}, {steps} steps from the solution (time, peak memory)")
    for label, (t, m, J) in rows.items():
        print(f"  {label:<20} {t:7.2f} s  {m:8.0f} MB  ratio {t0 / t:5.2f}x time, "
              f"{m0 / m:5.2f}x memory  |J - project| {np.max(np.abs(J - J0)):.1e}")
    F1 = cv.algorithms.forward_backward_lasso(X, y)
    t_ours, (_, Js) = median_time(lambda: cv.piggyback(F1, np.zeros(p), lam, 100,
                                                       history=False), 3)

    def dense1():
        w, J = np.zeros(p), np.zeros(p)
        for _ in range(100):
            z = w - s * (X.T @ (X @ w - y))
            mask = np.abs(z) > s * lam
            J = mask * (J - s * (X.T @ (X @ J)) - s * np.sign(z))
            w = np.sign(z) * np.maximum(np.abs(z) - s * lam, 0)
        return J

    t_np, J1 = median_time(dense1, 3)
    line = (f"piggyback m = 1, 100 steps: project {t_ours * 1e3:.1f} ms, dense NumPy loop "
            f"{t_np * 1e3:.1f} ms ({t_ours / t_np:.2f}x)")
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jnp = jax.numpy
        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        def unrolled(lam_):
            w = jnp.zeros(p)
            for _ in range(100):
                z = w - s * (Xj.T @ (Xj @ w - yj))
                w = jnp.sign(z) * jnp.maximum(jnp.abs(z) - s * lam_, 0.0)
            return w
        f = jax.jit(jax.jacfwd(unrolled))
        f(lam).block_until_ready()
        t_jax, _ = median_time(lambda: f(lam).block_until_ready(), 3)
        line += f", JAX jit(jacfwd) {t_jax * 1e3:.1f} ms ({t_ours / t_jax:.2f}x)"
    except ImportError:
        line += ", JAX not installed"
    print(line + f"   |J - dense| {np.max(np.abs(Js[0, :, 0] - J1)):.1e}")


def main():
    probs = problems()
    cv.certify_contraction([[[0.5]]])          # imports (cvxpy) off the clock
    hypergradient_rows(probs)
    end_to_end_rows(probs)
    piggyback_rows(probs)


if __name__ == "__main__":
    main()
