"""One way to build and solve the semidefinite programs that propose quadratic norms.

Every SDP here is a feasibility problem in a rate ``g``: linear matrix inequalities in the norm
``P`` (and, for structured sets, a diagonal multiplier), with ``g^2`` a cvxpy ``Parameter``. The
problem is compiled once (cvxpy's DPP rules make re-solving with a new ``g`` cheap) and
bisected on ``g``; successive solves are warm-started where the solver supports it. One solver
policy serves all of them: CLARABEL (interior point, accurate), SCS only as a capped fallback.

Solutions only *propose*: the norms are proved by :mod:`conservative.certify.norms`, and every
bisection step is judged by the float value ``evaluate(solution)``, never by the solver's word.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable

import numpy as np

__all__ = ["import_cvxpy", "setup_estimate", "LMIProblem", "bisect", "quadratic_norm",
           "quadratic_lmis", "structured_lmis", "quadratic_value"]


def import_cvxpy():
    """cvxpy, imported once (slow the first time: callers do it before starting the clock),
    or None when it is not installed."""
    try:
        import cvxpy  # noqa: F401
    except Exception:  # noqa: BLE001 -- no cvxpy: quadratic norms from SDPs are skipped
        return None
    return cvxpy


def setup_estimate(k: int, n: int) -> float:
    """Rough seconds to compile and set up an SDP with k LMIs of size n (cvxpy, CLARABEL):
    about 1 ms per LMI entry. An SDP is not started when even that does not fit."""
    return 1e-3 * k * n * n


class LMIProblem:
    """``min t`` s.t. ``I ⪯ P ⪯ t I`` and ``lmis(P, extra, g2)`` (each ``⪰ 0``), compiled once.

    Parameters
    ----------
    n : int
        Size of the symmetric variable ``P``.
    lmis : callable
        ``lmis(P, extra, g2) -> list`` of symmetric affine expressions required ``⪰ 0``.
    extra : int
        Length of a non-negative vector variable passed to ``lmis`` (a multiplier), or 0.
    count : int
        Number of LMIs (for the setup-time estimate).
    """

    def __init__(self, n: int, lmis: Callable, *, extra: int = 0, count: int = 1):
        import cvxpy as cp

        self.cp = cp
        self.P = cp.Variable((n, n), symmetric=True)
        self.t = cp.Variable()
        self.extra = cp.Variable(extra, nonneg=True) if extra else None
        self.g2 = cp.Parameter(nonneg=True)
        eye = np.eye(n)
        cons = [self.P >> eye, self.t * eye - self.P >> 0]
        cons += [(M + M.T) / 2 >> 0 for M in lmis(self.P, self.extra, self.g2)]
        self.problem = cp.Problem(cp.Minimize(self.t), cons)
        self.setup = setup_estimate(count, n)       # the first solve compiles and sets up
        self.solves = 0

    def solve(self, gamma: float, deadline: float = math.inf):
        """``(P, extra)`` proposed for this rate, or None (infeasible, or every solver failed).

        CLARABEL first; SCS (first order, slow to high accuracy) only as a fallback with an
        iteration and time cap, so a hard instance cannot stall the caller. Both are told the
        time left before ``deadline``.
        """
        self.g2.value = gamma * gamma
        for solver in ("CLARABEL", "SCS"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if solver == "CLARABEL":
                opts = {"time_limit": float(max(left - self.setup, 0.1))} \
                    if math.isfinite(left) else {}
                self.setup = 0.0
            else:
                opts = {"max_iters": 2500, "time_limit_secs": float(min(left, 1.0))}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.problem.solve(solver=solver, warm_start=self.solves > 0, **opts)
            except Exception:  # noqa: BLE001 -- any solver crash means "try the next one"
                continue
            self.solves += 1
            if self.problem.status in ("infeasible", "infeasible_inaccurate"):
                return None
            P = self.P.value
            if P is not None and np.all(np.isfinite(P)):
                extra = None if self.extra is None else np.maximum(self.extra.value, 0.0)
                return (P + P.T) / 2, extra
        return None


def bisect(problem: LMIProblem, evaluate: Callable, lo: float, hi: float, *,
           rtol: float = 1e-6, deadline: float = math.inf, max_iter: int = 40,
           first: float | None = None, enough: float = -math.inf):
    """Bisection on the rate: ``(value, solution)`` with the smallest float ``value`` =
    ``evaluate(solution)`` found, or ``(inf, None)``.

    A solve is judged feasible when its solution's own value is at most the rate tried (up to
    1e-6 relative): solver verdicts only guide the search. The first rate tried is ``first``
    (e.g. halfway to what a certifier needs) or just above ``lo``; no solve starts after
    ``deadline``, nor when the previous one suggests it would end well past it.

    ``enough``: the caller needs only a value below it. The bisection then returns the first
    solution whose value is below ``enough (1 - 1e-7)``, never tries rates above
    ``enough (1 - 1e-6)``, and gives up once the rates below that are infeasible.
    """
    best_v, best = math.inf, None
    cap = enough * (1 - 1e-6) if math.isfinite(enough) else math.inf
    g_try = first if first is not None and lo < first <= hi else \
        (min(hi, lo * 1.02) if lo > 0 else hi)
    g_try = min(g_try, cap)
    last = 0.0
    for _ in range(max_iter):
        now = time.monotonic()
        if now > deadline or now + 0.5 * last > deadline:
            break
        sol = problem.solve(g_try, deadline)
        last = time.monotonic() - now
        value = evaluate(sol) if sol is not None else math.inf
        if value < best_v:
            best_v, best = value, sol
        if value < enough * (1 - 1e-7):
            break
        if value <= g_try * (1 + 1e-6):
            hi = min(g_try, value)
        else:
            lo = g_try
        if hi - lo <= rtol * hi or lo >= hi or lo >= cap:
            break
        g_try = min(0.5 * (lo + hi), cap)
    return best_v, best


def quadratic_value(mats: np.ndarray, P: np.ndarray) -> float:
    """``max_i ||A_i||_P`` in floating point (inf if P is not positive definite)."""
    try:
        L = np.linalg.cholesky((P + P.T) / 2)
        # ||A||_P = ||L^T A L^{-T}||_2, and (L^T A L^{-T})^T = L^{-1} (A^T L)
        T = np.swapaxes(np.linalg.solve(L, mats.transpose(0, 2, 1) @ L), 1, 2)
    except np.linalg.LinAlgError:
        return math.inf
    from .matrices import norm2
    value = float(norm2(T).max())
    return value if math.isfinite(value) else math.inf


def quadratic_lmis(mats: np.ndarray) -> Callable:
    """``g^2 P - A_i^T P A_i ⪰ 0`` for each matrix: a common quadratic Lyapunov function."""
    def lmis(P, _extra, g2):
        return [g2 * P - a.T @ P @ a for a in mats]
    return lmis


def structured_lmis(C, U, R, lo, hi, margin: float = 1e-7) -> Callable:
    """The LMI of a structured set ``{C + U diag(d) R : lo <= d <= hi}`` with one diagonal
    multiplier ``lam >= 0`` (S-procedure, in the spirit of LipSDP):

    ``[C U]^T P [C U] - blkdiag(g^2 P, 0) + G(lam) ⪯ -margin I``, where
    ``G(lam)`` is the form of ``sum_s lam_s (y_s - lo_s v_s)(hi_s v_s - y_s)``, ``v = R x``.
    For ``y = diag(d) R x`` every term is non-negative, so ``||A(d) x||_P <= g ||x||_P``.
    """
    n, S = U.shape
    X = np.hstack([C, U])
    prod, summ = lo * hi, (lo + hi) / 2

    def lmis(P, lam, g2):
        import cvxpy as cp
        top = cp.hstack([g2 * P, np.zeros((n, S))])
        bottom = np.zeros((S, n + S))
        base = cp.vstack([top, bottom]) - X.T @ P @ X
        xx = R.T @ cp.diag(cp.multiply(lam, prod)) @ R
        xy = R.T @ cp.diag(cp.multiply(lam, summ))
        mult = cp.bmat([[xx, -xy], [-xy.T, cp.diag(lam)]])
        return [base + mult - margin * np.eye(n + S)]
    return lmis


def quadratic_norm(mats: np.ndarray, lo: float, hi: float, *, rtol: float = 1e-6,
                   deadline: float = math.inf, max_iter: int = 40,
                   first: float | None = None):
    """Best common quadratic norm by SDP bisection on gamma in [lo, hi].

    Solves ``P ⪰ I, A_i^T P A_i ⪯ gamma^2 P`` (convex for fixed gamma). Returns
    ``(gamma(P), P)`` with ``gamma(P) = max_i ||A_i||_P`` in floating point; if no solve succeeds
    (or cvxpy is unavailable) that is ``P = I``, feasible for ``hi >= max_i ||A_i||_2``.

    Examples
    --------
    >>> A = np.array([[[1., -.25], [1., 0.]], [[-1., -.25], [1., 0.]]])
    >>> g, P = quadratic_norm(A, 1.0, 2.0, rtol=1e-5)
    >>> round(g, 4), np.round(P / P[1, 1], 3).tolist()
    (1.2071, [[4.0, 0.0], [0.0, 1.0]])
    """
    eye = np.eye(mats.shape[1])
    try:
        problem = LMIProblem(mats.shape[1], quadratic_lmis(mats), count=len(mats))
    except Exception:  # noqa: BLE001 -- cvxpy missing or refusing the model: P = I
        return quadratic_value(mats, eye), eye
    value, sol = bisect(problem, lambda s: quadratic_value(mats, s[0]), lo, hi, rtol=rtol,
                        deadline=deadline, max_iter=max_iter, first=first)
    if sol is None:
        return quadratic_value(mats, eye), eye
    return value, sol[0]
