"""Attractor computation: time and number of points against the tolerance.

    python bench/bench_attractor.py

Three kinks: a 1-D kink with A in {0, 1/2} (finite selections: a countable set; hull: an
interval), the Lasso of the demo at lam_max (8 x 1 Jacobians, finite selections), and a 2-D
ReLU fixed-point layer at a kink (2 x 1 Jacobians).
"""

import time

import numpy as np

import conservative as cv


def row(name, F, theta, x, hull, tols):
    for tol in tols:
        t0 = time.perf_counter()
        try:
            att = cv.attractor(F, theta, x, hull=hull, tol=tol)
        except cv.SetTooLargeError:
            print(f"  {name:<34} hull={str(hull):<5} tol={tol:7.0e}  too many points "
                  "(SetTooLargeError)")
            continue
        dt = time.perf_counter() - t0
        print(f"  {name:<34} hull={str(hull):<5} tol={tol:7.0e}  points {len(att):>8}  "
              f"bound {att.hausdorff_bound:.1e}  {dt:7.2f} s")


def main():
    F1 = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    X, y = cv.datasets.lasso_small()
    lasso = cv.algorithms.forward_backward_lasso(X, y)
    lam_max = float(np.max(np.abs(X.T @ y)))
    W = np.array([[0.3, -0.2], [0.1, 0.4]])
    relu_layer = cv.trace(lambda z, t: cv.relu(W @ z + t), (2,), ())
    print("attractor time and size against tol")
    row("1-D kink, A in {0, 1/2}", F1, 0.0, 0.0, False, (1e-3, 1e-6, 1e-9))
    row("1-D kink, A in {0, 1/2}", F1, 0.0, 0.0, True, (1e-3, 1e-4, 1e-5, 1e-6))
    row("Lasso at lam_max (8 x 1)", lasso, lam_max, np.zeros(8), False, (1e-3, 1e-6))
    row("ReLU layer at a kink (2 x 1)", relu_layer, 0.0, np.zeros(2), False, (1e-2, 1e-3))
    row("ReLU layer at a kink (2 x 1)", relu_layer, 0.0, np.zeros(2), True, (0.5, 0.3, 0.1))


if __name__ == "__main__":
    main()
