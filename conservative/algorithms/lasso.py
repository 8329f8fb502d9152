"""Proximal splitting for the Lasso: min_w 1/2 ||X w - y||^2 + lam ||w||_1."""

from __future__ import annotations

import numpy as np

from .. import dsl as cv
from .._types import as_float_array
from ..errors import InputError, ShapeError, fail_message
from ..map import trace
from ._base import AlgorithmMap

__all__ = ["forward_backward_lasso"]


def _design(X, y, call):
    X = as_float_array(X, name="X", call=call)
    y = as_float_array(y, name="y", call=call)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ShapeError(fail_message(call, f"X of shape {X.shape} and y of shape {y.shape}",
                                      "pass X of shape (n_samples, p) and y of shape "
                                      "(n_samples,)"))
    return X, y


def _gradient(X, y):
    """Symbolic gradient w -> X^T (X w - y), with the cheaper of the two evaluation orders."""
    n, p = X.shape
    if n >= p:
        gram, Xty = X.T @ X, X.T @ y
        return lambda w: gram @ w - Xty
    Xt = np.ascontiguousarray(X.T)
    return lambda w: Xt @ (X @ w - y)


def forward_backward_lasso(X, y, *, step=None) -> AlgorithmMap:
    """Forward-backward (ISTA) for the Lasso, with the penalty as parameter.

    Problem: ``min_w 1/2 ||X w - y||^2 + lam ||w||_1``; state ``w`` (p,), ``theta = lam`` (shape
    ``()``). Update::

        w_{k+1} = soft_threshold(w_k - step * X^T (X w_k - y), step * lam)

    with ``step = 1 / L`` by default, ``L = ||X||_2^2``. Where the solution is unique and
    strict complementarity holds, the map contracts near the solution with factor
    ``max_{i in S} |1 - step * eig_i(X_S^T X_S)|`` on the support S (zero off it).

    References: Combettes & Wajs (2005); Bolte, Pauwels & Vaiter, NeurIPS 2022, section 5.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> X, y = cv.datasets.lasso_small()
    >>> F = cv.algorithms.forward_backward_lasso(X, y)
    >>> w = cv.fixed_point(F, np.zeros(8), 5.0).x
    >>> np.nonzero(np.round(w, 8))[0]
    array([0, 1, 4])
    """
    call = "cv.algorithms.forward_backward_lasso"
    X, y = _design(X, y, call)
    L = float(np.linalg.norm(X, 2) ** 2)
    if step is None:
        step = 1.0 / L
    if not (np.isfinite(step) and 0 < step < 2.0 / L):
        raise InputError(fail_message(call, f"step={step!r} with L = ||X||_2^2 = {L:.4g}",
                                      "pass 0 < step < 2 / L (default 1 / L)"))
    grad = _gradient(X, y)

    def fb_step(w, lam):
        return cv.soft_threshold(w - step * grad(w), step * lam)

    F = trace(fb_step, (X.shape[1],), ())
    return AlgorithmMap(F, name="forward-backward (Lasso)", solution=lambda w: w,
                        info={"step": float(step), "L": L})
