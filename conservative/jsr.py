"""Old path of :mod:`conservative.certify.jsr` (kept one release): re-exports."""
from .certify.jsr import JSRResult, jsr  # noqa: F401
from .certify.matrices import parse_matrix_set, product, spectral_radius  # noqa: F401
from .certify.sdp import import_cvxpy, quadratic_norm  # noqa: F401

__all__ = ["JSRResult", "jsr", "product", "spectral_radius", "parse_matrix_set",
           "import_cvxpy", "quadratic_norm"]
