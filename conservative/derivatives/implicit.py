"""Derivative estimates at a fixed point: implicit set, fixed-point AD, one-step.

At a fixed point ``x̄ = F(x̄, theta)``:

* the **implicit set** ``J^imp = {(I - A)^{-1} B : [A B] in D_F(x̄, theta)}`` is a conservative
  Jacobian of the solution map when ``I - A`` is invertible on the whole convex hull (Bolte, Le,
  Pauwels & Silveti-Falls, NeurIPS 2021). It is contained in the piggyback attractor and can be
  strictly smaller;
* **fixed-point AD** (FPAD, Mehmood & Ochs) iterates ``J <- A J + B`` with the Jacobian frozen at
  ``x̄``: O(1) memory, error ``rho^k``;
* **one-step** differentiation returns ``d_theta F(x_{k-1}, theta)``: exact in the limit only
  when ``d_x F(x̄) = 0`` (Newton-type maps; Bolte, Pauwels & Vaiter, NeurIPS 2023).
"""

from __future__ import annotations

import math

from fractions import Fraction

import numpy as np

from .. import interval as iv
from .._exact import is_psd, to_fractions
from .._deadline import Deadline, check_progress
from .._types import (as_float_array, as_matrix_stack, check_bool, check_int, check_real,
                     check_steps, initial_jacobian)
from ..certify import certify_contraction
from ..errors import (NonFiniteError, NotConvergedError, SingularJacobianError, UndecidedError,
                      fail_message)
from ..fixed_point_set import is_numerical_fixed_point, refusal
from .iterate import (active_rows, blocks_at_fixed_point, frozen_columns, frozen_step,
                      linearisation_at_fixed_point)
from ..jacobian import linearise, tangent_matrix, jvp, value_and_jvp, vjp
from ..primitives import Elementwise
from ..sets import JacobianSet

__all__ = ["implicit_jacobian", "invertible_on_hull", "fpad", "fpad_vjp", "one_step"]


def invertible_on_hull(A: np.ndarray, *, time_limit: float | None = 20.0
                       ) -> tuple[bool, str]:
    """Prove that ``I - A`` is invertible for every ``A`` in ``conv{A_i}``.

    Three sufficient tests, tried in order (the first is the cheap one of the hot paths):

    1. with ``C = (I - mean A_i)^{-1}`` (rounded), ``||I - C (I - A_i)||_inf < 1`` at every
       vertex, in outward-rounded interval arithmetic. ``A -> ||I - C (I - A)||`` is convex (a
       norm of an affine map), so the bound holds on the whole hull, where ``C (I - A)``, hence
       ``I - A``, is therefore invertible (a Neumann series);
    2. a contraction certificate of ``{A_i}`` (JSR < 1, so every spectral radius on the hull is
       below 1);
    3. the symmetric part of ``C (I - A_i)`` positive definite at every vertex, checked in
       rational arithmetic. It is affine in ``A``, so it stays positive definite on the hull,
       and ``C (I - A)`` cannot be singular there.

    Parameters
    ----------
    A : array_like, (k, n, n) or (n, n)
        The vertices ``A_i``.
    time_limit : float or None
        Seconds for the contraction certificate of test 2 (an SDP; the other tests are
        quick). When it runs out, test 3 still decides, and ``how`` names the time limit.

    Returns
    -------
    proved : bool
    how : str
        Which test succeeded, or why neither did.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> from conservative.derivatives.implicit import invertible_on_hull
    >>> invertible_on_hull(np.array([[[0.0]], [[0.5]]]))[0]     # 1 - a >= 1/2 on [0, 1/2]
    True
    >>> invertible_on_hull(np.array([[[0.0]], [[2.0]]]))[0]     # 1 - a = 0 at a = 1
    False
    """
    A = as_matrix_stack(A, name="A", call="cv.invertible_on_hull")
    Deadline.from_time_limit(time_limit, call="cv.invertible_on_hull")
    n = A.shape[1]
    eye = np.eye(n)
    try:
        C = np.linalg.inv(eye - A.mean(axis=0))
    except np.linalg.LinAlgError:
        C = None
    if C is not None and np.all(np.isfinite(C)) and _neumann_bound(C, A) < 1.0:
        return True, ("||I - C (I - A)||_inf < 1 on the hull (outward-rounded interval "
                      "check, C = (I - mean A)^-1)")
    cert = certify_contraction(A, time_limit=time_limit, progress=False)
    if cert.certified:
        return True, f"contraction certificate ({cert.norm}, rho = {cert.rho:.4g})"
    if C is None:
        return False, "I - mean(A) is singular"
    Cq = to_fractions(C)
    for Ai in A:
        Mq = to_fractions(eye - Ai)
        prod = [[sum((Cq[i][k] * Mq[k][j] for k in range(n)), Fraction(0)) for j in range(n)]
                for i in range(n)]
        sym = [[(prod[i][j] + prod[j][i]) / 2 for j in range(n)] for i in range(n)]
        if not is_psd(sym, strict=True):
            return False, ("no contraction certificate and no uniform positive-definite "
                           "preconditioning of I - A on the hull was found"
                           + (f" ({cert.reason})" if _timed_out(cert.reason) else ""))
    return True, "sym(C (I - A)) positive definite on the hull (exact check)"


def _timed_out(reason: str) -> bool:
    """Whether a certificate's reason says that its time limit stopped it."""
    return "time limit" in (reason or "")


def _prove_invertible(A, deadline: Deadline, call: str) -> None:
    """Raise unless ``I - A`` is proved invertible on the hull of the stack ``A``: a
    SingularJacobianError when the tests fail, an UndecidedError when the time ran out first
    (then nothing says the hull is singular)."""
    proved, how = invertible_on_hull(A, time_limit=deadline.time_limit())
    if proved:
        return
    if deadline.expired() or _timed_out(how):
        raise UndecidedError(fail_message(
            call, f"a Jacobian set whose I - A was not proved invertible on its convex hull "
            f"within the time limit ({how})", "pass a larger time_limit (or None)"))
    raise _singular(call, how)


def _neumann_bound(C: np.ndarray, A: np.ndarray) -> float:
    """A rigorous upper bound of ``max_i ||I - C (I - A_i)||_inf`` (outward rounding); ``A`` a
    stack of matrices or an interval matrix (then the bound holds for all its members)."""
    eye = iv.Interval(np.eye(A.shape[-1]))
    A = A if isinstance(A, iv.Interval) else iv.Interval(A)
    E = iv.subtract(eye, iv.matmul(iv.Interval(C), iv.subtract(eye, A)))
    rows = iv.sum(iv.Interval(E.mag), axis=-1)
    bound = float(np.max(rows.hi, initial=0.0))
    return bound if np.isfinite(bound) else np.inf


def implicit_jacobian(F, theta, x_star, *, hull: bool = True, tol: float = 0.0,
                      time_limit: float | None = 60.0) -> JacobianSet:
    """The implicit-differentiation set ``{(I - A)^{-1} B : [A B] in D_F(x_star, theta)}``.

    Parameters
    ----------
    F : Map
    theta, x_star : array_like
        Parameters and a fixed point of ``F``.
    hull : bool
        Which conservative Jacobian of ``F`` to use. The images of its vertices are returned;
        with ``hull=True`` the result is their convex hull, itself a conservative Jacobian of the
        solution map (the convex hull of a conservative field is conservative).
    tol : float
        Activity tolerance for kinks.
    time_limit : float or None
        Seconds for the invertibility proof on the hull (a contraction certificate, an SDP,
        is tried when the quick interval test fails: at kinks with large A-blocks).

    Raises
    ------
    SingularJacobianError
        When ``I - A`` cannot be proved invertible on the whole convex hull of the A-blocks
        (vertex-only checks are wrong: for ``F(x, y) = |y| - x`` at 0 both vertices give an
        invertible ``I - A`` but their midpoint does not).
    UndecidedError
        When the time limit ran out before the proof was decided.

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    >>> cv.implicit_jacobian(F, 0.0, 0.0).vertices.ravel()       # B/(1-A) for A in {0, 1/2}
    array([0.5, 1. ])
    """
    call = "cv.implicit_jacobian"
    hull = check_bool(hull, name="hull", call=call)
    tol = check_real(tol, name="tol", call=call, minimum=0.0)
    deadline = Deadline.from_time_limit(time_limit, call=call)
    fast = _smooth_support_block(F, theta, x_star, call, deadline) if tol == 0 else None
    if fast is not None:
        return JacobianSet.from_matrices(fast[None], hull=hull)
    A, AB, enclosure = blocks_at_fixed_point(F, theta, x_star, hull=hull, tol=tol, call=call)
    rows = np.flatnonzero(np.any(A != 0, axis=(0, 2)))
    if not enclosure.proven:
        raise _singular(call, refusal(enclosure))
    _prove_invertible(A[:, rows[:, None], rows[None, :]], deadline, call)
    return JacobianSet.from_matrices(_block_solve(AB[:, :, :F.n], AB[:, :, F.n:], rows),
                                     hull=hull)


def _singular(call, how):
    return SingularJacobianError(fail_message(
        call, f"a Jacobian set whose I - A may be singular on its convex hull ({how})",
        "the implicit function theorem does not apply here; use the piggyback attractor "
        "(cv.attractor) or move theta off the degenerate point"))


def _block_solve(A, B, rows):
    """``(I - A_i)^{-1} B_i`` when every A_i vanishes outside the rows N = ``rows``:
    ``J_Z = B_Z`` and ``(I - A_NN) J_N = B_N + A_NZ B_Z`` (block triangular)."""
    k, n, _ = A.shape
    out = np.array(B, dtype=float)
    if len(rows) == 0:
        return out
    other = np.setdiff1d(np.arange(n), rows)
    rhs = B[:, rows] + np.matmul(A[:, rows[:, None], other[None, :]], B[:, other])
    out[:, rows] = np.linalg.solve(np.eye(len(rows))[None] - A[:, rows[:, None], rows[None, :]],
                                   rhs)
    return out


#: Largest active block that the support-restricted paths form explicitly.
MAX_BLOCK = 512


def _support(F, theta, x_star, call):
    """(xb, tb, values, partials, rows, enclosure) at the exact fixed point near x_star, or
    rows=None when the active block is too large to form.

    The rows are those the enclosure's own test found may be non-zero on its box (a superset
    of the rows on the final box, which holds x_star): no second interval sweep."""
    xb, tb, values, partials, enc = linearisation_at_fixed_point(F, theta, x_star, call=call)
    rows = enc.rows
    if rows is None:
        rows = active_rows(F, tb[0], enc.lo, enc.hi, call=call)
    if len(rows) > MAX_BLOCK:
        rows = None
    return xb, tb, values, partials, np.asarray(rows, dtype=np.int64) if rows is not None \
        else None, enc


def _smooth_support_block(F, theta, x_star, call, deadline):
    """The implicit Jacobian (n, m) on the active block when no kink meets the enclosure of
    the fixed point (a single element): k + m tangent directions and a k x k solve, the
    invertibility proved on that block (exact for the whole set: the other rows of A are 0)."""
    xb, tb, values, partials, rows, enc = _support(F, theta, x_star, call)
    if rows is None or enc.kinks or not enc.proven:
        return None
    k = len(rows)
    if enc.block is not None and enc.block.shape == (k, k) and \
            _output_constant_off(F, partials, rows):
        # A and B vanish off the rows N, so J_N = (I - A_NN)^-1 B_N and J_Z = 0; the
        # enclosure's strict Krawczyk test proved I - A_NN nonsingular for the exact Jacobian
        p = F.program
        seed = np.eye(F.m).reshape((1,) + F.param_shape + (F.m,))
        tangent = jvp(p, values, partials, {p.theta_node: seed})
        J = np.zeros((F.n, F.m))
        if tangent is not None and k:
            B = np.broadcast_to(tangent, (1,) + F.state_shape + (F.m,)).reshape(F.n, F.m)
            J[rows] = np.linalg.solve(np.eye(k) - enc.block, B[rows])
        return J
    other = np.setdiff1d(np.arange(F.n), rows)
    J_rest = np.zeros((F.n, F.m))
    cols = frozen_columns(F, values, partials, rows, J_rest=J_rest)  # [A[:, N]  B] in one pass
    A_NN = cols[rows, :k]
    J_rest[other] = cols[other, k:]                                  # J_Z = B_Z
    rhs = frozen_columns(F, values, partials, np.zeros(0, dtype=np.int64), J_rest=J_rest)
    _prove_invertible(A_NN[None], deadline, call)
    J = J_rest.copy()
    if len(rows):
        J[rows] = np.linalg.solve(np.eye(len(rows)) - A_NN, rhs[rows])
    return J


def fpad(F, theta, x_star, steps: int, *, J0=None) -> np.ndarray:
    """Fixed-point AD: ``J_{k+1} = A(x̄) J_k + B(x̄)`` with the default selection frozen at x̄.

    Matrix-free (one Jacobian-vector pass per step) and O(1) memory in the state beyond the
    returned array. The error decays like ``rho^k``, without the ``k rho^k`` of piggyback.

    Returns
    -------
    ndarray (steps + 1, n, m)

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda w, t: w - 0.25 * ((w - 1.0) + t[0] * w), (), (1,))
    >>> Js = cv.fpad(F, [1.0], 0.5, 3)        # J_k = -1/4 (1 - 2^-k)
    >>> Js.ravel()
    array([ 0.     , -0.125  , -0.1875 , -0.21875])
    """
    call = "cv.fpad"
    steps = check_steps(steps, call)
    J = initial_jacobian(J0, F.n, F.m, call=call, block_shape=F.state_shape + F.param_shape)
    _, _, values, partials, rows, _ = _support(F, theta, x_star, call)
    Js = np.empty((steps + 1, F.n, F.m))
    Js[0] = J
    advance = frozen_step(F, values, partials)          # the Jacobian stays frozen at x̄
    with np.errstate(over="ignore", invalid="ignore"):
        if rows is None or steps < 2 or len(rows) == F.n:
            for k in range(steps):
                J = advance(J)
                Js[k + 1] = J
        else:
            _fpad_on_rows(F, values, partials, rows, advance, Js, steps)
    bad = np.flatnonzero(~np.all(np.isfinite(Js.reshape(steps + 1, -1)), axis=1))
    if len(bad):
        raise NonFiniteError(fail_message(
            call, f"a derivative iteration that overflowed at step {int(bad[0])}",
            "the frozen selection does not contract here (check cv.certify_contraction) or "
            "the map's scale is beyond float64 (rescale theta)"))
    return Js


def _fpad_on_rows(F, values, partials, rows, advance, Js, steps) -> None:
    """FPAD on the rows that can move: after one step ``J_Z = B_Z``, and then
    ``J_N <- A_NN J_N + (A_NZ B_Z + B_N)`` (fills ``Js`` in place)."""
    J = Js[0]
    other = np.setdiff1d(np.arange(F.n), rows)
    Js[1] = advance(J)
    rest = np.zeros((F.n, F.m))
    rest[other] = Js[1][other]
    const = advance(rest)[rows]
    A_NN = frozen_columns(F, values, partials, rows)[rows]
    JN = Js[1][rows]
    Js[2:] = Js[1]
    for k in range(1, steps):
        JN = A_NN @ JN + const
        Js[k + 1, rows] = JN


def fpad_vjp(F, theta, x_star, grad_x, *, grad_theta=None, tol: float = 1e-12,
             max_steps: int = 10_000, time_limit: float | None = 60.0,
             progress: bool | None = None) -> np.ndarray:
    """Reverse fixed-point AD: the hypergradient ``grad_x^T J̄ + grad_theta`` at a fixed point.

    Iterates the adjoint ``v <- A(x̄)^T v + grad_x`` (default selection frozen at ``x̄``) to its
    fixed point ``v = (I - A^T)^{-1} grad_x`` and returns ``B(x̄)^T v``: O(1) memory in the number
    of steps, one vector-Jacobian product per step, error ``rho^k``. When A vanishes outside an
    active block of at most ``MAX_BLOCK`` rows (found by the enclosure of the exact fixed
    point) and that k x k block clearly contracts, the limit is solved for directly instead.

    Where the enclosure of the exact fixed point meets a kink, the selection is the one made on
    the kink (relu'(0) = 0, ...), whichever side of it the rounded ``x_star`` fell on: an
    element of the implicit set over the enclosure's box (:func:`implicit_jacobian`), hence of a
    conservative Jacobian of the solution map, but not always its derivative when the exact
    fixed point lies within rounding of the kink without being on it.

    Parameters
    ----------
    F : Map
    theta, x_star : array_like
        Parameters and a computed fixed point (from ``cv.fixed_point``, celer, scikit-learn).
    grad_x : array_like, state shape
        The gradient of the outer loss with respect to the fixed point.
    grad_theta : array_like, parameter shape, optional
        Its direct gradient with respect to theta, added to the result.
    tol, max_steps
        Stopping test and budget of the adjoint iteration (when no active block is solved).
    time_limit : float or None
        Seconds for the proofs made at a kink (invertibility on the hull, the fixed-point
        certificate; both may solve SDPs): when they run out, UndecidedError.
    progress : bool or None
        A progress bar for the fixed-point certificate (None: automatic).

    Raises
    ------
    NotConvergedError
        When the adjoint iteration does not reach ``tol`` within ``max_steps``.
    SingularJacobianError
        At a kink, when ``I - A`` cannot be proved invertible on the convex hull of the
        A-blocks active there (the solution map may have no derivative).
    UndecidedError
        Near a kink, when no box holding the exact fixed point is proved, neither by
        Krawczyk's test nor by :func:`~conservative.certify_fixed_point` (tried then, and
        slower: an SDP), so which pieces are active there is undecided; or when
        ``time_limit`` ran out before a proof at a kink was decided.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.trace(lambda w, t: w - 0.25 * ((w - 1.0) + t[0] * w), (), (1,))
    >>> cv.fpad_vjp(F, [1.0], 0.5, 1.0)          # dx̄/dtheta = -1/4 at theta = 1
    array([-0.25])
    """
    call = "cv.fpad_vjp"
    tol = check_real(tol, name="tol", call=call, minimum=0.0, strict=True)
    max_steps = check_int(max_steps, name="max_steps", call=call, minimum=1)
    deadline = Deadline.from_time_limit(time_limit, call=call)
    progress = check_progress(progress, call=call)
    xb, tb, values, partials, rows, enc = _support(F, theta, x_star, call)
    g = as_float_array(grad_x, name="grad_x", call=call, shape=F.state_shape)[None]
    redone = None
    if enc.kinks:
        redone = _require_derivative_at_kink(F, xb[0], tb[0], values, enc, call, deadline,
                                             progress)
        if redone is not None:
            partials, rows = redone
    p = F.program
    if rows is not None:
        block = enc.block if redone is None else None
        total = _restricted_adjoint(F, values, partials, rows, g, tol, max_steps, call,
                                    block=block)
    else:
        v = g
        for k in range(1, max_steps + 1):
            cts = vjp(p, values, partials, v, call=call)
            v_new = cts[p.x_node] + g
            change = float(np.max(np.abs(v_new - v)))
            v = v_new
            if _settled(change, v, tol, call, k):
                break
        else:
            raise _not_converged(call, change, max_steps)
        total = vjp(p, values, partials, v, call=call)[p.theta_node][0]
    if grad_theta is not None:
        total = total + as_float_array(grad_theta, name="grad_theta", call=call,
                                       shape=F.param_shape)
    return np.array(total)


def _require_derivative_at_kink(F, x, theta, values, enc, call, deadline, progress):
    """Refuse a hypergradient where the solution map may have none.

    Called when the enclosure of the exact fixed point meets a kink (a proved box) or may
    meet one (no box proved). The frozen selection on the kink is an element of the implicit
    set over a box holding the exact fixed point, hence of a conservative Jacobian of the
    solution map, only if ``I - A`` is invertible for every ``A`` on the convex hull of the
    A-blocks active on that box (else there may be no Lipschitz solution map at all:
    ``x = t + x/2 + relu(x)`` has none at t = 0). With a proved box: the bound on the rows' l1
    norms from the enclosure's own sweep settles most cases (``||A||_inf < 1`` there), then a
    k x k interval test, then the hull's vertices as :func:`implicit_jacobian` does. Without
    one (Krawczyk's interval test does not close where the kinks' slopes make the interval
    hull too wide, as for a contracting relu layer with units exactly at 0):
    :func:`~conservative.certify_fixed_point` proves a box by Banach's theorem in a certified
    norm, which also proves the contraction on the box; the selection is then made on that box.

    Returns None (keep the linearisation) or ``(partials, rows)`` on the certified box."""
    if not enc.proven:
        from ..certify import certify_fixed_point
        from ..fixed_point_set import pieces_on_box
        cert = certify_fixed_point(F, theta, x, time_limit=deadline.time_limit(),
                                   progress=progress)
        if not cert.certified:
            raise UndecidedError(fail_message(
                call, f"a point where {refusal(enc)}; no fixed-point certificate either "
                f"({cert.reason})",
                "pass a more accurate x_star (polish it with cv.fixed_point), or move theta "
                "off the kink" + (", or a larger time_limit" if deadline.expired() or
                                  _timed_out(cert.reason) else "")))
        lo, hi = (np.asarray(v, dtype=float) for v in cert.x_box)
        possible = pieces_on_box(F, (lo, hi), theta)
        lin = linearise(F.program, values, tol=0.0, call=call, with_pieces=False,
                        possible=possible or None)
        rows = active_rows(F, theta, lo, hi, call=call)
        return lin.partials, (np.asarray(rows, dtype=np.int64) if len(rows) <= MAX_BLOCK
                              else None)
    if enc.row_l1 is not None and float(np.max(enc.row_l1, initial=0.0)) < 1.0:
        return None
    if enc.rows is not None and _invertible_on_box(F, theta, enc, np.asarray(enc.rows), call):
        return None
    js = F.jacobian(x, theta, hull=True, box=((enc.lo, enc.hi), theta))
    A = js.A.vertices
    rows = np.flatnonzero(np.any(A != 0, axis=(0, 2)))
    _prove_invertible(A[:, rows[:, None], rows[None, :]], deadline, call)
    return None


def _invertible_on_box(F, theta, enc, rows, call) -> bool:
    """Whether ``||I - C (I - [A_NN])||_inf < 1`` for the interval enclosure ``[A_NN]`` of the
    active block of every Jacobian on the enclosure's box (``C = (I - mid)^-1``): then ``I - A``
    is invertible for every A of that interval matrix, which holds the convex hull of the
    A-blocks on the box (A is zero outside the rows N there, so ``I - A`` is block triangular).
    One k x k interval test, no enumeration of the kinks' patterns."""
    from ..enclose import enclose_program
    k = len(rows)
    if k == 0:
        return True
    unit = np.zeros((F.n, k))
    unit[rows, np.arange(k)] = 1.0
    box = iv.Interval(np.reshape(enc.lo, F.state_shape), np.reshape(enc.hi, F.state_shape))
    _, M = enclose_program(F.program, box, iv.Interval(np.asarray(theta, dtype=float)),
                           call=call, seeds=(iv.Interval(unit.reshape(F.state_shape + (k,))),
                                             None), rows=rows)
    block = M[rows]
    if not (np.all(np.isfinite(block.lo)) and np.all(np.isfinite(block.hi))):
        return False
    eye = np.eye(k)
    try:
        C = np.linalg.inv(eye - (0.5 * block.lo + 0.5 * block.hi))
    except np.linalg.LinAlgError:
        return False
    return bool(np.all(np.isfinite(C))) and _neumann_bound(C, block) < 1.0


def _settled(change, v, tol, call, steps) -> bool:
    """The adjoint iteration's stopping test; a diverged one (an infinite change: inf <= inf
    must not stop it) raises NotConvergedError."""
    if not math.isfinite(change):
        raise _not_converged(call, change, steps)
    return change <= tol * (1.0 + float(np.max(np.abs(v), initial=0.0)))


def _not_converged(call, change, max_steps):
    return NotConvergedError(fail_message(
        call, f"an adjoint iteration still changing by {change:.3e} after {max_steps} steps"
        + (" (it diverged)" if not math.isfinite(change) else ""),
        "check that the map contracts at x_star (cv.certify_contraction) or raise "
        "max_steps"), steps=max_steps, residual=change)


def _restricted_adjoint(F, values, partials, rows, g, tol, max_steps, call, *, block=None):
    """``B^T v`` with ``v = A^T v + g`` on the active block: ``A^T`` maps only ``v_N``, so
    ``v_N <- A_NN^T v_N + g_N`` (k x k) and ``v_Z = A_NZ^T v_N + g_Z``.

    ``block``: ``A_NN`` already computed (by the enclosure's affine test). When the output is
    elementwise with partials zero on the rows Z (its rows there are constant: ``B_Z = 0``
    too, as for inactive soft-thresholds), ``v_Z`` reaches nothing and one pull-back along the
    nodes that depend on theta gives ``B^T v``."""
    p = F.program
    A_NN = block if block is not None and block.shape == (len(rows), len(rows)) else \
        frozen_columns(F, values, partials, rows)[rows]
    flat_g = g.reshape(-1)
    gN = flat_g[rows]
    vN = _adjoint_limit(A_NN, gN, tol, max_steps, call)
    ct = np.zeros(F.n)
    ct[rows] = vN
    ct = ct.reshape((1,) + F.state_shape)
    if _output_constant_off(F, partials, rows):
        return np.array(vjp(p, values, partials, ct, call=call,
                            theta_only=True)[p.theta_node][0], dtype=float)
    cts = vjp(p, values, partials, ct, call=call)
    total = np.array(cts[p.theta_node][0], dtype=float)
    vZ = np.asarray(cts[p.x_node]).reshape(-1) + flat_g
    vZ[rows] = 0.0
    if np.any(vZ):
        total = total + vjp(p, values, partials, vZ.reshape((1,) + F.state_shape),
                            call=call, theta_only=True)[p.theta_node][0]
    return total


def _output_constant_off(F, partials, rows) -> bool:
    """Whether the output node is elementwise (of the state's shape) with every partial zero
    outside ``rows``: its rows there depend on nothing (locally), so ``B_Z = A_Z = 0``."""
    p = F.program
    parts = partials.get(p.out_node)
    if parts is None or not p.cached("output_elementwise", lambda: _output_elementwise(F)):
        return False
    for part in parts:
        arr = np.asarray(part)
        if arr.ndim == 0:
            if arr != 0 and len(rows) < F.n:
                return False
            continue
        if arr.size != F.n:
            arr = np.broadcast_to(arr, (1,) + F.state_shape)
        arr = arr.reshape(-1)
        # the non-zeros all on the rows: as many there as in the whole array
        if np.count_nonzero(arr) != np.count_nonzero(arr[rows]):
            return False
    return True


def _output_elementwise(F) -> bool:
    p = F.program
    step = next((s for s in p.steps if s.node == p.out_node), None)
    return step is not None and isinstance(step.prim, Elementwise) and \
        p.shape(p.out_node) == F.state_shape


#: Spectral radius (float estimate) below which the k x k adjoint is solved, not iterated.
SOLVE_BELOW = 1.0 - 1e-6


def _adjoint_limit(A_NN, gN, tol, max_steps, call):
    """The limit of ``v <- A_NN^T v + g_N`` from ``v = g_N``.

    When the iteration clearly converges (spectral radius of the k x k block below
    ``SOLVE_BELOW``), its limit ``(I - A_NN^T)^{-1} g_N`` is solved for directly (one LU of a
    k x k matrix instead of up to ``max_steps`` products, and more accurate); otherwise it is
    iterated, so that a non-contracting block still raises NotConvergedError."""
    k = len(gN)
    if k == 0:
        return gN.copy()
    with np.errstate(all="ignore"):
        # a norm bounds the spectral radius (one pass); the eigenvalues where it is not enough
        mag = np.abs(A_NN)
        rho = min(float(np.max(np.sum(mag, axis=axis))) for axis in (0, 1))
        if not rho < SOLVE_BELOW:
            rho = float(np.max(np.abs(np.linalg.eigvals(A_NN)))) \
                if np.all(np.isfinite(A_NN)) else np.inf
    if rho < SOLVE_BELOW:
        return np.linalg.solve(np.eye(k) - A_NN.T, gN)
    vN, change, AT = gN.copy(), 0.0, A_NN.T.copy()
    with np.errstate(over="ignore", invalid="ignore"):      # a divergence raises, below
        for step in range(1, max_steps + 1):
            new = AT @ vN + gN
            change = float(np.max(np.abs(new - vN)))
            vN = new
            if _settled(change, vN, tol, call, step):
                return vN
    raise _not_converged(call, change, max_steps)


def one_step(F, x, theta) -> np.ndarray:
    """One-step differentiation: ``d_theta F(x, theta)`` (default selection), shape (n, m).

    Evaluate it at the last iterate ``x_{k-1}``; exact in the limit only when
    ``d_x F(x̄) = 0`` (e.g. Newton's method), biased otherwise.

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda w, t: w - 0.25 * ((w - 1.0) + t[0] * w), (), (1,))
    >>> cv.one_step(F, 0.5, [1.0])        # -alpha w, whereas the true derivative is -1/4
    array([[-0.125]])
    """
    call = "cv.one_step"
    xb, tb = F.point(x, theta, call=call)
    seeds = {F.program.theta_node: np.eye(F.m).reshape((1,) + F.param_shape + (F.m,))}
    if is_numerical_fixed_point(F, xb[0], tb[0]):
        # at (numerically) the fixed point: the selection at the exact one, as fpad
        _, _, values, partials, _ = linearisation_at_fixed_point(F, theta, x, call=call)
        tangent = jvp(F.program, values, partials, seeds)
    else:
        _, tangent = value_and_jvp(F.program, xb, tb, seeds, call=call)
    return tangent_matrix(tangent, F.n, F.m)[0]
