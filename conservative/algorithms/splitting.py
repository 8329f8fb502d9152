"""Douglas-Rachford and ADMM for the Lasso: min_w 1/2 ||X w - y||^2 + lam ||w||_1."""

from __future__ import annotations

import numpy as np

from .. import dsl
from ..map import trace
from ._base import AlgorithmMap, Affine, Leading
from ._checks import positive
from .lasso import design_matrix

__all__ = ["douglas_rachford_lasso", "admm_lasso"]


def douglas_rachford_lasso(X, y, *, gamma) -> AlgorithmMap:
    """Douglas-Rachford splitting for the Lasso, with the penalty as parameter.

    Problem: ``min_w f(w) + g(w)``, ``f(w) = 1/2 ||X w - y||^2``, ``g(w) = lam ||w||_1``;
    ``theta = lam`` (shape ``()``, ``lam >= 0``). The state is Douglas-Rachford's governing
    sequence ``z`` (p,); the smooth prox comes first, so the primal point does not depend on
    ``lam``::

        w_k     = prox_{gamma f}(z_k) = (I + gamma X^T X)^{-1} (z_k + gamma X^T y)
        v_k     = prox_{gamma g}(2 w_k - z_k) = soft_threshold(2 w_k - z_k, gamma * lam)
        z_{k+1} = z_k + v_k - w_k

    i.e. ``z_{k+1} = (z_k + R_g R_f z_k) / 2`` with reflections ``R = 2 prox - I``. At a fixed
    point ``z*``, ``w* = prox_{gamma f}(z*)`` solves the Lasso.

    Parameters
    ----------
    X : array_like (n_samples, p)
    y : array_like (n_samples,)
    gamma : float
        Positive step (prox parameter).

    Returns
    -------
    AlgorithmMap
        ``.solution(z)`` is ``prox_{gamma f}(z)``. ``.contraction`` is ``(1 + c) / 2`` with
        ``c = max_i |1 - gamma l_i| / (1 + gamma l_i)`` over the eigenvalues ``l_i`` of
        ``X^T X`` when ``X^T X`` is positive definite (``R_f`` is then a c-contraction and
        every Jacobian of ``R_g`` has norm 1), None otherwise.

    Raises
    ------
    ShapeError
        When X is not 2-D or y does not match it.
    InputError
        When ``gamma`` is not positive.

    References: Lions & Mercier, *Splitting algorithms for the sum of two nonlinear operators*
    (SIAM J. Numer. Anal. 1979); Bolte, Pauwels & Vaiter, NeurIPS 2022, section 5.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> X, y = cv.datasets.lasso_small()
    >>> F = cv.algorithms.douglas_rachford_lasso(X, y, gamma=0.05)
    >>> z = cv.fixed_point(F, np.zeros(8), 5.0).x
    >>> np.nonzero(np.round(F.solution(z), 8))[0]
    array([0, 1, 4])
    """
    call = "cv.algorithms.douglas_rachford_lasso"
    X, y = design_matrix(X, y, call)
    gamma = positive(gamma, "gamma", call, " (the prox step of Douglas-Rachford)")
    p = X.shape[1]
    gram = X.T @ X
    M = np.linalg.solve(np.eye(p) + gamma * gram, np.eye(p))   # (I + gamma X^T X)^{-1}
    M = 0.5 * (M + M.T)
    c = gamma * (M @ (X.T @ y))

    def dr_step(z, lam):
        w = M @ z + c
        v = dsl.soft_threshold(2.0 * w - z, gamma * lam)
        return z + v - w

    F = trace(dr_step, (p,), ())
    eig = np.linalg.eigvalsh(gram)
    factor = float(np.max(np.abs(1.0 - gamma * eig) / (1.0 + gamma * eig)))
    contraction = 0.5 * (1.0 + factor) if eig[0] > 0 else None
    return AlgorithmMap(F, name="Douglas-Rachford (Lasso)",
                        solution=Affine(M, c), contraction=contraction,
                        info={"gamma": gamma})


def admm_lasso(X, y, *, rho) -> AlgorithmMap:
    """ADMM (scaled form) for the Lasso, with the penalty as parameter.

    Problem: ``min_{w, v} 1/2 ||X w - y||^2 + lam ||v||_1`` subject to ``w = v``;
    ``theta = lam`` (shape ``()``, ``lam >= 0``). State ``(v_k, u_k)`` stacked, shape (2p,),
    with ``u`` the scaled dual variable::

        w_{k+1} = (X^T X + rho I)^{-1} (X^T y + rho (v_k - u_k))
        v_{k+1} = soft_threshold(w_{k+1} + u_k, lam / rho)
        u_{k+1} = u_k + w_{k+1} - v_{k+1}

    At a fixed point ``v* = w*`` solves the Lasso and ``u* = -X^T (X w* - y) / rho``.

    Parameters
    ----------
    X : array_like (n_samples, p)
    y : array_like (n_samples,)
    rho : float
        Positive penalty parameter of the augmented Lagrangian.

    Returns
    -------
    AlgorithmMap
        ``.solution(state)`` is ``v = state[:p]`` (the sparse primal iterate);
        ``.contraction`` None (ADMM is Douglas-Rachford on the dual; in the ``(v, u)``
        coordinates no global factor is given here); ``.info["x0"]`` zeros.

    Raises
    ------
    ShapeError
        When X is not 2-D or y does not match it.
    InputError
        When ``rho`` is not positive.

    References: Boyd, Parikh, Chu, Peleato & Eckstein, *Distributed optimization and
    statistical learning via the alternating direction method of multipliers* (2011), section
    6.4; Bolte, Pauwels & Vaiter, NeurIPS 2022, section 5.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> X, y = cv.datasets.lasso_small()
    >>> F = cv.algorithms.admm_lasso(X, y, rho=20.0)
    >>> F.state_shape
    (16,)
    >>> s = cv.fixed_point(F, np.zeros(16), 5.0).x
    >>> np.nonzero(F.solution(s))[0]
    array([0, 1, 4])
    """
    call = "cv.algorithms.admm_lasso"
    X, y = design_matrix(X, y, call)
    rho = positive(rho, "rho", call, " (the augmented Lagrangian penalty)")
    p = X.shape[1]
    N = np.linalg.solve(X.T @ X + rho * np.eye(p), np.eye(p))   # (X^T X + rho I)^{-1}
    N = 0.5 * (N + N.T)
    a, K = N @ (X.T @ y), rho * N

    def admm_step(s, lam):
        v, u = s[:p], s[p:]
        w = a + K @ (v - u)
        v_next = dsl.soft_threshold(w + u, lam / rho)
        return dsl.concatenate([v_next, u + w - v_next])

    F = trace(admm_step, (2 * p,), ())
    return AlgorithmMap(F, name="ADMM (Lasso)", solution=Leading(p),
                        info={"rho": rho, "x0": np.zeros(2 * p)})
