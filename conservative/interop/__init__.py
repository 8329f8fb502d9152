"""Importers of foreign programs: a JAX or PyTorch update map as a :class:`~conservative.Map`.

``cv.from_jax(fn, state_shape, param_shape)`` reads ``fn``'s jaxpr; ``cv.from_torch(fn, ...)``
reads the ATen graph of ``torch.export``. Both translate the program operation by operation into
the primitives of ``conservative``, keeping each kink a kink, so that every tool of the package
(sets at kinks, certificates, attractors) applies to a model written for another framework.
Neither framework is needed to import ``conservative``: install the extras ``jax`` or ``torch``.
"""

from ._jaxpr import from_jax
from ._torch_export import from_torch

__all__ = ["from_jax", "from_torch"]
