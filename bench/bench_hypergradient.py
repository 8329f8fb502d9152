"""Hypergradients and inner solves against their peers (issue 13), single BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/bench_hypergradient.py [--rounds 5]
        [--only hypergradient end-to-end solve m-p m-1]

Peers, in the same process: celer (pip install "conservative[bench]") for the inner Lasso solve,
and NumPy re-implementations of sparho's ``implicit_forward`` for Lasso (sparho is not on PyPI,
so it is re-implemented here, not imported). sparho solves the support-restricted normal system
``X_S^T X_S J_S = -sign(w_S)`` with a kernel that only touches ``X_S``; two NumPy versions:

* ``implicit_forward``: the forward fixed-point iteration on the support,
  ``J_S <- J_S - s (X_S^T X_S J_S + sign w_S)`` with ``s = 1 / ||X_S||_2^2`` (only ``X_S`` is
  touched, as in sparho), to a 1e-12 relative change;
* ``restricted solve``: the limit of that iteration by one k x k solve, the floor of any
  implementation.

Until this revision the first peer took its step from the spectral norm of the whole ``X``
(an SVD of 250 x 2000, most of its time), which sparho never computes: ratios against it
(``full-norm peer``) are printed too, for comparison with the figures of issue 13.

End to end (solve + hypergradient) is timed with a fresh Map per run (its preparation paid
every time) and with one Map along a path of penalties (a new lambda per run, as in a
hypergradient loop: only the Map's preparation is shared), each against the peer at the same
penalties; and along the same path with celer's solution handed to ``cv.fpad_vjp`` (the
documented route for a solution computed elsewhere: the project encloses the exact fixed point
near celer's coefficients and differentiates there). The fresh-Map row's peer runs right after
the project's fresh-Map route and is slowed by it (celer alone at the same penalty takes a
third of that time; the cause is not understood): read its ratio as flattering, and the
one-Map rows as the comparison.

Lasso ``min 1/2 ||Xw - y||^2 + lam ||w||_1``; the held-out loss is ``1/2 ||X_val w - y_val||^2``.
Times are medians over interleaved rounds (each round runs every contender once), with the
spread (min - max) in brackets; ratios are project / peer (lower is better).
"""

import argparse
import gc
import os
import statistics
import time
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import conservative as cv  # noqa: E402


def median_time(fn, repeats=5):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def interleaved(fns: dict, rounds: int) -> dict:
    """name -> (median seconds, min, max, last result): every round runs each contender once."""
    times = {name: [] for name in fns}
    out = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            gc.collect()        # a previous contender's garbage is not collected on this one's clock
            t0 = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(t), min(t), max(t), out[name]) for name, t in times.items()}


def fmt(entry, scale=1e3, unit="ms") -> str:
    med, lo, hi, _ = entry
    return f"{med * scale:8.2f} {unit} [{lo * scale:.2f}-{hi * scale:.2f}]"


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


def implicit_forward(X, y, w, lam, grad, tol=1e-12, max_iter=100_000, full_norm=False):
    """sparho's implicit forward: J_S <- J_S - s (X_S^T X_S J_S + sign w_S), on the support.

    ``full_norm=True``: the step from the whole X (the peer of issue 13's figures)."""
    S = np.flatnonzero(w)
    XS = X[:, S]
    s = 1.0 / np.linalg.norm(X if full_norm else XS, 2) ** 2
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


def restricted_solve(X, w, grad):
    """The limit of sparho's iteration: ``grad_S . (X_S^T X_S)^{-1} (-sign w_S)``."""
    S = np.flatnonzero(w)
    XS = X[:, S]
    return grad[S] @ np.linalg.solve(XS.T @ XS, -np.sign(w[S]))


def hypergradient_rows(probs, rounds):
    print("hypergradient at the solution (project route / NumPy sparho implicit_forward; "
          "fpad_vjp: a fresh Map per run, its preparation and the fixed-point enclosure paid "
          "every time; one Map: a new lambda per call, the enclosure paid every time)")
    for name, d in probs.items():
        F = cv.algorithms.forward_backward_lasso(d["X"], d["y"])
        w = celer_solve(d["X"], d["y"], d["lam"])
        w = cv.fixed_point(F, w, d["lam"], tol=1e-14).x      # polish to F's fixed point
        grad = d["Xv"].T @ (d["Xv"] @ w - d["yv"])
        maps = iter([cv.algorithms.forward_backward_lasso(d["X"], d["y"])
                     for _ in range(2 * rounds)])
        # one Map along a hypergradient loop: a new lambda (and solution) per call, so the
        # enclosure is proved anew each time; the Map's preparation is shared
        path = []
        for i in range(rounds):
            lam_i = d["lam"] * (1.0 + 1e-3 * (i + 1))
            w_i = cv.fixed_point(F, celer_solve(d["X"], d["y"], lam_i), lam_i, tol=1e-14).x
            path.append((lam_i, w_i, d["Xv"].T @ (d["Xv"] @ w_i - d["yv"])))
        steps = iter(path)

        def along_path():
            lam_i, w_i, g_i = next(steps)
            return float(cv.fpad_vjp(F, lam_i, w_i, g_i))

        r = interleaved({
            "fpad_vjp": lambda: float(cv.fpad_vjp(next(maps), d["lam"], w, grad)),
            "fpad_vjp, one Map": along_path,
            "implicit_jacobian": lambda: float(
                cv.implicit_jacobian(next(maps), d["lam"], w).vertices[0, :, 0] @ grad),
            "implicit_forward": lambda: implicit_forward(d["X"], d["y"], w, d["lam"], grad),
            "full-norm peer": lambda: implicit_forward(d["X"], d["y"], w, d["lam"], grad,
                                                       full_norm=True),
            "restricted solve": lambda: restricted_solve(d["X"], w, grad)}, rounds)
        ref = r["restricted solve"][3]
        refs = {"fpad_vjp": ref, "implicit_jacobian": ref,     # the last lambda of the path
                "fpad_vjp, one Map": restricted_solve(d["X"], path[-1][1], path[-1][2])}
        print(f"  {name:<10} (support {np.count_nonzero(w)} of {d['X'].shape[1]})")
        for ours in ("fpad_vjp", "fpad_vjp, one Map", "implicit_jacobian"):
            t = r[ours][0]
            print(f"    {ours:<18} {fmt(r[ours])}  x{t / r['implicit_forward'][0]:7.1f} "
                  f"implicit_forward, x{t / r['full-norm peer'][0]:6.1f} full-norm peer, "
                  f"x{t / r['restricted solve'][0]:7.0f} restricted solve   "
                  f"|rel. diff| {abs(r[ours][3] - refs[ours]) / abs(refs[ours]):.1e}")
        for peer in ("implicit_forward", "full-norm peer", "restricted solve"):
            print(f"    {peer:<18} {fmt(r[peer])}   |rel. diff| "
                  f"{abs(r[peer][3] - ref) / abs(ref):.1e}")


def end_to_end_rows(probs, rounds):
    print("end to end: solve + hypergradient (project: cv.fixed_point anderson + cv.fpad_vjp; "
          "peer: celer + implicit_forward); inner solve alone (cv.fixed_point anderson / celer)")
    for name, d in probs.items():
        F = cv.algorithms.forward_backward_lasso(d["X"], d["y"])
        p = d["X"].shape[1]

        def held_out(w):
            return d["Xv"].T @ (d["Xv"] @ w - d["yv"])

        def peer(full_norm=False):
            w = celer_solve(d["X"], d["y"], d["lam"])
            return implicit_forward(d["X"], d["y"], w, d["lam"], held_out(w), full_norm=full_norm)

        fresh = iter([cv.algorithms.forward_backward_lasso(d["X"], d["y"])
                      for _ in range(rounds)])

        def ours():                       # a fresh Map: nothing cached from an earlier run
            G = next(fresh)
            w = cv.fixed_point(G, np.zeros(p), d["lam"], tol=1e-12, accelerate="anderson").x
            return float(cv.fpad_vjp(G, d["lam"], w, held_out(w)))

        # one Map along a hypergradient loop: a new lambda per round (nothing is cached
        # between rounds but the Map's preparation), against the peer at the same lambdas
        lams = iter(d["lam"] * (1.0 + 1e-3 * np.arange(1, 2 * rounds + 1)))
        peer_lams = iter(d["lam"] * (1.0 + 1e-3 * np.arange(1, 2 * rounds + 1)))

        def ours_one_map():
            lam = next(lams)
            w = cv.fixed_point(F, np.zeros(p), lam, tol=1e-12, accelerate="anderson").x
            return float(cv.fpad_vjp(F, lam, w, held_out(w)))

        def peer_path():
            lam = next(peer_lams)
            w = celer_solve(d["X"], d["y"], lam)
            return implicit_forward(d["X"], d["y"], w, lam, held_out(w))

        # the documented route for a solution computed elsewhere: celer solves, the project
        # proves the fixed point near celer's coefficients and differentiates there
        celer_lams = iter(d["lam"] * (1.0 + 1e-3 * np.arange(1, 2 * rounds + 1)))

        def celer_then_fpad():
            lam = next(celer_lams)
            w = celer_solve(d["X"], d["y"], lam)
            return float(cv.fpad_vjp(F, lam, w, held_out(w)))

        r = interleaved({
            "project": ours, "celer + implicit_forward": peer,
            "project, one Map": ours_one_map, "peer, same lambdas": peer_path,
            "celer + fpad_vjp": celer_then_fpad,
            "celer + full-norm peer": lambda: peer(True),
            "anderson": lambda: cv.fixed_point(F, np.zeros(p), d["lam"], tol=1e-12,
                                               accelerate="anderson"),
            "celer": lambda: celer_solve(d["X"], d["y"], d["lam"])}, rounds)
        t_plain, r0 = median_time(lambda: cv.fixed_point(F, np.zeros(p), d["lam"], tol=1e-12), 1)
        t_build, _ = median_time(lambda: cv.algorithms.forward_backward_lasso(d["X"], d["y"]))
        t = r["project"][0]
        print(f"  {name:<10} end to end {fmt(r['project'])}  x{t / r['celer + implicit_forward'][0]:5.1f}"
              f" (peer {fmt(r['celer + implicit_forward'])}), x"
              f"{t / r['celer + full-norm peer'][0]:5.1f} full-norm peer")
        t1 = r["project, one Map"][0]
        print(f"  {'':<10} one Map, a new lambda per run {fmt(r['project, one Map'])}  x"
              f"{t1 / r['peer, same lambdas'][0]:5.1f} (peer {fmt(r['peer, same lambdas'])})")
        t2 = r["celer + fpad_vjp"][0]
        print(f"  {'':<10} celer + cv.fpad_vjp, one Map {fmt(r['celer + fpad_vjp'])}  x"
              f"{t2 / r['peer, same lambdas'][0]:5.1f} (a solution computed elsewhere, "
              "proved and differentiated by the project)")
        print(f"  {'':<10} fixed_point anderson {fmt(r['anderson'])}  "
              f"x{r['anderson'][0] / r['celer'][0]:5.1f} celer {fmt(r['celer'])}   "
              f"({r['anderson'][3].steps} steps; plain {t_plain * 1e3:.0f} ms, {r0.steps} steps)")
        print(f"  {'':<10} building the Map (not in the rows above) {t_build * 1e3:8.2f} ms")


def piggyback_rows(probs, rounds_m_p=3):
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

    rows = {label: [] for label in ("project", "support-aware loop", "dense loop")}
    fns = {"project": ours, "support-aware loop": support_aware, "dense loop": dense}
    out = {}
    for _ in range(rounds_m_p):                    # interleaved
        for label, fn in fns.items():
            t0 = time.perf_counter()
            out[label] = fn()
            rows[label].append(time.perf_counter() - t0)
    peaks = {}
    for label, fn in fns.items():
        tracemalloc.start()
        fn()
        peaks[label] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    t0 = statistics.median(rows["project"])
    print(f"piggyback m = p = {p}, {steps} steps from the solution (time: median "
          f"[min-max] of {rounds_m_p} interleaved rounds; peak memory by tracemalloc)")
    for label, times in rows.items():
        t = statistics.median(times)
        print(f"  {label:<20} {t:6.2f} s [{min(times):.2f}-{max(times):.2f}]  "
              f"{peaks[label]:6.0f} MB   project / this: x{t0 / t:5.2f} time, "
              f"x{peaks['project'] / peaks[label]:5.2f} memory   "
              f"|J - project| {np.max(np.abs(out[label] - out['project'])):.1e}")


def piggyback_m1_rows(probs, rounds):
    d = probs["p = 2000"]
    X, y, lam = d["X"], d["y"], d["lam"]
    p = X.shape[1]
    s = 1.0 / np.linalg.norm(X, 2) ** 2
    F1 = cv.algorithms.forward_backward_lasso(X, y)

    def dense1():
        w, J = np.zeros(p), np.zeros(p)
        for _ in range(100):
            z = w - s * (X.T @ (X @ w - y))
            mask = np.abs(z) > s * lam
            J = mask * (J - s * (X.T @ (X @ J)) - s * np.sign(z))
            w = np.sign(z) * np.maximum(np.abs(z) - s * lam, 0)
        return J

    fns = {"project": lambda: cv.piggyback(F1, np.zeros(p), lam, 100, history=False)[1],
           "dense loop": dense1}
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
        fns["JAX jit(jacfwd)"] = lambda: f(lam).block_until_ready()
    except ImportError:
        pass
    r = interleaved(fns, rounds)
    t = r["project"][0]
    line = f"piggyback m = 1, 100 steps: project {fmt(r['project'])}"
    for peer in ("dense loop", "JAX jit(jacfwd)"):
        if peer in r:
            line += f", {peer} {fmt(r[peer])} (x{t / r[peer][0]:.2f})"
    Js, J1 = r["project"][3], r["dense loop"][3]
    print(line + f"   |J - dense| {np.max(np.abs(Js[0, :, 0] - J1)):.1e}")


def solve_rows(probs, rounds):
    """The inner solve alone: cv.fixed_point anderson against celer (also in end-to-end)."""
    print("inner solve: cv.fixed_point(accelerate='anderson', tol=1e-12) / celer")
    for name, d in probs.items():
        F = cv.algorithms.forward_backward_lasso(d["X"], d["y"])
        p = d["X"].shape[1]
        r = interleaved({
            "anderson": lambda: cv.fixed_point(F, np.zeros(p), d["lam"], tol=1e-12,
                                               accelerate="anderson"),
            "celer": lambda: celer_solve(d["X"], d["y"], d["lam"])}, rounds)
        print(f"  {name:<10} anderson {fmt(r['anderson'])} ({r['anderson'][3].steps} steps)  "
              f"celer {fmt(r['celer'])}  x{r['anderson'][0] / r['celer'][0]:5.2f}")


ROWS = {"hypergradient": hypergradient_rows, "end-to-end": end_to_end_rows,
        "solve": solve_rows, "m-p": lambda probs, rounds: piggyback_rows(probs),
        "m-1": piggyback_m1_rows}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-m-p", action="store_true", help="skip the m = p piggyback rows")
    parser.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS),
                        help="run only these rows (default: all)")
    args = parser.parse_args()
    probs = problems()
    cv.certify_contraction([[[0.5]]])          # imports (cvxpy) off the clock
    for name in args.only:
        if name == "m-p" and args.skip_m_p:
            continue
        ROWS[name](probs, args.rounds)


if __name__ == "__main__":
    main()
