"""Douglas-Rachford for sparse inverse covariance selection (the graphical Lasso objective)."""

from __future__ import annotations

import numpy as np

from .. import dsl
from .. import linalg
from .._types import as_float_array
from ..errors import InputError, ShapeError, fail_message
from ..map import trace
from ..rules import logdet_prox_p
from ._base import AlgorithmMap
from ._checks import positive

__all__ = ["sparse_inverse_covariance"]


def _logdet_prox_numeric(W, gamma):
    """The primitive's implementation on any stack of matrices (..., d, d)."""
    W = np.asarray(W, dtype=float)
    out = logdet_prox_p.impl(W.reshape((-1,) + W.shape[-2:]), gamma=gamma)
    return out.reshape(W.shape)


class _ShiftedProx:
    """The primal point of a Douglas-Rachford state: ``prox(Z - shift)`` (picklable)."""

    def __init__(self, shift, gamma: float):
        self.shift, self.gamma = shift, gamma

    def __call__(self, Z):
        return _logdet_prox_numeric(Z - self.shift, self.gamma)


def sparse_inverse_covariance(S, *, gamma) -> AlgorithmMap:
    """Douglas-Rachford for sparse inverse covariance selection, with the penalty as parameter.

    Problem (scikit-learn's ``graphical_lasso`` objective, penalty off the diagonal only)::

        min_{X > 0}  -log det X + <S, X> + lam sum_{i != j} |X_ij|

    with ``theta = lam`` (shape ``()``, ``lam >= 0``). Split as ``f(X) = -log det X + <S, X>``
    and ``g(X) = lam sum_{i != j} |X_ij|``; the state is Douglas-Rachford's governing matrix
    ``Z`` (d, d), smooth prox first::

        X_k     = prox_{gamma f}(Z_k) = 1/2 (W + (W^2 + 4 gamma I)^{1/2}),  W = Z_k - gamma S
        V_k     = prox_{gamma g}(2 X_k - Z_k)      (soft-threshold by gamma * lam off the
                                                   diagonal, diagonal unchanged)
        Z_{k+1} = Z_k + V_k - X_k

    applied to the symmetric part of ``Z_k`` (the map first replaces ``Z_k`` by
    ``(Z_k + Z_k^T) / 2``; otherwise every antisymmetric perturbation supported on the zero
    pattern of the solution would be a fixed direction, with Jacobian eigenvalue 1).
    ``prox_{gamma f}`` solves ``X - gamma X^{-1} = W``: the spectral function
    ``(l + sqrt(l^2 + 4 gamma)) / 2`` of the (symmetric part of) ``W``, a smooth primitive
    (:func:`conservative.linalg.logdet_prox`, JVP by the Daleckii-Krein formula). The only kinks
    are the soft-thresholds of the ``d (d - 1)`` off-diagonal entries.

    Parameters
    ----------
    S : array_like (d, d)
        Symmetric (empirical covariance) matrix.
    gamma : float
        Positive prox step.

    Returns
    -------
    AlgorithmMap
        ``.solution(Z)`` is the primal precision matrix ``prox_{gamma f}(Z)`` (positive
        definite for every Z); ``.contraction`` None; ``.info["x0"]`` the identity, a starting
        state.

    Raises
    ------
    ShapeError
        When S is not a square matrix.
    InputError
        When S is not symmetric, or ``gamma`` is not positive.

    References: Friedman, Hastie & Tibshirani, *Sparse inverse covariance estimation with the
    graphical lasso* (Biostatistics 2008); Bolte, Pauwels & Vaiter, NeurIPS 2022, section 5
    (Douglas-Rachford for sparse inverse covariance selection).

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> S = np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.0]])
    >>> F = cv.algorithms.sparse_inverse_covariance(S, gamma=1.0)
    >>> Z = cv.fixed_point(F, F.info["x0"], 0.15).x
    >>> P = F.solution(Z)
    >>> bool(np.all(np.linalg.eigvalsh(P) > 0)), float(np.round(P[0, 2], 8))
    (True, 0.0)
    """
    call = "cv.algorithms.sparse_inverse_covariance"
    S = as_float_array(S, name="S", call=call)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise ShapeError(fail_message(call, f"S of shape {S.shape}",
                                      "pass a square (d, d) covariance matrix"))
    asym = float(np.max(np.abs(S - S.T)))
    if asym > 1e-12 * (1.0 + float(np.max(np.abs(S)))):
        raise InputError(fail_message(call, f"an asymmetric S (max |S - S^T| = {asym:.3g})",
                                      "pass a symmetric matrix, e.g. (S + S.T) / 2"))
    S = 0.5 * (S + S.T)
    gamma = positive(gamma, "gamma", call, " (the prox step of Douglas-Rachford)")
    d = S.shape[0]
    flat = np.arange(d * d).reshape(d, d)
    off = flat[~np.eye(d, dtype=bool)]
    diag = np.diag(flat)
    inverse = np.argsort(np.concatenate([off, diag]))
    shift = gamma * S

    def dr_step(Z, lam):
        Z = 0.5 * (Z + Z.T)     # the antisymmetric part is dropped: it would be a direction of
        X = linalg.logdet_prox(Z - shift, gamma)              # fixed points (eigenvalue 1)
        U = dsl.reshape(2.0 * X - Z, (d * d,))
        if d == 1:
            V = U
        else:
            V = dsl.concatenate([dsl.soft_threshold(U[off], gamma * lam), U[diag]])[inverse]
        return Z + dsl.reshape(V, (d, d)) - X

    F = trace(dr_step, (d, d), ())
    return AlgorithmMap(F, name="Douglas-Rachford (sparse inverse covariance)",
                        solution=_ShiftedProx(shift, gamma),
                        info={"gamma": gamma, "S": S, "x0": np.eye(d)})
