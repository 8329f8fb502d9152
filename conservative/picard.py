"""Old path of :mod:`conservative.derivatives.piggyback` and :func:`~conservative.derivatives.attractor.attractor`, kept for one release."""
from .derivatives.piggyback import *  # noqa: F401,F403
from .derivatives.attractor import attractor  # noqa: F401
