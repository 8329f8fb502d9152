"""Issue 5 figures: certify and differentiate a 2000-feature Lasso; time per counterexample.

    python bench/bench_zoo.py [--p 2000]

Prints, for forward-backward Lasso with p features: the time to reach the fixed point, to
certify contraction at it (exact re-check), to compute the hypergradient dw/dlam by FPAD and by
reverse FPAD, against a closed-form NumPy reference solve in the same process; and the time per
momentum counterexample found by `cv.examples.find_momentum_counterexample`.
"""

import argparse
import time

import numpy as np

import conservative as cv


def clock(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(p=2000, n_samples=500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, p))
    y = X[:, :15] @ rng.normal(size=15) + 0.1 * rng.normal(size=n_samples)
    lam = 0.2 * float(np.max(np.abs(X.T @ y)))
    F = cv.algorithms.forward_backward_lasso(X, y)
    t_fp, fp = clock(lambda: cv.fixed_point(F, np.zeros(p), lam, tol=1e-13))
    w = fp.x
    S = np.abs(w) > 0
    t_cert, cert = clock(lambda: cv.certify_contraction(F, theta=lam, x=w))
    t_fpad, Js = clock(lambda: cv.fpad(F, lam, w, 300))
    g = rng.normal(size=p)
    t_vjp, hyper = clock(lambda: cv.fpad_vjp(F, lam, w, g))
    t_ref, closed = clock(lambda: -np.linalg.solve(X[:, S].T @ X[:, S], np.sign(w[S])))
    err = np.max(np.abs(Js[-1, S, 0] - closed))
    print(f"forward-backward Lasso, n_samples={n_samples}, p={p}, support {int(S.sum())}")
    print(f"  fixed point          {t_fp:8.2f} s  ({fp.steps} steps)")
    print(f"  certify_contraction  {t_cert:8.2f} s  certified={cert.certified} "
          f"rho={cert.rho:.4f} check={cert.verified} ({cert.method})")
    print(f"  FPAD, 300 steps      {t_fpad:8.2f} s  max error vs closed form {err:.1e}")
    print(f"  reverse FPAD         {t_vjp:8.2f} s  error {abs(hyper - g[S] @ closed):.1e}")
    print(f"  closed form (numpy)  {t_ref:8.4f} s")
    times = []
    for seed in range(5):
        t, ce = clock(lambda: cv.examples.find_momentum_counterexample(seed))
        times.append(t)
    print(f"  momentum counterexample search: {np.mean(times):.2f} s each on average "
          f"(5 seeds, min {min(times):.2f} s, max {max(times):.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--p", type=int, default=2000)
    main(parser.parse_args().p)
