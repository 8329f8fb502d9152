"""Old path of :mod:`conservative.derivatives.attractor`, kept for one release: import from there."""
from .derivatives.attractor import Attractor, attractor, ifs_attractor  # noqa: F401

__all__ = ["attractor", "Attractor", "ifs_attractor"]
