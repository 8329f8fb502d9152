"""Counterexamples: algorithms whose iterates converge while their automatic derivatives diverge.

Two families:

**Momentum at a kink** (Bolte, Pauwels & Vaiter, NeurIPS 2022). Heavy-ball on a piecewise
quadratic ``f`` whose curvature is ``a1`` left of its minimiser ``theta`` and ``a2`` right of it,

.. math::

    x_{k+1} = x_k - \\alpha f'(x_k) + \\beta (x_k - x_{k-1}),\\qquad
    M(c) = \\begin{pmatrix} 1 + \\beta - \\alpha c & -\\beta \\\\ 1 & 0 \\end{pmatrix}.

Started at the solution, the iterates stay there. The conservative Jacobian at the kink holds
``M(a1)`` and ``M(a2)``, each Schur stable (each curvature alone is a convergent heavy-ball), and
each selection's own fixed point is the true derivative ``d x̄ / d theta = 1``. Yet the joint
spectral radius of ``{M(a1), M(a2)}`` can exceed 1: a piggyback run whose AD selection switches
along the product word diverges at that rate, while implicit differentiation is exact.

**A spurious default** (a program, not a function, decides the derivative). Gradient descent on
``(x - theta)^2 / 2`` with the gradient coded as the identity ``2 (relu(x - theta) -
relu(theta - x)) - (x - theta)``: at the solution the AD default (``relu'(0) = 0`` twice) gives
``A = 1 + alpha``, and forward-mode AD through the unrolled loop diverges, in JAX as here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import dsl as cv
from .algorithms import heavy_ball
from ._types import check_int, check_real
from .certify import jsr
from .certify.counterexample import (TARGET_NORM, Counterexample, find_counterexample,
                                     steps_to_reach, verify_counterexample)
from .errors import ConservativeError, InputError, fail_message
from .map import trace

__all__ = ["momentum_divergence", "find_momentum_counterexample",
           "spurious_relu_gradient", "heavy_ball_matrix", "heavy_ball_at_kink"]


def heavy_ball_matrix(alpha: float, beta: float, c: float) -> np.ndarray:
    """``M(c) = [[1 + beta - alpha c, -beta], [1, 0]]``: heavy-ball on a curvature-c quadratic."""
    call = "cv.examples.heavy_ball_matrix"
    alpha, beta, c = (check_real(v, name=name, call=call)
                      for v, name in ((alpha, "alpha"), (beta, "beta"), (c, "c")))
    return np.array([[1.0 + beta - alpha * c, -beta], [1.0, 0.0]])


def heavy_ball_at_kink(alpha: float, beta: float, a1: float, a2: float):
    """Heavy-ball with curvature ``a1`` left of the minimiser ``theta`` and ``a2`` right of it:
    the Map (state ``(x_k, x_{k-1})``, ``theta`` of shape (1,))."""
    def grad(x, t):
        d = x - t[0]
        return cv.where(d > 0, a2 * d, a1 * d)

    return heavy_ball(grad, alpha, beta, 1, param_shape=(1,))


def _heavy_ball_counterexample(alpha: float, beta: float, a1: float, a2: float, *,
                               description: str) -> Counterexample:
    """Heavy-ball at the kink, started at theta = 0: a verified counterexample whose selected
    matrices are each Schur stable."""
    F = heavy_ball_at_kink(alpha, beta, a1, a2)
    theta, x0 = np.array([0.0]), np.zeros(2)
    ce = find_counterexample(F, theta, x0, description=description,
                             true_derivative=np.array([[1.0], [1.0]]))
    if len(ce.matrices) != 2:
        raise ConservativeError("Counterexample: the kink does not expose two Jacobians")
    measured = verify_counterexample(F, theta, x0, ce.steps, ce.selection, ce.word,
                                     ce.matrices, require_stable=True)
    return replace(ce, measured=measured)


def momentum_divergence() -> Counterexample:
    """Heavy-ball with alpha = beta = 1/4 at a kink between curvatures 1 and 9.

    Each ``M(c)`` has spectral radius 1/2; the joint spectral radius is (1 + sqrt 2)/2 ≈ 1.207
    (docs/reference_values.md), reached by alternating the two. Implicit differentiation gives the
    true derivative 1; piggyback switching along the word diverges like 1.207^k.

    Examples
    --------
    >>> import conservative as cv
    >>> ce = cv.examples.momentum_divergence()
    >>> round(ce.growth, 6), ce.word in ((0, 1), (1, 0))
    (1.207107, True)
    """
    return _heavy_ball_counterexample(0.25, 0.25, 1.0, 9.0, description=(
        "heavy-ball (alpha = beta = 1/4) on a piecewise quadratic with curvatures 1 and 9 "
        "meeting at its minimiser"))


def find_momentum_counterexample(seed: int, *, max_tries: int = 2000) -> Counterexample:
    """Search heavy-ball parameters and curvatures for a new counterexample.

    Draws ``alpha``, ``beta`` and curvatures ``a1 < a2`` at random (seeded), keeps draws where
    both ``M(a1)`` and ``M(a2)`` are Schur stable (heavy-ball converges on either quadratic),
    and asks :func:`conservative.jsr` for a product whose spectral radius exceeds 1. The result
    is verified independently before it is returned.

    Raises
    ------
    ConservativeError
        When nothing is found within ``max_tries`` draws.

    Examples
    --------
    >>> import conservative as cv
    >>> ce = cv.examples.find_momentum_counterexample(0)
    >>> ce.growth > 1 and max(ce.measured["spectral_radii"]) < 1
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(fail_message("cv.examples.find_momentum_counterexample",
                                      f"seed={seed!r}", "pass a non-negative integer seed"))
    rng = np.random.default_rng(int(seed))
    for _ in range(max_tries):
        alpha = float(rng.uniform(0.05, 0.6))
        beta = float(rng.uniform(0.1, 0.95))
        a1, a2 = np.sort(rng.uniform(0.1, 4.0 / alpha, size=2))
        mats = np.array([heavy_ball_matrix(alpha, beta, c) for c in (a1, a2)])
        radii = np.max(np.abs(np.linalg.eigvals(mats)), axis=1)
        if np.any(radii >= 0.98):
            continue
        if jsr(mats, tol=1e-3).lower <= 1.02:
            continue
        return _heavy_ball_counterexample(alpha, beta, float(a1), float(a2), description=(
            f"heavy-ball (alpha = {alpha:.4f}, beta = {beta:.4f}) on a piecewise quadratic "
            f"with curvatures {a1:.4f} and {a2:.4f} meeting at its minimiser (seed {seed})"))
    raise ConservativeError(fail_message("cv.examples.find_momentum_counterexample",
                                         f"seed={seed} with max_tries={max_tries}",
                                         "raise max_tries or try another seed"))


def spurious_relu_gradient(alpha: float = 0.5, steps: int | None = None) -> Counterexample:
    """Gradient descent whose gradient is an identity written with ReLUs.

    ``f(x) = (x - theta)^2 / 2`` with ``f'`` coded as ``2 (relu(d) - relu(-d)) - d``,
    ``d = x - theta`` (equal to ``d`` everywhere). At the solution the AD default gives
    ``d/dx f' = -1``, so ``A = 1 + alpha`` and the default piggyback run diverges while the
    iterates sit at the solution; the conservative set is ``{1 + alpha, 1 - alpha,
    1 - 3 alpha}`` and contains the true ``1 - alpha``. ``steps`` defaults to a run long enough
    for ``|J|`` to reach 1e6.

    Examples
    --------
    >>> import conservative as cv
    >>> ce = cv.examples.spurious_relu_gradient()
    >>> ce.selection, round(ce.growth, 6), ce.steps >= 35
    ('default', 1.5, True)
    """
    call = "cv.examples.spurious_relu_gradient"
    alpha = check_real(alpha, name="alpha", call=call, minimum=0.0, strict=True)
    if not alpha < 2.0:
        raise InputError(fail_message(call, f"alpha={alpha!r}", "pass 0 < alpha < 2 (where the "
                                      "iteration x <- x - alpha (x - theta) converges)"))
    target = TARGET_NORM if steps is None else 0.0
    steps = steps_to_reach(1.0 + alpha, 1) if steps is None else \
        check_int(steps, name="steps", call=call, minimum=1)

    def step(x, t):
        d = x - t
        return x - alpha * (2.0 * (cv.relu(d) - cv.relu(-d)) - d)

    F = trace(step, (), ())
    theta, x0 = np.array(1.0), np.array(1.0)
    A_default = F.jacobian(x0, theta).default[:, :1]
    measured = verify_counterexample(F, theta, x0, steps, "default", (0,), A_default[None],
                                     target_norm=target)
    return Counterexample(F, theta, x0, steps, "default", measured["lower"], A_default[None],
                          (0,), measured["lower"], np.array([[1.0]]),
                          "gradient descent (alpha = " f"{alpha}) on (x - theta)^2/2 with the "
                          "gradient written as 2 (relu(d) - relu(-d)) - d: the AD default at "
                          "the solution is spurious", measured)
