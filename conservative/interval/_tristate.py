"""Three-valued comparisons of intervals: :class:`Tristate` (certainly true, certainly false or
undecided, elementwise) and the comparisons that return it. ``bool()`` of an undecided
comparison raises instead of guessing."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, UndecidedError, fail_message
from ._core import Interval, as_interval_pair, describe, format_endpoints  # noqa: F401 (doctests)

__all__ = ["Tristate", "as_tristate", "lt", "le", "gt", "ge", "eq", "ne"]


class Tristate:
    """Elementwise three-valued truth: certainly true, certainly false, or undecided.

    Stored as two boolean arrays: ``certainly`` (true for every choice of values in the
    intervals) and ``possibly`` (true for some choice). Undecided means
    ``possibly & ~certainly``. Logic follows Kleene: ``~``, ``&``, ``|``.

    Raises
    ------
    UndecidedError
        From ``bool()`` of an undecided single comparison (never a silent ``False``).
    InputError
        From ``bool()`` of more than one element, or if ``certainly`` is not a subset of
        ``possibly``.

    Examples
    --------
    >>> t = Interval([0.0, 2.0, -1.0], [1.0, 3.0, 0.5]) > 0.75
    >>> t
    Tristate([undecided, True, False])
    >>> t.certainly, t.possibly
    (array([False,  True, False]), array([ True,  True, False]))
    >>> bool(t[1])
    True
    >>> bool(t[0])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conservative.errors.UndecidedError: bool(Tristate): ... gt(x=[0.0, 1.0], y=0.75); ...
    """

    __slots__ = ("_c", "_p", "_source")
    __array_ufunc__ = None          # ndarray & Tristate defers to our reflected operators

    def __init__(self, certainly: Any, possibly: Any, *, source=None):
        c, p = np.broadcast_arrays(np.asarray(certainly, dtype=bool),
                                   np.asarray(possibly, dtype=bool))
        c, p = np.array(c), np.array(p)
        c.flags.writeable = False
        p.flags.writeable = False
        if np.any(c & ~p):
            raise InputError(fail_message("Tristate", "certainly=True where possibly=False",
                                          "pass certainly as a subset of possibly"))
        self._c, self._p, self._source = c, p, source

    @property
    def certainly(self) -> np.ndarray:
        """True where the statement holds for every choice of values."""
        return self._c

    @property
    def possibly(self) -> np.ndarray:
        """True where the statement holds for some choice of values."""
        return self._p

    @property
    def undecided(self) -> np.ndarray:
        return self._p & ~self._c


    @property
    def shape(self) -> tuple[int, ...]:
        return self._c.shape

    @property
    def size(self) -> int:
        return self._c.size

    def _where_text(self, idx) -> str:
        if self._source is None:
            return "an undecided comparison"
        op, a, b = self._source
        try:
            ai, bi = a.broadcast_to(self.shape)[idx], b.broadcast_to(self.shape)[idx]
            text = lambda v: format_endpoints(v._lo) if bool(np.all(v.is_point)) else \
                f"[{format_endpoints(v._lo)}, {format_endpoints(v._hi)}]"
            at = "" if idx == () else f" at index {idx}"
            return f"an undecided comparison {op}(x={text(ai)}, y={text(bi)}){at}"
        except Exception:      # pragma: no cover - message building must never hide the error
            return f"an undecided comparison {op}"

    def __bool__(self) -> bool:
        if self.size != 1:
            raise InputError(fail_message(
                "bool(Tristate)", f"{self.size} elements",
                "use .certainly or .possibly (boolean arrays) to say what undecided should mean"))
        if self.undecided.reshape(-1)[0]:
            raise UndecidedError(fail_message(
                "bool(Tristate)", self._where_text(()),
                "decide both branches (e.g. where() with the hull) or tighten the intervals"))
        return bool(self._c.reshape(-1)[0])

    def __array__(self, dtype=None, copy=None):
        raise InputError(fail_message(
            "np.asarray(Tristate)", f"a Tristate of shape {self.shape}",
            "use .certainly or .possibly to say what undecided should mean"))

    def __invert__(self) -> "Tristate":
        return Tristate(~self._p, ~self._c)

    def __and__(self, other: "Tristate") -> "Tristate":
        other = as_tristate(other, "Tristate.__and__")
        return Tristate(self._c & other._c, self._p & other._p)

    def __or__(self, other: "Tristate") -> "Tristate":
        other = as_tristate(other, "Tristate.__or__")
        return Tristate(self._c | other._c, self._p | other._p)

    __rand__ = __and__
    __ror__ = __or__


    def __getitem__(self, key) -> "Tristate":
        src = None
        if self._source is not None:
            op, a, b = self._source
            src = (op, a.broadcast_to(self.shape)[key], b.broadcast_to(self.shape)[key])
        return Tristate(self._c[key], self._p[key], source=src)

    def __repr__(self) -> str:
        names = np.where(self._c, "True", np.where(self._p, "undecided", "False"))
        if names.ndim == 0:
            return f"Tristate({names[()]})"
        return "Tristate(" + np.array2string(names, separator=", ",
                                             formatter={"all": str}) + ")"


def as_tristate(x, call) -> Tristate:
    if isinstance(x, Tristate):
        return x
    arr = np.asarray(x)
    if arr.dtype != bool:
        raise InputError(fail_message(call, describe(x), "pass a Tristate or booleans"))
    return Tristate(arr, arr)


def _compare(op: str, a, b) -> Tristate:
    a, b = as_interval_pair(a, b, op)
    if op == "lt":
        c, p = a._hi < b._lo, a._lo < b._hi
    elif op == "le":
        c, p = a._hi <= b._lo, a._lo <= b._hi
    elif op == "gt":
        c, p = a._lo > b._hi, a._hi > b._lo
    elif op == "ge":
        c, p = a._lo >= b._hi, a._hi >= b._lo
    elif op == "eq":
        c = (a._lo == a._hi) & (b._lo == b._hi) & (a._lo == b._lo)
        p = (a._lo <= b._hi) & (b._lo <= a._hi)
    else:  # ne
        eq_c = (a._lo == a._hi) & (b._lo == b._hi) & (a._lo == b._lo)
        c = (a._hi < b._lo) | (b._hi < a._lo)
        p = ~eq_c
    return Tristate(c, p, source=(op, a, b))


def lt(a: Any, b: Any) -> Tristate:
    """Three-valued ``a < b`` for every choice of values in ``a`` and ``b``.

    Certainly true iff ``a.hi < b.lo``; certainly false iff ``a.lo >= b.hi``.

    Raises
    ------
    ShapeError
        If the shapes do not broadcast.

    Examples
    --------
    >>> lt(Interval(0.0, 1.0), 2.0), lt(Interval(0.0, 1.0), 0.5)
    (Tristate(True), Tristate(undecided))
    """
    return _compare("lt", a, b)


def le(a: Any, b: Any) -> Tristate:
    """Three-valued ``a <= b`` (see :func:`lt`)."""
    return _compare("le", a, b)


def gt(a: Any, b: Any) -> Tristate:
    """Three-valued ``a > b`` (see :func:`lt`)."""
    return _compare("gt", a, b)


def ge(a: Any, b: Any) -> Tristate:
    """Three-valued ``a >= b`` (see :func:`lt`)."""
    return _compare("ge", a, b)


def eq(a: Any, b: Any) -> Tristate:
    """Three-valued ``a == b``: certain only for equal point intervals.

    Examples
    --------
    >>> eq(Interval(1.0, 1.0), 1.0), eq(Interval(0.0, 1.0), Interval(0.0, 1.0))
    (Tristate(True), Tristate(undecided))
    """
    return _compare("eq", a, b)


def ne(a: Any, b: Any) -> Tristate:
    """Three-valued ``a != b`` (the negation of :func:`eq`)."""
    return _compare("ne", a, b)
