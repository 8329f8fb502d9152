"""Conversion of user input to float64 arrays, done once at the API boundary."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InputError, NonFiniteError, ShapeError, fail_message

__all__ = ["as_float_array", "as_shape", "as_matrix_stack", "size_of", "check_int", "check_real",
           "check_bool", "check_steps", "check_tol", "initial_jacobian", "as_rng"]


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
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        raise ShapeError(fail_message(
            call, f"{name} as {_describe(value)}, a nested sequence of unequal lengths",
            "pass a rectangular array (every row of the same length)")) from None
    if arr.dtype.kind == "O" and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                     for v in arr.ravel()):
        arr = _big_ints_to_float(arr, name=name, call=call)   # Python ints beyond int64
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


def _big_ints_to_float(arr: np.ndarray, *, name: str, call: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in arr.ravel()], dtype=np.float64).reshape(arr.shape)
    except OverflowError:
        raise NonFiniteError(fail_message(
            call, f"{name} with an integer too large for float64 (above 1.8e308)",
            "rescale the input")) from None


def as_shape(value: Any, *, name: str, call: str) -> tuple[int, ...]:
    """Normalise an int or a sequence of ints into a shape tuple."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),)
    try:
        shape = tuple(int(s) for s in value)
        good = all(s >= 0 for s in shape) and all(
            not isinstance(s, bool) and float(s) == int(s) for s in value)
    except (TypeError, ValueError, OverflowError):
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


# ---------------------------------------------------------------------------------------------
# scalar options: one checker per kind, so every call refuses the same things the same way


def check_int(value: Any, *, name: str, call: str, minimum: int = 0) -> int:
    """An integer option ``>= minimum``; bool, floats (even 2.0) and strings are refused.

    Examples
    --------
    >>> check_int(3, name="steps", call="demo")
    3
    >>> check_int(2.5, name="max_length", call="cv.jsr", minimum=1)
    Traceback (most recent call last):
    ...
    conservative.errors.InputError: cv.jsr: received max_length=2.5;
    pass an integer >= 1 (and below 2^63).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum \
            or value >= 2 ** 63:
        raise InputError(fail_message(call, f"{name}={value!r}"[:200],
                                      f"pass an integer >= {minimum} (and below 2^63)"))
    return int(value)


def check_real(value: Any, *, name: str, call: str, minimum: float = -math.inf,
               strict: bool = False, allow_inf: bool = False) -> float:
    """A real option ``>= minimum`` (``> minimum`` with ``strict``); NaN and bool refused.

    Infinity is refused unless ``allow_inf`` (e.g. ``time_limit=inf`` for no limit).

    Examples
    --------
    >>> check_real(1e-9, name="atol", call="demo", minimum=0.0)
    1e-09
    >>> check_real(float("nan"), name="atol", call="JacobianSet.contains", minimum=0.0)
    Traceback (most recent call last):
    ...
    conservative.errors.InputError: JacobianSet.contains: received atol=nan;
    pass a finite number >= 0.0.
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        try:
            v = float(value)
        except OverflowError:                   # a Python int beyond float64
            v = math.inf if value > 0 else -math.inf
        ok = (not math.isnan(v) and (allow_inf or math.isfinite(v))
              and (v > minimum if strict else v >= minimum))
    if not ok:
        kind = "number" if allow_inf else "finite number"
        bound = "" if minimum == -math.inf else f" {'>' if strict else '>='} {minimum}"
        raise InputError(fail_message(call, f"{name}={value!r}", f"pass a {kind}{bound}"))
    return v


def check_bool(value: Any, *, name: str, call: str) -> bool:
    """A flag: True or False (numpy bools too); strings such as ``"no"`` are refused.

    Examples
    --------
    >>> check_bool(np.bool_(True), name="hull", call="demo")
    True
    >>> check_bool("no", name="hull", call="Map.jacobian")
    Traceback (most recent call last):
    ...
    conservative.errors.InputError: Map.jacobian: received hull='no'; pass True or False.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(fail_message(call, f"{name}={value!r}", "pass True or False"))
    return bool(value)


def check_steps(steps: Any, call: str, name: str = "steps") -> int:
    """A number of steps: a non-negative integer."""
    return check_int(steps, name=name, call=call, minimum=0)


def check_tol(tol: Any, call: str, name: str = "tol") -> float:
    """A tolerance: a finite non-negative number."""
    return check_real(tol, name=name, call=call, minimum=0.0)


def initial_jacobian(J0: Any, n: int, m: int, *, call: str,
                     block_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The starting derivative ``J0`` as an (n, m) float array (zeros when None).

    Accepted shapes: ``(n, m)``, or ``block_shape`` (``state_shape + param_shape``) when given.

    Examples
    --------
    >>> initial_jacobian(None, 2, 1, call="demo").shape
    (2, 1)
    >>> initial_jacobian([[1.0, 2.0]], 2, 1, call="cv.fpad")
    Traceback (most recent call last):
    ...
    conservative.errors.ShapeError: cv.fpad: received J0 of shape (1, 2);
    pass J0 of shape (n, m) = (2, 1).
    """
    if J0 is None:
        return np.zeros((n, m))
    arr = as_float_array(J0, name="J0", call=call)
    shapes = {(n, m)} | ({tuple(block_shape)} if block_shape is not None else set())
    if arr.shape not in shapes:
        raise ShapeError(fail_message(call, f"J0 of shape {arr.shape}",
                                      f"pass J0 of shape (n, m) = ({n}, {m})"))
    return arr.reshape(n, m)


def as_rng(seed: Any, *, call: str, name: str = "rng") -> np.random.Generator:
    """A numpy Generator from None, a non-negative int seed or a Generator.

    Examples
    --------
    >>> bool(as_rng(0, call="demo").integers(10) == as_rng(0, call="demo").integers(10))
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
                        and seed >= 0):
        return np.random.default_rng(seed)
    raise InputError(fail_message(call, f"{name}={seed!r}"[:200],
                                  "pass None, a non-negative integer seed or a "
                                  "numpy.random.Generator"))
