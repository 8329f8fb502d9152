"""What happens to the derivative J = dx/dtheta along the iterations and at their end.

* :mod:`~conservative.derivatives.iterate` -- running the algorithm (:func:`iterate`,
  :func:`fixed_point`) and the derivative steps the other modules share;
* :mod:`~conservative.derivatives.piggyback` -- unrolled forward and reverse mode
  (:func:`piggyback`, :func:`piggyback_vjp`) and the set-valued run (:func:`piggyback_sets`);
* :mod:`~conservative.derivatives.implicit` -- at a fixed point: the implicit set, fixed-point
  AD and one-step differentiation;
* :mod:`~conservative.derivatives.attractor` -- the limit set of every piggyback run
  (:func:`attractor`, :class:`Attractor`).

Modules whose names start with an underscore are the attractor engine's internals.
"""

from .iterate import FixedPointResult, fixed_point, iterate
from .piggyback import piggyback, piggyback_sets, piggyback_vjp
from .implicit import fpad, fpad_vjp, implicit_jacobian, invertible_on_hull, one_step
from .attractor import Attractor, attractor, ifs_attractor

__all__ = ["FixedPointResult", "fixed_point", "iterate", "piggyback", "piggyback_sets",
           "piggyback_vjp", "fpad", "fpad_vjp", "implicit_jacobian", "invertible_on_hull",
           "one_step", "Attractor", "attractor", "ifs_attractor"]
