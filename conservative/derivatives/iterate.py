"""Running the algorithm: all iterates, or until a fixed point is reached."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._types import check_int, check_real, check_steps
from ..compiled import values_run_function
from ..errors import (ConservativeError, InputError, NonFiniteError, NotConvergedError,
                      fail_message)
from ..interpreter import all_finite
from ..evaluate import evaluate
from .. import interval as iv
from ..enclose import enclose_program, possible_pieces
from ..fixed_point_set import enclosure_at_evaluated, jacobian_at_fixed_point
from ..jacobian import jvp, jvp_run, linearise

__all__ = ["iterate", "fixed_point", "FixedPointResult", "require_fixed_point",
           "blocks_at_fixed_point", "derivative_step", "linearisation_at_fixed_point",
           "frozen_step", "active_rows", "frozen_columns"]




def iterate(F, x0, theta, steps: int) -> np.ndarray:
    """All iterates ``x_0, ..., x_steps`` of ``x_{k+1} = F(x_k, theta)``.

    Returns
    -------
    ndarray, shape (steps + 1, *state_shape)

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: 0.5 * x + t, (), ())
    >>> cv.iterate(F, 0.0, 1.0, 3)
    array([0.  , 1.  , 1.5 , 1.75])
    """
    call = "cv.iterate"
    steps = check_steps(steps, call)
    xb, tb = F.point(x0, theta, call=call)
    out = np.empty((steps + 1,) + F.state_shape)
    out[0] = xb[0]
    x = xb
    for k in range(steps):
        x = evaluate(F.program, x, tb, call=call)
        out[k + 1] = x[0]
    return out


@dataclass(frozen=True)
class FixedPointResult:
    """Result of :func:`fixed_point`.

    Attributes
    ----------
    x : ndarray
        The last iterate.
    steps : int
        Number of steps taken.
    residual : float
        ``||x_k - x_{k-1}||_2`` at the last step.
    rate : float
        Observed contraction of the residuals over the last steps (nan if too few steps).
    error_estimate : float
        A-posteriori estimate ``rate / (1 - rate) * residual`` of ``||x_k - x̄||`` (inf when the
        observed rate is not below 1). An estimate, not a bound: a certified bound comes from a
        contraction certificate.
    """

    x: np.ndarray
    steps: int
    residual: float
    rate: float
    error_estimate: float


def fixed_point(F, x0, theta, *, tol: float = 1e-12, max_steps: int = 100_000,
                accelerate: str | None = None, memory: int = 8) -> FixedPointResult:
    """Iterate ``x_{k+1} = F(x_k, theta)`` until ``||x_{k+1} - x_k||_2 <= tol (1 + ||x_k||)``.

    Parameters
    ----------
    accelerate : None or "anderson"
        ``"anderson"``: type-II Anderson acceleration (Walker & Ni 2011) over the last
        ``memory`` residuals ``f_j = F(x_j) - x_j``: the next point is ``sum_j a_j F(x_j)`` with
        ``sum_j a_j = 1`` minimising ``||sum_j a_j f_j||``. A residual safeguard keeps the
        plain step ``F(x_k)`` (and restarts the memory) whenever the accelerated point's
        residual exceeds twice the best residual so far, or is not below the best once
        ``2 memory`` accelerated points accepted since the last improving one have not
        improved it. Non-monotone, so that an extrapolation that changes the active pieces
        (a Lasso support) is not refused for a temporarily larger residual, yet proposals
        that stop improving give way to plain steps. A point where the map fails or
        overflows is refused the same way. The returned point always passed the plain test
        ``||F(x) - x|| <= tol (1 + ||F(x)||)`` and is ``F(x)``.
    memory : int
        Residuals kept by Anderson acceleration (8: on forward-backward Lasso problems,
        fewer steps than 5 or 10-12).

    Raises
    ------
    NotConvergedError
        When the tolerance is not reached within ``max_steps`` (carries ``.steps`` and
        ``.residual``); a non-converged point is never returned as if converged.

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: 0.5 * x + t, (), ())
    >>> r = cv.fixed_point(F, 0.0, 1.0)
    >>> float(r.x), r.residual < 1e-11
    (2.0, True)
    >>> fast = cv.fixed_point(F, 0.0, 1.0, accelerate="anderson")
    >>> float(fast.x), fast.steps < r.steps
    (2.0, True)
    """
    call = "cv.fixed_point"
    max_steps = check_int(max_steps, name="max_steps", call=call, minimum=1)
    tol = check_real(tol, name="tol", call=call, minimum=0.0, strict=True)
    memory = check_int(memory, name="memory", call=call, minimum=1)
    if accelerate not in (None, "anderson"):
        raise InputError(fail_message(call, f"accelerate={accelerate!r}",
                                      'pass None (plain iteration) or "anderson"'))
    xb, tb = F.point(x0, theta, call=call)
    # NumPy's warnings off once for the whole run: non-finite values are detected and named
    with np.errstate(all="ignore"):
        step = _Stepper(F, tb, call)
        if accelerate == "anderson":
            return _anderson(step, xb, tol, max_steps, memory, call)
        x = xb
        residuals = []
        for k in range(1, max_steps + 1):
            x_new, res, size = step(x, k)
            residuals.append(res)
            x = x_new
            if res <= tol * (1.0 + size):
                return _result(x, k, residuals)
    raise _not_converged(call, max_steps, residuals[-1], tol)


class _Stepper:
    """``x -> (F(x), ||F(x) - x||, ||F(x)||)`` with the divergence check (called with NumPy's
    warnings off).

    The nodes that do not depend on ``x`` are computed once (:func:`conservative.compiled.
    values_run_function`); after an error or a non-finite value the checked evaluation runs
    and names the node.
    """

    def __init__(self, F, tb, call):
        self.program, self.tb, self.call = F.program, tb, call
        self.prologue, self.values = values_run_function(F.program)
        self.pre = self._run(self.prologue, tb)

    @staticmethod
    def _run(fn, *args):
        try:
            return fn(*args)
        except ConservativeError:
            return None

    def __call__(self, x, k, candidate: bool = False):
        """With ``candidate`` (an extrapolated point), a point where the map is not defined
        or not finite gives an infinite residual instead of an error."""
        x_new = None if self.pre is None else self._run(self.values, x, self.pre)
        if x_new is None or not all_finite(x_new):
            try:
                x_new = evaluate(self.program, x, self.tb, call=self.call)
            except (NonFiniteError, InputError):
                if not candidate:
                    raise
                return x, float("inf"), float("inf")
        d, y = (x_new - x).ravel(), x_new.ravel()     # the norms as np.linalg.norm computes
        res, size = math.sqrt(float(d @ d)), math.sqrt(float(y @ y))   # them (overflow: below)
        if not (math.isfinite(res) and math.isfinite(size)):
            if candidate:
                return x, float("inf"), float("inf")
            raise NotConvergedError(
                fail_message(self.call, f"iterates that diverged (overflow after {k} steps)",
                             "check that the map has a fixed point for these parameters and "
                             "contracts near it (cv.certify_contraction)"),
                steps=k, residual=float("inf"))
        return x_new, res, size


def _result(x, k, residuals) -> FixedPointResult:
    rate = _observed_rate(residuals)
    res = residuals[-1]
    est = rate / (1 - rate) * res if rate < 1 else np.inf
    return FixedPointResult(np.array(x[0]), k, res, rate, est)


def _not_converged(call, max_steps, last, tol):
    return NotConvergedError(
        fail_message(call, f"max_steps={max_steps} (last residual {last:.3e}, tol "
                     f"{tol:.1e})", "raise max_steps, loosen tol, or check that the map "
                     "contracts for these parameters (cv.certify_contraction)"),
        steps=max_steps, residual=last)


#: An extrapolated point is accepted when its residual is at most this factor above the best
#: residual so far, while the best keeps improving (see :func:`fixed_point`).
_SLACK = 2.0


def _anderson(step, xb, tol, max_steps, memory, call) -> FixedPointResult:
    """Type-II Anderson with a non-monotone residual safeguard (see :func:`fixed_point`)."""
    shape = xb.shape
    x = xb
    gx, res, size = step(x, 1)                     # g(x) = F(x); residual f = g - x
    residuals = [res]
    mem = _Memory(min(memory, xb.size + 1), x.ravel(), gx.ravel())  # (more differences than
    best, stalled = res, 0             # coordinates add nothing; stalled: accelerated steps
    k = 1                              # accepted since the last one improving the best)
    while k < max_steps:
        if res <= tol * (1.0 + size):
            return _result(gx, k, residuals)
        cand = mem.point().reshape(shape)
        g_cand, res_cand, size_cand = step(cand, k + 1, candidate=True)
        k += 1
        if (res_cand <= _SLACK * best) if stalled < 2 * memory else (res_cand < best):
            x, gx, res, size = cand, g_cand, res_cand, size_cand         # accepted
            mem.add(x.ravel(), gx.ravel())
            best, stalled = (res, 0) if res < best else (best, stalled + 1)
        else:                                      # safeguard: the plain step, fresh memory
            x = gx
            gx, res, size = step(x, k + 1)
            k += 1
            mem = _Memory(mem.size, x.ravel(), gx.ravel())
            best = min(best, res)
        residuals.append(res)
    if res <= tol * (1.0 + size):
        return _result(gx, k, residuals)
    raise _not_converged(call, max_steps, res, tol)


class _Memory:
    """The last ``size`` pairs ``(x_j, g_j = F(x_j))`` of Anderson acceleration, kept as the
    differences of consecutive residuals ``f_j = g_j - x_j`` and values ``g_j`` (a ring of
    ``size - 1`` rows) with the Gram matrix of the residual differences, one row updated per
    pair (a new Gram matrix per step cost more than the rest of the proposal)."""

    def __init__(self, size: int, x: np.ndarray, g: np.ndarray):
        self.size, self.x, self.g, self.f = size, x, g, g - x
        n = x.size
        self.dF, self.dG = np.empty((size - 1, n)), np.empty((size - 1, n))
        self.H = np.empty((size - 1, size - 1))
        self.count, self.slot = 0, 0

    def add(self, x: np.ndarray, g: np.ndarray) -> None:
        f = g - x
        if self.size > 1:
            s = self.slot
            self.dF[s], self.dG[s] = f - self.f, g - self.g
            self.count = k = min(self.count + 1, self.size - 1)
            row = self.dF[:k] @ self.dF[s]
            self.H[s, :k], self.H[:k, s] = row, row
            self.slot = (s + 1) % (self.size - 1)
        self.x, self.g, self.f = x, g, f

    def point(self) -> np.ndarray:
        """``sum a_j g_j`` with ``sum a_j = 1`` minimising ``||sum a_j f_j||``: in the
        differences an unconstrained least-squares problem, solved by its normal equations
        (a few columns; an ill-conditioned solve only proposes a point, which the safeguard
        then checks)."""
        k = self.count
        if k == 0:
            return self.g
        from scipy.linalg import lapack  # here: not at import time; np.linalg.solve: 7x slower
        dF = self.dF[:k]
        gamma, info = lapack.dgesv(self.H[:k, :k], dF @ self.f)[2:]
        if info != 0:                    # singular: the least-norm solution
            gamma = np.linalg.lstsq(dF.T, self.f, rcond=None)[0]
        if not np.all(np.isfinite(gamma)):
            return self.g
        return self.g - gamma @ self.dG[:k]


def _observed_rate(residuals) -> float:
    r = np.asarray(residuals[-6:])
    r = r[r > 0]
    if len(r) < 2:
        return 0.0 if len(residuals) and residuals[-1] == 0 else float("nan")
    return float(np.exp(np.mean(np.diff(np.log(r)))))


def require_fixed_point(F, x_star, theta, call: str, rtol: float = 1e-6, *,
                        value=None) -> None:
    """Raise InputError unless ``||F(x_star) - x_star||_inf <= rtol (1 + ||x_star||_inf)``
    (``value``: ``F(x_star, theta)`` when the caller has it)."""
    if value is None and F.n:
        value = F(x_star, theta)
    residual = float(np.max(np.abs(np.reshape(value, np.shape(x_star)) - x_star))) \
        if F.n else 0.0
    if residual > rtol * (1.0 + float(np.max(np.abs(x_star), initial=0.0))):
        raise InputError(fail_message(call, f"x_star with ||F(x_star) - x_star||_inf = "
                                      f"{residual:.3e}", "pass a fixed point (cv.fixed_point "
                                      "computes one)"))


def blocks_at_fixed_point(F, theta, x_star, *, hull: bool, tol: float, call: str):
    """The conservative Jacobian at the exact fixed point near ``x_star``, after checking that
    ``x_star`` is numerically a fixed point.

    Every piece that may be active on a proved enclosure of the exact fixed point counts as
    active (:func:`conservative.fixed_point_set.jacobian_at_fixed_point`); claims about A
    use A's own set, never the A-parts of the deduplicated ``[A B]``.

    Returns
    -------
    A : ndarray (k, n, n)
        The vertices of the set of A-blocks (its own, exactly deduplicated).
    AB : ndarray (k', n, n + m)
        The vertices of the set of ``[A B]`` (the maps of the iterated function system).
    enclosure : FixedPointEnclosure
        Callers must refuse when ``enclosure.proven`` is False.
    """
    xb, tb = F.point(x_star, theta, call=call)
    require_fixed_point(F, xb[0], tb[0], call)
    js, enc = jacobian_at_fixed_point(F, tb[0], xb[0], hull=hull, tol=tol)
    return js.A.vertices, js.vertices, enc


def derivative_step(F, tb):
    """One matrix-free step ``(x, J) -> (F(x), A J + B)`` of the default selection.

    ``J`` (n, m) is pushed through the program as m tangent directions with the identity at
    ``theta``: value and tangents in one pass, ``A`` never formed. ``tb`` is the batched theta.
    """
    advance = jvp_run(F.program, tb, lambda: np.eye(F.m).reshape((1,) + F.param_shape + (F.m,)),
                      call="derivative step")
    seed_shape = (1,) + F.state_shape + (F.m,)
    x_shape = (1,) + F.state_shape

    def step(x, J):
        x_new, tangent = advance(x, J.reshape(seed_shape))
        if tangent is None:
            J_new = np.zeros((F.n, F.m))
        else:   # a view, no copy: J is only read, then copied into the history
            if tangent.shape != seed_shape:       # (the shape of a constant tangent)
                tangent = np.broadcast_to(tangent, seed_shape)
            J_new = tangent.reshape(F.n, F.m)
        return (x_new if x_new.shape == x_shape else np.broadcast_to(x_new, x_shape)), J_new
    return step


def linearisation_at_fixed_point(F, theta, x_star, *, call: str):
    """The default selection at the exact fixed point near ``x_star``, frozen.

    Where a proved enclosure of the exact fixed point meets a kink, the selection is the one
    made *on* the kink (relu'(0) = 0, ...), whichever side of it the rounded ``x_star`` fell on:
    fixed-point AD then gives the same result from every nearby computed point.

    Returns
    -------
    xb, tb : the batched point
    values : dict node -> value at the point
    partials : dict node -> the selection's elementwise partials
    enclosure : FixedPointEnclosure
        The enclosure of the exact fixed point it used.
    """
    xb, tb = F.point(x_star, theta, call=call)
    values = evaluate(F.program, xb, tb, call=call, keep=True)
    require_fixed_point(F, xb[0], tb[0], call, value=values[F.program.out_node][0])
    enc = enclosure_at_evaluated(F, tb[0], xb[0], values)
    possible = None
    if enc.kinks:          # the pieces the enclosure found on its box, else computed here
        possible = enc.possible if enc.possible is not None else possible_pieces(
            F.program, iv.Interval(enc.lo, enc.hi), iv.Interval(tb[0]), call=call)
    lin = linearise(F.program, values, tol=0.0, call=call, with_pieces=False,
                    possible=possible)
    return xb, tb, values, lin.partials, enc


def frozen_step(F, values: dict, partials: dict):
    """``J -> A J + B`` with ``[A B]`` frozen (values and partials from one linearisation);
    matrix-free, the point is not re-evaluated."""
    program = F.program
    theta_seed = np.eye(F.m).reshape((1,) + F.param_shape + (F.m,))

    def step(J):
        seeds = {program.x_node: J.reshape((1,) + F.state_shape + (F.m,)),
                 program.theta_node: theta_seed}
        tangent = jvp(program, values, partials, seeds)
        if tangent is None:
            return np.zeros((F.n, F.m))
        return np.broadcast_to(tangent, (1,) + F.state_shape + (F.m,)).reshape(F.n, F.m)
    return step


def active_rows(F, theta, x_lo, x_hi, *, call: str) -> np.ndarray:
    """Rows of A that may be non-zero for some element of ``D_F`` over the box ``[x_lo, x_hi]``.

    Decided in interval arithmetic: the enclosure of ``A s`` for every direction ``s`` of the
    box ``[-1, 1]^n`` is exactly 0 on a row only when that row of every A over the box is 0
    (strictly inactive soft-thresholds, clipped coordinates, dead ReLUs). On the other rows
    ``(I - A)`` is block triangular, so solves and iterations need only the active block.
    """
    shape = F.state_shape
    probe = iv.Interval(-np.ones(shape + (1,)), np.ones(shape + (1,)))
    _, D = enclose_program(F.program, iv.Interval(np.asarray(x_lo).reshape(shape),
                                                  np.asarray(x_hi).reshape(shape)),
                           iv.Interval(np.asarray(theta, dtype=float).reshape(F.param_shape)),
                           call=call, seeds=(probe, None))
    return np.flatnonzero((D.lo[:, 0] != 0) | (D.hi[:, 0] != 0))


def frozen_columns(F, values: dict, partials: dict, cols: np.ndarray, *,
                   J_rest: np.ndarray | None = None) -> np.ndarray:
    """``A[:, cols]`` (n, k) of a frozen selection, by k tangent directions; with ``J_rest``
    (n, m) also ``A J_rest + B`` (appended as m more columns: theta gets the identity)."""
    program = F.program
    k = len(cols)
    seed = np.zeros((F.n, k))
    seed[cols, np.arange(k)] = 1.0
    seeds = {program.x_node: seed.reshape((1,) + F.state_shape + (k,))}
    if J_rest is not None:
        seed = np.concatenate([seed, J_rest], axis=1)
        seeds = {program.x_node: seed.reshape((1,) + F.state_shape + (k + F.m,)),
                 program.theta_node: np.concatenate(
                     [np.zeros((F.m, k)), np.eye(F.m)], axis=1).reshape(
                         (1,) + F.param_shape + (k + F.m,))}
    tangent = jvp(program, values, partials, seeds)
    width = seed.shape[1]
    if tangent is None:
        return np.zeros((F.n, width))
    return np.array(np.broadcast_to(tangent, (1,) + F.state_shape + (width,)).reshape(F.n, width))
