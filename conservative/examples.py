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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import dsl as cv
from .algorithms import heavy_ball
from ._types import check_int, check_real, check_steps
from .errors import ConservativeError, InputError, fail_message
from .iterate import iterate
from .certify import jsr
from .map import Map, trace
from .picard import piggyback

__all__ = ["Counterexample", "momentum_divergence", "find_momentum_counterexample",
           "spurious_relu_gradient", "heavy_ball_matrix"]


def heavy_ball_matrix(alpha: float, beta: float, c: float) -> np.ndarray:
    """``M(c) = [[1 + beta - alpha c, -beta], [1, 0]]``: heavy-ball on a curvature-c quadratic."""
    call = "cv.examples.heavy_ball_matrix"
    alpha, beta, c = (check_real(v, name=name, call=call)
                      for v, name in ((alpha, "alpha"), (beta, "beta"), (c, "c")))
    return np.array([[1.0 + beta - alpha * c, -beta], [1.0, 0.0]])


@dataclass(frozen=True)
class Counterexample:
    """An algorithm whose iterates converge while a piggyback derivative run diverges.

    Attributes
    ----------
    map : Map
    theta, x0 : ndarray
        Parameters and initial state (the iterates converge from there).
    steps : int
        Length of the demonstrated run.
    selection : str or tuple of int
        Usable as ``cv.piggyback(map, x0, theta, steps, selection=selection)``: "default" or
        ``steps`` vertex indices into ``map.jacobian(x_k, theta, hull=False).vertices`` (the
        periodic ``word`` repeated).
    growth : float
        Asymptotic growth factor per step of ``||J_k||`` along the run (> 1).
    matrices : ndarray (k, n, n)
        The distinct A-blocks the selection uses, each Schur stable.
    word : tuple of int
        The periodic product (indices into ``matrices``) behind the growth.
    jsr_lower : float
        ``rho(prod of the word)^(1/len)``, recomputed from ``matrices`` at construction.
    true_derivative : ndarray
        ``d x̄ / d theta`` (what implicit differentiation returns).
    description : str
    """

    map: Map
    theta: np.ndarray
    x0: np.ndarray
    steps: int
    selection: Any
    growth: float
    matrices: np.ndarray
    word: tuple
    jsr_lower: float
    true_derivative: np.ndarray
    description: str
    measured: dict = field(default_factory=dict, compare=False)

    def run(self, steps: int | None = None):
        """The piggyback run: ``(xs, Js)`` (see :func:`conservative.piggyback`)."""
        if steps is not None:
            steps = check_steps(steps, "Counterexample.run")
        return piggyback(self.map, self.x0, self.theta, self.steps if steps is None else steps,
                         selection=self._selection(steps))

    def _selection(self, steps):
        if isinstance(self.selection, str):
            return self.selection
        n = self.steps if steps is None else steps
        return _tile(self.word, n)

    def __repr__(self) -> str:
        m = self.measured
        radii = m.get("spectral_radii", [])
        text = ", ".join(f"{r:.3f}" for r in radii)
        stable = "are Schur stable" if radii and max(radii) < 1 else "include an unstable one"
        return (f"Counterexample: {self.description}\n"
                f"  iterates converge: ||x_k - x̄|| = {m.get('iterate_error', float('nan')):.1e} "
                f"after {self.steps} steps\n"
                f"  selected A-blocks {stable}: spectral radii {text}\n"
                f"  yet switching along the word {self.word} has growth "
                f"{self.jsr_lower:.6f} > 1 per step:\n"
                f"  ||J_k|| reached {m.get('final_norm', float('nan')):.3e} "
                f"(true derivative {np.round(self.true_derivative.ravel(), 6).tolist()})")


def _tile(word, n: int) -> tuple:
    """The periodic word repeated to length n."""
    return (tuple(word) * (n // len(word) + 1))[:n]


def _verify(ce_args: dict, *, require_stable: bool = True) -> dict:
    """Check every claim of a counterexample independently of how it was found.

    Iterates converge; (momentum family) every selected A is Schur stable; the word's product
    has spectral radius above 1; the piggyback run's norm grows.
    """
    F, theta, x0, steps = ce_args["map"], ce_args["theta"], ce_args["x0"], ce_args["steps"]
    mats, word = ce_args["matrices"], ce_args["word"]
    xs = iterate(F, x0, theta, steps)
    iterate_error = float(np.max(np.abs(xs[-1] - xs[-2]))) + \
        float(np.max(np.abs(F(xs[-1], theta) - xs[-1])))
    radii = np.max(np.abs(np.linalg.eigvals(mats)), axis=1)
    prod = np.eye(mats.shape[1])
    for i in word:
        prod = mats[i] @ prod
    lower = float(np.max(np.abs(np.linalg.eigvals(prod)))) ** (1.0 / len(word))
    _, Js = piggyback(F, x0, theta, steps, selection=ce_args["selection"])
    norms = np.linalg.norm(Js.reshape(steps + 1, -1), axis=1)
    tail = max(2, steps // 3)
    growth = float((norms[-1] / norms[-1 - tail]) ** (1.0 / tail)) if norms[-1 - tail] > 0 \
        else float("inf")
    problems = []
    if not iterate_error < 1e-8:
        problems.append(f"the iterates do not converge (error {iterate_error:.2e})")
    if require_stable and not np.all(radii < 1):
        problems.append(f"a selected A is not Schur stable (spectral radii {radii})")
    if not lower > 1:
        problems.append(f"the word's growth {lower:.6f} is not above 1")
    if not growth > 1:
        problems.append(f"the piggyback run does not diverge (measured growth {growth:.6f})")
    if problems:
        raise ConservativeError("Counterexample: " + "; ".join(problems))
    return {"iterate_error": iterate_error, "spectral_radii": radii.tolist(), "lower": lower,
            "measured_growth": growth, "final_norm": float(norms[-1])}


def _heavy_ball_at_kink(alpha: float, beta: float, a1: float, a2: float, *,
                        steps: int = 60, description: str) -> Counterexample:
    """Heavy-ball with curvature a1 left of theta and a2 right of it, started at theta."""
    def grad(x, t):
        d = x - t[0]
        return cv.where(d > 0, a2 * d, a1 * d)

    F = heavy_ball(grad, alpha, beta, 1, param_shape=(1,))
    theta = np.array([0.0])
    x0 = np.zeros(2)
    js = F.jacobian(x0, theta, hull=False)
    A = js.A.vertices
    if len(A) != 2:
        raise ConservativeError("Counterexample: the kink does not expose two Jacobians")
    result = jsr(A)
    word = tuple(int(i) for i in result.word)
    args = dict(map=F, theta=theta, x0=x0, steps=steps, selection=_tile(word, steps),
                matrices=A, word=word)
    measured = _verify(args)
    return Counterexample(growth=measured["lower"], jsr_lower=measured["lower"],
                          true_derivative=np.array([[1.0], [1.0]]), description=description,
                          measured=measured, **args)


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
    return _heavy_ball_at_kink(0.25, 0.25, 1.0, 9.0, description=(
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
        return _heavy_ball_at_kink(alpha, beta, float(a1), float(a2), steps=80, description=(
            f"heavy-ball (alpha = {alpha:.4f}, beta = {beta:.4f}) on a piecewise quadratic "
            f"with curvatures {a1:.4f} and {a2:.4f} meeting at its minimiser (seed {seed})"))
    raise ConservativeError(fail_message("cv.examples.find_momentum_counterexample",
                                         f"seed={seed} with max_tries={max_tries}",
                                         "raise max_tries or try another seed"))


def spurious_relu_gradient(alpha: float = 0.5, steps: int = 40) -> Counterexample:
    """Gradient descent whose gradient is an identity written with ReLUs.

    ``f(x) = (x - theta)^2 / 2`` with ``f'`` coded as ``2 (relu(d) - relu(-d)) - d``,
    ``d = x - theta`` (equal to ``d`` everywhere). At the solution the AD default gives
    ``d/dx f' = -1``, so ``A = 1 + alpha`` and the default piggyback run diverges while the
    iterates sit at the solution; the conservative set is ``{1 + alpha, 1 - alpha,
    1 - 3 alpha}`` and contains the true ``1 - alpha``.

    Examples
    --------
    >>> import conservative as cv
    >>> ce = cv.examples.spurious_relu_gradient()
    >>> ce.selection, round(ce.growth, 6)
    ('default', 1.5)
    """
    call = "cv.examples.spurious_relu_gradient"
    alpha = check_real(alpha, name="alpha", call=call, minimum=0.0, strict=True)
    if not alpha < 2.0:
        raise InputError(fail_message(call, f"alpha={alpha!r}", "pass 0 < alpha < 2 (where the "
                                      "iteration x <- x - alpha (x - theta) converges)"))
    steps = check_int(steps, name="steps", call=call, minimum=1)

    def step(x, t):
        d = x - t
        return x - alpha * (2.0 * (cv.relu(d) - cv.relu(-d)) - d)

    F = trace(step, (), ())
    theta, x0 = np.array(1.0), np.array(1.0)
    A_default = F.jacobian(x0, theta).default[:, :1]
    args = dict(map=F, theta=theta, x0=x0, steps=steps, selection="default",
                matrices=A_default[None], word=(0,))
    measured = _verify(args, require_stable=False)
    return Counterexample(growth=measured["lower"], jsr_lower=measured["lower"],
                          true_derivative=np.array([[1.0]]), measured=measured,
                          description=("gradient descent (alpha = "
                                       f"{alpha}) on (x - theta)^2/2 with the gradient written "
                                       "as 2 (relu(d) - relu(-d)) - d: the AD default at the "
                                       "solution is spurious"), **args)
