"""Refute as well as certify: switching words of a map's own Jacobians that make derivative
runs diverge while the iterates converge.

At a fixed point ``x*`` that sits on a kink, an AD program may return any element of the
conservative Jacobian at each iteration. A word ``w`` with ``rho(A_w)^{1/|w|} > 1`` over the
map's own set at ``x*`` gives a piggyback run ``J_{k+1} = A_k J_k + B_k`` (the selection
repeating the word) that diverges at that rate, although every selected matrix is a
legitimate Jacobian there and the iterates stay at the solution. :func:`find_counterexample`
searches for one and returns a :class:`Counterexample` whose every claim is re-checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._deadline import Deadline, check_progress, progress_bar
from .._types import as_float_array, check_int, check_steps
from ..errors import ConservativeError, fail_message
from .matrices import balanced, canonical_rotation, product, spectral_radius
from .. import _display
from .report import format_word
from .search import gripenberg

__all__ = ["Counterexample", "NoCounterexampleError", "find_counterexample",
           "verify_counterexample", "steps_to_reach", "selected_run", "TARGET_NORM"]

_CALL = "cv.find_counterexample"
#: A counterexample's run is long enough for ||J_steps|| to reach this.
TARGET_NORM = 1e6


class NoCounterexampleError(ConservativeError):
    """No divergent switching word was found.

    Attributes
    ----------
    lower : float
        The best lower bound ``rho(A_w)^{1/|w|}`` on the joint spectral radius found.
    word : tuple of int
        The product attaining it (indices into ``matrices``).
    matrices : ndarray
        The A-blocks of the map's own set at the point.
    """

    def __init__(self, message: str, *, lower=None, word=None, matrices=None):
        super().__init__(message)
        self.lower, self.word, self.matrices = lower, word, matrices


@dataclass(frozen=True, repr=False)          # repr from _display.Summary
class Counterexample(_display.Summary):
    """An algorithm whose iterates converge while a piggyback derivative run diverges.

    Attributes
    ----------
    map : Map
    theta, x0 : ndarray
        Parameters and initial state (the iterates converge from there).
    steps : int
        Length of the demonstrated run: long enough for ``||J_steps||`` to reach 1e6.
    selection : str or tuple of int
        Usable as ``cv.piggyback(map, x0, theta, steps, selection=selection)``: "default" or
        ``steps`` vertex indices into ``map.jacobian(x_k, theta, hull=False).vertices`` (the
        periodic ``word`` repeated).
    growth : float
        Asymptotic growth factor per step of ``||J_k||`` along the run (> 1).
    matrices : ndarray (k, n, n)
        The A-blocks the word indexes (the map's own set at ``x0``).
    word : tuple of int
        The periodic product (indices into ``matrices``) behind the growth.
    jsr_lower : float
        ``rho(prod of the word)^(1/len)``, recomputed from ``matrices``.
    true_derivative : ndarray or None
        ``d x̄ / d theta`` where known (what implicit differentiation returns).
    description : str
    measured : dict
        What the independent verification measured (iterate error, spectral radii, the
        measured growth, the final norm).
    """

    map: Any
    theta: np.ndarray
    x0: np.ndarray
    steps: int
    selection: Any
    growth: float
    matrices: np.ndarray
    word: tuple
    jsr_lower: float
    true_derivative: np.ndarray | None
    description: str
    measured: dict = field(default_factory=dict, compare=False)

    def run(self, steps: int | None = None):
        """The piggyback run: ``(xs, Js)``, the same as ``cv.piggyback`` with
        :attr:`selection`."""
        if steps is not None:
            steps = check_steps(steps, "Counterexample.run")
        n = self.steps if steps is None else steps
        sel = self.selection if isinstance(self.selection, str) else _tile(self.word, n)
        return selected_run(self.map, self.x0, self.theta, n, sel)

    def _summary(self):
        """``(title, rows)`` of the repr and the HTML table."""
        title = (f"Counterexample: iterates converge, derivatives diverge "
                 f"(growth {self.jsr_lower:.6g} per step)")
        return title, self._rows()

    def _rows(self):
        m = self.measured
        radii = m.get("spectral_radii", [])
        stable = ("each Schur stable" if radii and max(radii) < 1 else
                  "not all Schur stable") if radii else ""
        rows = [("algorithm", self.description[:110]),
                ("iterates", f"converge: ||x_k - x̄|| = {m.get('iterate_error', math.nan):.1e} "
                             f"after {self.steps} steps"),
                ("selected A-blocks", f"{len(set(self.word))} of the map's own set, {stable}"
                 + (f" (spectral radii {', '.join(f'{r:.3f}' for r in radii[:4])})"
                    if radii else "")),
                ("word", f"{format_word(self.word)}: growth {self.jsr_lower:.6f} > 1 per step"),
                ("derivative run", f"||J_{self.steps}|| = {m.get('final_norm', math.nan):.3e}")]
        if self.true_derivative is not None:
            rows.append(("true derivative",
                         str(np.round(np.asarray(self.true_derivative).ravel()[:6], 6).tolist())))
        return rows

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the map itself is left out)."""
        return {"description": self.description, "theta": np.asarray(self.theta).tolist(),
                "x0": np.asarray(self.x0).tolist(), "steps": self.steps,
                "selection": self.selection if isinstance(self.selection, str)
                else list(self.selection)[:len(self.word)],
                "word": list(self.word), "growth": self.growth, "jsr_lower": self.jsr_lower,
                "matrices": np.asarray(self.matrices).tolist(),
                "true_derivative": None if self.true_derivative is None
                else np.asarray(self.true_derivative).tolist(),
                "measured": {k: v for k, v in self.measured.items()}}


def _tile(word, n: int) -> tuple:
    """The periodic word repeated to length n."""
    return (tuple(word) * (n // max(len(word), 1) + 1))[:n]


def selected_run(F, x0, theta, steps: int, selection):
    """``(xs, Js)`` of ``x_{k+1} = F(x_k)``, ``J_{k+1} = A_k J_k + B_k`` from ``J_0 = 0``, with
    ``[A_k B_k]`` the vertex ``selection[k]`` of ``F.jacobian(x_k, theta, hull=False)`` or, for
    ``"default"``, the default selection (forward mode). Equal to ``cv.piggyback``'s run."""
    xb, tb = F.point(x0, theta, call="Counterexample.run")
    n, m = F.n, F.m
    xs = np.empty((steps + 1,) + F.state_shape)
    Js = np.empty((steps + 1, n, m))
    xs[0], Js[0] = xb[0], np.zeros((n, m))
    x, J = xb[0], np.zeros((n, m))
    eye_t = np.eye(m).reshape(F.param_shape + (m,))
    for k in range(steps):
        if isinstance(selection, str):
            value, tangent = F.jvp(x, tb[0], dx=J.reshape(F.state_shape + (m,)), dtheta=eye_t)
            x, J = value, tangent.reshape(n, m)
        else:
            M = F.jacobian(x, tb[0], hull=False).vertices[selection[k]]
            x, J = F(x, tb[0]), M[:, :n] @ J + M[:, n:]
        xs[k + 1], Js[k + 1] = x, J
    return xs, Js


def steps_to_reach(growth: float, length: int, start: float = 1.0,
                   target: float = TARGET_NORM, cap: int = 100_000) -> int:
    """A number of steps (a multiple of the word's length) after which a run growing like
    ``start * growth^k`` passes ``target``, with a margin of 20 %."""
    if not growth > 1:
        return length
    k = math.log(target / max(start, 1e-300)) / math.log(growth) * 1.2 + 2 * length
    return int(min(cap, max(length, length * math.ceil(k / length))))


# ---------------------------------------------------------------------------------------------
# verification, independent of how a counterexample was found


def verify_counterexample(F, theta, x0, steps, selection, word, matrices, *,
                          require_stable: bool = False, reference=None,
                          target_norm: float = TARGET_NORM) -> dict:
    """Check every claim: the iterates converge; every selected A is an element of the map's
    own set at ``x0`` (``reference``, exact equality); the word's product has spectral radius
    above 1; the run's ``||J||`` grows at that rate and reaches ``target_norm``. Raises
    ConservativeError naming what fails; returns what was measured."""
    xs, Js = selected_run(F, x0, theta, steps, selection)
    iterate_error = float(np.max(np.abs(xs[-1] - xs[-2]))) + \
        float(np.max(np.abs(F(xs[-1], theta) - xs[-1])))
    used = sorted(set(word))
    radii = np.max(np.abs(np.linalg.eigvals(matrices[used])), axis=1)     # the selected ones
    lower = float(spectral_radius(product(matrices, word))) ** (1.0 / len(word))
    norms = np.linalg.norm(Js.reshape(steps + 1, -1), axis=1)
    tail = len(word) * max(1, (steps // 3) // len(word))
    growth = float((norms[-1] / norms[-1 - tail]) ** (1.0 / tail)) if norms[-1 - tail] > 0 \
        else math.inf
    problems = []
    if not iterate_error < 1e-8:
        problems.append(f"the iterates do not converge (error {iterate_error:.2e})")
    if require_stable and not np.all(radii < 1):
        problems.append(f"a selected A is not Schur stable (spectral radii {radii})")
    if reference is not None:
        ref = reference.reshape(len(reference), -1)
        for A in matrices[used]:
            if not np.any(np.all(ref == A.ravel(), axis=1)):
                problems.append("a selected A is not an element of the map's set at x0")
                break
    if not lower > 1:
        problems.append(f"the word's growth {lower:.6f} is not above 1")
    if not np.any(norms[1:]):
        problems.append("the derivative run stays at J = 0: the parameters do not reach the "
                        "divergent directions (B is zero on them), so nothing diverges")
    elif not growth > 1 or abs(growth - lower) > 2e-2 * lower:
        problems.append(f"the run does not diverge at the word's rate (measured growth "
                        f"{growth:.6f}, word {lower:.6f})")
    if not norms[-1] >= target_norm:
        problems.append(f"||J_steps|| = {norms[-1]:.3e} stays below {target_norm:g}")
    if problems:
        raise ConservativeError("Counterexample: " + "; ".join(problems))
    return {"iterate_error": iterate_error, "spectral_radii": radii.tolist(), "lower": lower,
            "measured_growth": growth, "final_norm": float(norms[-1])}


def _best_word(A: np.ndarray, max_length: int, deadline: float):
    """Best switching word of ``A`` by branch and bound (balanced, so products stay in range):
    ``(rho(A_w)^{1/|w|}, w)``."""
    B, _, s, _ = balanced(A)
    rho1 = spectral_radius(B)
    found = gripenberg(B, alpha=float(rho1.max()), word=(int(rho1.argmax()),), delta=1e-9,
                       max_length=max_length, max_nodes=20000, deadline=deadline)
    word = canonical_rotation(found.word)
    return float(spectral_radius(product(A, word))) ** (1.0 / len(word)), word


def find_counterexample(F, theta, x_star, *, max_length: int = 12, time_limit: float | None = 20.0,
                        progress: bool | None = None, description: str | None = None,
                        true_derivative=None) -> Counterexample:
    """A verified counterexample for the user's own map at a fixed point on a kink.

    Searches the map's own conservative Jacobian at ``x_star`` (every element
    ``F.jacobian(x_star, theta, hull=False)``) for a switching word ``w`` with
    ``rho(A_w)^{1/|w|} > 1`` (branch and bound over products, up to ``max_length``), then
    builds the piggyback run that repeats it from ``x_star`` and checks every claim
    independently of the search (:func:`verify_counterexample`): the iterates converge, every
    selected A is an element of the map's set at ``x_star``, the run diverges at the word's
    rate, and it is long enough for ``||J_steps||`` to reach 1e6.

    Parameters
    ----------
    F : Map
    theta, x_star : array_like
        Parameters and a fixed point of F on a kink (``F(x_star) == x_star``: started there
        the iterates stay, and every iteration sees the kink).
    max_length : int
        Longest word searched.
    time_limit : float or None
    progress : bool or None
    description : str, optional
        Text for the result (default: names the map's kinks).
    true_derivative : array_like, optional
        The derivative of the solution map, if known (reported alongside).

    Returns
    -------
    Counterexample

    Raises
    ------
    NoCounterexampleError
        No word with spectral radius above 1 (carries the best lower bound and its word), or a
        found word that fails the verification.
    InputError, ShapeError, NonFiniteError
        Bad input.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> def grad(x, t):
    ...     d = x - t[0]
    ...     return cv.where(d > 0, 9.0 * d, 1.0 * d)
    >>> F = cv.algorithms.heavy_ball(grad, 0.25, 0.25, 1)
    >>> ce = cv.find_counterexample(F, [0.0], np.zeros(2))
    >>> round(ce.growth, 6), ce.word, bool(np.linalg.norm(ce.run()[1][-1]) >= 1e6)
    (1.207107, (0, 1), True)
    """
    max_length = check_int(max_length, name="max_length", call=_CALL, minimum=1)
    progress = check_progress(progress, call=_CALL)
    dl = Deadline.from_time_limit(time_limit, call=_CALL)
    x = as_float_array(x_star, name="x_star", call=_CALL, shape=F.state_shape)
    theta = as_float_array(theta, name="theta", call=_CALL, shape=F.param_shape)
    with progress_bar(2, _CALL, progress) as bar:
        vertices = F.jacobian(x, theta, hull=False).vertices
        A = np.ascontiguousarray(vertices[:, :, :F.n])
        lower, word = _best_word(A, max_length, dl.part(0.8).at)
        bar.update()
        if not lower > 1:
            raise NoCounterexampleError(fail_message(
                _CALL, f"a map whose own Jacobians at x_star have no switching word with "
                       f"spectral radius above 1 (best {lower:.6g}, word {list(word)}, over "
                       f"{len(A)} elements)",
                "try another point on a kink, a larger max_length, or certify the contraction "
                "(cv.certify_contraction) instead"), lower=lower, word=word, matrices=A)
        steps = _long_enough(F, theta, x, word, lower)
        selection = _tile(word, steps)
        try:
            measured = verify_counterexample(F, theta, x, steps, selection, word, A,
                                             reference=A.reshape(len(A), -1))
        except ConservativeError as exc:
            raise NoCounterexampleError(fail_message(
                _CALL, f"a divergent word {list(word)} (growth {lower:.6g}) whose run fails "
                       f"the verification ({exc})",
                "pass an exact fixed point on the kink, so that the iterates stay where the "
                "word's matrices are the map's Jacobians"), lower=lower, word=word,
                matrices=A) from None
        bar.update()
    kinks = sorted({str(F.program.expression(node, depth=2))
                    for node in F.program.kink_nodes})[:2]
    text = description or (f"switching between the kink pieces of {', '.join(kinks)} at a "
                           f"fixed point")
    return Counterexample(F, theta, x, steps, selection, measured["lower"], A, tuple(word),
                          measured["lower"], None if true_derivative is None
                          else np.asarray(true_derivative, dtype=float), text, measured)


def _long_enough(F, theta, x, word, growth) -> int:
    """Steps for ``||J||`` to pass 1e6 along the word (estimated from a short run, extended
    once if the estimate fell short)."""
    probe = max(len(word) * 4, 8)
    _, Js = selected_run(F, x, theta, probe, _tile(word, probe))
    start = max(float(np.linalg.norm(Js[-1])) / growth ** probe, 1e-12)
    steps = steps_to_reach(growth, len(word), start)
    _, Js = selected_run(F, x, theta, steps, _tile(word, steps))
    if np.linalg.norm(Js[-1]) < TARGET_NORM:
        steps = min(2 * steps, 200_000)
    return steps
