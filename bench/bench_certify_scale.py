"""Certificates at the size of real models, and over regions of parameters (issue 10 targets).

Run:  python bench/bench_certify_scale.py [--repeat 3] [--case NAME ...] [--list]

Every case runs in a fresh subprocess with BLAS on one thread (OMP/OPENBLAS/MKL_NUM_THREADS=1);
the time is that of the certificate call alone (data, fixed point and imports excluded), the
median over ``--repeat`` runs; memory is the subprocess's peak resident set (whole process,
data included). Cases:

relu-fp-N       ReLU layer x <- relu(W x + U theta + b), ||W||_2 = 0.9, theta in R^3, width N:
                certify_contraction at the computed fixed point
relu-box-N      the same over the box of radius 1e-3 around (x*, theta) in x and theta
relu-cfp-N      certify_fixed_point at the computed fixed point
relu-scaled     width 200, W = S^-1 W0 S with ||W0||_2 = 0.95, cond(S) = 100 (||W||_2 >> 1):
                at the fixed point and over the box (two calls, times summed)
relu-divergent  a layer whose kink selections switch divergently (JSR > 1): refused, word
lasso-point     forward-backward Lasso, p = 10^4, n = 2500, at the solution
lasso-cfp       certify_fixed_point there
region-serial   certify_region over the Lasso path on diabetes, lambda in
                [lambda_max/100, lambda_max/2], fixed-point mode, serial
region-dask     the same with a dask.distributed LocalCluster of 2 workers (needs the `dask`
                extra)
region-hb       notebook 08 (b): heavy-ball with theta = (alpha, beta) on curvatures 1 and 9,
                box [0.01, 0.45] x [0, 0.95], fixed-point mode, time_limit=150 s, at most
                4000 leaves: the result is the coverage reached in that budget
region-hb-700   the same, at most 700 leaves, no time limit: the time for a fixed amount of
                work (the same leaves whenever the decisions are the same)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CASES = ["relu-fp-200", "relu-fp-1000", "relu-box-200", "relu-box-1000", "relu-cfp-200",
         "relu-cfp-1000", "relu-scaled", "relu-divergent", "lasso-point", "lasso-cfp",
         "region-serial", "region-dask", "region-hb", "region-hb-700"]
TARGETS = {"relu-fp-200": 5, "relu-fp-1000": 20, "relu-box-200": 10, "relu-box-1000": 60,
           "relu-cfp-200": 10, "relu-cfp-1000": 60, "relu-scaled": 30, "relu-divergent": None,
           "lasso-point": 10, "lasso-cfp": 60, "region-serial": 120, "region-dask": None,
           "region-hb": None, "region-hb-700": None}


# ---------------------------------------------------------------------------------------------
# problems


def relu_layer(n, seed=0, *, scaled=False):
    import numpy as np
    import conservative as cv
    rng = np.random.default_rng(seed)
    W0 = rng.normal(size=(n, n))
    W0 *= (0.95 if scaled else 0.9) / np.linalg.norm(W0, 2)
    if scaled:
        s = np.exp(np.linspace(0.0, np.log(100.0), n))
        rng.shuffle(s)
        W = W0 * s[None, :] / s[:, None]               # S^-1 W0 S with S = diag(s)
    else:
        W = W0
    U = rng.normal(size=(n, 3)) / np.sqrt(3)
    b = rng.normal(size=n) * 0.5
    F = cv.trace(lambda x, t: cv.relu(W @ x + U @ t + b), (n,), (3,))
    theta = rng.normal(size=3)
    x = cv.fixed_point(F, np.zeros(n), theta, tol=1e-14, max_steps=200_000).x
    return F, theta, x


def divergent_layer():
    """A ReLU layer whose fixed point has units exactly at their kink: the default selection
    (relu'(0) = 0) contracts, switching them on diverges."""
    import numpy as np
    import conservative as cv
    n = 6
    rng = np.random.default_rng(3)
    W = rng.normal(size=(n, n)) * 0.2
    W[np.ix_([0, 1], [0, 1])] = [[0.0, 1.6], [-1.6, 0.0]]       # rho 1.6 once both are on
    W[0, 2:] = W[1, 2:] = 0.0
    x = np.zeros(n)
    x[2:] = 1.0 + rng.random(n - 2)
    b = x - W @ x                                  # units 2.. active, 0 and 1 on the kink
    b[[0, 1]] = -(W @ x)[[0, 1]]
    F = cv.trace(lambda z, t: cv.relu(W @ z + b + 0.0 * t), (n,), ())
    return F, np.array(0.0), x


def lasso_large(seed=0):
    import numpy as np
    import conservative as cv
    from sklearn.linear_model import Lasso
    rng = np.random.default_rng(seed)
    n, p = 2500, 10_000
    X = rng.normal(size=(n, p)) / np.sqrt(n)
    w_true = np.zeros(p)
    w_true[rng.choice(p, 100, replace=False)] = rng.normal(size=100)
    y = X @ w_true + 0.01 * rng.normal(size=n)
    lam = 0.05 * float(np.max(np.abs(X.T @ y)))
    F = cv.algorithms.forward_backward_lasso(X, y)
    w = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y).coef_
    for _ in range(200):                           # polish to a numerical fixed point of F
        w = F(w, lam)
    return F, np.array(lam), w


def diabetes_path():
    import numpy as np
    import conservative as cv
    from sklearn.datasets import load_diabetes
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = y - y.mean()
    F = cv.algorithms.forward_backward_lasso(X, y)
    lam_max = float(np.max(np.abs(X.T @ y)))
    return F, (np.array(lam_max / 100), np.array(lam_max / 2))


# ---------------------------------------------------------------------------------------------
# one case, in this process


def run_case(name):
    import numpy as np
    import conservative as cv
    cv.certify_contraction([[[0.5]]])                # imports (cvxpy) off the clock
    if name.startswith("relu-") and name.split("-")[-1].isdigit():
        kind, n = name.split("-")[1], int(name.split("-")[-1])
        F, theta, x = relu_layer(n)
        r = 1e-3
        call = {"fp": lambda: cv.certify_contraction(F, theta, x, time_limit=300),
                "box": lambda: cv.certify_contraction(F, (theta - r, theta + r), (x - r, x + r),
                                                      time_limit=300),
                "cfp": lambda: cv.certify_fixed_point(F, theta, x, time_limit=300)}[kind]
        return _timed(call, active=int(np.sum(x > 0)))
    if name == "relu-scaled":
        F, theta, x = relu_layer(200, scaled=True)
        r = 1e-3

        def both():
            a = cv.certify_contraction(F, theta, x, time_limit=300)
            b = cv.certify_contraction(F, (theta - r, theta + r), (x - r, x + r),
                                       time_limit=300)
            return a if not a.certified else b
        return _timed(both, norm2=float(np.linalg.norm(F.jacobian(x, theta).A.vertices[0], 2)))
    if name == "relu-divergent":
        F, theta, x = divergent_layer()
        return _timed(lambda: cv.certify_contraction(F, theta, x, time_limit=60))
    if name.startswith("lasso"):
        F, lam, w = lasso_large()
        call = (lambda: cv.certify_contraction(F, lam, w, time_limit=300)) \
            if name == "lasso-point" else (lambda: cv.certify_fixed_point(F, lam, w,
                                                                           time_limit=300))
        return _timed(call, support=int(np.sum(w != 0)))
    if name.startswith("region"):
        return _region(name)
    raise SystemExit(f"unknown case {name}")


def _region(name):
    import numpy as np
    import conservative as cv
    if name.startswith("region-hb"):
        F = cv.examples.heavy_ball_step_sizes(1.0, 9.0)
        box = (np.array([0.01, 0.0]), np.array([0.45, 0.95]))
        if name == "region-hb":
            return _timed(lambda: cv.certify_region(F, box, max_boxes=4000, time_limit=150))
        return _timed(lambda: cv.certify_region(F, box, max_boxes=700))
    F, box = diabetes_path()
    if name == "region-serial":
        return _timed(lambda: cv.certify_region(F, box, time_limit=600))
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("conservative").certify_contraction([[[0.5]]]))
        return _timed(lambda: cv.certify_region(F, box, time_limit=600,
                                                executor=client.get_executor()))


def _timed(call, **info):
    import resource
    t0 = time.perf_counter()
    res = call()
    dt = time.perf_counter() - t0
    out = {"seconds": dt, "certified": bool(getattr(res, "certified", False)),
           "verified": str(getattr(res, "verified", getattr(getattr(res, "certificate", None),
                                                             "verified", ""))),
           "rho": float(getattr(res, "rho", float("nan"))),
           "lower": float(getattr(res, "lower", float("nan"))),
           "word": list(getattr(res, "word", None) or [])[:12],
           "coverage": getattr(res, "coverage", None), "boxes": getattr(res, "boxes", None),
           "reason": str(getattr(res, "reason", ""))[:160],
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    out.update(info)
    return out


# ---------------------------------------------------------------------------------------------
# driver


def _subprocess(name, pythonpath):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=pythonpath)
    proc = subprocess.run([sys.executable, __file__, "--run", name], env=env,
                          capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]}
    return json.loads(lines[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="*", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pythonpath", default=ROOT, help="checkout to benchmark")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CASES))
        return
    if args.run:
        print(json.dumps(run_case(args.run)))
        return
    head = (f"{'case':<16}{'median s':>10}{'target s':>10}{'peak MB':>9}  {'result':<40}")
    print(head)
    print("-" * len(head))
    for name in args.case or CASES:
        runs = [_subprocess(name, args.pythonpath) for _ in range(args.repeat)]
        ok = [r for r in runs if "error" not in r]
        if not ok:
            print(f"{name:<16}{'error':>10}{'':>10}{'':>9}  {runs[0]['error']}")
            continue
        med = statistics.median(r["seconds"] for r in ok)
        peak = max(r["peak_mb"] for r in ok)
        r = ok[0]
        what = (f"certified rho={r['rho']:.4g} ({r['verified']})" if r["certified"] else
                f"refused, lower={r['lower']:.4g} word={r['word']}: {r['reason'][:60]}")
        if r.get("coverage") is not None:
            what += f", coverage {r['coverage']:.1%} ({r['boxes']} leaves)"
        target = TARGETS.get(name)
        print(f"{name:<16}{med:>10.2f}{'' if target is None else target:>10}{peak:>9.0f}  {what}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
