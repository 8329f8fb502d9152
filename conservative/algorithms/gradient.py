"""Gradient methods on a user-supplied gradient: gradient descent, heavy-ball, Newton."""

from __future__ import annotations

import numpy as np

from .. import dsl
from .. import linalg
from .._types import as_shape
from ..dsl import Sym
from ..errors import ShapeError, fail_message
from ..map import trace
from ._base import AlgorithmMap, Leading, identity
from ._checks import dimension, function, nonnegative, positive

__all__ = ["gradient_descent", "heavy_ball", "newton"]


def _vector(value, n: int, what: str, call: str):
    """The user's gradient as a symbolic (n,) vector (a scalar is accepted when n == 1)."""
    shape = value.shape if isinstance(value, Sym) else np.shape(value)
    if shape == (n,):
        return value
    if shape == () and n == 1:
        return dsl.reshape(value, (1,)) if isinstance(value, Sym) else np.reshape(value, (1,))
    raise ShapeError(fail_message(call, f"{what} returning shape {shape}",
                                  f"return the gradient as an array of shape ({n},)"))


def gradient_descent(grad, alpha, n, param_shape=(1,)) -> AlgorithmMap:
    """Gradient descent ``x_{k+1} = x_k - alpha * grad(x_k, theta)``.

    Parameters
    ----------
    grad : callable
        ``grad(x, theta)`` written in the DSL, returning the gradient of ``f(., theta)`` at
        ``x`` as a symbolic array of shape (n,). It may be nonsmooth (``cv.relu``, ...).
    alpha : float
        Positive step.
    n : int
        Dimension of ``x``; the state has shape (n,).
    param_shape : tuple of int
        Shape of ``theta``.

    Returns
    -------
    AlgorithmMap
        ``.solution(x)`` is ``x``; ``.contraction`` None (it depends on ``grad``: for an
        ``mu``-strongly convex, ``L``-smooth f and ``alpha <= 2 / (mu + L)`` it is
        ``max(|1 - alpha mu|, |1 - alpha L|)``).

    Raises
    ------
    InputError
        When ``grad`` is not callable, ``alpha`` not positive, ``n`` not a positive integer.
    ShapeError
        When ``grad`` returns the wrong shape.

    References: Cauchy (1847); Bolte, Pauwels & Vaiter, NeurIPS 2022, section 2 (the
    ``k rho^k`` example of docs/reference_values.md).

    Examples
    --------
    f(x) = (x - 1)^2 / 2 + theta x^2 / 2, with ``x_bar = 1 / (1 + theta)``:

    >>> import numpy as np, conservative as cv
    >>> F = cv.algorithms.gradient_descent(lambda x, t: (x - 1.0) + t * x, 0.25, 1)
    >>> r = cv.fixed_point(F, np.zeros(1), np.ones(1))
    >>> r.x
    array([0.5])
    """
    call = "cv.algorithms.gradient_descent"
    grad = function(grad, "grad", call, "grad(x, theta) returning the symbolic gradient")
    alpha = positive(alpha, "alpha", call, " (the step size)")
    n = dimension(n, "n", call)
    param_shape = as_shape(param_shape, name="param_shape", call=call)

    def gd_step(x, theta):
        return x - alpha * _vector(grad(x, theta), n, "grad", call)

    F = trace(gd_step, (n,), param_shape)
    return AlgorithmMap(F, name="gradient descent", solution=identity,
                        info={"alpha": alpha})


def heavy_ball(grad, alpha, beta, n, param_shape=(1,)) -> AlgorithmMap:
    """Polyak's heavy-ball method, a stationary map on the stacked state ``(x_k, x_{k-1})``.

    Update::

        x_{k+1} = x_k - alpha * grad(x_k, theta) + beta * (x_k - x_{k-1})

    as the map ``(x_k, x_{k-1}) -> (x_{k+1}, x_k)`` on states of shape (2n,). On a quadratic
    of curvature c its Jacobian is ``[[1 + beta - alpha c, -beta], [1, 0]]``: Schur stable for
    ``0 <= beta < 1`` and ``0 < alpha c < 2 (1 + beta)``, yet of 2-norm at least 1, and at a kink
    between curvatures the pair of such matrices may have joint spectral radius > 1 (derivatives
    may diverge while iterates converge).

    Parameters
    ----------
    grad : callable
        ``grad(x, theta)`` in the DSL, returning the gradient at ``x`` with shape (n,).
    alpha : float
        Positive step.
    beta : float
        Momentum, ``beta >= 0``.
    n : int
        Dimension of ``x``.
    param_shape : tuple of int
        Shape of ``theta``.

    Returns
    -------
    AlgorithmMap
        ``.solution(state)`` is ``state[:n]``; ``.contraction`` None (see above: no norm
        contraction can be read off the parameters alone).

    Raises
    ------
    InputError
        When ``grad`` is not callable, ``alpha <= 0``, ``beta < 0``, ``n`` not a positive
        integer.
    ShapeError
        When ``grad`` returns the wrong shape.

    References: Polyak, *Some methods of speeding up the convergence of iteration methods*
    (1964); Lessard, Recht & Packard, *Analysis and design of optimization algorithms via
    integral quadratic constraints* (SIAM J. Optim. 2016), section 4.6 (a cycling example);
    Bolte, Pauwels & Vaiter, NeurIPS 2022 (divergence of the derivatives).

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.algorithms.heavy_ball(lambda x, t: t * x, 0.25, 0.25, 1)
    >>> F.state_shape
    (2,)
    >>> F.jacobian(np.zeros(2), np.ones(1)).A.vertices[0]
    array([[ 1.  , -0.25],
           [ 1.  ,  0.  ]])
    >>> float(np.abs(F.solution(cv.iterate(F, np.ones(2), np.ones(1), 60)[-1])[0])) < 1e-12
    True
    """
    call = "cv.algorithms.heavy_ball"
    grad = function(grad, "grad", call, "grad(x, theta) returning the symbolic gradient")
    alpha = positive(alpha, "alpha", call, " (the step size)")
    beta = nonnegative(beta, "beta", call, " (the momentum)")
    n = dimension(n, "n", call)
    param_shape = as_shape(param_shape, name="param_shape", call=call)

    def hb_step(s, theta):
        x, x_prev = s[:n], s[n:]
        g = _vector(grad(x, theta), n, "grad", call)
        return dsl.concatenate([x - alpha * g + beta * (x - x_prev), x])

    F = trace(hb_step, (2 * n,), param_shape)
    return AlgorithmMap(F, name="heavy-ball", solution=Leading(n),
                        info={"alpha": alpha, "beta": beta})


def newton(grad, hess, n, param_shape=(1,)) -> AlgorithmMap:
    """Newton's method ``x_{k+1} = x_k - hess(x_k, theta)^{-1} grad(x_k, theta)``.

    The map for *one-step differentiation* (Bolte, Pauwels & Vaiter 2023): at a nondegenerate
    minimiser ``x_bar`` the Jacobian ``d_x F(x_bar)`` vanishes, so ``d_theta F(x_{k-1}, theta)``
    tends to the derivative of the solution ``-hess^{-1} d_theta grad``. The linear solve is the
    smooth primitive :func:`conservative.linalg.solve`.

    Parameters
    ----------
    grad : callable
        ``grad(x, theta)`` in the DSL, returning the gradient, shape (n,).
    hess : callable
        ``hess(x, theta)`` in the DSL, returning the Hessian, shape (n, n), invertible along the
        iterates (a singular one raises at evaluation).
    n : int
        Dimension of ``x``.
    param_shape : tuple of int
        Shape of ``theta``.

    Returns
    -------
    AlgorithmMap
        ``.solution(x)`` is ``x``; ``.contraction`` None (locally 0 at a nondegenerate
        minimiser of a smooth f: quadratic convergence).

    Raises
    ------
    InputError
        When ``grad`` or ``hess`` is not callable or ``n`` not a positive integer; when the
        Hessian is singular at an evaluated point.
    ShapeError
        When ``grad`` or ``hess`` returns the wrong shape.

    References: Bolte, Pauwels & Vaiter, *One-step differentiation of iterative algorithms*
    (NeurIPS 2023).

    Examples
    --------
    f(x) = exp(x) / 2 + x^2 / 2 - theta x; at the solution ``d_x F = 0`` and ``d_theta F`` is
    the implicit derivative ``1 / f''(x)``:

    >>> import numpy as np, conservative as cv
    >>> F = cv.algorithms.newton(lambda x, t: 0.5 * cv.exp(x) + x - t,
    ...                          lambda x, t: cv.reshape(0.5 * cv.exp(x) + 1.0, (1, 1)), 1)
    >>> x = cv.fixed_point(F, np.zeros(1), np.ones(1)).x
    >>> J = F.jacobian(x, np.ones(1)).default
    >>> bool(abs(J[0, 0]) < 1e-12), bool(np.isclose(J[0, 1], 1.0 / (0.5 * np.exp(x[0]) + 1.0)))
    (True, True)
    """
    call = "cv.algorithms.newton"
    grad = function(grad, "grad", call, "grad(x, theta) returning the symbolic gradient")
    hess = function(hess, "hess", call, "hess(x, theta) returning the symbolic (n, n) Hessian")
    n = dimension(n, "n", call)
    param_shape = as_shape(param_shape, name="param_shape", call=call)

    def newton_step(x, theta):
        g = _vector(grad(x, theta), n, "grad", call)
        H = hess(x, theta)
        shape = H.shape if isinstance(H, Sym) else np.shape(H)
        if shape != (n, n):
            raise ShapeError(fail_message(call, f"hess returning shape {shape}",
                                          f"return the Hessian as an array of shape ({n}, {n})"))
        return x - linalg.solve(H, g)

    F = trace(newton_step, (n,), param_shape)
    return AlgorithmMap(F, name="Newton", solution=identity, info={})
