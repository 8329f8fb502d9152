"""One forward-backward Lasso step (value and JVP) at 2000 features: conservative vs NumPy.

Prints the time per call of the traced map and of a hand-written NumPy step in the same
process, and their ratio. Target (issue 2): ratio <= 1.5.

    python bench/bench_fb_step.py
"""

import time

import numpy as np

import conservative as cv


def best_time(fn, repeat=7, number=20):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def main(n_samples=500, p=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, p))
    y = rng.normal(size=n_samples)
    F = cv.algorithms.forward_backward_lasso(X, y)
    step = F.info["step"]
    lam = 0.1 * np.max(np.abs(X.T @ y))
    w = cv.iterate(F, np.zeros(p), lam, 20)[-1]
    dw = rng.normal(size=(p, 1))
    dlam = np.ones((1,))
    Xt = np.ascontiguousarray(X.T)

    def numpy_value():
        z = w - step * (Xt @ (X @ w - y))
        return np.sign(z) * np.maximum(np.abs(z) - step * lam, 0.0)

    def numpy_jvp():
        z = w - step * (Xt @ (X @ w - y))
        t = step * lam
        out = np.sign(z) * np.maximum(np.abs(z) - t, 0.0)
        dz = dw - step * (Xt @ (X @ dw))
        mask = (np.abs(z) > t)[:, None]
        return out, mask * (dz - (step * np.sign(z))[:, None] * dlam)

    v_ref, t_ref = numpy_jvp()
    v, t = F.jvp(w, lam, dw, dlam)
    assert np.allclose(v, v_ref) and np.allclose(t, t_ref), "results differ"

    rows = [("value", lambda: F(w, lam), numpy_value),
            ("value + JVP (1 direction)", lambda: F.jvp(w, lam, dw, dlam), numpy_jvp)]
    print(f"forward-backward Lasso step, n_samples={n_samples}, p={p} "
          "(median of 9 interleaved trials)")
    for name, ours, ref in rows:
        print(compare(name, ours, ref, lambda fn: best_time(fn, repeat=3)))


def compare(name, ours, ref, timer, trials=9, scale=1e3, unit="ms"):
    """One line: medians of interleaved trials of ``ours`` and ``ref``, and their ratio."""
    pairs = [(timer(ours), timer(ref)) for _ in range(trials)]
    t_ours = float(np.median([a for a, _ in pairs]))
    t_ref = float(np.median([b for _, b in pairs]))
    ratio = float(np.median([a / b for a, b in pairs]))
    return (f"  {name:<28} conservative {t_ours * scale:8.3f} {unit}   numpy "
            f"{t_ref * scale:8.3f} {unit}   ratio {ratio:5.2f}")


if __name__ == "__main__":
    main()                          # n < p: X^T (X w - y), two matrix-vector products
    main(n_samples=2000)            # n >= p: the zoo uses the Gram matrix, one product
