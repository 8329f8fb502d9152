"""Old path of :mod:`conservative.derivatives.iterate`, kept for one release: import from there."""
from .derivatives.iterate import (  # noqa: F401
    FixedPointResult, active_rows, blocks_at_fixed_point, derivative_step, fixed_point,
    frozen_columns, frozen_step, iterate, linearisation_at_fixed_point, require_fixed_point)

__all__ = ["iterate", "fixed_point", "FixedPointResult", "require_fixed_point",
           "blocks_at_fixed_point", "derivative_step", "linearisation_at_fixed_point",
           "frozen_step", "active_rows", "frozen_columns"]
