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
           "spurious_relu_gradient", "heavy_ball_matrix", "heavy_ball_at_kink",
           "heavy_ball_step_sizes", "demo"]


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


def heavy_ball_step_sizes(a1: float = 1.0, a2: float = 9.0):
    """Heavy-ball on the piecewise quadratic with curvatures ``a1`` (left of 0) and ``a2``
    (right of 0), with the step size and the momentum as parameters: ``theta = (alpha,
    beta)``, state ``(x_k, x_{k-1})``. Its fixed point is 0 (the kink) for every theta: the
    map for ``cv.certify_region`` over a box of step sizes.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.examples.heavy_ball_step_sizes()
    >>> F.jacobian(np.zeros(2), [0.25, 0.25], hull=False).A.vertices.shape
    (2, 2, 2)
    """
    a1 = check_real(a1, name="a1", call="cv.examples.heavy_ball_step_sizes")
    a2 = check_real(a2, name="a2", call="cv.examples.heavy_ball_step_sizes")

    def step(z, t):
        x, xp = z[0], z[1]
        g = cv.where(x > 0, a2 * x, a1 * x)
        return cv.stack([x - t[0] * g + t[1] * (x - xp), x])

    return trace(step, (2,), (2,))


# ---------------------------------------------------------------------------------------------
# the demo (``conservative demo``)


def _print_set(title: str, js, state_names, param_names) -> None:
    print(f"  {title}: {js}")
    if js.is_singleton:
        print("    a single classical Jacobian: the map is differentiable here.")
        return
    verts = js.vertices
    print(f"    {len(verts)} distinct elements [A B]; they differ in rows:")
    spread = np.ptp(verts, axis=0)
    for i in np.nonzero(spread.max(axis=1) > 0)[0]:
        row_b = ", ".join(f"{v:+.4f}" for v in verts[:, i, len(state_names):].ravel())
        print(f"    row {state_names[i]}: d/d{param_names[0]} takes the values {row_b}")


def _demo_smooth(F, X, y, lam):
    """Part 1: certify at a smooth fixed point, then the derivatives converge at that rate."""
    import conservative as cvm
    p = X.shape[1]
    fp = cvm.fixed_point(F, np.zeros(p), lam)
    w = fp.x
    support = np.nonzero(np.abs(w) > 1e-10)[0]
    print(f"\n1. At lam = {lam}: the fixed point after {fp.steps} steps has support "
          f"{support.tolist()} (residual {fp.residual:.1e}).")
    _print_set("conservative Jacobian at the fixed point", F.jacobian(w, lam),
               [f"w{i}" for i in range(p)], ["lam"])
    cert = cvm.certify_contraction(F, theta=lam, x=w)
    print(f"    contraction certificate: certified = {cert.certified}, rho = {cert.rho:.4f} "
          f"in the norm {cert.norm}, final check: {cert.verified}")
    J_bar = cvm.implicit_jacobian(F, lam, w).vertices[0]
    closed = np.zeros((p, 1))
    closed[support, 0] = -np.linalg.solve(X[:, support].T @ X[:, support], np.sign(w[support]))
    print(f"    implicit dw/dlam = {np.round(J_bar.ravel(), 5).tolist()}\n"
          f"    closed form -(X_S^T X_S)^-1 sign(w_S) agrees to "
          f"{np.max(np.abs(J_bar - closed)):.1e}")
    steps = 120
    _, Js = cvm.piggyback(F, np.zeros(p), lam, steps)
    fpad = cvm.fpad(F, lam, w, steps)
    k = np.arange(steps + 1)
    errors = {"piggyback (unrolled AD)": np.linalg.norm((Js - J_bar).reshape(steps + 1, -1),
                                                        axis=1),
              "fixed-point AD": np.linalg.norm((fpad - J_bar).reshape(steps + 1, -1), axis=1)}
    if cert.certified:
        errors[f"rho^k, rho = {cert.rho:.3f} (certified)"] = \
            errors["fixed-point AD"][0] * cert.rho ** k
    print(f"    after {steps} steps: piggyback error {errors['piggyback (unrolled AD)'][-1]:.1e},"
          f" FPAD error {errors['fixed-point AD'][-1]:.1e}")
    return errors


def _demo_kink(F, X, y):
    """Part 2: at a kink, the set, the attractor of every AD run, and the implicit set."""
    import conservative as cvm
    p = X.shape[1]
    lam_max = float(np.max(np.abs(X.T @ y)))
    first = int(np.argmax(np.abs(X.T @ y)))
    print(f"\n2. At w = 0 and lam = lam_max = ||X^T y||_inf = {lam_max:.4f}, feature {first} "
          "sits exactly on the threshold: a kink.")
    _print_set("conservative Jacobian at the kink", F.jacobian(np.zeros(p), lam_max),
               [f"w{i}" for i in range(p)], ["lam"])
    print("    An AD framework returns one of these elements silently (a soft-threshold written "
          "as sign(z) relu(|z| - t)\n    gives the zero piece); conservative returns the whole "
          "set, so you see that the derivative is not\n    determined there.")
    att = cvm.attractor(F, lam_max, np.zeros(p), hull=False)
    imp = cvm.implicit_jacobian(F, lam_max, np.zeros(p), hull=False).vertices
    vals = att.intervals
    print(f"    attractor of every piggyback run (finite selections): dimension {att.dimension}, "
          f"{len(vals)} intervals of dw{first}/dlam in [{vals[0, 0]:.5f}, {vals[-1, 1]:.5f}], "
          f"Hausdorff error <= {att.hausdorff_bound:.1e};")
    print(f"    implicit set: {len(imp)} points, the one-sided derivatives dw/dlam =")
    for J in imp:
        print(f"      {np.round(J.ravel(), 5).tolist()}")
    print("    the attractor is larger: it holds every limit of the switching AD runs.")
    return att, imp, first


def _demo_momentum():
    """Part 3: momentum at a kink: iterates converge, derivatives diverge."""
    import conservative as cvm
    ce = momentum_divergence()
    print("\n3. Heavy-ball started at its solution (a warm start): the iterates stay there, so "
          "every step sees the kink\n   between the two curvatures, and an AD program may "
          "pick either Jacobian at each step.")
    print("   " + repr(ce).replace("\n", "\n   "))
    bracket = cvm.jsr(ce.matrices)
    print(f"   joint spectral radius of the two Jacobians: [{bracket.lower:.6f}, "
          f"{bracket.upper:.6f}] (word {bracket.word})")
    try:
        cvm.attractor(ce.map, ce.theta, ce.x0)
    except cvm.NotContractingError as exc:
        print(f"   cv.attractor refuses: no contraction (lower bound {exc.lower:.4f}).")
    return ce


def _demo_figures(out_dir, errors, att, imp, first, ce) -> None:
    import os

    import matplotlib.pyplot as plt

    from . import plotting
    os.makedirs(out_dir, exist_ok=True)
    ax = plotting.plot_convergence(errors)
    ax.set_title("Lasso at lam = 5: ||J_k - J*|| (k rho^k vs rho^k)")
    ax.figure.savefig(os.path.join(out_dir, "convergence.png"), dpi=110)
    ax = plotting.plot_attractor(att, implicit=imp, entry=(first, 0))
    ax.set_title(f"Lasso at lam_max: attractor of dw{first}/dlam (bars), "
                 "implicit set (diamonds)")
    ax.figure.savefig(os.path.join(out_dir, "attractor.png"), dpi=110)
    _, Jm = ce.run()
    k = np.arange(len(Jm))
    fig, axm = plt.subplots()
    axm.semilogy(k, np.linalg.norm(Jm.reshape(len(Jm), -1), axis=1), label="||J_k|| (piggyback)")
    axm.semilogy(k, ce.growth ** k, "--", label=f"{ce.growth:.4f}^k")
    axm.set_xlabel("iteration k")
    axm.set_ylabel("||J_k|| (derivative estimate)")
    axm.legend()
    axm.set_title("Heavy-ball at a kink: iterates fixed, derivatives diverge")
    fig.savefig(os.path.join(out_dir, "momentum.png"), dpi=110)
    plt.close("all")
    print(f"\nFigures written to {os.path.abspath(out_dir)}: convergence.png, "
          "attractor.png, momentum.png")


def demo(out_dir: str | None = "conservative-demo") -> int:
    """The main job on built-in data (``conservative demo``): certify, differentiate, find the
    limit set at a kink, and break momentum. Prints the story; writes three figures to
    ``out_dir`` (None: none)."""
    import matplotlib
    matplotlib.use("Agg")
    import conservative as cvm

    X, y = cvm.datasets.lasso_small()
    n, p = X.shape
    F = cvm.algorithms.forward_backward_lasso(X, y)
    print("conservative demo: forward-backward for the Lasso on the built-in data "
          f"({n} samples, {p} features)\n")
    print("  minimize 1/2 ||X w - y||^2 + lam ||w||_1;  w <- soft_threshold(w - step grad, "
          "step lam)\n")
    print(F)
    errors = _demo_smooth(F, X, y, 5.0)
    att, imp, first = _demo_kink(F, X, y)
    ce = _demo_momentum()
    if out_dir:
        _demo_figures(out_dir, errors, att, imp, first, ce)
    return 0
