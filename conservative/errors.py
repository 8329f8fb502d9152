"""Exception hierarchy of ``conservative``.

Every error the toolkit raises on purpose is a :class:`ConservativeError`. Messages follow one
pattern: *the call* that failed, *what it received*, and *what to do*. Use :func:`fail_message`
to build them so they read alike everywhere.
"""

from __future__ import annotations

__all__ = [
    "ConservativeError",
    "InputError",
    "ShapeError",
    "NonFiniteError",
    "TracingError",
    "SymbolicBoolError",
    "DiscontinuityError",
    "SetTooLargeError",
    "NotConvergedError",
    "NotContractingError",
    "SingularJacobianError",
    "SolverError",
    "UndecidedError",
    "fail_message",
]


def fail_message(call: str, received: str, todo: str) -> str:
    """Return a message naming the call, what it received and what to do.

    Examples
    --------
    >>> fail_message("cv.trace", "state_shape=-1", "pass a tuple of non-negative ints")
    'cv.trace: received state_shape=-1; pass a tuple of non-negative ints.'
    """
    todo = todo.rstrip(".")
    return f"{call}: received {received}; {todo}."


class ConservativeError(Exception):
    """Base class of every error raised on purpose by ``conservative``."""


class InputError(ConservativeError, ValueError):
    """An argument has the wrong type, dtype or value."""


class ShapeError(InputError):
    """An array has the wrong shape."""


class NonFiniteError(InputError):
    """An input or a computed value is NaN or infinite."""


class TracingError(ConservativeError):
    """The user's function cannot be traced into a program."""


class SymbolicBoolError(TracingError, TypeError):
    """Python control flow (``if``, ``bool``, ``and``) was used on a symbolic value.

    The message shows the expression and the user's file:line, and points to the nonsmooth
    primitives that express the branch instead (``cv.where``, ``cv.maximum``, ``cv.relu``).
    """


class DiscontinuityError(ConservativeError):
    """A piecewise definition (``cv.where``) is discontinuous on its boundary.

    Conservative Jacobians exist only for locally Lipschitz maps, so a jump is refused.
    """


class SetTooLargeError(ConservativeError):
    """Enumerating a set would create more elements than the allowed limit.

    Attributes
    ----------
    suggested_tol : float or None
        For resolution-driven sets (an attractor), a tolerance that was measured to fit.
    """

    def __init__(self, message: str, *, suggested_tol: float | None = None):
        super().__init__(message)
        self.suggested_tol = suggested_tol


class NotConvergedError(ConservativeError):
    """An iteration did not reach its tolerance within the allowed number of steps.

    Attributes
    ----------
    steps : int
        Number of steps performed.
    residual : float
        Last residual observed.
    """

    def __init__(self, message: str, *, steps: int | None = None, residual: float | None = None):
        super().__init__(message)
        self.steps = steps
        self.residual = residual


class NotContractingError(ConservativeError):
    """No contraction could be certified, so a set-valued fixed point is not defined/computable.

    Attributes
    ----------
    lower : float or None
        Best lower bound on the joint spectral radius found.
    word : tuple of int or None
        The product (indices into the matrix set) attaining ``lower``.
    certificate : object or None
        The (uncertified) certificate, for inspection.
    """

    def __init__(self, message: str, *, lower=None, word=None, certificate=None):
        super().__init__(message)
        self.lower = lower
        self.word = word
        self.certificate = certificate


class SingularJacobianError(ConservativeError):
    """``I - A`` may be singular for some ``A`` of the (convex hull of the) set."""


class SolverError(ConservativeError):
    """A numerical solver (LP, SDP) failed or returned an unusable answer."""


class UndecidedError(ConservativeError):
    """An interval comparison overlapped, so the question could not be decided rigorously."""
