"""The algorithm zoo: update maps of classical methods, written in the public DSL.

Each builder returns an :class:`AlgorithmMap`: a traced :class:`~conservative.Map` with
``.solution(state)`` (the primal point a state encodes), ``.name``, ``.contraction`` (a known
contraction factor, or None) and ``.info`` (problem data).
"""

from ._base import AlgorithmMap
from .covariance import sparse_inverse_covariance
from .gradient import gradient_descent, heavy_ball, newton
from .lasso import (fista_lasso, forward_backward_lasso, group_lasso_forward_backward,
                    weighted_lasso_forward_backward)
from .splitting import admm_lasso, douglas_rachford_lasso

__all__ = [
    "AlgorithmMap",
    "forward_backward_lasso", "weighted_lasso_forward_backward", "group_lasso_forward_backward",
    "fista_lasso", "douglas_rachford_lasso", "admm_lasso", "sparse_inverse_covariance",
    "gradient_descent", "heavy_ball", "newton",
]
