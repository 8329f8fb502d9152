"""Old path of :mod:`conservative.certify.fixed_point` (kept one release): re-exports."""
from .certify.fixed_point import FixedPointCertificate, certify_fixed_point  # noqa: F401

__all__ = ["FixedPointCertificate", "certify_fixed_point"]
