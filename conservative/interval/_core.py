"""The interval types: :class:`Interval` (immutable arrays of closed intervals) and
:class:`IntervalMatrix` (its 2-D form, the result of ``F.enclose``), with input conversion.

The operators and methods of :class:`Interval` call the functions of the package (arithmetic,
comparisons, elementary functions, assembly), whose modules build their results from the types
defined here."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .. import _display
from ..errors import InputError, NonFiniteError, ShapeError, fail_message
# The operators and methods of Interval call the package's functions, looked up when called: the
# modules that define them import this one, so the package is still being initialised here.
from .. import interval as _interval
from ._rounding import add_ru, check_environment, fraction_endpoints, quiet

__all__ = [
    "describe", "as_interval", "as_interval_pair", "format_endpoints", "Interval", "IntervalMatrix",
]


# ---------------------------------------------------------------------------------------------
# Input conversion
# ---------------------------------------------------------------------------------------------

def describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:200]


def _float_endpoints(value: Any, *, name: str, call: str, finite: bool):
    """Convert to float64; return (down, up) enclosures (different only for huge integers)."""
    if isinstance(value, (Interval, _interval.Tristate)):
        raise InputError(fail_message(call, f"{name} as {type(value).__name__}",
                                      "pass real numbers here, or use the Interval directly"))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 53:
        lo, hi = fraction_endpoints(Fraction(value))    # Python ints of any size, outward
        if finite and not (math.isfinite(lo) and math.isfinite(hi)):
            raise NonFiniteError(fail_message(call, f"{name}={value!r} beyond the float range",
                                              "pass numbers below 1.8e308 in magnitude"))
        return np.array(lo), np.array(hi)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise ShapeError(fail_message(
            call, f"{name} as {describe(value)}, a nested sequence of unequal lengths",
            "pass a rectangular array (every row of the same length)")) from None
    if arr.dtype == bool or arr.dtype.kind in "bcOUSMmV":
        raise InputError(fail_message(
            call, f"{name} as {describe(value)}",
            "pass real numbers (int or float); complex, bool and object arrays are not accepted"))
    f = np.array(arr, dtype=np.float64)
    lo = hi = f
    if arr.dtype.kind in "iu" and arr.size and np.max(np.abs(f)) > 2.0 ** 53:
        lo, hi = f.copy(), f.copy()          # int64 beyond 2**53: enclose outward (rare, loop)
        for idx in np.ndindex(f.shape):
            if abs(f[idx]) > 2.0 ** 53:
                lo[idx], hi[idx] = fraction_endpoints(Fraction(int(arr[idx])))
    if np.any(np.isnan(f)):
        raise NonFiniteError(fail_message(call, f"{name} containing NaN",
                                          "pass real numbers; NaN is not an interval endpoint"))
    if finite and not np.all(np.isfinite(f)):
        raise NonFiniteError(fail_message(
            call, f"{name} containing infinite values",
            "pass finite numbers, or build an unbounded interval with Interval(lo, hi)"))
    return lo, hi


def as_interval(value: Any, *, name: str = "value", call: str = "as_interval") -> "Interval":
    """Return ``value`` as an :class:`Interval`; real arrays become point intervals.

    Parameters
    ----------
    value : Interval or array_like of real numbers
        Floats are exact points (``0.1`` means the double nearest 1/10, not 1/10).
        Integers beyond 2**53 are enclosed outward.
    name, call : str
        Used in error messages.

    Raises
    ------
    InputError
        For complex, bool, object or NaN input; ``NonFiniteError`` for infinite points.

    Examples
    --------
    >>> as_interval([1, 2]).hi
    array([1., 2.])
    """
    if isinstance(value, Interval):
        return value
    check_environment(call)
    lo, hi = _float_endpoints(value, name=name, call=call, finite=True)
    return Interval._new(lo, hi)


def as_interval_pair(a, b, call):
    a = as_interval(a, name="the first operand", call=call)
    b = as_interval(b, name="the second operand", call=call)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(fail_message(call, f"operands of shapes {a.shape} and {b.shape}",
                                      "pass operands whose shapes broadcast (NumPy rules)"))
    return a, b


def format_endpoints(x: np.ndarray) -> str:
    if x.ndim == 0:
        return repr(float(x))
    return np.array2string(x, separator=", ", formatter={"float_kind": lambda v: repr(float(v))},
                           threshold=200, max_line_width=100)


# ---------------------------------------------------------------------------------------------
# Interval
# ---------------------------------------------------------------------------------------------

class Interval:
    """Immutable array of closed intervals ``[lo, hi]`` with outward-rounded arithmetic.

    Parameters
    ----------
    lo, hi : array_like of real numbers
        Endpoints; they broadcast against each other. ``hi`` defaults to ``lo`` (points).
        Endpoints may be infinite (``lo = -inf``, ``hi = +inf``) but ``lo`` may not be
        ``+inf`` nor ``hi`` ``-inf``. Integers beyond 2**53 are enclosed outward.

    Attributes
    ----------
    lo, hi : ndarray
        Read-only float64 arrays of equal shape with ``lo <= hi``.

    Raises
    ------
    InputError
        If ``lo > hi`` somewhere, an endpoint is NaN (``NonFiniteError``), or the input is not
        real (complex, bool, object).
    ShapeError
        If ``lo`` and ``hi`` do not broadcast.

    Notes
    -----
    Operators: ``+ - * / @ **`` (non-negative integer powers), unary ``-``, ``abs()``, and the
    comparisons ``< <= > >= == !=`` which return a :class:`Tristate`. Operands may be
    intervals or real arrays (treated as exact points); NumPy arrays on the left work too.
    ``np.asarray(interval)`` is refused: choose ``.lo``, ``.hi`` or ``.mid`` explicitly.

    Examples
    --------
    >>> x = Interval([0.0, 1.0], [1.0, 2.0])
    >>> x.shape
    (2,)
    >>> x * 2 - 1
    Interval(lo=[-1.0, 1.0], hi=[1.0, 3.0])
    >>> Interval(2.0, 1.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conservative.errors.InputError: Interval: received lo > hi at index () (lo=2.0, hi=1.0); ...
    """

    __slots__ = ("_lo", "_hi")
    __array_ufunc__ = None          # make ndarray (op) Interval defer to our reflected methods
    __hash__ = None                 # mutable-looking semantics of == (tri-state) forbid hashing

    def __init__(self, lo: Any, hi: Any = None, *, call: str = "Interval"):
        check_environment(call)
        lo_d, hi_u = _float_endpoints(lo, name="lo", call=call, finite=False)
        if hi is not None:
            _, hi_u = _float_endpoints(hi, name="hi", call=call, finite=False)
        try:
            shape = np.broadcast_shapes(lo_d.shape, hi_u.shape)
        except ValueError:
            raise ShapeError(fail_message(call, f"lo of shape {lo_d.shape} and hi of shape "
                                          f"{hi_u.shape}", "pass endpoints whose shapes broadcast"))
        point = hi is None and lo_d is hi_u      # exact points: one read-only array for both
        lo_d = np.array(np.broadcast_to(lo_d, shape), dtype=np.float64)
        hi_u = lo_d if point else np.array(np.broadcast_to(hi_u, shape), dtype=np.float64)
        bad = lo_d > hi_u
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(fail_message(
                call, f"lo > hi at index {idx} (lo={float(lo_d[idx])!r}, hi={float(hi_u[idx])!r})",
                "pass lo <= hi elementwise (np.minimum and np.maximum of unordered values give "
                "the smallest interval around them)"))
        if np.any(lo_d == np.inf) or np.any(hi_u == -np.inf):
            raise InputError(fail_message(call, "lo = +inf or hi = -inf",
                                          "an interval must contain a real number"))
        self._set(lo_d, hi_u)

    @classmethod
    def point(cls, value: Any) -> "Interval":
        """The exact point ``[v, v]`` of a real array: one read-only copy shared by both ends
        (what a program's constants become; cheaper than ``Interval(value)`` for large
        float arrays, with the same errors for NaN, infinities and non-real input).

        Examples
        --------
        >>> Interval.point([1.0, 2.5])
        Interval(lo=[1.0, 2.5], hi=[1.0, 2.5])
        """
        return cls._point(value, share=False)

    @classmethod
    def _point(cls, value: Any, *, share: bool) -> "Interval":
        """:meth:`point`; with ``share``, a read-only float64 array owning its data is used as
        is, not copied. Only for arrays nobody else may write to (a program's constants, the
        trace's own copies): a user's read-only array can be made writable again."""
        arr = np.asarray(value)
        if arr.dtype.kind != "f":
            return cls(value)                # ints (possibly beyond 2**53), bad types: checked
        check_environment("Interval.point")
        if share and arr.dtype == np.float64 and arr.base is None and not arr.flags.writeable:
            copy = arr          # read-only data it owns (a program's constant): shared as is
        else:
            copy = np.array(arr, dtype=np.float64, order="K")   # keeps a transpose's layout
        if not np.isfinite(copy).all():
            return cls(value)                # NaN and infinities: the constructor's errors
        obj = object.__new__(cls)
        obj._set(copy, copy)
        return obj

    def _set(self, lo, hi):
        lo.flags.writeable = False
        hi.flags.writeable = False
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_hi", hi)

    @classmethod
    def _new(cls, lo, hi) -> "Interval":
        """Build without validation from arrays known to be valid endpoints."""
        obj = object.__new__(Interval)
        obj._set(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))
        return obj

    def __setattr__(self, name, value):
        raise AttributeError(f"Interval is immutable; cannot set {name!r}")

    def __reduce__(self):
        return (_rebuild, (type(self), np.array(self._lo), np.array(self._hi)))

    # --- basic properties ------------------------------------------------------------------

    @property
    def lo(self) -> np.ndarray:
        """Lower endpoints (read-only float64 array)."""
        return self._lo

    @property
    def hi(self) -> np.ndarray:
        """Upper endpoints (read-only float64 array)."""
        return self._hi

    @property
    def shape(self) -> tuple[int, ...]:
        return self._lo.shape

    @property
    def ndim(self) -> int:
        return self._lo.ndim

    @property
    def size(self) -> int:
        return self._lo.size

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d Interval")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d Interval")
        for i in range(self.shape[0]):
            yield self[i]

    @property
    @quiet
    def mid(self) -> np.ndarray:
        """A float inside each interval, near the midpoint (0 for the whole line).

        Examples
        --------
        >>> Interval([0.0, 1.0], [1.0, 1.0]).mid
        array([0.5, 1. ])
        """
        lo, hi = self._lo, self._hi
        m = np.where(lo == hi, lo, 0.5 * lo + 0.5 * hi)
        m = np.where(np.isnan(m), 0.0, m)
        return np.asarray(np.clip(m, lo, hi))


    @property
    @quiet
    def width(self) -> np.ndarray:
        """``hi - lo`` rounded up."""
        return np.asarray(add_ru(self._hi, -self._lo))

    @property
    def mag(self) -> np.ndarray:
        """Magnitude ``max |x|`` over the interval (exact)."""
        return np.maximum(np.abs(self._lo), np.abs(self._hi))

    @property
    def mig(self) -> np.ndarray:
        """Mignitude ``min |x|`` over the interval (exact; 0 if it contains 0)."""
        m = np.minimum(np.abs(self._lo), np.abs(self._hi))
        return np.where((self._lo <= 0) & (self._hi >= 0), 0.0, m)

    @property
    def is_point(self) -> np.ndarray:
        """Elementwise ``lo == hi``."""
        return self._lo == self._hi


    def contains(self, x: Any, *, atol: float = 0.0) -> np.ndarray:
        """Elementwise membership of reals ``x`` (or inclusion of an interval ``x``).

        Parameters
        ----------
        x : array_like or Interval
            Broadcast against the interval.
        atol : float
            Tolerance: test ``lo - atol <= x <= hi + atol`` (0 for the rigorous test).

        Raises
        ------
        InputError
            If ``x`` contains NaN, or ``atol`` is negative or NaN.

        Examples
        --------
        >>> Interval([0.0, 0.0], [1.0, 1.0]).contains([0.5, 2.0])
        array([ True, False])
        """
        call = "Interval.contains"
        if not atol >= 0:
            raise InputError(fail_message(call, f"atol={atol!r}", "pass atol >= 0"))
        if isinstance(x, Interval):
            lo, hi = x._lo, x._hi
        else:
            lo, hi = _float_endpoints(x, name="x", call=call, finite=False)
        try:
            np.broadcast_shapes(np.shape(lo), self.shape)
        except ValueError:
            raise ShapeError(fail_message(call, f"x of shape {np.shape(lo)} for an interval of "
                                          f"shape {self.shape}", "pass x that broadcasts"))
        with np.errstate(all="ignore"):
            return np.asarray((self._lo - atol <= lo) & (hi <= self._hi + atol))


    # --- shape manipulation ----------------------------------------------------------------

    def __getitem__(self, key) -> "Interval":
        if isinstance(key, (Interval, _interval.Tristate)):
            raise InputError(fail_message("Interval.__getitem__", f"an index of type "
                                          f"{type(key).__name__}",
                                          "index with ints, slices or boolean/int arrays"))
        return Interval._new(self._lo[key], self._hi[key])

    def __setitem__(self, key, value):
        raise TypeError("Interval is immutable; build a new one with where() or "
                        "concatenate()")

    def reshape(self, *shape) -> "Interval":
        """Same intervals in a new shape (NumPy rules, C order)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            return Interval._new(self._lo.reshape(shape), self._hi.reshape(shape))
        except ValueError:
            raise ShapeError(fail_message("Interval.reshape", f"shape {shape} for an interval "
                                          f"of shape {self.shape}", "keep the number of elements"))


    def transpose(self, *axes) -> "Interval":
        """Permute axes (NumPy rules)."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = axes or None
        return Interval._new(np.transpose(self._lo, axes), np.transpose(self._hi, axes))

    @property
    def T(self) -> "Interval":
        return self.transpose()

    def broadcast_to(self, shape) -> "Interval":
        """Broadcast to ``shape`` (read-only views)."""
        try:
            return Interval._new(np.broadcast_to(self._lo, shape),
                                 np.broadcast_to(self._hi, shape))
        except ValueError:
            raise ShapeError(fail_message("Interval.broadcast_to", f"shape {tuple(shape)} for "
                                          f"an interval of shape {self.shape}",
                                          "pass a shape compatible under broadcasting"))


    # --- conversion guards -----------------------------------------------------------------

    def __array__(self, dtype=None, copy=None):
        raise InputError(fail_message(
            "np.asarray(Interval)", f"an Interval of shape {self.shape}",
            "use .lo, .hi or .mid to choose which floats you mean"))

    def __bool__(self):
        raise InputError(fail_message("bool(Interval)", "an Interval",
                                      "compare explicitly (x > 0) and use .certainly or .possibly of the Tristate"))

    def __float__(self):
        raise InputError(fail_message("float(Interval)", "an Interval",
                                      "use .lo, .hi or .mid to choose which float you mean"))

    def __repr__(self) -> str:
        return f"Interval(lo={format_endpoints(self._lo)}, hi={format_endpoints(self._hi)})"

    # --- arithmetic operators --------------------------------------------------------------

    def __neg__(self) -> "Interval":
        return Interval._new(-self._hi, -self._lo)

    def __pos__(self) -> "Interval":
        return self

    def __abs__(self) -> "Interval":
        return _interval.absolute(self)

    def __add__(self, other):
        return _interval.add(self, other)

    def __radd__(self, other):
        return _interval.add(other, self)

    def __sub__(self, other):
        return _interval.subtract(self, other)

    def __rsub__(self, other):
        return _interval.subtract(other, self)

    def __mul__(self, other):
        return _interval.multiply(self, other)

    def __rmul__(self, other):
        return _interval.multiply(other, self)

    def __truediv__(self, other):
        return _interval.divide(self, other)

    def __rtruediv__(self, other):
        return _interval.divide(other, self)

    def __pow__(self, k):
        return _interval.power(self, k)

    def __matmul__(self, other):
        return _interval.matmul(self, other)

    def __rmatmul__(self, other):
        return _interval.matmul(other, self)

    def __lt__(self, other):
        return _interval.lt(self, other)

    def __le__(self, other):
        return _interval.le(self, other)

    def __gt__(self, other):
        return _interval.gt(self, other)

    def __ge__(self, other):
        return _interval.ge(self, other)

    def __eq__(self, other):
        try:
            return _interval.eq(self, other)
        except InputError:          # not a number: let Python fall back to identity
            return NotImplemented

    def __ne__(self, other):
        try:
            return _interval.ne(self, other)
        except InputError:
            return NotImplemented


def _rebuild(cls, lo, hi):
    """Unpickle an Interval (or IntervalMatrix) without re-validating."""
    obj = object.__new__(cls)
    obj._set(lo, hi)
    return obj


# ---------------------------------------------------------------------------------------------
# IntervalMatrix
# ---------------------------------------------------------------------------------------------

class IntervalMatrix(_display.Summary, Interval):
    """A 2-D :class:`Interval`: the result type of Jacobian enclosures (``F.enclose``).

    Every matrix ``M`` with ``lo <= M <= hi`` entrywise belongs to the box; for a map
    ``F(x, theta)`` with ``n`` states and ``m`` parameters the shape is ``(n, n + m)``: the
    state block ``A`` is ``M[:, :n]``, the parameter block ``B`` is ``M[:, n:]`` (slices and the
    transpose stay interval matrices).

    Parameters
    ----------
    lo, hi : array_like, 2-D
        Endpoints, as for :class:`Interval`.

    Raises
    ------
    ShapeError
        If the endpoints are not 2-D.
    InputError
        As for :class:`Interval` (``lo > hi``, NaN).

    Examples
    --------
    >>> M = IntervalMatrix([[0.0, 1.0], [0.5, 0.0]], [[0.0, 1.0], [1.0, 0.0]])
    >>> M.contains(np.array([[0.0, 1.0], [0.75, 0.0]]))
    True
    >>> M[:, :1]  # doctest: +NORMALIZE_WHITESPACE
    IntervalMatrix(shape=(2, 1), max_width=0.5,
      holds     every matrix M with lo <= M <= hi entrywise
      entries   in [0, 1]
      exact     1 of 2 entries (lo == hi)
      widest    entry (1, 0), width 0.5
      row sums  max sum |M_ij| over a row <= 1 (bounds ||M||_inf)
      lo=       [[0.0], [0.5]]
      hi=       [[0.0], [1.0]])
    """

    __slots__ = ()

    def __init__(self, lo: Any, hi: Any = None, *, call: str = "IntervalMatrix"):
        super().__init__(lo, hi, call=call)
        if self.ndim != 2:
            raise ShapeError(fail_message(call, f"endpoints of shape {self.shape}",
                                          "pass 2-D arrays (matrices)"))

    @classmethod
    def from_interval(cls, x: Interval, *,
                      call: str = "IntervalMatrix.from_interval") -> "IntervalMatrix":
        """Wrap a 2-D :class:`Interval` (no copy).

        Raises
        ------
        ShapeError
            If ``x`` is not 2-D.
        """
        x = as_interval(x, call=call)
        if x.ndim != 2:
            raise ShapeError(fail_message(call, f"an interval of shape {x.shape}",
                                          "pass a 2-D interval"))
        obj = object.__new__(cls)
        obj._set(x._lo, x._hi)
        return obj

    def contains(self, M: Any, *, atol: float = 0.0):
        """Is the matrix ``M`` (or each matrix of a stack) inside the box?

        Parameters
        ----------
        M : array_like of shape ``self.shape`` or ``(k, *self.shape)``, or an Interval
            A matrix, a stack of matrices, or an interval matrix (inclusion test).
        atol : float
            Entrywise tolerance (0 for the rigorous test).

        Returns
        -------
        bool or ndarray of bool
            One bool for a single matrix, an array of shape ``(k,)`` for a stack.

        Raises
        ------
        ShapeError
            If the trailing shape of ``M`` is not ``self.shape``.
        InputError
            If ``M`` contains NaN or ``atol < 0``.
        """
        call = "IntervalMatrix.contains"
        if isinstance(M, Interval):
            if M.shape != self.shape:
                raise ShapeError(fail_message(call, f"an interval of shape {M.shape}",
                                              f"pass shape {self.shape}"))
            return bool(np.all(super().contains(M, atol=atol)))
        lo, _ = _float_endpoints(M, name="M", call=call, finite=False)
        if lo.shape[-2:] != self.shape or lo.ndim not in (2, 3):
            raise ShapeError(fail_message(call, f"M of shape {lo.shape}",
                                          f"pass a matrix of shape {self.shape} or a stack of "
                                          f"shape (k, {self.shape[0]}, {self.shape[1]})"))
        inside = super().contains(lo, atol=atol)
        if lo.ndim == 2:
            return bool(np.all(inside))
        return np.all(inside, axis=(1, 2))


    @property
    def T(self) -> "IntervalMatrix":
        return IntervalMatrix.from_interval(self.transpose())

    def __getitem__(self, key) -> Interval:
        out = super().__getitem__(key)
        return IntervalMatrix.from_interval(out) if out.ndim == 2 else out


    # --- summaries ------------------------------------------------------------------------------

    def _summary(self):
        width = self.width
        w = float(np.max(width)) if self.size else 0.0
        title = f"IntervalMatrix(shape={self.shape}, max_width={w!r},"
        exact = int(np.count_nonzero(self.is_point))
        rows = [("holds", "every matrix M with lo <= M <= hi entrywise"),
                ("entries", "in " + _display.interval_range(self._lo, self._hi)),
                ("exact", f"{exact} of {self.size} entries (lo == hi)")]
        if self.size and w > 0:
            i, j = np.unravel_index(int(np.argmax(width)), self.shape)
            rows.append(("widest", f"entry ({i}, {j}), width {w:.3g}"))
        bound = np.max(np.sum(self.mag, axis=1)) if self.size else 0.0
        rows.append(("row sums", f"max sum |M_ij| over a row <= {_display.number(bound)} "
                                 "(bounds ||M||_inf)"))
        if self.size <= 24:
            rows += [("lo=", format_endpoints(self._lo).replace("\n", "")),
                     ("hi=", format_endpoints(self._hi).replace("\n", "") + ")")]
        return title, rows

    def to_dict(self) -> dict:
        """The endpoints and facts as plain Python data (JSON-ready).

        Examples
        --------
        >>> IntervalMatrix([[0.0, 1.0]], [[0.5, 1.0]]).to_dict()["max_width"]
        0.5
        """
        return {"shape": list(self.shape), "lo": self._lo.tolist(), "hi": self._hi.tolist(),
                "max_width": float(np.max(self.width)) if self.size else 0.0,
                "exact_entries": int(np.count_nonzero(self.is_point))}
