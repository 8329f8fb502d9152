"""The attractor of the piggyback iteration at a fixed point: its limiting derivative set.

At a fixed point the set-valued piggyback map is the Hutchinson operator of an iterated function
system; when its linear parts contract in one norm (a certificate), it has a unique compact fixed
point, the attractor, itself a conservative Jacobian of the solution map (Bolte, Pauwels &
Vaiter, NeurIPS 2022). :func:`attractor` certifies the contraction once and hands the
certificate to the engine (:func:`ifs_attractor`).
"""

from __future__ import annotations

import numpy as np

from ..certify import certify_contraction
from ..errors import NotContractingError, SolverError, UndecidedError, fail_message
from ..fixed_point_set import refusal
from ._ifs_net import Attractor, ifs_attractor
from .iterate import blocks_at_fixed_point
from .._types import check_bool

__all__ = ["attractor", "Attractor", "ifs_attractor"]


def attractor(F, theta, x_star, *, hull: bool = True, tol: float = 1e-6, jac_tol: float = 0.0,
              max_points: int | None = None, time_limit: float | None = 60.0) -> Attractor:
    """The attractor of the piggyback iteration at a fixed point: its limiting derivative set.

    Computes the fixed point of ``Φ(K) = {A J + B : [A B] in D_F(x_star, theta), J in K}`` by a
    Banach-Picard iteration on an ε-net, in the quadratic norm of a contraction certificate
    (re-checked exactly). Every piggyback run, whatever its selections, approaches this set.

    Parameters
    ----------
    F : Map
    theta, x_star : array_like
        Parameters and a fixed point ``x_star = F(x_star, theta)``.
    hull : bool
        Use the convex hull of ``D_F`` (True) or its finite set of selections (False); the
        finite system's attractor can be countable or Cantor-like.
    tol : float
        Target Hausdorff distance (Frobenius norm) between the returned points and the true
        attractor; the proven value is ``.hausdorff_bound``.
    jac_tol : float
        Activity tolerance for kinks when ``x_star`` comes from floating-point iterations.
    max_points : int, optional
        Largest ε-net allowed (default: 2.5 million divided by ``n m``, at least 200 000: an
        interval of length L needs about L / (2 tol) points).
    time_limit : float or None
        Seconds for the set iteration; when it runs out the last complete iterate is returned
        with the bound proved for it (``att.complete`` is False, ``att.hausdorff_bound`` > tol).

    Returns
    -------
    Attractor
        ``.points`` (N, n, m), ``.rho``, ``.hausdorff_bound``, ``.bounding_box()``,
        ``.hull_vertices()``; ``.P`` and ``.rho`` are the exactly verified certificate's.

    Raises
    ------
    NotContractingError
        When no contraction of the A-blocks can be certified; carries the JSR lower bound and
        the product word (a counterexample when the bound exceeds 1). No set is returned then.

    Examples
    --------
    A kink at the fixed point: x <- relu(x)/2 + theta/2 ... at theta = 0, x = 0 the A-block is
    {0, 1/2} and B = 1/2:

    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    >>> att = cv.attractor(F, 0.0, 0.0, hull=True, tol=1e-3)
    >>> lo, hi = att.bounding_box()
    >>> round(float(lo[0, 0]), 2), round(float(hi[0, 0]), 2)
    (0.5, 1.0)
    """
    call = "cv.attractor"
    hull = check_bool(hull, name="hull", call=call)
    A, AB, enclosure = blocks_at_fixed_point(F, theta, x_star, hull=hull, tol=jac_tol, call=call)
    cert = certify_contraction(A)
    if cert.certified and not enclosure.proven:
        raise UndecidedError(fail_message(
            call, f"a computed fixed point where {refusal(enclosure)}",
            "pass a more accurate fixed point, or a theta away from the degenerate point"))
    if not cert.certified:
        raise NotContractingError(
            fail_message(call, f"a Jacobian set whose A-blocks could not be certified to "
                         f"contract ({cert.reason}; JSR lower bound {cert.lower:.6g} from the "
                         f"product word {cert.word})",
                         "the piggyback iteration has no attractor to compute here: if the "
                         "lower bound exceeds 1 some switching of AD selections diverges"),
            lower=cert.lower, word=cert.word, certificate=cert)
    if cert.P is None:
        raise SolverError(fail_message(
            call, f"a contraction certified only in a non-quadratic norm ({cert.norm})",
            "the attractor is computed in a quadratic norm; none with rho < 1 was found"))
    P, rho = _conditioned_norm(A, cert.P, cert.rho)
    if max_points is None:
        max_points = max(200_000, 2_500_000 // max(1, F.n * F.m))
    return ifs_attractor(AB[:, :, :F.n], AB[:, :, F.n:], hull=hull, P=P, rho=rho, tol=tol,
                         max_points=max_points, time_limit=time_limit, call=call)


def _conditioned_norm(A: np.ndarray, P: np.ndarray, rho: float, max_cond: float = 1e4):
    """A quadratic norm better suited to the ε-net than the tightest one, when that one is
    ill-conditioned (defective matrices push the SDP to nearly singular P).

    Solves ``min kappa`` s.t. ``I ≼ P ≼ kappa I`` and ``A_i^T P A_i ≼ s^2 P`` with s a third of
    the way from rho to 1, and keeps the result only if the exact rational check passes at
    gamma halfway from rho to 1 (the margin absorbs the rounding of P).
    """
    if np.linalg.cond(P) <= max_cond:
        return P, rho
    import cvxpy as cp

    from .._exact import check_quadratic, dyadic_round

    n = A.shape[1]
    gamma = dyadic_round(rho + (1.0 - rho) / 2.0, 30)      # what is claimed and checked
    solve_at = rho + (1.0 - rho) / 3.0                     # margin for the rounding of P
    X = cp.Variable((n, n), symmetric=True)
    kappa = cp.Variable()
    constraints = [X >> np.eye(n), X << kappa * np.eye(n)]
    constraints += [solve_at ** 2 * X - Ai.T @ X @ Ai >> 0 for Ai in A]
    try:
        cp.Problem(cp.Minimize(kappa), constraints).solve(solver=cp.CLARABEL)
    except Exception:  # noqa: BLE001 - any solver failure keeps the certified norm
        return P, rho
    if X.value is None:
        return P, rho
    Q = np.vectorize(lambda v: dyadic_round(v, 30))((X.value + X.value.T) / 2)
    if np.linalg.cond(Q) < np.linalg.cond(P) and check_quadratic(A, Q, gamma):
        return Q, gamma
    return P, rho
