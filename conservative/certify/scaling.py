"""Floating-point searches that propose cheap norms: diagonal scalings, Perron vectors,
discrete Lyapunov solutions. Nothing here is a proof; :mod:`conservative.certify.norms`
proves what these propose."""

from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["perron_weights", "optimal_diagonal_scaling", "lyapunov_form", "top_singular"]


def perron_weights(B: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Positive weights ``w`` near a Perron vector of the non-negative matrix ``B``, so that
    ``max_i (B w)_i / w_i`` (a Collatz-Wielandt bound) is close to ``rho(B)``.

    A small positive shift keeps ``w`` positive for reducible ``B``.

    Examples
    --------
    >>> w = perron_weights(np.array([[0.5, 0.25], [0.0, 0.5]]))
    >>> bool(np.all(w > 0)), float(np.max((np.array([[0.5, 0.25], [0.0, 0.5]]) @ w) / w)) < 0.52
    (True, True)
    """
    n = B.shape[0]
    w = np.ones(n)
    top = float(B.max()) if B.size else 0.0
    if top == 0:
        return w
    shift = 1e-6 * top
    for _ in range(iterations):
        v = B @ w + shift * w.sum() / n
        big = float(v.max())
        if not (big > 0 and math.isfinite(big)):
            break
        v = v / big
        if np.allclose(v, w, rtol=1e-12, atol=0):
            w = v
            break
        w = v
    return np.maximum(w, 1e-300)


def top_singular(M: np.ndarray):
    """``(sigma, u, v)``: the largest singular value of M with unit singular vectors."""
    if M.shape[0] > 150:
        from scipy.sparse.linalg import svds
        try:
            u, s, vt = svds(M, k=1, tol=1e-10)
            return float(s[0]), u[:, 0], vt[0]
        except Exception:  # noqa: BLE001 -- ARPACK trouble: the dense SVD below
            pass
    u, s, vt = np.linalg.svd(M)
    return float(s[0]), u[:, 0], vt[0]


class _OutOfTime(Exception):
    pass


def optimal_diagonal_scaling(mats: np.ndarray, start: np.ndarray | None = None, *,
                             deadline: float = math.inf, max_iter: int = 300) -> np.ndarray:
    """Positive ``d`` (nearly) minimising ``max_i ||D A_i D^{-1}||_2`` over diagonal D.

    The objective is convex in ``log d`` (Sezginer & Overton 1990) though not smooth;
    quasi-Newton steps on it (L-BFGS) with the gradient ``sigma (u_j^2 - v_j^2)`` of the top
    singular triple reach a good scaling in a few dozen iterations. The best point evaluated
    is returned (also when the deadline stops the search).

    Examples
    --------
    >>> S = np.diag([1.0, 100.0])
    >>> W = np.linalg.inv(S) @ np.array([[0.5, 0.4], [-0.4, 0.5]]) @ S   # ||W||_2 = 40
    >>> d = optimal_diagonal_scaling(W[None])
    >>> bool(np.linalg.norm(d[:, None] * W / d[None, :], 2) < 0.65)
    True
    """
    from scipy.optimize import minimize

    n = mats.shape[1]
    t0 = np.zeros(n) if start is None else np.log(np.asarray(start, dtype=float))
    best = {"value": math.inf, "t": t0}

    def value_and_grad(t):
        if time.monotonic() > deadline:
            raise _OutOfTime
        with np.errstate(all="ignore"):
            e = np.exp(t - t.mean())
        top, grad = -math.inf, np.zeros(n)
        for A in mats:
            with np.errstate(all="ignore"):
                M = e[:, None] * A / e[None, :]
            if not np.all(np.isfinite(M)):
                return 1e300, np.zeros(n)
            s, u, v = top_singular(M)
            if s > top:
                top, grad = s, s * (u * u - v * v)
        if not top > 0:
            return 0.0, np.zeros(n)
        if top < best["value"]:
            best["value"], best["t"] = top, np.array(t)
        return math.log(top), grad / top

    try:
        minimize(value_and_grad, t0, jac=True, method="L-BFGS-B",
                 bounds=[(-300.0, 300.0)] * n,       # scalings stay within float64's range
                 options={"maxiter": max_iter, "gtol": 1e-10, "ftol": 1e-12})
    except _OutOfTime:
        pass
    except Exception:  # noqa: BLE001 -- the optimiser failed: keep the best point seen
        pass
    t = best["t"]
    return np.exp(t - t.mean())


def lyapunov_form(A: np.ndarray, rate: float) -> np.ndarray | None:
    """``P`` with ``P - (A/rate)^T P (A/rate) = I``, so ``A^T P A ⪯ rate^2 (1 - 1/lambda_max(P))
    P`` (for ``rho(A) < rate``); None when the solve fails."""
    from scipy.linalg import solve_discrete_lyapunov

    import warnings
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")      # ill-conditioned solves: judged by the proof
            P = solve_discrete_lyapunov((A / rate).T, np.eye(A.shape[0]))
    except Exception:  # noqa: BLE001 -- ill-posed (rate too close to rho): no proposal
        return None
    if not np.all(np.isfinite(P)):
        return None
    return (P + P.T) / 2
