"""The map type of the algorithm zoo: a traced Map that knows its problem."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .._types import as_float_array
from ..map import Map

__all__ = ["AlgorithmMap", "identity", "Leading", "Affine"]


# Solutions of states as small picklable callables (a Map pickles, lambdas do not).

def identity(state: np.ndarray) -> np.ndarray:
    """The state itself (primal methods)."""
    return state


class Leading:
    """The first ``k`` entries of the state (the current iterate of a stacked state)."""

    def __init__(self, k: int):
        self.k = int(k)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return state[..., :self.k]


class Affine:
    """``state @ M + c`` (splitting methods whose primal point is an affine image)."""

    def __init__(self, M: np.ndarray, c: np.ndarray):
        self.M, self.c = M, c

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return state @ self.M + self.c


class AlgorithmMap(Map):
    """A :class:`~conservative.Map` built by the zoo, with the problem it solves.

    Attributes
    ----------
    name : str
        Algorithm and problem, e.g. ``"forward-backward (Lasso)"``.
    contraction : float or None
        A known contraction factor of ``x -> F(x, theta)`` near the solution, if any.
    info : dict
        Problem data (step size, Lipschitz constant, ...).
    """

    def __init__(self, F: Map, *, name: str, solution: Callable[[np.ndarray], np.ndarray],
                 contraction: float | None = None, info: dict | None = None):
        super().__init__(F.program)
        self.name = name
        self._solution = solution
        self.contraction = contraction
        self.info = dict(info or {})

    def solution(self, state) -> np.ndarray:
        """The primal point encoded by a state (the state itself for primal methods)."""
        return self._solution(as_float_array(state, name="state", call=f"{self.name}.solution",
                                             shape=self.state_shape))

    def _summary(self, label: str = ""):
        title, rows = super()._summary(f"{self.name}, ")
        if self.contraction is not None:
            rows.insert(1, ("contraction", f"{self.contraction:.4g} near the solution"))
        return title, rows
