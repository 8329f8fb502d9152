"""Forward-backward splitting for the Lasso and its weighted, group and accelerated variants.

Problem family: ``min_w 1/2 ||X w - y||^2 + penalty(w)`` with the penalty's weight(s) as the
parameter ``theta``. Douglas-Rachford and ADMM for the Lasso live in ``splitting.py``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import dsl
from .._types import as_float_array
from ..errors import InputError, ShapeError, fail_message
from ..map import trace
from ._base import AlgorithmMap, Leading, identity
from ._checks import gradient_contraction

__all__ = ["forward_backward_lasso", "weighted_lasso_forward_backward",
           "group_lasso_forward_backward", "fista_lasso"]


def design_matrix(X, y, call):
    X = as_float_array(X, name="X", call=call)
    y = as_float_array(y, name="y", call=call)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ShapeError(fail_message(call, f"X of shape {X.shape} and y of shape {y.shape}",
                                      "pass X of shape (n_samples, p) and y of shape "
                                      "(n_samples,)"))
    return X, y


def squared_spectral_norm(X) -> float:
    """``L = ||X||_2^2``, the largest eigenvalue of the smaller Gram matrix (``X X^T`` or
    ``X^T X``), a float.

    Agrees with ``np.linalg.norm(X, 2) ** 2`` to a few ulps (both are backward stable) at a
    fraction of its cost: the norm takes every singular value of X (17 ms at 250 x 2000, 1.4 s
    at 1000 x 10000 on one core), the Gram and one eigenvalue a tenth of that. X is scaled by a
    power of two first (exact), so that the Gram neither overflows nor loses digits to
    underflow where ``L`` itself is a normal float (only near the ends of the range: elsewhere
    the Gram is safe as it is).

    >>> import numpy as np
    >>> X = np.array([[3.0, 0.0], [0.0, 4.0]])
    >>> squared_spectral_norm(X)
    16.0
    """
    top = max(float(np.max(X, initial=0.0)), -float(np.min(X, initial=0.0)))
    if top == 0.0:
        return 0.0
    import scipy.linalg              # here: importing the package leaves scipy for later
    e = math.frexp(top)[1]
    e = e if abs(e) > 400 else 0          # far from the range's ends: no scaled copy of X
    Xs = np.ldexp(X, -e) if e else X
    small = Xs if Xs.shape[0] <= Xs.shape[1] else Xs.T
    gram = small @ small.T
    k = gram.shape[0]
    top_eig = float(scipy.linalg.eigvalsh(gram, subset_by_index=[k - 1, k - 1])[0])
    return float(np.ldexp(top_eig, 2 * e))


def _lipschitz(X, call) -> float:
    """``L = ||X||_2^2``, the Lipschitz constant of the gradient: positive and finite, or a
    clear error (a zero design has no step ``1 / L``; an overflowing one no finite map)."""
    with np.errstate(over="ignore"):
        L = squared_spectral_norm(X)
    if not (0.0 < L < math.inf):
        raise InputError(fail_message(call, f"X with ||X||_2^2 = {L!r}",
                                      "pass a design with a non-zero entry and ||X||_2^2 "
                                      "below the float range (rescale X and y)"))
    return L


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

    Parameters
    ----------
    X : array_like (n_samples, p)
    y : array_like (n_samples,)
    step : float, optional
        ``0 < step < 2 / L``; default ``1 / L``.

    Returns
    -------
    AlgorithmMap
        ``.solution(w)`` is ``w``; ``.contraction`` None (the local factor above depends on
        the support); ``.info`` holds ``step`` and ``L``.

    Raises
    ------
    ShapeError
        When X is not 2-D or y does not match it.
    InputError
        When ``step`` is outside ``(0, 2 / L)``; a negative ``lam`` is refused at evaluation.

    References: Combettes & Wajs, *Signal recovery by proximal forward-backward splitting*
    (2005); Bolte, Pauwels & Vaiter, NeurIPS 2022, section 5.

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
    X, y = design_matrix(X, y, call)
    L = _lipschitz(X, call)
    step = _step(step, L, call)
    grad = _gradient(X, y)

    def fb_step(w, lam):
        return dsl.soft_threshold(w - step * grad(w), step * lam)

    F = trace(fb_step, (X.shape[1],), ())
    return AlgorithmMap(F, name="forward-backward (Lasso)", solution=identity,
                        info={"step": float(step), "L": L})


def _step(step, L, call):
    if step is None:
        return 1.0 / L
    ok = isinstance(step, (int, float, np.integer, np.floating)) and not isinstance(step, bool)
    if not (ok and 0 < step < 2.0 / L):      # (NaN fails the comparison; no float() of ints)
        raise InputError(fail_message(call, f"step={step!r} with L = ||X||_2^2 = {L:.4g}",
                                      "pass 0 < step < 2 / L (default 1 / L)"))
    return float(step)


def weighted_lasso_forward_backward(X, y, *, step=None) -> AlgorithmMap:
    """Forward-backward for the weighted Lasso, one penalty per feature.

    Problem: ``min_w 1/2 ||X w - y||^2 + sum_j lam_j |w_j|``; state ``w`` (p,), ``theta = lam``
    of shape (p,) with every ``lam_j >= 0``. Update::

        w_{k+1} = soft_threshold(w_k - step * X^T (X w_k - y), step * lam)

    Parameters
    ----------
    X : array_like (n_samples, p)
    y : array_like (n_samples,)
    step : float, optional
        ``0 < step < 2 / L`` with ``L = ||X||_2^2``; default ``1 / L``.

    Returns
    -------
    AlgorithmMap
        ``.solution(w)`` is ``w``. ``.contraction`` is ``max_i |1 - step eig_i(X^T X)|`` when
        below 1 (``X^T X`` positive definite): a global bound on ``||A||_2`` for every element
        ``[A B]`` of the conservative Jacobian; None otherwise. Near a solution with support S
        and strict complementarity, the local factor is ``max_{i} |1 - step eig_i(X_S^T X_S)|``.

    Raises
    ------
    ShapeError
        When X is not 2-D or y does not match it.
    InputError
        When ``step`` is outside ``(0, 2 / L)``; a negative ``lam_j`` is refused at evaluation.

    Notes
    -----
    The weighted Lasso with ``lam_j = lam c_j`` (``c_j > 0``) is the Lasso in ``v_j = c_j w_j``
    with columns ``X_j / c_j``: this is how it is compared to scikit-learn in the tests.

    References: Combettes & Wajs, *Signal recovery by proximal forward-backward splitting*
    (2005); Bolte, Pauwels & Vaiter, NeurIPS 2022.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> X, y = cv.datasets.lasso_small()
    >>> F = cv.algorithms.weighted_lasso_forward_backward(X, y)
    >>> lam = np.full(8, 5.0)
    >>> lam[1] = 1e3                                          # a heavy penalty on feature 1
    >>> w = cv.fixed_point(F, np.zeros(8), lam).x
    >>> float(w[1])
    0.0
    """
    call = "cv.algorithms.weighted_lasso_forward_backward"
    X, y = design_matrix(X, y, call)
    L = _lipschitz(X, call)
    step = _step(step, L, call)
    grad = _gradient(X, y)

    def fb_step(w, lam):
        return dsl.soft_threshold(w - step * grad(w), step * lam)

    F = trace(fb_step, (X.shape[1],), (X.shape[1],))
    return AlgorithmMap(F, name="forward-backward (weighted Lasso)", solution=identity,
                        contraction=gradient_contraction(X.T @ X, step),
                        info={"step": step, "L": L})


def _groups(groups, p, call) -> list[np.ndarray]:
    """Normalise ``groups`` (labels of length p, or index sequences) to a partition of range(p)."""
    try:
        arr = np.asarray(groups)
        labels = arr.ndim == 1 and arr.shape == (p,) and arr.dtype.kind in "iu" and \
            not (len(groups) and np.ndim(groups[0]) > 0)
    except (ValueError, TypeError):
        labels = False
    if labels:
        parts = [np.nonzero(arr == g)[0] for g in np.unique(arr)]
    else:
        try:
            parts = [np.asarray(g, dtype=np.intp).reshape(-1) for g in groups]
            bad = any(np.asarray(g).dtype.kind not in "iu" for g in groups)
        except (TypeError, ValueError):
            parts, bad = [], True
        if bad or not parts:
            raise InputError(fail_message(
                call, f"groups={groups!r}"[:200], "pass a label per feature (ints of length "
                f"p = {p}) or a sequence of index lists partitioning range({p})"))
    seen = np.sort(np.concatenate(parts)) if parts else np.array([], dtype=np.intp)
    if seen.shape != (p,) or np.any(seen != np.arange(p)) or any(len(g) == 0 for g in parts):
        raise InputError(fail_message(
            call, f"groups covering features {seen.tolist()}"[:200],
            f"pass groups that give every feature 0..{p - 1} exactly one non-empty group"))
    return parts


def group_lasso_forward_backward(X, y, groups, *, step=None) -> AlgorithmMap:
    """Forward-backward for the group Lasso.

    Problem: ``min_w 1/2 ||X w - y||^2 + lam sum_g ||w_g||_2``; state ``w`` (p,),
    ``theta = lam`` (shape ``()``, ``lam >= 0``). Update, group by group::

        z = w_k - step * X^T (X w_k - y)
        (w_{k+1})_g = z_g * max(1 - step * lam / ||z_g||, 0)      (block soft-thresholding)

    Block soft-thresholding is :func:`conservative.group_soft_threshold` with ``t = step *
    lam``: two pieces per group, ``z_g (1 - t/||z_g||)`` where ``||z_g|| >= t`` and ``0`` where
    ``||z_g|| <= t``. They agree on ``||z_g|| = t``, so the map is Lipschitz. On the sphere
    ``||z_g|| = t`` the conservative Jacobian holds both pieces' Jacobians, ``z_g z_g^T / t^2``
    and 0 (in z); the default is the zero piece.

    Parameters
    ----------
    X : array_like (n_samples, p)
    y : array_like (n_samples,)
    groups : sequence
        Either a label per feature (ints, length p) or a sequence of index lists that partition
        ``range(p)``.
    step : float, optional
        ``0 < step < 2 / L``, ``L = ||X||_2^2``; default ``1 / L``.

    Returns
    -------
    AlgorithmMap
        ``.solution(w)`` is ``w``; ``.contraction`` as for
        :func:`weighted_lasso_forward_backward` (the block prox has a symmetric Jacobian with
        eigenvalues in [0, 1]); ``.info["groups"]`` the list of index arrays.

    Raises
    ------
    ShapeError, InputError
        Bad shapes, a bad step, or groups that do not partition the features.

    References: Yuan & Lin, *Model selection and estimation in regression with grouped
    variables* (JRSS-B 2006); Combettes & Wajs (2005).

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> X, y = cv.datasets.lasso_small()
    >>> F = cv.algorithms.group_lasso_forward_backward(X, y, [0, 0, 1, 1, 2, 2, 3, 3])
    >>> w = cv.fixed_point(F, np.zeros(8), 10.0).x
    >>> [bool(np.any(w[2 * g:2 * g + 2] != 0)) for g in range(4)]     # whole groups vanish
    [True, False, True, False]
    """
    call = "cv.algorithms.group_lasso_forward_backward"
    X, y = design_matrix(X, y, call)
    p = X.shape[1]
    parts = _groups(groups, p, call)
    L = _lipschitz(X, call)
    step = _step(step, L, call)
    grad = _gradient(X, y)
    order = np.concatenate(parts)
    inverse = np.argsort(order)

    def fb_step(w, lam):
        z = w - step * grad(w)
        blocks = [dsl.group_soft_threshold(z[g], step * lam) for g in parts]
        out = dsl.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        return out if np.array_equal(order, np.arange(p)) else out[inverse]

    F = trace(fb_step, (p,), ())
    return AlgorithmMap(F, name="forward-backward (group Lasso)", solution=identity,
                        contraction=gradient_contraction(X.T @ X, step),
                        info={"step": step, "L": L, "groups": parts})


def fista_lasso(X, y, *, step=None, momentum=None) -> AlgorithmMap:
    """FISTA (accelerated forward-backward) for the Lasso, as a stationary map.

    Problem: ``min_w 1/2 ||X w - y||^2 + lam ||w||_1``, ``theta = lam`` (shape ``()``).

    FISTA's momentum depends on k; the map is made stationary in one of two ways.

    ``momentum=None`` (default): Beck-Teboulle FISTA, carrying ``u_k = 1 / t_k`` in the state
    ``(w_k, w_{k-1}, u_k)`` of shape (2p + 1,), started at ``u_0 = 1`` (``info["x0"]``)::

        beta_k  = (t_k - 1) / t_{k+1}       = 2 (1 - u_k) / (u_k + sqrt(u_k^2 + 4))
        u_{k+1} = 1 / t_{k+1}               = 2 u_k / (u_k + sqrt(u_k^2 + 4))
        v_k     = w_k + beta_k (w_k - w_{k-1})
        w_{k+1} = soft_threshold(v_k - step * X^T (X v_k - y), step * lam)

    (``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2`` rewritten in ``u``, with no division by ``u``).
    ``u_k`` decreases like ``2 / k`` to 0, where the momentum is 1: the fixed points are
    ``(w*, w*, 0)``, reached only sublinearly in ``u``, and the derivative iteration there is
    not a contraction. Run it with :func:`~conservative.iterate` for a fixed number of steps.

    ``momentum=beta`` (a float in [0, 1)): constant momentum, state ``(w_k, w_{k-1})`` of shape
    (2p,) with the same update and ``beta_k = beta``; a stationary map whose fixed points are
    ``(w*, w*)``, with ``w*`` the Lasso solution (``info["x0"]`` is zeros). For a strongly convex
    problem ``beta = (1 - sqrt(step mu)) / (1 + sqrt(step mu))`` is Nesterov's choice.

    Parameters
    ----------
    X : array_like (n_samples, p)
    y : array_like (n_samples,)
    step : float, optional
        ``0 < step <= 1 / L``, ``L = ||X||_2^2``; default ``1 / L``.
    momentum : float in [0, 1) or None

    Returns
    -------
    AlgorithmMap
        ``.solution(state)`` is ``state[:p]``; ``.contraction`` None.

    Raises
    ------
    ShapeError, InputError
        Bad shapes, a step outside ``(0, 1 / L]``, a momentum outside ``[0, 1)``.

    References: Beck & Teboulle, *A fast iterative shrinkage-thresholding algorithm for linear
    inverse problems* (SIAM J. Imaging Sci. 2009); Nesterov, *Introductory lectures on convex
    optimization* (2004), section 2.2.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> X, y = cv.datasets.lasso_small()
    >>> F = cv.algorithms.fista_lasso(X, y)
    >>> F.state_shape, float(F.info["x0"][-1])
    ((17,), 1.0)
    >>> w = F.solution(cv.iterate(F, F.info["x0"], 5.0, 300)[-1])
    >>> np.nonzero(np.round(w, 6))[0]
    array([0, 1, 4])
    """
    call = "cv.algorithms.fista_lasso"
    X, y = design_matrix(X, y, call)
    p = X.shape[1]
    L = _lipschitz(X, call)
    if step is not None:
        ok = isinstance(step, (int, float, np.integer, np.floating)) and \
            not isinstance(step, bool) and 0 < step <= 1.0 / L
        if not ok:
            raise InputError(fail_message(call, f"step={step!r} with L = ||X||_2^2 = {L:.4g}",
                                          "pass 0 < step <= 1 / L (default 1 / L)"))
    step = 1.0 / L if step is None else float(step)
    if momentum is not None:
        ok = isinstance(momentum, (int, float, np.integer, np.floating)) and \
            not isinstance(momentum, bool) and 0 <= momentum < 1
        if not ok:
            raise InputError(fail_message(call, f"momentum={momentum!r}",
                                          "pass a number in [0, 1), or None for FISTA's "
                                          "t_k schedule"))
    grad = _gradient(X, y)

    def prox_grad(v, lam):
        return dsl.soft_threshold(v - step * grad(v), step * lam)

    if momentum is None:
        def fista_step(s, lam):
            w, w_prev, u = s[:p], s[p:2 * p], s[2 * p:]
            r = u + dsl.sqrt(u * u + 4.0)
            w_next = prox_grad(w + (2.0 * (1.0 - u) / r) * (w - w_prev), lam)
            return dsl.concatenate([w_next, w, 2.0 * u / r])

        F = trace(fista_step, (2 * p + 1,), ())
        x0 = np.concatenate([np.zeros(2 * p), [1.0]])
        name = "FISTA (Lasso)"
    else:
        beta = float(momentum)

        def fista_step(s, lam):
            w, w_prev = s[:p], s[p:]
            return dsl.concatenate([prox_grad(w + beta * (w - w_prev), lam), w])

        F = trace(fista_step, (2 * p,), ())
        x0 = np.zeros(2 * p)
        name = f"FISTA with constant momentum {beta:g} (Lasso)"
    return AlgorithmMap(F, name=name, solution=Leading(p),
                        info={"step": step, "L": L, "momentum": momentum, "x0": x0})
