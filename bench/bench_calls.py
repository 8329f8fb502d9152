"""Small calls: `F(x, theta)`, `F.jvp` and `F.vjp` of a heavy-ball map at n = 2 against the same
step written in NumPy, in one process (median of interleaved trials). Target (issue 13):
`F(x, theta)` and `F.jvp` within 3x of the NumPy step.

    python bench/bench_calls.py

Run it with one BLAS thread (OPENBLAS_NUM_THREADS=1) for stable figures.
"""

import numpy as np

import conservative as cv
from bench_fb_step import best_time, compare   # the same timing as the step benchmarks

H = np.array([[3.0, 1.0], [1.0, 2.0]])
ALPHA, BETA = 0.1, 0.5


def per_call(fn):
    return best_time(fn, repeat=3, number=2000)


def numpy_step(s, th):
    x, xp = s[:2], s[2:]
    return np.concatenate([x - ALPHA * (H @ x - th) + BETA * (x - xp), x])


def numpy_jvp(s, th, ds, dth):
    x, xp, dx, dxp = s[:2], s[2:], ds[:2], ds[2:]
    xn = x - ALPHA * (H @ x - th) + BETA * (x - xp)
    dxn = dx - ALPHA * (H @ dx - dth) + BETA * (dx - dxp)
    return np.concatenate([xn, x]), np.concatenate([dxn, dx])


def numpy_vjp(s, th, c):
    cn, cx = c[:2], c[2:]
    ct_x = (1.0 + BETA) * cn - ALPHA * (H.T @ cn) + cx
    return numpy_step(s, th), np.concatenate([ct_x, -BETA * cn]), ALPHA * cn


def main(trials=9):
    F = cv.algorithms.heavy_ball(lambda x, th: H @ x - th, ALPHA, BETA, 2, param_shape=(2,))
    s, th = np.array([1.0, 2.0, 0.5, 0.1]), np.array([0.3, 0.2])
    ds, dth = np.random.default_rng(0).normal(size=(4, 2)), np.eye(2)
    c = np.array([1.0, -1.0, 0.5, 2.0])
    assert np.allclose(F(s, th), numpy_step(s, th))
    for a, b in zip(F.jvp(s, th, ds, dth), numpy_jvp(s, th, ds, dth)):
        assert np.allclose(a, b)
    for a, b in zip(F.vjp(s, th, c), numpy_vjp(s, th, c)):
        assert np.allclose(a, b)
    rows = [("F(x, theta)", lambda: F(s, th), lambda: numpy_step(s, th)),
            ("F.jvp (2 directions)", lambda: F.jvp(s, th, ds, dth),
             lambda: numpy_jvp(s, th, ds, dth)),
            ("F.vjp", lambda: F.vjp(s, th, c), lambda: numpy_vjp(s, th, c))]
    print(f"heavy-ball map, n = 2 ({len(F.program.steps)} operations), median of {trials} "
          "interleaved trials")
    for name, ours, ref in rows:
        print(compare(name, ours, ref, per_call, trials, scale=1e6, unit="us"))


if __name__ == "__main__":
    main()
