"""Conversion of user input to float64 arrays, done once at the API boundary."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InputError, NonFiniteError, ShapeError, fail_message

__all__ = ["as_float_array", "as_shape", "as_matrix_stack", "size_of"]


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:200]


def as_float_array(value: Any, *, name: str, call: str, shape: tuple[int, ...] | None = None,
                   allow_batch: bool = False, finite: bool = True) -> np.ndarray:
    """Convert ``value`` to a float64 array, refusing what would silently lose meaning.

    Parameters
    ----------
    value : array_like
        Real numbers (int or float). Complex, bool, object and string input is refused.
    name, call : str
        Used in error messages: the argument's name and the public call that received it.
    shape : tuple of int, optional
        Required trailing shape. With ``allow_batch`` extra leading axes are allowed.
    allow_batch : bool
        Allow leading batch axes before ``shape``.
    finite : bool
        Refuse NaN and infinities.

    Raises
    ------
    InputError, ShapeError, NonFiniteError

    Examples
    --------
    >>> as_float_array([1, 2], name="x", call="demo", shape=(2,))
    array([1., 2.])
    """
    arr = np.asarray(value)
    if arr.dtype == bool or arr.dtype.kind in "bcOUSMmV":
        raise InputError(fail_message(
            call, f"{name} as {_describe(value)}",
            "pass real numbers (int or float); complex, bool and object arrays are not accepted"))
    arr = np.array(arr, dtype=np.float64)
    if shape is not None:
        shape = tuple(shape)
        nd = len(shape)
        ok = arr.shape[arr.ndim - nd:] == shape if arr.ndim >= nd else False
        if ok and not allow_batch and arr.ndim != nd:
            ok = False
        if not ok:
            want = f"shape {shape}" + (" (with optional leading batch axes)" if allow_batch else "")
            raise ShapeError(fail_message(call, f"{name} of shape {arr.shape}", f"pass {want}"))
    if finite and not np.all(np.isfinite(arr)):
        raise NonFiniteError(fail_message(
            call, f"{name} containing NaN or infinite values",
            "pass finite numbers (check the previous computation for overflow or 0/0)"))
    return arr


def as_shape(value: Any, *, name: str, call: str) -> tuple[int, ...]:
    """Normalise an int or a sequence of ints into a shape tuple."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),)
    try:
        shape = tuple(int(s) for s in value)
        good = all(s >= 0 for s in shape) and all(
            not isinstance(s, bool) and float(s) == int(s) for s in value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ShapeError(fail_message(call, f"{name}={value!r}",
                                      "pass a tuple of non-negative integers such as (3,) or ()"))
    return shape


def size_of(shape: tuple[int, ...]) -> int:
    """Number of elements of an array of this shape (1 for ``()``)."""
    return int(math.prod(shape))


def as_matrix_stack(value: Any, *, name: str, call: str, square: bool = True) -> np.ndarray:
    """Convert to a float64 stack of matrices of shape (k, n, n) (or (k, n, p) if not square).

    A single matrix (n, n) is promoted to a stack of one.
    """
    arr = as_float_array(value, name=name, call=call)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0 or (square and arr.shape[1] != arr.shape[2]):
        want = "a stack of square matrices of shape (k, n, n)" if square else \
            "a stack of matrices of shape (k, n, p)"
        raise ShapeError(fail_message(call, f"{name} of shape {arr.shape}", f"pass {want}"))
    return arr
