"""Old path of :mod:`conservative.derivatives.implicit`, kept for one release: import from there."""
from .derivatives.implicit import (  # noqa: F401
    fpad, fpad_vjp, implicit_jacobian, invertible_on_hull, one_step)

__all__ = ["implicit_jacobian", "invertible_on_hull", "fpad", "fpad_vjp", "one_step"]
