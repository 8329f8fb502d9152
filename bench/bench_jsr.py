"""Benchmark of cv.jsr: time and bracket width on published families.

Run:  python bench/bench_jsr.py [--time-limit SECONDS]

Families
--------
golden       {[[1,1],[0,1]], [[1,0],[1,1]]}, JSR = (1+sqrt 5)/2.
BTV(t)       Blondel-Theys-Vladimirov (2003): {A0, t A1} with A0 = [[1,1],[0,1]],
             A1 = [[1,0],[1,1]]; at the exact t* = 0.749326546330367... no finite product is
             extremal (finiteness counterexample). The double nearest to t* is a different set,
             for which a finite product can be (and here is found to be) extremal.
Gripenberg   A0 = [[3,0],[1,3]]/5, A1 = [[3,-3],[0,-1]]/5, JSR = 0.6596789089552835 (A1 A0^12).
D4           Daubechies D4 transition matrices T0, T1 (3x3), JSR 1, and their restriction to the
             invariant subspace {sum v = 0} whose JSR (1+sqrt 3)/4 gives Hoelder exponent 0.55.
random n     two random integer matrices in [-3, 3]^{n x n}, n = 2..8 (seeded).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from conservative.jsr import jsr  # noqa: E402

GOLDEN = np.array([[[1, 1], [0, 1]], [[1, 0], [1, 1]]], dtype=float)
T_STAR = 0.749326546330367557943961948091344672091327370236064317358024


def btv(t):
    return np.stack([GOLDEN[0], t * GOLDEN[1]])


def daubechies_d4():
    s3 = math.sqrt(3.0)
    c = np.array([1 + s3, 3 + s3, 3 - s3, 1 - s3]) / 4        # sum c = 2

    def coef(k):
        return c[k] if 0 <= k < 4 else 0.0

    T0 = np.array([[coef(2 * i - j) for j in range(3)] for i in range(3)])
    T1 = np.array([[coef(2 * i - j + 1) for j in range(3)] for i in range(3)])
    full = np.stack([T0, T1])
    U = np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]])      # basis of {sum v = 0}
    restricted = np.stack([np.linalg.lstsq(U, T @ U, rcond=None)[0] for T in full])
    return full, restricted


def families():
    yield "golden", GOLDEN, (1 + math.sqrt(5)) / 2
    for t in (0.5, 0.7, T_STAR, 0.9):
        yield f"BTV t={t:.6g}", btv(t), None
    yield "Gripenberg", np.array([[[3, 0], [1, 3]], [[3, -3], [0, -1]]]) / 5, 0.6596789089552835
    full, restricted = daubechies_d4()
    yield "D4 full (3x3)", full, 1.0
    yield "D4 on {sum v=0}", restricted, (1 + math.sqrt(3)) / 4
    rng = np.random.default_rng(2024)
    for n in range(2, 9):
        yield f"random n={n}", rng.integers(-3, 4, size=(2, n, n)).astype(float), None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=20.0)
    args = parser.parse_args(argv)
    jsr(GOLDEN, time_limit=5)                                   # warm up imports (cvxpy)
    head = f"{'family':<22}{'n':>3}{'m':>3}{'time s':>9}{'lower':>20}{'upper':>20}" \
           f"{'rel. width':>12}  {'|w|':>4}  upper method"
    print(head)
    print("-" * len(head))
    for name, mats, ref in families():
        t0 = time.perf_counter()
        r = jsr(mats, time_limit=args.time_limit)
        dt = time.perf_counter() - t0
        ok = "" if ref is None else ("  ok" if r.lower - 1e-9 <= ref <= r.upper + 1e-9
                                     else "  REFERENCE OUTSIDE")
        print(f"{name:<22}{mats.shape[1]:>3}{mats.shape[0]:>3}{dt:>9.2f}{r.lower:>20.15f}"
              f"{r.upper:>20.15f}{r.gap:>12.2e}  {len(r.word):>4}  {r.upper_method} "
              f"[{r.upper_verified}]{ok}")


if __name__ == "__main__":
    main()
