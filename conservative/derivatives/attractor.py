"""The attractor of the piggyback iteration at a fixed point: its limiting derivative set.

At a fixed point the set-valued piggyback map ``Phi(K) = {A J + B : [A B] in S, J in K}`` is the
Hutchinson operator of an iterated function system; when its linear parts contract in one norm
(a certificate), it has a unique compact fixed point, the attractor, itself a conservative
Jacobian of the solution map (Bolte, Pauwels & Vaiter, NeurIPS 2022).

How it is computed (one facade over private engine modules):

1. :func:`attractor` certifies the contraction once (:func:`~conservative.certify_contraction`,
   exact) and hands the certificate to :func:`ifs_attractor`; nothing re-measures it.
2. The attractor's affine hull is found exactly (``_affine_hull``): the README's Lasso at
   ``lam_max`` has 8 x 1 Jacobians but a one-dimensional attractor.
3. By dimension: a point; a union of intervals with outward rounding (``_ifs_line``: the hull
   case to a few ulps, Cantor-like sets with their gaps above the tolerance); for ``hull=True``
   in dimensions 2 and 3 a quadtree / octree cover refined only on the boundary
   (``_ifs_cells``, set-oriented subdivision), or a convex polytope when all maps share one
   linear part (``_ifs_polytope``: the attractor is convex then); otherwise an epsilon-net in
   the hull's coordinates (``_ifs_net``).
4. ``tol=None`` refines level by level while the measured growth predicts that the next level
   fits ``max_points`` and the time (``_budget``); an explicit tol that cannot fit raises at once
   with a tolerance measured to fit.
"""

from __future__ import annotations

import math

import numpy as np

from .._deadline import Deadline, check_progress, progress_bar
from .._types import as_float_array, as_matrix_stack, check_bool, check_int
from ..certify import certify_contraction
from ..distances import norm_factor
from ..errors import (InputError, NotContractingError, SetTooLargeError, ShapeError,
                      SolverError, UndecidedError, fail_message)
from ..fixed_point_set import refusal
from ._affine_hull import reduce_to_affine_hull, to_float_up
from ._attractor_value import Attractor
from ._budget import Budget
from ._ifs_cells import cell_attractor
from ._ifs_line import line_attractor
from ._ifs_net import net_attractor, net_problem
from ._ifs_polytope import (one_linear_part, polytope_attractor, row_structure,
                            rows_keep_their_order)
from .iterate import blocks_at_fixed_point

__all__ = ["attractor", "Attractor", "ifs_attractor"]

_CALL = "cv.ifs_attractor"
_U = np.finfo(float).eps


def attractor(F, theta, x_star, *, hull: bool = True, tol: float | None = None,
              jac_tol: float = 0.0, max_points: int | None = None,
              time_limit: float | None = None, progress: bool | None = None,
              names=None) -> Attractor:
    """The attractor of the piggyback iteration at a fixed point: its limiting derivative set.

    The compact fixed point of ``Φ(K) = {A J + B : [A B] in D_F(x_star, theta), J in K}``, with
    ``D_F`` counted at the exact fixed point near ``x_star``. Every piggyback run, whatever its
    selections, approaches this set.

    Parameters
    ----------
    F : Map
    theta, x_star : array_like
        Parameters and a fixed point ``x_star = F(x_star, theta)``.
    hull : bool
        Use the convex hull of ``D_F`` (True) or its finite set of selections (False); the
        finite system's attractor can be countable or Cantor-like.
    tol : float or None
        Target Hausdorff distance (Frobenius norm) between the returned set and the true
        attractor. None (default): the finest that fits ``max_points`` and the time (the
        achieved bound is ``.hausdorff_bound`` and ``.tol``). One-dimensional attractors with
        ``hull=True`` are exact to a few ulps whatever the tol.
    jac_tol : float
        Activity tolerance for kinks when ``x_star`` comes from floating-point iterations.
    max_points : int, optional
        Largest set held (intervals or points); default 2.5 million divided by ``n m``, at
        least 200 000.
    time_limit : float or None
        Seconds. When they run out the last complete level is returned with the bound proved
        for it (``.complete`` is False). With ``tol=None`` and no limit the refinement allows
        itself about 0.6 s.
    progress : bool or None
        None: a progress bar when the call runs long and a terminal or notebook is attached.
    names : sequence of str, optional
        Names of the entries of J (C order), used by the repr and the pictures.

    Returns
    -------
    Attractor
        ``.dimension``, ``.hausdorff_bound``, ``.points``, ``.intervals`` (dimension 1),
        ``.cells`` or ``.vertices`` (a cover by cubes, a convex polytope; dimensions 2, 3),
        ``.distance(J)``, ``.contains(J)``, ``.bounding_box()``, ``.hull_vertices()``; ``.P``
        and ``.rho`` are the exactly verified certificate's.

    Raises
    ------
    NotContractingError
        When no contraction of the A-blocks can be certified; carries the JSR lower bound and
        the product word (a counterexample when the bound exceeds 1). No set is returned then.
    SetTooLargeError
        An explicit ``tol`` whose next level would exceed ``max_points`` (``.suggested_tol``
        was measured to fit).

    Examples
    --------
    A kink at the fixed point: at theta = 0, x = 0 the A-block is {0, 1/2} and B = 1/2:

    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    >>> att = cv.attractor(F, 0.0, 0.0)                      # the interval [1/2, 1]
    >>> att.dimension, att.intervals.round(12).tolist(), bool(att.hausdorff_bound < 1e-14)
    (1, [[0.5, 1.0]], True)
    >>> fin = cv.attractor(F, 0.0, 0.0, hull=False, tol=1e-3)  # {1 - 2^-j} and 1
    >>> bool(fin.contains([[0.75]])), bool(fin.contains([[0.7]]))
    (True, False)
    """
    call = "cv.attractor"
    hull = check_bool(hull, name="hull", call=call)
    progress = check_progress(progress, call=call)
    deadline = _deadline(time_limit, call)
    A, AB, enclosure = blocks_at_fixed_point(F, theta, x_star, hull=hull, tol=jac_tol, call=call)
    cert = certify_contraction(A, progress=bool(progress))   # one bar at most: ours
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
    return _solve(AB[:, :, :F.n], AB[:, :, F.n:], hull=hull, P=P, rho=rho, verified=True,
                  tol=tol, max_points=max_points, J0=None, deadline=deadline,
                  progress=progress, call=call, names=names)


def ifs_attractor(A, B, *, hull, P=None, rho=None, tol=None, max_points=200_000, J0=None,
                  strict: bool = True, time_limit: float | None = None,
                  call: str = _CALL) -> Attractor:
    """Attractor of ``Phi(K) = {A J + B : [A B] in S, J in K}`` for given vertices.

    The engine behind :func:`attractor`, for vertex stacks that do not come from a Map. See the
    module docstring for the method.

    Parameters
    ----------
    A : array_like (k, n, n), B : array_like (k, n, m)
        The blocks of the vertices ``[A_i B_i]``.
    hull : bool
        True: S is the convex hull of the vertices; False: the vertices only.
    P : array_like (n, n), optional
        Symmetric positive definite matrix of a contraction certificate; default identity.
    rho : float, optional
        Claimed contraction factor (re-checked in floating point:
        ``max_i ||P^(1/2) A_i P^(-1/2)||_2 <= rho (1 + 1e-9)``); default that maximum.
    tol, max_points, time_limit
        As in :func:`attractor`.
    J0 : array_like (n, m), optional
        Start point of the net iteration (dimension >= 2).
    strict : bool
        If False, an explicit tol that cannot fit falls back, with a RuntimeWarning, to the
        tolerance measured to fit.

    Returns
    -------
    Attractor

    Raises
    ------
    NotContractingError, ShapeError, InputError, SetTooLargeError

    Examples
    --------
    The middle-thirds Cantor set (vertices) versus the whole interval [0, 1] (hull):

    >>> A, B = [[[1 / 3]], [[1 / 3]]], [[[0.0]], [[2 / 3]]]
    >>> cantor = ifs_attractor(A, B, hull=False, tol=1e-3)
    >>> bool(np.all((cantor.points < 0.34) | (cantor.points > 0.66)))
    True
    >>> ifs_attractor(A, B, hull=True).intervals.tolist()
    [[0.0, 1.0]]
    """
    A = as_matrix_stack(A, name="A", call=call)
    B = _check_B(B, A, call)
    hull = check_bool(hull, name="hull", call=call)
    k, n, _ = A.shape
    L = norm_factor(P, n, call=call)
    L = np.eye(n) if L is None else L
    Pm = L @ L.T
    if rho is None:
        from scipy.linalg import solve_triangular
        Lt_inv = solve_triangular(L, np.eye(n), lower=True).T
        M = np.einsum("ji,kjl,lm->kim", L, A, Lt_inv)
        rho = float(np.max(np.linalg.norm(M, ord=2, axis=(1, 2))))
        if not rho < 1:
            raise NotContractingError(fail_message(
                call, f"vertices whose largest P-norm is {rho:.6g}", "pass P and rho from a "
                "contraction certificate (cv.certify_contraction); the attractor is defined "
                "only for rho < 1"))
    rho = _check_rho(rho, call)
    _check_claim(A, L, rho, call)
    max_points = check_int(max_points, name="max_points", call=call, minimum=1)
    if J0 is not None:
        J0 = as_float_array(J0, name="J0", call=call, shape=(n, B.shape[2]))
    kwargs = dict(hull=hull, P=Pm, rho=rho, verified=False, max_points=max_points, J0=J0,
                  deadline=_deadline(time_limit, call), progress=False, call=call)
    try:
        return _solve(A, B, tol=tol, **kwargs)
    except SetTooLargeError as err:
        if strict or err.suggested_tol is None:
            raise
        import warnings
        warnings.warn(fail_message(call, f"tol={tol:.3g}, which needs more than "
                                   f"max_points={max_points} points",
                                   f"returned the attractor at tol={err.suggested_tol:.3g}; "
                                   "pass a larger max_points for a finer set"),
                      RuntimeWarning, stacklevel=2)
        return _solve(A, B, tol=err.suggested_tol, **kwargs)


def _deadline(time_limit, call) -> Deadline:
    if isinstance(time_limit, (int, float)) and not isinstance(time_limit, bool) \
            and time_limit == 0:
        return Deadline(0.0)                   # stop at once: the coarsest honest answer
    return Deadline.from_time_limit(time_limit, call=call)


def _check_B(B, A, call):
    k, n, _ = A.shape
    B = as_float_array(B, name="B", call=call)
    if B.ndim == 2:
        B = B[None]
    if B.ndim != 3 or B.shape[0] != k or B.shape[1] != n or B.shape[2] == 0:
        raise ShapeError(fail_message(
            call, f"A of shape {A.shape} and B of shape {B.shape}",
            f"pass B of shape ({k}, {n}, m): one (n, m) block per vertex [A_i B_i]"))
    return B


def _check_rho(rho, call) -> float:
    try:
        rho = float(rho)
    except (TypeError, ValueError, OverflowError):
        raise InputError(fail_message(call, f"rho={rho!r}", "pass a float in [0, 1)")) from None
    if not math.isfinite(rho) or rho < 0:
        raise InputError(fail_message(call, f"rho={rho!r}", "pass a float in [0, 1)"))
    if rho >= 1:
        raise NotContractingError(fail_message(
            call, f"rho={rho:.6g} >= 1", "the set-valued iteration is a contraction only for "
            "rho < 1: pass a certified rho < 1 (cv.certify_contraction) or check the map "
            "with cv.jsr"))
    return rho


def _check_claim(A, L, rho, call) -> None:
    """The one measurement of a claimed (not exactly verified) contraction factor."""
    from scipy.linalg import solve_triangular
    n = A.shape[1]
    Lt_inv = solve_triangular(L, np.eye(n), lower=True).T
    norms = np.linalg.norm(np.einsum("ji,kjl,lm->kim", L, A, Lt_inv), ord=2, axis=(1, 2))
    worst = int(np.argmax(norms))
    if norms[worst] > rho * (1 + 1e-9):
        raise NotContractingError(fail_message(
            call, f"rho={rho:.6g}, but vertex {worst} has ||P^(1/2) A P^(-1/2)||_2 = "
            f"{norms[worst]:.6g} > rho", "pass the P and rho of a valid contraction "
            "certificate for these vertices (cv.certify_contraction)"))


def _check_tol(tol, call):
    if tol is None:
        return None
    try:
        tol = float(tol)
    except (TypeError, ValueError, OverflowError):
        tol = float("nan")
    if not (math.isfinite(tol) and tol > 0):
        raise InputError(fail_message(call, f"tol={tol!r}", "pass a positive finite tol, or "
                                      "None for the finest that fits"))
    return tol


def _solve(A, B, *, hull, P, rho, verified, tol, max_points, J0, deadline, progress, call,
           names=None) -> Attractor:
    """Reduce to the affine hull and run the engine for its dimension."""
    tol = _check_tol(tol, call)
    k, n, _ = A.shape
    m = B.shape[2]
    if names is not None:
        names = tuple(str(x) for x in names)
        if len(names) != n * m:
            raise InputError(fail_message(call, f"{len(names)} names for {n * m} entries",
                                          "pass one name per entry of J (C order)"))
    fixed = _fixed_points(A, B)
    space = reduce_to_affine_hull(A, B) if k > 1 else None
    common = dict(hull=hull, rho=rho, P=P, fixed_points=fixed, names=names,
                  max_points=max_points, verified=verified)
    if space is None or (space.dimension == 0 and space.exact):
        from ._affine_hull import ReducedSystem
        point = fixed[0]
        bound = 4 * _U * float(np.linalg.norm(point)) / max(1e-300, 1 - rho) * n
        if space is None:
            space = ReducedSystem(0, True, (), point, np.zeros((0, n, m)), np.zeros((k, 0, 0)),
                                  np.zeros((k, 0)))
        return Attractor(hausdorff_bound=bound, tol=tol if tol else bound, complete=True,
                         iterations=0, space=space, **common)
    with progress_bar(None, call, progress) as bar:
        budget = Budget(max_points=max_points, deadline=deadline, call=call, bar=bar)
        if space.dimension == 1 and space.R_q is not None:
            return _on_a_line(space, tol, budget, common)
        if hull and space.dimension in (2, 3) and J0 is None and one_linear_part(space):
            return _on_polytope(space, tol, budget, common)     # K* is convex then
        rows = row_structure(A, B) if hull and space.exact and J0 is None and \
            space.dimension in (2, 3) else None
        if rows is not None:                  # elementwise kinks: convex if proved so
            att = _on_polytope(space, tol, budget, common, rows)
            if att is not None:
                return att
            budget = Budget(max_points=max_points, deadline=deadline, call=call, bar=bar)
        if hull and space.exact and space.dimension in (2, 3) and J0 is None \
                and k > space.dimension:      # P(J) = conv{A_i J + B_i} can have interior
            att = _on_cells(space, tol, budget, common)
            if att is not None:
                return att
        return _on_a_net(space, A, B, tol, budget, common, verified, J0, call)


def _on_a_line(space, tol, budget, common) -> Attractor:
    r = [Ri[0][0] for Ri in space.R_q]
    t = [ti[0] for ti in space.t_q]
    if not max(abs(x) for x in r) < 1:
        raise NotContractingError(fail_message(
            budget.call, "maps on the attractor's line with slope of modulus >= 1",
            "pass P and rho of a valid contraction certificate"))
    q_norm = float(np.linalg.norm(space.basis[0])) * (1 + 4 * _U)
    res = line_attractor(r, t, hull=common["hull"],
                         tol=None if tol is None else tol / q_norm, budget=budget)
    reach = float(np.max(np.abs(res.intervals))) * q_norm + float(np.linalg.norm(space.origin))
    bound = to_float_up(_frac(res.bound) * _frac(q_norm)) + 8 * _U * reach
    return Attractor(hausdorff_bound=bound, tol=tol if tol is not None else bound,
                     complete=res.complete, iterations=res.iterations, space=space,
                     line=res.intervals, net_radius=res.gap * q_norm, **common)


def _on_polytope(space, tol, budget, common, rows=None) -> Attractor | None:
    """K* as a polytope (``_ifs_polytope``): convex for one linear part, or for product vertex
    sets (``rows``) whose rows keep their order near K*; None when that was not proved."""
    convex = None if rows is None else (lambda J, r: rows_keep_their_order(rows, J, r))
    res = polytope_attractor(space, P=common["P"], rho=common["rho"], tol=tol, budget=budget,
                             convex=convex)
    if res is None:
        return None
    return Attractor(hausdorff_bound=res.bound, tol=tol if tol is not None else res.bound,
                     complete=res.complete, iterations=res.iterations, space=space,
                     poly_vertices=res.vertices, frame=res.frame, **common)


def _on_cells(space, tol, budget, common) -> Attractor | None:
    """The quadtree / octree cover (``_ifs_cells``); None when no cell was proved inside."""
    res = cell_attractor(space, P=common["P"], rho=common["rho"], tol=tol, budget=budget,
                         max_points=budget.max_points)
    if res is None:
        return None
    reach = float(np.max(np.abs(res.boxes))) + float(np.linalg.norm(space.origin))
    bound = res.bound + 8 * (space.dimension + 1) * _U * reach
    return Attractor(hausdorff_bound=bound, tol=tol if tol is not None else bound,
                     complete=res.complete, iterations=res.iterations, space=space,
                     cell_boxes=res.boxes, cell_inner=res.inner, frame=res.frame,
                     net_radius=res.side, **common)


def _frac(x):
    from fractions import Fraction
    return Fraction(float(x))


def _on_a_net(space, A, B, tol, budget, common, verified, J0, call) -> Attractor:
    D = space.dimension
    n, m = space.origin.shape
    Q = space.basis.reshape(D, n, m)
    G = np.einsum("ais,ij,bjs->ab", Q, common["P"], Q)           # ||Q c||_P^2 = c^T G c
    G = (G + G.T) / 2
    L = np.linalg.cholesky(G)
    c0 = None
    if J0 is not None:
        c0, _ = space.coordinates(J0[None])
        c0 = c0.reshape(D, 1)
    pb = net_problem(space.R, space.t[:, :, None], hull=common["hull"], L=L, rho=common["rho"],
                     verified=verified, max_points=budget.max_points, call=call, J0=c0)
    q_norm = float(np.linalg.norm(Q.reshape(D, -1), 2)) * (1 + 1e-12)
    res = net_attractor(pb, None if tol is None else tol / q_norm, budget)
    pts = space.embed(res.points.reshape(len(res.points), D))
    reach = float(np.max(np.abs(res.points))) * q_norm + float(np.linalg.norm(space.origin))
    bound = res.bound * q_norm * (1 + 1e-12) + 8 * (D + 1) * _U * reach
    return Attractor(hausdorff_bound=bound, tol=tol if tol is not None else bound,
                     complete=res.complete, iterations=res.iterations, space=space,
                     net=pts, net_radius=res.net_radius * q_norm, hull_exact=space.exact,
                     **common)


def _fixed_points(A, B) -> np.ndarray:
    """Fixed points (I - A_i)^-1 B_i of the vertex maps: points of the attractor."""
    n = A.shape[1]
    try:
        return np.linalg.solve(np.eye(n)[None] - A, B)
    except np.linalg.LinAlgError:
        return np.zeros((0,) + B.shape[1:])
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
