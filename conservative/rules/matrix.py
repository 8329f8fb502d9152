"""Smooth matrix primitives: spectral functions of symmetric matrices and the linear solve.

Both are *structural* primitives (a ``jvp`` rule instead of elementwise partials) and smooth: they
add no kink. Values carry a leading batch axis, ``(B, n, n)``; tangents carry a trailing axis of
directions, ``(B, n, n, T)``, ``None`` meaning zero. The batch sizes of values and tangents may
differ (one of them 1): every product below broadcasts over the batch.

``logdet_prox``
    ``W -> 1/2 (W + (W^2 + 4 gamma I)^{1/2})``, the spectral function ``g(l) = (l + sqrt(l^2 +
    4 gamma)) / 2`` applied to the eigenvalues of the symmetric part of ``W``: the proximal
    operator of ``-gamma log det`` (``X - gamma X^{-1} = W``). Smooth for ``gamma > 0``.
    JVP by the Daleckii-Krein formula.
``solve``
    ``(A, b) -> A^{-1} b`` for a square ``A`` and ``b`` of shape ``(n,)`` or ``(n, k)``; JVP
    ``A^{-1} (db - dA A^{-1} b)``.

Each block also has the transpose of its JVP (reverse mode) and interval rules (enclosures of
the value and of the JVP over boxes, outward rounded, see the functions' docstrings); when an
enclosure cannot be proved (a box too wide for the contraction argument it rests on) they raise
:class:`~conservative.errors.UndecidedError` instead of guessing.

Sympy forms: their numeric implementations call LAPACK (``eigh``, ``solve``), which does not
run on object arrays, so instead of the ``"impl"`` convention of the other structural primitives
each has a ``sympy`` callable with the *same signature as its impl*: batched NumPy object arrays
of sympy expressions in, a batched object array out. ``solve`` uses ``Matrix.LUsolve``;
``logdet_prox`` uses the closed forms of the square root for d = 1 and d = 2
(``sqrt(M) = (M + sqrt(det M) I) / sqrt(tr M + 2 sqrt(det M))`` for 2 x 2 positive definite M)
and raises NotImplementedError for d >= 3 (a square root through the roots of the
characteristic polynomial is not a usable expression, and sympy's Jordan form hangs on it).
"""

from __future__ import annotations

import numpy as np
from ..primitives import lazy_sympy as sympy  # imported on first use, not by `import conservative`

from .. import interval as iv
from ..errors import InputError, UndecidedError
from ..primitives import Structural, register

__all__ = ["logdet_prox_p", "solve_p"]


def _directions_first(t: np.ndarray) -> np.ndarray:
    """``(B, n, k, T) -> (B, T, n, k)``: directions become a batch axis for ``np.matmul``."""
    return np.moveaxis(t, -1, 1)


def _directions_last(t: np.ndarray) -> np.ndarray:
    return np.moveaxis(t, 1, -1)


# --- spectral functions of symmetric matrices ---------------------------------------------------

def _square_shape(s, **_):
    if len(s) != 2 or s[0] != s[1]:
        raise ValueError(f"expected a square matrix (n, n), got shape {s}")
    return tuple(s)


def _symmetric_part(w: np.ndarray, axes=(1, 2)) -> np.ndarray:
    return 0.5 * (w + np.swapaxes(w, *axes))


def _spectral_primitive(name, g, dg, divided, interval, interval_jvp, sympy_form, doc):
    """Register ``W -> Q g(diag l) Q^T`` for the symmetric part ``Q diag(l) Q^T`` of ``W``.

    ``divided(a, b, **params)`` returns the divided difference ``(g(a) - g(b)) / (a - b)``
    computed without cancellation, equal to ``dg(a)`` when ``a == b``. The JVP is the
    Daleckii-Krein formula ``dg(W)[H] = Q (G o (Q^T H_s Q)) Q^T``, ``G_ij = divided(l_i, l_j)``,
    ``H_s`` the symmetric part of ``H``. ``sympy_form`` is the impl on object arrays.
    """

    def impl(w, **params):
        lam, q = np.linalg.eigh(_symmetric_part(w))
        return (q * g(lam, **params)[:, None, :]) @ np.swapaxes(q, 1, 2)

    def jvp(vals, out, tangents, **params):
        (h,) = tangents
        if h is None:
            return None
        lam, q = np.linalg.eigh(_symmetric_part(vals[0]))
        G = divided(lam[:, :, None], lam[:, None, :], **params)          # (B, n, n)
        hs = _directions_first(_symmetric_part(h))                         # (B', T, n, n)
        qb, qtb = q[:, None], np.swapaxes(q, 1, 2)[:, None]                # (B, 1, n, n)
        inner = (qtb @ hs @ qb) * G[:, None]
        return _directions_last(qb @ inner @ qtb)

    def transpose(vals, out, ct, live, **params):
        # the Daleckii-Krein map H -> Q (G o (Q^T H_s Q)) Q^T is self-adjoint (G symmetric)
        lam, q = np.linalg.eigh(_symmetric_part(vals[0]))
        G = divided(lam[:, :, None], lam[:, None, :], **params)
        qt = np.swapaxes(q, 1, 2)
        return (q @ ((qt @ _symmetric_part(ct) @ q) * G) @ qt,)

    return register(Structural(name=name, impl=impl, shape_rule=_square_shape, jvp=jvp,
                               transpose=transpose, interval=interval, interval_jvp=interval_jvp,
                               sympy=sympy_form, doc=doc, call=f"cv.linalg.{name}"))


def _logdet_prox_g(lam, gamma):
    # (l + sqrt(l^2 + 4 gamma)) / 2, written as 2 gamma / (sqrt(l^2 + 4 gamma) - l) for l < 0 to
    # avoid the cancellation of l + sqrt(l^2 + 4 gamma) when l << 0
    r = np.sqrt(lam * lam + 4.0 * gamma)
    return np.where(lam >= 0, 0.5 * (lam + r), 2.0 * gamma / (r - np.minimum(lam, 0.0)))


def _logdet_prox_dg(lam, gamma):
    return 0.5 * (1.0 + lam / np.sqrt(lam * lam + 4.0 * gamma))


def _logdet_prox_divided(a, b, gamma):
    # (g(a) - g(b)) / (a - b) = 1/2 + 1/2 (a + b) / (sqrt(a^2 + 4 gamma) + sqrt(b^2 + 4 gamma)):
    # exact, no cancellation, and equal to g'(a) at a == b
    ra, rb = np.sqrt(a * a + 4.0 * gamma), np.sqrt(b * b + 4.0 * gamma)
    return 0.5 + 0.5 * (a + b) / (ra + rb)


def _sqrt_psd_sympy(M: sympy.Matrix) -> sympy.Matrix:
    d = M.shape[0]
    if d == 1:
        return sympy.Matrix([[sympy.sqrt(M[0, 0])]])
    if d == 2:
        s = sympy.sqrt(M.det())
        return (M + s * sympy.eye(2)) / sympy.sqrt(M.trace() + 2 * s)
    raise NotImplementedError(
        f"logdet_prox: the sympy form is implemented for 1 x 1 and 2 x 2 matrices (closed-form "
        f"square roots); received {d} x {d}. Export a smaller program, or evaluate numerically")


def _logdet_prox_sympy(w, gamma):
    g = sympy.nsimplify(gamma)
    out = np.empty(w.shape, dtype=object)
    for i in range(w.shape[0]):
        W = sympy.Matrix(w[i])
        W = (W + W.T) / 2
        X = (W + _sqrt_psd_sympy(W * W + 4 * g * sympy.eye(W.shape[0]))) / 2
        out[i] = np.array(X.tolist(), dtype=object)
    return out


# --- interval rules of logdet_prox ---------------------------------------------------------------
#
# g(l) = (l + sqrt(l^2 + 4 gamma)) / 2 has divided differences G_ij = 1/2 + (a + b) / (2 (r_a +
# r_b)) with |G_ij - 1/2| <= kappa / 2, kappa = M / sqrt(M^2 + 4 gamma) < 1 when every eigenvalue
# has modulus <= M. Since ||Q (E o (Q^T H Q)) Q^T||_F <= max |E_ij| ||H||_F, every derivative
# satisfies  dg(W)[H] in H_s / 2 +- (kappa / 2) ||H_s||_F  entrywise, and by the mean value
# theorem on the segment [W0, W]:  g(W) in g(W0) + (W_s - W0) / 2 +- (kappa / 2) ||W_s - W0||_F,
# with g(W0) itself enclosed a posteriori (see _logdet_prox_point_error).

def _frobenius_up(x: "iv.Interval", axes) -> np.ndarray:
    """Upper bound of the Frobenius norm over ``axes`` of every array in the interval box."""
    m = iv.Interval(x.mag)
    return iv.sqrt(iv.sum(iv.square(m), axis=axes)).hi


def _modulus_bound(w: "iv.Interval") -> float:
    """Gershgorin: an upper bound of |eigenvalue| for every symmetric matrix in the box."""
    return float(np.max(iv.sum(iv.Interval(w.mag), axis=1).hi))


def _kappa_up(M: float, gamma: float) -> float:
    k = iv.divide(iv.Interval(M), iv.sqrt(iv.add(iv.square(iv.Interval(M)), 4.0 * gamma)))
    return float(min(k.hi, 1.0))


def _verified_inverse(A: np.ndarray, call: str):
    """A point matrix's inverse as ``Y +- delta`` (entrywise), from ``||I - A Y||_inf < 1``."""
    Y = np.linalg.inv(A)
    E = iv.subtract(np.eye(len(A)), iv.matmul(A, Y))
    beta = float(np.max(iv.sum(iv.Interval(E.mag), axis=1).hi))
    if not beta < 1:
        raise UndecidedError(f"{call}: could not verify the inverse of a {len(A)} x {len(A)} "
                             "matrix (residual norm >= 1); the matrix is too ill-conditioned")
    ynorm = float(np.max(iv.sum(iv.Interval(np.abs(Y)), axis=1).hi))
    delta = iv.divide(iv.multiply(ynorm, beta), iv.subtract(1.0, beta)).hi
    return iv.add(Y, iv.Interval(-delta, delta))


def _logdet_prox_point_error(W0: np.ndarray, X: np.ndarray, gamma: float) -> float:
    """Upper bound of ``||g(W0) - X||_F`` for a computed, exactly symmetric ``X``.

    If X is positive definite then X = g(W_hat) with W_hat = X - gamma X^{-1}, and g is
    1-Lipschitz in the Frobenius norm (its divided differences lie in (0, 1)), so the error is
    at most ``||W0 - W_hat||_F``. Positive definiteness is checked by a Cholesky factorisation of
    ``X - c I`` with Rump's safety shift ``c`` (it succeeds only if X is positive definite).
    """
    call = "logdet_prox interval rule"
    d = len(X)
    shift = 4.0 * (d + 2) * np.finfo(float).eps * float(np.trace(X)) + 1e-290
    try:
        np.linalg.cholesky(X - shift * np.eye(d))
    except np.linalg.LinAlgError:
        raise UndecidedError(f"{call}: could not verify that the computed prox is positive "
                             "definite; use a smaller box or a larger gamma") from None
    W_hat = iv.subtract(X, iv.multiply(gamma, _verified_inverse(X, call)))
    return float(_frobenius_up(iv.subtract(W0, W_hat), (0, 1)))


def _logdet_prox_interval(w: "iv.Interval", gamma: float) -> "iv.Interval":
    """Enclosure of ``logdet_prox(W)`` for every W in the box ``w`` (d, d)."""
    ws = iv.multiply(0.5, iv.add(w, w.T))
    W0 = ws.mid
    W0 = 0.5 * (W0 + W0.T)                                     # exactly symmetric
    X0 = _logdet_prox_g_matrix(W0, gamma)
    D = iv.subtract(ws, W0)
    kappa = _kappa_up(_modulus_bound(ws), gamma)       # W0 and the segments lie in the box
    spread = iv.multiply(0.5 * kappa, iv.Interval(_frobenius_up(D, (0, 1))))
    err = _logdet_prox_point_error(W0, X0, gamma)
    rad = iv.add(spread, err).hi
    center = iv.add(X0, iv.multiply(0.5, D))
    return iv.add(center, iv.Interval(-rad, rad))


def _logdet_prox_interval_jvp(ivs, out, tans, gamma):
    """Enclosure of ``dg(W)[H]`` for W in the box and H in the tangent box.

    Differentiating ``X - gamma X^{-1} = W_s`` gives ``Y + gamma X^{-1} Y X^{-1} = H_s`` for
    ``Y = dg(W)[H]``: a linear system ``(I + gamma X^{-1} (x) X^{-1}) vec Y = vec H_s`` of size
    d^2, solved by the verified interval solver with ``X`` in the value enclosure ``out``. Tight
    as the boxes shrink; raises UndecidedError when the system cannot be verified.
    """
    (h,) = tans
    if h is None:
        return None
    d, ndir = h.shape[0], h.shape[-1]
    x_inv = _interval_solve(out, iv.Interval(np.eye(d)), "logdet_prox interval rule")
    kron = iv.multiply(x_inv.reshape((d, 1, d, 1)), x_inv.reshape((1, d, 1, d)))
    K = iv.add(np.eye(d * d), iv.multiply(gamma, kron.reshape((d * d, d * d))))
    hs = iv.multiply(0.5, iv.add(h, h.transpose(1, 0, 2))).reshape((d * d, ndir))
    return _interval_solve(K, hs, "logdet_prox interval rule").reshape((d, d, ndir))


def _logdet_prox_g_matrix(W0, gamma):
    lam, q = np.linalg.eigh(W0)
    X = (q * _logdet_prox_g(lam, gamma)) @ q.T
    return 0.5 * (X + X.T)


logdet_prox_p = _spectral_primitive(
    "logdet_prox",
    _logdet_prox_g, _logdet_prox_dg, _logdet_prox_divided,
    _logdet_prox_interval, _logdet_prox_interval_jvp, _logdet_prox_sympy,
    doc="1/2 (W + (W^2 + 4 gamma I)^{1/2}) for the symmetric part of W (gamma > 0): the prox of "
        "-gamma log det. Smooth; JVP by Daleckii-Krein with divided differences "
        "1/2 + (a + b) / (2 (sqrt(a^2 + 4 gamma) + sqrt(b^2 + 4 gamma))).")


# --- linear solve -------------------------------------------------------------------------------

def _solve_shape(sa, sb):
    if len(sa) != 2 or sa[0] != sa[1]:
        raise ValueError(f"A must be a square matrix (n, n), got shape {sa}")
    if len(sb) not in (1, 2) or sb[0] != sa[0]:
        raise ValueError(f"b must have shape ({sa[0]},) or ({sa[0]}, k), got shape {sb}")
    return tuple(sb)


def _solve_columns(a, rhs):
    """``A^{-1} rhs`` for ``a`` (B, n, n) and ``rhs`` (B', ..., n, k), broadcasting the batch."""
    extra = rhs.ndim - 3
    a = a.reshape(a.shape[:1] + (1,) * extra + a.shape[1:])
    try:
        return np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError:
        raise InputError(
            "cv.linalg.solve: received a singular matrix A; make A invertible at every point "
            "where the map is evaluated (e.g. a positive definite Hessian for Newton's method)"
        ) from None


def _solve_impl(a, b):
    vec = b.ndim == 2
    x = _solve_columns(a, b[..., None] if vec else b)
    return x[..., 0] if vec else x


def _solve_jvp(vals, out, tangents):
    a, b = vals
    ta, tb = tangents
    vec = b.ndim == 2
    rhs = None
    if tb is not None:  # (B, n, T) or (B, n, k, T)
        rhs = _directions_first(tb[..., None, :] if vec else tb)              # (B, T, n, k)
    if ta is not None:  # dA x, with x = A^{-1} b
        x = out[..., None] if vec else out                                    # (B, n, k)
        dax = _directions_first(ta) @ x[:, None]                              # (B, T, n, k)
        rhs = -dax if rhs is None else rhs - dax
    dx = _directions_last(_solve_columns(a, rhs))                             # (B, n, k, T)
    return dx[:, :, 0] if vec else dx


def _solve_transpose(vals, out, ct, live):
    # x = A^{-1} b: ct_b = A^{-T} ct, ct_A = -ct_b x^T
    a, b = vals
    vec = b.ndim == 2
    lam = _solve_columns(np.swapaxes(a, 1, 2), ct[..., None] if vec else ct)   # (B, n, k)
    x = out[..., None] if vec else out
    ct_a = -lam @ np.swapaxes(x, 1, 2)
    return ct_a, (lam[..., 0] if vec else lam)


def _interval_solve(A: "iv.Interval", b: "iv.Interval", call: str) -> "iv.Interval":
    """Enclosure of ``{A^{-1} b : A in [A], b in [b]}`` (b of shape (n, k)).

    With ``R = mid(A)^{-1}``, ``x0 = R mid(b)`` and ``C = I - R [A]``: if ``||C||_inf <=
    beta < 1`` then for every A, b in the boxes ``|x - x0| <= |R (b - A x0)| + |C| 1 e`` with
    ``e = ||R (b - A x0)||_inf / (1 - beta)`` per column (Krawczyk / Rump).
    """
    n = A.shape[0]
    try:
        R = np.linalg.inv(A.mid)
    except np.linalg.LinAlgError:
        R = np.full((n, n), np.nan)
    if not np.all(np.isfinite(R)):
        raise UndecidedError(f"{call}: cannot enclose A^{{-1}} b over this box (the midpoint "
                             "of A is singular); use a smaller box")
    x0 = R @ b.mid
    C = iv.subtract(np.eye(n), iv.matmul(R, A))
    Cmag = iv.Interval(C.mag)
    beta = float(np.max(iv.sum(Cmag, axis=1).hi))
    if not beta < 1:
        raise UndecidedError(f"{call}: cannot enclose A^{{-1}} b over this box (||I - R A|| >= "
                             "1: A may be singular on it); use a smaller box")
    res = iv.matmul(R, iv.subtract(b, iv.matmul(A, x0)))             # (n, k)
    e = iv.divide(iv.Interval(np.max(res.mag, axis=0)), iv.subtract(1.0, beta)).hi   # (k,)
    rad = iv.add(iv.Interval(res.mag), iv.multiply(iv.sum(Cmag, axis=1).reshape((n, 1)),
                                                   iv.Interval(e))).hi
    return iv.add(x0, iv.Interval(-rad, rad))


def _solve_interval(a, b):
    vec = b.ndim == 1
    x = _interval_solve(a, b.reshape((b.shape[0], 1)) if vec else b, "solve interval rule")
    return x.reshape(b.shape)


def _solve_interval_jvp(ivs, out, tans):
    a, b = ivs
    ta, tb = tans
    n = a.shape[0]
    ndir = (ta if ta is not None else tb).shape[-1]
    x = out.reshape((n, -1))                                          # (n, k)
    k = x.shape[1]
    rhs = None
    if tb is not None:
        rhs = tb.reshape((n, k * ndir))
    if ta is not None:                                                # dA x, per direction
        t = ta.transpose(0, 2, 1).reshape((n * ndir, n))              # rows (i, t)
        dax = iv.matmul(t, x).reshape((n, ndir, k)).transpose(0, 2, 1).reshape((n, k * ndir))
        rhs = iv.multiply(-1.0, dax) if rhs is None else iv.subtract(rhs, dax)
    dx = _interval_solve(a, rhs, "solve interval rule")
    return dx.reshape(out.shape + (ndir,))


def _solve_sympy(a, b):
    out = np.empty((max(a.shape[0], b.shape[0]),) + b.shape[1:], dtype=object)
    for i in range(out.shape[0]):
        A = sympy.Matrix(a[i if a.shape[0] > 1 else 0])
        x = A.LUsolve(sympy.Matrix(b[i if b.shape[0] > 1 else 0]))
        out[i] = np.array(x.tolist(), dtype=object).reshape(b.shape[1:])
    return out


solve_p = register(Structural(
    name="solve", call="cv.linalg.solve", impl=_solve_impl, shape_rule=_solve_shape, jvp=_solve_jvp,
    transpose=_solve_transpose, interval=_solve_interval, interval_jvp=_solve_interval_jvp,
    sympy=_solve_sympy,
    doc="A^{-1} b for a square A and b of shape (n,) or (n, k). Smooth where A is invertible; "
        "JVP A^{-1} (db - dA A^{-1} b)."))
