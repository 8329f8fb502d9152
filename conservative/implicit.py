"""Old path of :mod:`conservative.derivatives.implicit`, kept for one release: import from there."""
from .derivatives.implicit import *  # noqa: F401,F403
