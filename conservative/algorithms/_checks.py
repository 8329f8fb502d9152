"""Argument checks shared by the zoo: messages name the call, what came in and what to do."""

from __future__ import annotations

import numpy as np

from ..errors import InputError, fail_message

__all__ = ["positive", "nonnegative", "dimension", "function", "gradient_contraction"]


def _finite_real(value) -> bool:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    try:
        return ok and bool(np.isfinite(float(value)))
    except OverflowError:                       # a Python int beyond float64
        return False


def positive(value, name: str, call: str, hint: str = "") -> float:
    """``value`` as a float, refusing anything but a finite number > 0."""
    if not _finite_real(value) or not value > 0:
        raise InputError(fail_message(call, f"{name}={value!r}",
                                      f"pass a positive finite number{hint}"))
    return float(value)


def nonnegative(value, name: str, call: str, hint: str = "") -> float:
    """``value`` as a float, refusing anything but a finite number >= 0."""
    if not _finite_real(value) or not value >= 0:
        raise InputError(fail_message(call, f"{name}={value!r}",
                                      f"pass a finite number >= 0{hint}"))
    return float(value)


def dimension(value, name: str, call: str) -> int:
    """A positive integer (a state dimension)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(fail_message(call, f"{name}={value!r}", "pass a positive integer"))
    return int(value)


def function(value, name: str, call: str, signature: str):
    """A callable, or an InputError that shows the expected signature."""
    if not callable(value):
        raise InputError(fail_message(call, f"{name} of type {type(value).__name__}",
                                      f"pass a function {signature}"))
    return value


def gradient_contraction(gram: np.ndarray, step: float) -> float | None:
    """``max_i |1 - step eig_i(gram)|`` if below 1, else None.

    A bound on ``||D (I - step gram)||_2`` for every diagonal D with entries in [0, 1], hence a
    global contraction factor of forward-backward steps whose prox Jacobians are such D (or,
    for block soft-thresholding, symmetric with eigenvalues in [0, 1]).
    """
    eig = np.linalg.eigvalsh(gram)
    factor = float(np.max(np.abs(1.0 - step * eig)))
    return factor if factor < 1.0 else None
