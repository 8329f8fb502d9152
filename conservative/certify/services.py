"""What the derivative layer asks of certificates: the norm an attractor is measured in, and
invertibility of ``I - A`` on a convex hull (implicit differentiation).

These are public functions of ``conservative.certify`` so that ``conservative.derivatives``
uses the same norms, proofs and margin rule as :func:`certify_contraction`.
"""

from __future__ import annotations

import numpy as np

from .._deadline import Deadline
from .. import interval as iv
from .contraction import Certificate, certify_target
from .maps import target_of
from .norms import QuadraticNorm
from .rigorous import EXACT_MAX_DIM, dyadic_matrix, spd_interval
from .sdp import LMIProblem, import_cvxpy, quadratic_lmis
from .targets import MatrixSet

__all__ = ["attractor_norm", "well_conditioned_norm", "invertibility_on_hull"]


def well_conditioned_norm(mats, P: np.ndarray, rho: float, *, max_cond: float = 1e4
                          ) -> tuple[np.ndarray, float]:
    """A quadratic norm better suited to an epsilon-net than the tightest one when that one
    is ill-conditioned (defective matrices push the SDP towards nearly singular P).

    Solves ``min kappa`` s.t. ``I ⪯ X ⪯ kappa I`` and ``A_i^T X A_i ⪯ s^2 X`` with s a third of
    the way from rho to 1, and keeps the result only if it is proved (exactly, or rigorously
    above a few dozen coordinates) at the rate halfway from rho to 1: ``(P, rho)`` unchanged
    otherwise. Always returns a pair that satisfies ``A^T P A ⪯ rho^2 P`` for every A.

    Examples
    --------
    >>> A = np.array([[[0.5, 1.0], [0.0, 0.5]]])
    >>> P, rho = well_conditioned_norm(A, np.diag([1.0, 1e6]), 0.51)
    >>> bool(np.linalg.cond(P) < 1e4 and rho < 1)
    True
    """
    mats = np.asarray(mats, dtype=float)
    if np.linalg.cond(P) <= max_cond or not rho < 1 or import_cvxpy() is None:
        return P, rho
    from .._exact import dyadic_round
    gamma = dyadic_round(rho + (1.0 - rho) / 2.0, 30)      # what is claimed and proved
    solve_at = rho + (1.0 - rho) / 3.0                     # margin for the rounding of P
    try:
        sol = LMIProblem(mats.shape[1], quadratic_lmis(mats), count=len(mats)).solve(solve_at)
    except Exception:  # noqa: BLE001 -- any solver failure keeps the certified norm
        sol = None
    if sol is None:
        return P, rho
    Q = dyadic_matrix(sol[0], 30)
    if np.linalg.cond(Q) < np.linalg.cond(P) and \
            QuadraticNorm(Q).prove(MatrixSet(mats), gamma) is not None:
        return Q, gamma
    return P, rho


def attractor_norm(target, *, time_limit: float | None = 20.0, tol: float = 1e-4,
                   max_cond: float = 1e4) -> Certificate:
    """A one-step quadratic norm for an attractor computation: the tightest quadratic norm the
    finders prove, made well-conditioned by :func:`well_conditioned_norm` when needed.

    Returns a :class:`Certificate` (``.P``, ``.rho``); not certified when no quadratic norm
    with rho < 1 was proved (``.reason`` says why, ``.lower``/``.word`` the best product).
    """
    mt = target_of(target, call="cv.attractor")
    cert = certify_target(mt.target, tol=tol, prefer="quadratic",
                          deadline=Deadline.from_time_limit(time_limit, call="cv.attractor"))
    if not (cert.certified and isinstance(cert.norm, QuadraticNorm)):
        return cert
    if isinstance(mt.target, MatrixSet):
        P, rho = well_conditioned_norm(mt.target.mats, cert.norm.P, cert.rho,
                                       max_cond=max_cond)
        if rho != cert.rho:
            from dataclasses import replace
            cert = replace(cert, norm=QuadraticNorm(P, found_by="conditioned quadratic norm"),
                           rho=rho, method=cert.method + "; re-solved for a condition number "
                           f"below {max_cond:g} and proved at a rho halfway to 1")
    return cert


def invertibility_on_hull(target) -> tuple[bool, str]:
    """Prove that ``I - A`` is invertible for every ``A`` in the convex hull of the target.

    Two sufficient tests, tried in order:

    1. a contraction certificate (every A on the hull has ``||A|| <= rho < 1`` in one norm);
    2. a matrix ``C`` (``(I - mean A)^{-1}``, rounded) with ``sym(C (I - A))`` positive definite
       on the hull: affine in A, so checked at the vertices of a finite set, or over an
       interval enclosure of a structured set or box; exactly for small sets, rigorously in
       floating point above.

    Returns
    -------
    proved : bool
    how : str
        Which test succeeded, or why neither did.

    Examples
    --------
    >>> invertibility_on_hull(np.array([[[-1.0]], [[1.0]]]))[0]   # |y| - x at 0: I - A in {2, 0}
    False
    >>> invertibility_on_hull(np.array([[[-2.0]], [[0.5]]]))[0]
    True
    """
    mt = target_of(target, call="cv.implicit_jacobian")
    cert = certify_target(mt.target, deadline=Deadline(20.0))
    if cert.certified:
        return True, f"contraction certificate ({cert.norm}, rho = {cert.rho:.4g})"
    tgt = mt.target
    n = tgt.n
    centre = tgt.mats.mean(axis=0) if isinstance(tgt, MatrixSet) else \
        tgt.intervals()[0].mid
    try:
        C = np.linalg.inv(np.eye(n) - centre)
    except np.linalg.LinAlgError:
        return False, "I - mean(A) is singular"
    if not np.all(np.isfinite(C)):
        return False, "I - mean(A) is numerically singular"
    if _preconditioned_positive(tgt, C):
        return True, "sym(C (I - A)) positive definite on the hull (" + (
            "exact check)" if isinstance(tgt, MatrixSet) and n <= EXACT_MAX_DIM
            else "rigorous floating-point check)")
    return False, ("no contraction certificate and no uniform positive-definite "
                   "preconditioning of I - A on the hull was found")


def _preconditioned_positive(tgt, C) -> bool:
    n = tgt.n
    if isinstance(tgt, MatrixSet) and n <= EXACT_MAX_DIM:
        from fractions import Fraction
        from .._exact import is_psd, to_fractions
        Cq = to_fractions(C)
        for Ai in tgt.mats:
            Mq = to_fractions(np.eye(n) - Ai)
            prod = [[sum((Cq[i][k] * Mq[k][j] for k in range(n)), Fraction(0))
                     for j in range(n)] for i in range(n)]
            if not is_psd([[(prod[i][j] + prod[j][i]) / 2 for j in range(n)]
                           for i in range(n)], strict=True):
                return False
        return True
    parts = [iv.Interval(a) for a in tgt.mats] if isinstance(tgt, MatrixSet) else \
        tgt.intervals()
    for A in parts:
        M = iv.matmul(iv.Interval(C), iv.subtract(iv.Interval(np.eye(n)), A))
        S = iv.multiply(iv.add(M, M.T), iv.Interval(0.5))
        if not spd_interval(S.lo, S.hi):
            return False
    return True

