"""The algorithm zoo: update maps of classical methods, written in the public DSL."""

from ._base import AlgorithmMap
from .lasso import forward_backward_lasso

__all__ = ["AlgorithmMap", "forward_backward_lasso"]
