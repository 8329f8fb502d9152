"""Smooth matrix functions for traced programs: linear solves and the log-det prox.

DSL-level wrappers of the structural primitives of ``conservative/rules/matrix.py``. Like the
functions of ``conservative.dsl`` they record a node when given symbolic values and compute the
value with NumPy when given plain arrays. Both are smooth: they add no kink to a program.
"""

from __future__ import annotations

import numpy as np

from .dsl import Sym, bind
from .errors import InputError, fail_message
from .rules import logdet_prox_p, solve_p

__all__ = ["solve", "logdet_prox"]


def solve(A, b):
    """Solution ``x`` of ``A x = b`` for a square matrix ``A``.

    Parameters
    ----------
    A : Sym or array_like, shape (n, n)
    b : Sym or array_like, shape (n,) or (n, k)

    Returns
    -------
    Sym or ndarray, the shape of ``b``

    Notes
    -----
    Smooth where ``A`` is invertible, with JVP ``dx = A^{-1} (db - dA x)``.

    Raises
    ------
    ShapeError
        When ``A`` is not square or ``b`` does not match it.
    InputError
        When ``A`` is singular at an evaluated point.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> from conservative.linalg import solve
    >>> F = cv.trace(lambda x, t: solve(np.array([[2.0, 0.0], [0.0, 4.0]]) * t, x), (2,), ())
    >>> F(np.array([2.0, 4.0]), 1.0)
    array([1., 1.])
    """
    return bind(solve_p, A, b, call="cv.linalg.solve")


def logdet_prox(W, gamma: float):
    """Proximal operator of ``-gamma log det``: ``1/2 (W + (W^2 + 4 gamma I)^{1/2})``.

    The unique ``X`` positive definite with ``X - gamma X^{-1} = W``, i.e.
    ``argmin_X -gamma log det X + 1/2 ||X - W||_F^2``. Computed on the symmetric part
    ``(W + W^T) / 2`` of ``W`` by an eigendecomposition ``Q diag(l) Q^T``, applying
    ``g(l) = (l + sqrt(l^2 + 4 gamma)) / 2`` to the eigenvalues.

    Parameters
    ----------
    W : Sym or array_like, shape (d, d)
    gamma : float
        Positive constant (not traced).

    Returns
    -------
    Sym or ndarray, shape (d, d)

    Notes
    -----
    Smooth for ``gamma > 0``. The JVP is the Daleckii-Krein formula
    ``Q (G o (Q^T H_s Q)) Q^T`` with ``H_s`` the symmetric part of the tangent ``H`` and divided
    differences ``G_ij = (g(l_i) - g(l_j)) / (l_i - l_j)``, ``G_ii = g'(l_i)``, evaluated in the
    cancellation-free form ``1/2 + (l_i + l_j) / (2 (sqrt(l_i^2 + 4 gamma) + sqrt(l_j^2 + 4
    gamma)))``.

    Raises
    ------
    InputError
        When ``gamma`` is not a positive finite number.
    ShapeError
        When ``W`` is not square.

    Examples
    --------
    >>> import numpy as np
    >>> from conservative.linalg import logdet_prox
    >>> X = logdet_prox(np.diag([0.0, 3.0]), 4.0)       # g(0) = 4 / 2, g(3) = (3 + 5) / 2
    >>> X
    array([[2., 0.],
           [0., 4.]])
    >>> bool(np.allclose(X - 4.0 * np.linalg.inv(X), np.diag([0.0, 3.0])))
    True
    """
    call = "cv.linalg.logdet_prox"
    if isinstance(gamma, Sym) or not isinstance(gamma, (int, float, np.integer, np.floating)) \
            or isinstance(gamma, bool) or not (np.isfinite(gamma) and gamma > 0):
        raise InputError(fail_message(call, f"gamma={gamma!r}",
                                      "pass a positive finite number (a constant, not traced)"))
    return bind(logdet_prox_p, W, call=call, gamma=float(gamma))
