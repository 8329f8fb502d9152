"""Old path of :mod:`conservative.derivatives.iterate`, kept for one release: import from there."""
from .derivatives.iterate import *  # noqa: F401,F403
