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

from fractions import Fraction

import numpy as np

from .._exact import is_psd, to_fractions
from .._types import (as_float_array, as_matrix_stack, check_bool, check_int, check_real,
                     check_steps, initial_jacobian)
from ..certify import certify_contraction
from ..errors import NotConvergedError, SingularJacobianError, fail_message
from ..fixed_point_set import is_numerical_fixed_point, refusal
from .iterate import (blocks_at_fixed_point, frozen_step,
                      linearisation_at_fixed_point)
from ..jacobian import tangent_matrix, jvp, value_and_jvp, vjp
from ..sets import JacobianSet

__all__ = ["implicit_jacobian", "invertible_on_hull", "fpad", "fpad_vjp", "one_step"]


def invertible_on_hull(A: np.ndarray) -> tuple[bool, str]:
    """Prove that ``I - A`` is invertible for every ``A`` in ``conv{A_i}``.

    Two exact sufficient tests, tried in order:

    1. a contraction certificate of ``{A_i}`` (JSR < 1, so every spectral radius on the hull is
       below 1);
    2. a matrix ``C`` (here ``(I - mean A_i)^{-1}``, rounded) such that the symmetric part of
       ``C (I - A_i)`` is positive definite at every vertex, checked in rational arithmetic. It is
       affine in ``A``, so it stays positive definite on the hull, and ``C (I - A)`` cannot be
       singular there.

    Returns
    -------
    proved : bool
    how : str
        Which test succeeded, or why neither did.
    """
    A = as_matrix_stack(A, name="A", call="cv.invertible_on_hull")
    cert = certify_contraction(A)
    if cert.certified:
        return True, f"contraction certificate ({cert.norm}, rho = {cert.rho:.4g})"
    n = A.shape[1]
    eye = np.eye(n)
    try:
        C = np.linalg.inv(eye - A.mean(axis=0))
    except np.linalg.LinAlgError:
        return False, "I - mean(A) is singular"
    Cq = to_fractions(C)
    for Ai in A:
        Mq = to_fractions(eye - Ai)
        prod = [[sum((Cq[i][k] * Mq[k][j] for k in range(n)), Fraction(0)) for j in range(n)]
                for i in range(n)]
        sym = [[(prod[i][j] + prod[j][i]) / 2 for j in range(n)] for i in range(n)]
        if not is_psd(sym, strict=True):
            return False, ("no contraction certificate and no uniform positive-definite "
                           "preconditioning of I - A on the hull was found")
    return True, "sym(C (I - A)) positive definite on the hull (exact check)"


def implicit_jacobian(F, theta, x_star, *, hull: bool = True, tol: float = 0.0) -> JacobianSet:
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

    Raises
    ------
    SingularJacobianError
        When ``I - A`` cannot be proved invertible on the whole convex hull of the A-blocks
        (vertex-only checks are wrong: for ``F(x, y) = |y| - x`` at 0 both vertices give an
        invertible ``I - A`` but their midpoint does not).

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.5 * t, (), ())
    >>> cv.implicit_jacobian(F, 0.0, 0.0).vertices.ravel()       # B/(1-A) for A in {0, 1/2}
    array([0.5, 1. ])
    """
    call = "cv.implicit_jacobian"
    hull = check_bool(hull, name="hull", call=call)
    A, AB, enclosure = blocks_at_fixed_point(F, theta, x_star, hull=hull, tol=tol, call=call)
    proved, how = invertible_on_hull(A) if enclosure.proven else (False, refusal(enclosure))
    if not proved:
        raise SingularJacobianError(fail_message(
            call, f"a Jacobian set whose I - A may be singular on its convex hull ({how})",
            "the implicit function theorem does not apply here; use the piggyback attractor "
            "(cv.attractor) or move theta off the degenerate point"))
    images = np.linalg.solve(np.eye(F.n)[None] - AB[:, :, :F.n], AB[:, :, F.n:])
    return JacobianSet.from_matrices(images, hull=hull)


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
    _, _, values, partials = linearisation_at_fixed_point(F, theta, x_star, call=call)
    Js = np.empty((steps + 1, F.n, F.m))
    Js[0] = J
    advance = frozen_step(F, values, partials)          # the Jacobian stays frozen at x̄
    for k in range(steps):
        J = advance(J)
        Js[k + 1] = J
    return Js


def fpad_vjp(F, theta, x_star, grad_x, *, grad_theta=None, tol: float = 1e-12,
             max_steps: int = 10_000) -> np.ndarray:
    """Reverse fixed-point AD: the hypergradient ``grad_x^T J̄ + grad_theta`` at a fixed point.

    Iterates the adjoint ``v <- A(x̄)^T v + grad_x`` (default selection frozen at ``x̄``) to its
    fixed point ``v = (I - A^T)^{-1} grad_x`` and returns ``B(x̄)^T v``: O(1) memory in the number
    of steps, one vector-Jacobian product per step, error ``rho^k``.

    Raises
    ------
    NotConvergedError
        When the adjoint iteration does not reach ``tol`` within ``max_steps``.

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
    _, _, values, partials = linearisation_at_fixed_point(F, theta, x_star, call=call)
    g = as_float_array(grad_x, name="grad_x", call=call, shape=F.state_shape)[None]
    p = F.program
    v = g
    for k in range(1, max_steps + 1):
        cts = vjp(p, values, partials, v, call=call)
        v_new = cts[p.x_node] + g
        change = float(np.max(np.abs(v_new - v)))
        v = v_new
        if change <= tol * (1.0 + float(np.max(np.abs(v)))):
            break
    else:
        raise NotConvergedError(fail_message(
            call, f"an adjoint iteration still changing by {change:.3e} after {max_steps} steps",
            "check that the map contracts at x_star (cv.certify_contraction) or raise "
            "max_steps"), steps=max_steps, residual=change)
    total = vjp(p, values, partials, v, call=call)[p.theta_node][0]
    if grad_theta is not None:
        total = total + as_float_array(grad_theta, name="grad_theta", call=call,
                                       shape=F.param_shape)
    return np.array(total)


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
        _, _, values, partials = linearisation_at_fixed_point(F, theta, x, call=call)
        tangent = jvp(F.program, values, partials, seeds)
    else:
        _, tangent = value_and_jvp(F.program, xb, tb, seeds, call=call)
    return tangent_matrix(tangent, F.n, F.m)[0]
