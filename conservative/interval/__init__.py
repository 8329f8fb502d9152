"""Interval arrays with outward rounding (layer L1).

An :class:`Interval` is an immutable array of closed real intervals ``[lo, hi]`` stored as two
float64 arrays. Every operation returns an interval that contains the exact real result for
*every* choice of reals inside the operands (the *inclusion property*); no operation ever
narrows a result to a rounded value.

How rounding is made outward
----------------------------
NumPy computes in round-to-nearest and cannot switch the rounding mode, so each rounded
operation is followed by an explicit correction, in the spirit of ``mpmath.libmp.libmpi``:

* ``+ - * /`` and ``sqrt`` use error-free transformations (Knuth's TwoSum, Dekker's
  TwoProduct) to learn the *sign* of the rounding error, then step one float down or up with
  ``np.nextafter`` only when the rounded value lies on the wrong side. The result is the
  correctly *directed* rounding: exact operations (``2 * 3``, ``x * 0``, ``x + 0``) stay exact.
  Where the transformation is not error-free (overflow, values below ``2**-960``) the code
  steps unconditionally, which is always sound.
* Sums and matrix products bound the rounding error of the whole floating-point dot product
  a priori (``|fl(x.y) - x.y| <= gamma_k |x|.|y|``, Higham, *Accuracy and Stability*, Thm 3.1,
  valid for any summation order and with or without FMA) and widen by that bound, rounded up.
  This assumes BLAS forms each entry as a sum of the ``k`` products (no Strassen-like
  algorithm), which holds for OpenBLAS, MKL and NumPy's own loops.
* ``exp, log, tanh, sin, cos`` evaluate NumPy at the endpoints (or at the critical points),
  then widen by ``2 * LIBM_ULPS`` units in the last place. **Assumption:** NumPy's float64
  implementations err by less than ``LIBM_ULPS`` (= 4) ulps of the exact result. IEEE 754 does
  not guarantee this (glibc's functions are within 1 ulp; NumPy's AVX-512 code measured
  1.15 ulp for ``tanh``). The assumption is *guarded*: on first use, :func:`libm_check`
  measures NumPy against mpmath on a fixed sample and, if any observed error exceeds
  ``LIBM_ULPS / 2``, the function switches to the mpmath path with a ``RuntimeWarning``.
  ``sin`` and ``cos`` trust NumPy only for ``|x| <= 2**30``: beyond, NumPy's argument
  reduction errs by more than ``LIBM_ULPS`` at the doubles closest to multiples of pi/2, so
  narrow intervals there take the mpmath path.
  Passing ``exact=True`` always takes the mpmath path: each endpoint is enclosed with
  ``mpmath.iv`` at ``EXACT_PREC`` bits, moved outward by ``2**-(EXACT_PREC - 10)`` relative and
  rounded outward to float64 (slow). No libm assumption; the margin covers mpmath's own
  directed rounding, which is not rigorous by itself (it rounds a truncated fixed-point value:
  ``mpmath.iv.exp`` of ``2**-111`` at 96 bits is ``[1, 1]``).
* ``sigmoid`` is ``1 / (1 + exp(-x))`` in interval arithmetic, so it inherits ``exp``'s rule.

The floating-point environment is checked once (round-to-nearest, no flush-to-zero); a
violation raises :class:`~conservative.errors.ConservativeError` instead of returning wrong
bounds.

Decisions are three-valued. ``a < b`` on intervals returns a :class:`Tristate` that is
*certainly* true, *certainly* false, or *undecided* elementwise; ``bool()`` of an undecided
comparison raises :class:`~conservative.errors.UndecidedError` (``mpmath.iv`` would return
``None``, which is silently falsy).

Division by an interval that contains 0 raises :class:`~conservative.errors.UndecidedError`;
:func:`divide` with ``on_zero="whole"`` returns the whole real line there instead.

Examples
--------
>>> from conservative.interval import Interval
>>> s = Interval(0.1) + Interval(0.2)
>>> s
Interval(lo=0.3, hi=0.30000000000000004)
>>> from fractions import Fraction
>>> bool(s.lo <= Fraction(0.1) + Fraction(0.2) <= s.hi)
True
>>> x = Interval([-1.0, 2.0], [1.0, 3.0])
>>> x ** 2
Interval(lo=[0.0, 4.0], hi=[1.0, 9.0])
>>> x > 0
Tristate([undecided, True])

Layout
------
``_rounding``
    the rounding kernel: floating-point environment, directed ``+ - * / sqrt``, sums,
    widening by ulps, outward conversion of fractions and mpmath numbers;
``_core``
    the types :class:`Interval` and :class:`IntervalMatrix`, and input conversion;
``_tristate``
    :class:`Tristate` and the comparisons;
``_arith``
    arithmetic (``+ - * /``, powers, ``sqrt``, ``abs``, ``max``, ``min``);
``_elementary``
    ``exp, log, tanh, sigmoid, sin, cos``;
``_assembly``
    sums, matrix products, concatenation and ``where``.

All of them are internal: import from ``conservative.interval``.
"""

from ._arith import (absolute, add, divide, maximum, minimum, multiply, power, sqrt, square,
                     subtract)
from ._assembly import concatenate, matmul, sum, where
from ._core import Interval, IntervalMatrix
from ._elementary import EXACT_PREC, LIBM_ULPS, cos, exp, libm_check, log, sigmoid, sin, tanh
from ._rounding import workprec
from ._tristate import Tristate, eq, ge, gt, le, lt, ne

__all__ = [
    "Interval", "IntervalMatrix", "Tristate",
    "lt", "le", "gt", "ge", "eq", "ne",
    "add", "subtract", "multiply", "divide", "power", "square", "sqrt", "absolute",
    "maximum", "minimum",
    "exp", "log", "tanh", "sigmoid", "sin", "cos",
    "matmul", "concatenate", "where",
    "workprec", "libm_check", "LIBM_ULPS", "EXACT_PREC",
]
# ``sum`` is public (``interval.sum``) but kept out of ``__all__`` so that a star-import does not
# shadow the builtin.
