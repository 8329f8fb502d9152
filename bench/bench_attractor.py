"""Attractor computation against the targets of issue 11 (medians of a few runs).

    python bench/bench_attractor.py

Cases: the README Lasso at lam_max (8 x 1 Jacobians, a one-dimensional attractor), a
two-neuron ReLU layer at its kink (2 x 1), a 1-D hull attractor at tol 1e-9, the
Douglas-Rachford 1-D kink (finite selections: X = y = gamma = 1 at lam = 1, where J <- J/2 + b with
b in {0, -1}, so its attractor is the interval [-2, 0]; the issue quoted [-1, 1] for another
parametrisation), and
J <- J/2 + b with b in the unit cube (3 x 3 with a 3-D diagonal attractor, hull: the cube
[0, 2]^3, computed as a convex polytope since the maps share their linear part; a time limit
of 60 s, the bound reached is printed), y <- M y + s_i with one random 3 x 3 M and five
random s_i (a convex body that is not a box) and a 3-D ReLU layer (different linear parts).
Pin BLAS to one thread:
OMP_NUM_THREADS=1 python bench/bench_attractor.py
"""

import statistics
import time

import numpy as np

import conservative as cv


def timed(fn, repeats=3):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def line(name, target, seconds, att, extra=""):
    ok = "met" if seconds <= target else "NOT met"
    print(f"  {name:<44} {seconds:7.3f} s (target <= {target:g} s, {ok})  dim {att.dimension}  "
          f"bound {att.hausdorff_bound:.2e}  {extra}")


def main():
    X, y = cv.datasets.lasso_small()
    lasso = cv.algorithms.forward_backward_lasso(X, y)
    lam_max = float(np.max(np.abs(X.T @ y)))
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    relu = cv.trace(lambda z, t: cv.relu(W @ z + t), (2,), ())
    half = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    dr = cv.algorithms.douglas_rachford_lasso(np.array([[1.0]]), np.array([1.0]), gamma=1.0)
    cube = cv.trace(lambda x, t: 0.5 * x + cv.relu(t), (3,), (3,))
    cv.attractor(half, 0.0, 0.0)            # imports (cvxpy) off the clock
    print("issue 11 targets (medians of 3)")
    for hull in (True, False):
        s, att = timed(lambda: cv.attractor(lasso, lam_max, np.zeros(8), hull=hull))
        line(f"README Lasso at lam_max, defaults, hull={hull}", 2, s, att,
             f"{len(att.intervals)} intervals")
    for hull in (True, False):
        s, att = timed(lambda: cv.attractor(relu, 0.0, np.zeros(2), hull=hull), 1)
        line(f"2-neuron ReLU layer at a kink, defaults, hull={hull}", 5, s, att,
             f"{len(att)} points, tol chosen {att.tol:.2e}")
    s, att = timed(lambda: cv.attractor(half, 0.0, 0.0, hull=True, tol=1e-9))
    line("1-D hull attractor, tol 1e-9", 0.1, s, att, str(att.intervals.tolist()))
    z = cv.fixed_point(dr, np.zeros(1), 1.0).x
    s, att = timed(lambda: cv.attractor(dr, 1.0, z, hull=False, tol=1e-6))
    line("Douglas-Rachford 1-D kink, hull=False, 1e-6", 1, s, att,
         str(np.round(att.bounding_box()[0].ravel(), 6).tolist()
             + np.round(att.bounding_box()[1].ravel(), 6).tolist()))
    diam = np.sqrt(2) * 1.0
    try:
        s, att = timed(lambda: cv.attractor(relu, 0.0, np.zeros(2), hull=True,
                                            tol=1e-3 * diam))
        line("2-D ReLU layer, hull, tol 1e-3 of the diameter", 5, s, att,
             f"{att.kind}: " + (f"{len(att.cells)} cells" if att.cells is not None else
                                f"{len(att.vertices)} vertices" if att.vertices is not None
                                else f"{len(att)} points"))
    except cv.SetTooLargeError as exc:
        print(f"  2-D ReLU layer, hull, tol 1e-3 of the diameter: refused, suggested tol "
              f"{exc.suggested_tol:.2e} (target NOT met)")
    try:
        s, att = timed(lambda: cv.attractor(cube, np.zeros(3), np.zeros(3), hull=True,
                                            tol=1e-2 * 2 * np.sqrt(3), time_limit=60))
        line("3-D J/2 + b, b in the unit cube, hull, 1e-2", 30, s, att,
             f"complete {att.complete} (time_limit 60 s), {att.kind}, "
             f"{len(att.hull_vertices())} vertices")
    except cv.SetTooLargeError as exc:
        hint = "none" if exc.suggested_tol is None else f"{exc.suggested_tol:.2e}"
        print(f"  3-D cube, hull, tol 1e-2 of the diameter: refused, suggested tol {hint} "
              "(target NOT met)")
    s, att = timed(lambda: cv.attractor(cube, np.zeros(3), np.zeros(3), hull=True,
                                        time_limit=30))
    line("3-D cube, hull, tol=None, time_limit 30 s", 30, s, att,
         f"{att.kind}, complete {att.complete}")
    # not a box: y <- M y + s_i, one random M (||M||_2 = 0.7) and five random s_i
    from conservative.derivatives.attractor import ifs_attractor
    rng = np.random.default_rng(3)
    M = rng.normal(size=(3, 3))
    M *= 0.7 / np.linalg.norm(M, 2)
    A, B = np.array([M] * 5), rng.normal(size=(5, 3, 1))
    v = ifs_attractor(A, B, hull=True).hull_vertices().reshape(-1, 3)
    diam = float(np.max(np.linalg.norm(v[:, None] - v[None], axis=2)))
    refused_or_line("3-D random maps, one linear part, hull, 1e-2", 30,
                    lambda: ifs_attractor(A, B, hull=True, tol=1e-2 * diam), diam)
    W3 = np.array([[0.3, -0.2, 0.1], [0.1, 0.4, 0.0], [0.0, 0.2, 0.3]])
    relu3 = cv.trace(lambda z, t: cv.relu(W3 @ z + t), (3,), ())
    v = cv.attractor(relu3, 0.0, np.zeros(3), hull=True).hull_vertices().reshape(-1, 3)
    diam = float(np.max(np.linalg.norm(v[:, None] - v[None], axis=2)))
    refused_or_line("3-D ReLU layer, hull, 1e-2 of the diameter", 30,
                    lambda: cv.attractor(relu3, 0.0, np.zeros(3), hull=True, tol=1e-2 * diam),
                    diam)


def refused_or_line(name, target, fn, diam):
    try:
        s, att = timed(fn)
    except cv.SetTooLargeError as exc:
        hint = "none" if exc.suggested_tol is None else f"{exc.suggested_tol:.2e}"
        print(f"  {name}: refused, suggested tol {hint} (target NOT met)")
        return
    what = f"{len(att.hull_vertices())} vertices" if att.kind == "polytope" else \
        f"{len(att)} points"
    line(name, target, s, att, f"{att.kind}, {what}, diameter {diam:.3g}")


if __name__ == "__main__":
    main()
