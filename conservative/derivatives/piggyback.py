"""Derivatives along the iterations: piggyback (forward and reverse) and its set-valued form.

Piggyback differentiation runs the algorithm and its derivative together:

.. math::

    x_{k+1} = F(x_k, \\theta), \\qquad J_{k+1} = A_k J_k + B_k,
    \\quad [A_k\\; B_k] \\in D_F(x_k, \\theta),

which is what forward-mode AD through the unrolled loop computes, with the AD program's
selection at kinks. Set-valued, ``𝒥_{k+1} = {A J + B : [A B] in D_F(x_k, theta), J in 𝒥_k}``.
At a fixed point the set-valued map is the Hutchinson operator of an iterated function system;
when its linear parts contract in one norm (a certificate), it has a unique compact fixed point,
the attractor, itself a conservative Jacobian of the solution map (Bolte, Pauwels & Vaiter,
NeurIPS 2022).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .._types import (as_float_array, check_bool, check_int, check_real, check_steps, check_tol,
                     initial_jacobian)
from ..distances import hull_vertex_indices, net_merge
from ..errors import InputError, SetTooLargeError, fail_message
from .iterate import derivative_step
from ..evaluate import evaluate
from ..jacobian import jacobian_set, linearise, vjp

__all__ = ["piggyback", "piggyback_vjp", "piggyback_sets"]


def _initial_jacobian(F, J0, call):
    return initial_jacobian(J0, F.n, F.m, call=call,
                            block_shape=F.state_shape + F.param_shape)


def piggyback(F, x0, theta, steps: int, *, J0=None, selection="default", hull: bool = False,
              tol: float = 0.0, check: bool = True, history: bool = True):
    """Run the algorithm and its piggyback derivative ``J_k = d x_k / d theta`` together.

    Parameters
    ----------
    F : Map
    x0, theta : array_like
        Initial state and parameters.
    steps : int
    J0 : array_like (n, m), optional
        Derivative of ``x0`` w.r.t. ``theta`` (zero by default).
    selection : str, sequence of int, or callable
        Which element ``[A_k B_k]`` of ``D_F(x_k, theta)`` each step uses:

        ``"default"``
            each primitive's documented AD choice (what JAX/PyTorch-like AD does). Matrix-free:
            ``J`` is pushed through the program as ``m`` tangent directions (forward mode), so
            ``A`` is never formed; memory O(n m) per step.
        ``"min_norm"``
            the element of least Frobenius norm of the set (hull or finite, per ``hull``).
        sequence of int
            one index per step into ``F.jacobian(x_k, theta, hull=False).vertices``.
        callable
            ``selection(k, jacobian_set) -> [A B]`` of shape (n, n + m): an adversarial
            switching rule or any user policy. With ``check=True`` the returned matrix must be a
            member of the set (``hull`` decides which set), else an error.
    hull : bool
        The set handed to ``"min_norm"`` and callables: convex hull (True) or finite (False).
    tol : float
        Activity tolerance for kinks (see :meth:`Map.jacobian`).
    check : bool
        Verify that a callable's matrices belong to the set.
    history : bool
        Keep every iterate and derivative (memory ``(steps + 1) n m``). With False only the
        last ones are kept and returned, with a leading axis of length 1: the choice for many
        parameters (at n = m = 2000 each J is 32 MB).

    Returns
    -------
    xs : ndarray (steps + 1, *state_shape)
    Js : ndarray (steps + 1, n, m)
        (``(1, ...)``: the last ones, with ``history=False``.)

    Examples
    --------
    Gradient descent on f(w) = (w-1)^2/2 + theta w^2/2 with step 1/4 (docs/reference_values.md):
    J_k - J̄ = 0.25 (1 + k) 0.5^k.

    >>> import numpy as np, conservative as cv
    >>> F = cv.trace(lambda w, t: w - 0.25 * ((w - 1.0) + t[0] * w), (), (1,))
    >>> xs, Js = cv.piggyback(F, 0.0, [1.0], 4)
    >>> Js[:, 0, 0] - (-0.25)
    array([0.25   , 0.25   , 0.1875 , 0.125  , 0.078125])
    """
    call = "cv.piggyback"
    steps = check_steps(steps, call)
    hull = check_bool(hull, name="hull", call=call)
    tol = check_tol(tol, call)
    xb, tb = F.point(x0, theta, call=call)
    J = _initial_jacobian(F, J0, call)
    kept = steps + 1 if history else 1
    xs = np.empty((kept,) + F.state_shape)
    Js = np.empty((kept, F.n, F.m))
    xs[0], Js[0] = xb[0], J
    J = Js[0]
    if isinstance(selection, str) and selection == "default":
        advance = derivative_step(F, tb)

        def step(k, x, J):
            return advance(x, J)
    else:
        choose = _selector(F, selection, steps, hull=hull, check=check, call=call)
        set_hull = hull if not isinstance(selection, Sequence) else False

        def step(k, x, J):
            # one evaluation gives the next iterate and the set at this one
            values = evaluate(F.program, x, tb, call=call, keep=True)
            js = jacobian_set(F.program, values, hull=set_hull, tol=tol, call=call)
            M = choose(k, js)
            x_new = np.broadcast_to(values[F.program.out_node], (1,) + F.state_shape)
            return x_new, M[:, :F.n] @ J + M[:, F.n:]
    x = xb
    for k in range(steps):
        x, J = step(k, x, J)
        slot = k + 1 if history else 0
        xs[slot], Js[slot] = x[0], J
        J = Js[slot]        # the step's own array is freed now (one n x m array less alive)
    return xs, Js


def piggyback_vjp(F, x0, theta, steps: int, grad_x, *, grad_theta=None) -> np.ndarray:
    """Reverse-mode piggyback: the gradient of ``L(x_steps, theta)`` w.r.t. ``theta``.

    Backpropagation through the unrolled iterations with the default selection: stores the
    iterates (memory O(steps n)), then pulls ``grad_x = dL/dx_steps`` back,
    ``g <- A_k^T g`` while accumulating ``B_k^T g``. Equals ``grad_x^T J_steps`` of
    :func:`piggyback` (with ``J0 = 0``), at the cost of one reverse pass instead of ``m``
    tangent directions: the choice for hypergradients with many parameters.

    Parameters
    ----------
    grad_x : array_like, shape state_shape
        Gradient of the loss w.r.t. the last iterate.
    grad_theta : array_like, shape param_shape, optional
        Direct gradient of the loss w.r.t. theta (added).

    Returns
    -------
    ndarray, shape param_shape

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.trace(lambda w, t: w - 0.25 * ((w - 1.0) + t[0] * w), (), (1,))
    >>> g = cv.piggyback_vjp(F, 0.0, [1.0], 4, 1.0)
    >>> bool(np.isclose(g[0], cv.piggyback(F, 0.0, [1.0], 4)[1][-1, 0, 0]))
    True
    """
    call = "cv.piggyback_vjp"
    steps = check_steps(steps, call)
    xb, tb = F.point(x0, theta, call=call)
    g = as_float_array(grad_x, name="grad_x", call=call, shape=F.state_shape)[None]
    total = np.zeros(F.param_shape) if grad_theta is None else \
        as_float_array(grad_theta, name="grad_theta", call=call, shape=F.param_shape).copy()
    xs = [xb]
    for _ in range(steps):
        xs.append(evaluate(F.program, xs[-1], tb, call=call))
    p = F.program
    for k in reversed(range(steps)):
        values = evaluate(p, xs[k], tb, call=call, keep=True)
        lin = linearise(p, values, tol=0.0, call=call, with_pieces=False)
        cts = vjp(p, values, lin.partials, g, call=call)
        total += cts[p.theta_node][0]
        g = cts[p.x_node]
    return total


def _selector(F, selection, steps, *, hull, check, call) -> Callable:
    width = F.n + F.m
    if isinstance(selection, str):
        if selection == "min_norm":
            return lambda k, js: js.min_norm()
        raise InputError(fail_message(call, f"selection={selection!r}",
                                      'pass "default", "min_norm", a sequence of vertex '
                                      "indices or a callable (k, JacobianSet) -> [A B]"))
    if callable(selection):
        def choose(k, js):
            M = as_float_array(selection(k, js), name=f"the selection's matrix at step {k}",
                               call=call, shape=(F.n, width))
            # membership entry by entry at each entry's own scale (JacobianSet.contains): an
            # atol scaled by the largest entry would let a 1e6 entry hide a 3e-7 one
            if check and not js.contains(M, atol=0.0):
                raise InputError(fail_message(
                    call, f"a selection at step {k} that is not in the conservative Jacobian "
                    f"({js})", "return an element of the set given to the callable (for "
                    "example js.vertices[i] or a convex combination when hull=True), or pass "
                    "check=False for a deliberately outside policy"))
            return M
        return choose
    if not isinstance(selection, Sequence) and not isinstance(selection, np.ndarray):
        raise InputError(fail_message(call, f"selection={selection!r}"[:200],
                                      'pass "default", "min_norm", a sequence of vertex '
                                      "indices or a callable (k, JacobianSet) -> [A B]"))
    indices = list(selection)
    if len(indices) < steps or not all(isinstance(i, (int, np.integer)) for i in indices):
        raise InputError(fail_message(call, f"a selection sequence of length {len(indices)} "
                                      f"for {steps} steps", "pass one integer vertex index "
                                      "per step"))

    def by_index(k, js):
        verts = js.vertices
        i = int(indices[k])
        if not 0 <= i < len(verts):
            raise InputError(fail_message(call, f"vertex index {i} at step {k}, where the set "
                                          f"has {len(verts)} vertices",
                                          "pass indices into F.jacobian(x_k, theta, "
                                          "hull=False).vertices"))
        return verts[i]
    return by_index


def piggyback_sets(F, x0, theta, steps: int, *, J0=None, hull: bool = False, tol: float = 0.0,
                   merge: float = 1e-12, max_points: int = 100_000):
    """Propagate the whole set ``𝒥_{k+1} = {A J + B : [A B] in D_F(x_k), J in 𝒥_k}``.

    Points closer than ``merge`` (relative to the set's scale) are merged, so the size stays
    bounded by the geometry of the set. With ``hull=True`` the set propagated is the convex
    hull: ``(A, J) -> A J + B`` is bilinear, so the hull of the images is the hull of the
    images of vertex pairs, and only the hull's vertices are kept (exactly for ``n m <= 3``;
    above that every merged point is kept, which generates the same hull).

    Returns
    -------
    xs : ndarray (steps + 1, *state_shape)
    sets : list of ndarray, ``sets[k]`` of shape (N_k, n, m)

    Raises
    ------
    SetTooLargeError
        When a step would hold more than ``max_points`` points.
    """
    call = "cv.piggyback_sets"
    steps = check_steps(steps, call)
    hull = check_bool(hull, name="hull", call=call)
    merge = check_real(merge, name="merge", call=call, minimum=0.0)
    max_points = check_int(max_points, name="max_points", call=call, minimum=1)
    xb, tb = F.point(x0, theta, call=call)
    K = _initial_jacobian(F, J0, call)[None]
    xs = np.empty((steps + 1,) + F.state_shape)
    xs[0] = xb[0]
    sets = [K]
    x = xb[0]
    for k in range(steps):
        verts = F.jacobian(x, tb[0], hull=hull, tol=tol).vertices
        A, B = verts[:, :, :F.n], verts[:, :, F.n:]
        new = (np.einsum("vij,pjk->vpik", A, K) + B[:, None]).reshape(-1, F.n, F.m)
        scale = max(1.0, float(np.max(np.abs(new))))
        K = net_merge(new, merge * scale)
        if hull:
            keep = hull_vertex_indices(K.reshape(len(K), -1))
            K = K if keep is None else K[keep]
        if len(K) > max_points:
            raise SetTooLargeError(fail_message(
                call, f"{len(K)} points at step {k + 1}", "raise max_points or merge, or use "
                "cv.attractor for the limit set"))
        x = F(x, tb[0])
        xs[k + 1] = x
        sets.append(K)
    return xs, sets
