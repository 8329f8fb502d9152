"""Old path of :mod:`conservative.derivatives.attractor`, kept for one release: import from there."""
from .derivatives.attractor import *  # noqa: F401,F403
