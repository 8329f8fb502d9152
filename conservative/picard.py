"""Old path of :mod:`conservative.derivatives.piggyback` (and of ``attractor``), kept for one
release: import from there."""
from .derivatives.piggyback import piggyback, piggyback_sets, piggyback_vjp  # noqa: F401
from .derivatives.attractor import attractor  # noqa: F401

__all__ = ["piggyback", "piggyback_vjp", "piggyback_sets", "attractor"]
