"""Jacobian enclosure of a 100-dimensional forward-backward map: vectorised vs scalar mpmath.iv.

`F.enclose(box)` (NumPy, outward rounding) against a hand-written scalar `mpmath.iv` enclosure of
the same quantities (values z = w - s (G w - c) over the box, possibly-active pieces of the
soft-threshold, then A = D (I - s G), B = d_t s), in the same process. Prints both times, the
ratio (target >= 50x) and checks that each result contains the other's midpoint.

    python bench/bench_enclose.py
"""

import time

import mpmath
import numpy as np

import conservative as cv


def scalar_reference(G, c, s, w_lo, w_hi, lam_lo, lam_hi):
    iv = mpmath.iv
    p = len(c)
    w = [iv.mpf([w_lo[i], w_hi[i]]) for i in range(p)]
    t = iv.mpf(s) * iv.mpf([lam_lo, lam_hi])
    A = [[None] * p for _ in range(p)]
    B = [None] * p
    for i in range(p):
        g = iv.mpf(0)
        for j in range(p):
            g += iv.mpf(G[i, j]) * w[j]
        z = w[i] - iv.mpf(s) * (g - iv.mpf(c[i]))
        # pieces z - t (1, -1), 0 (0, 0), z + t (1, 1): which may be active on the box
        up = (z - t).b >= 0
        mid = (abs(z) - t).a <= 0
        down = (z + t).a <= 0
        dz = [v for v, on in ((1, up), (0, mid), (1, down)) if on]
        dt = [v for v, on in ((-1, up), (0, mid), (1, down)) if on]
        dz_iv, dt_iv = iv.mpf([min(dz), max(dz)]), iv.mpf([min(dt), max(dt)])
        for j in range(p):
            A[i][j] = dz_iv * (iv.mpf(float(i == j)) - iv.mpf(s) * iv.mpf(G[i, j]))
        B[i] = dt_iv * iv.mpf(s)
    return A, B


def main(p=100, n_samples=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, p))
    y = X[:, :10] @ rng.normal(size=10) + 0.1 * rng.normal(size=n_samples)
    F = cv.algorithms.forward_backward_lasso(X, y)
    s = F.info["step"]
    G, c = X.T @ X, X.T @ y
    lam = 0.1 * float(np.max(np.abs(c)))
    w = cv.fixed_point(F, np.zeros(p), lam).x
    r = 1e-6
    box, tbox = (w - r, w + r), (lam - 1e-6, lam + 1e-6)

    t0 = time.perf_counter()
    for _ in range(5):
        M = F.enclose(box, tbox)
    t_vec = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    with mpmath.workprec(53):
        A, B = scalar_reference(G, c, s, w - r, w + r, lam - 1e-6, lam + 1e-6)
    t_mp = time.perf_counter() - t0

    mid_ref = np.array([[float(A[i][j].mid) for j in range(p)] + [float(B[i].mid)]
                        for i in range(p)])
    assert M.contains(mid_ref, atol=1e-12), "the enclosures disagree"
    width = float(np.max(M.hi - M.lo))
    print(f"enclosure of [A B] for forward-backward Lasso, p = {p} (box radius {r:g})")
    print(f"  vectorised cv.enclose {t_vec * 1e3:9.2f} ms   scalar mpmath.iv {t_mp * 1e3:9.1f} ms"
          f"   speed-up {t_mp / t_vec:7.1f}x   max width {width:.2e}")


if __name__ == "__main__":
    main()
