"""Joint spectral radius (JSR) bounds for a finite set of square matrices.

For a bounded set S = {A_0, ..., A_{m-1}} of n x n matrices,

.. math::

    \\rho(S) = \\lim_{k\\to\\infty} \\max_{|w| = k} \\|A_w\\|^{1/k}
             = \\limsup_{k\\to\\infty} \\max_{|w| = k} \\rho(A_w)^{1/k},

with ``A_w = A_{w[-1]} ... A_{w[1]} A_{w[0]}`` (``w[0]`` is applied first). It is independent of
the norm and JSR(conv S) = JSR(S). ``rho(S) < 1`` iff some operator norm has ``||A|| < 1`` for
every A in S: exactly the contraction assumption behind piggyback differentiation.

Bounds, from cheap to strong:

* lower: ``rho(A_w)^{1/|w|}`` for products found by a branch-and-bound search over words
  (Gripenberg 1996), evaluated only on canonical (lexicographically least) rotations, since
  cyclic rotations have the same spectrum;
* upper: ``max_{|w|=k} ||A_w||_2^{1/k}``; a common quadratic Lyapunov function
  ``A_i^T P A_i ⪯ gamma^2 P`` found by SDP with bisection on gamma (re-checked exactly);
  Gripenberg's bound run in that quadratic norm; the invariant polytope algorithm
  (Guglielmi & Protasov 2013) started from the best product, whose final bound is re-checked in
  exact rational arithmetic and often equals the lower bound.

Before any of this the set is balanced by a diagonal similarity with powers of two (exact in
floating point, JSR-invariant) and scaled by a power of two near the JSR, so products neither
overflow nor underflow.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

from . import _exact
from ._types import as_matrix_stack
from .errors import InputError, fail_message

__all__ = ["JSRResult", "jsr", "product", "spectral_radius", "parse_matrix_set"]

_CALL = "cv.jsr"


@dataclass(frozen=True)
class JSRResult:
    """Bracket ``lower <= JSR <= upper`` with the evidence for each side.

    Attributes
    ----------
    lower : float
        ``rho(A_word)^(1/len(word))`` (a float estimate of an algebraic number).
    upper : float
        Upper bound. When ``upper_verified == "exact"`` it was proved in rational arithmetic.
    word : tuple of int
        Best product found, in application order: the product is
        ``A[word[-1]] @ ... @ A[word[0]]``. Always a canonical (least) rotation.
    lower_method, upper_method : str
        Which algorithm gave each bound.
    upper_verified : str
        ``"exact"`` (rational re-check) or ``"float"``.
    P : ndarray or None
        Quadratic norm matrix ``||v||_P = sqrt(v^T P v)`` when that norm gave the upper bound
        (or was used by the branch and bound), in the coordinates of the input matrices. When
        ``upper_method`` names "products of length k", P is the form of the length-k products:
        ``A_w^T P A_w ⪯ upper^(2k) P``.
    polytope : ndarray or None
        Columns are vertices of the invariant polytope (input coordinates) when that gave
        the upper bound; the norm's unit ball is their symmetric convex hull.

    Examples
    --------
    >>> print(jsr([[[0.5, 1e6], [0.0, 0.5]]]))      # doctest: +ELLIPSIS
    JSR in [0.5, 0.50000...] (relative gap ...)
      lower: spectral radius of one matrix, word 0 (A[w[-1]]...A[w[0]])
      upper: ... (verified: exact)
    """

    lower: float
    upper: float
    word: tuple
    lower_method: str
    upper_method: str
    upper_verified: str = "float"
    P: np.ndarray | None = field(default=None, repr=False, compare=False)
    polytope: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def gap(self) -> float:
        """Relative width ``(upper - lower) / upper`` of the bracket."""
        return 0.0 if self.upper == 0 else (self.upper - self.lower) / self.upper

    def __str__(self) -> str:
        if len(self.word) > 40:
            word = f"of {len(self.word)} letters"
        else:
            word = ("".join(map(str, self.word)) if max(self.word, default=0) < 10
                    else "-".join(map(str, self.word)))
        return (f"JSR in [{self.lower:.12g}, {self.upper:.12g}] (relative gap {self.gap:.2e})\n"
                f"  lower: {self.lower_method}, word {word} (A[w[-1]]...A[w[0]])\n"
                f"  upper: {self.upper_method} (verified: {self.upper_verified})")

    def to_dict(self) -> dict:
        """JSON-ready dictionary (arrays become nested lists)."""
        return {
            "lower": self.lower, "upper": self.upper, "word": list(self.word),
            "lower_method": self.lower_method, "upper_method": self.upper_method,
            "upper_verified": self.upper_verified,
            "P": None if self.P is None else self.P.tolist(),
            "polytope": None if self.polytope is None else self.polytope.T.tolist(),
        }


# ---------------------------------------------------------------------------------------------
# input and small helpers


def parse_matrix_set(mats: Any, *, call: str = _CALL, name: str = "mats") -> np.ndarray:
    """Return a float64 stack (k, n, n) from arrays, lists or a JacobianSet (``obj.A.vertices``).

    Raises
    ------
    ShapeError, NonFiniteError, InputError

    Examples
    --------
    >>> parse_matrix_set([[[1, 0], [0, 1]]]).shape
    (1, 2, 2)
    """
    if hasattr(mats, "A") and hasattr(getattr(mats, "A"), "vertices"):
        mats = mats.A.vertices
    elif hasattr(mats, "vertices") and not isinstance(mats, np.ndarray):
        mats = mats.vertices
    if isinstance(mats, (list, tuple)) and len(mats) == 0:
        raise InputError(fail_message(call, f"an empty {name}",
                                      "pass at least one square matrix"))
    return as_matrix_stack(mats, name=name, call=call)


def product(mats: np.ndarray, word) -> np.ndarray:
    """``A[word[-1]] @ ... @ A[word[0]]`` (``word[0]`` applied first).

    Examples
    --------
    >>> A = np.array([[[1., 1.], [0., 1.]], [[1., 0.], [1., 1.]]])
    >>> product(A, (0, 1)).tolist()        # A1 @ A0
    [[1.0, 1.0], [1.0, 2.0]]
    """
    out = np.eye(mats.shape[1])
    for i in word:
        out = mats[i] @ out
    return out


def spectral_radius(m: np.ndarray) -> np.ndarray:
    """Spectral radius of one matrix or of a stack (last two axes).

    Examples
    --------
    >>> float(spectral_radius(np.array([[0., 2.], [2., 0.]])))
    2.0
    """
    return np.abs(np.linalg.eigvals(m)).max(axis=-1)


def _norm2(stack: np.ndarray) -> np.ndarray:
    """Spectral norms of a stack; inf where an entry overflowed (LAPACK refuses inf/NaN)."""
    if stack.shape[-1] == 1:
        return np.abs(stack[..., 0, 0])
    ok = np.isfinite(stack).all(axis=(-2, -1))
    if ok.all():
        return np.linalg.norm(stack, ord=2, axis=(-2, -1))
    out = np.full(ok.shape, np.inf)
    out[ok] = np.linalg.norm(stack[ok], ord=2, axis=(-2, -1))
    return out


def _canonical_rotation(word) -> tuple:
    word = tuple(int(i) for i in word)
    if not word:
        return word
    return min(word[r:] + word[:r] for r in range(len(word)))


def _least_rotations(words: np.ndarray) -> np.ndarray:
    """Lexicographically least rotation (necklace representative) of each row of (N, k)."""
    n, k = words.shape
    best = words.copy()
    idx = np.arange(n)
    for r in range(1, k):
        rot = np.roll(words, -r, axis=1)
        diff = rot != best
        first = diff.argmax(axis=1)
        smaller = diff.any(axis=1) & (rot[idx, first] < best[idx, first])
        best[smaller] = rot[smaller]
    return best


def _canonical_mask(words: np.ndarray) -> np.ndarray:
    """Rows of ``words`` (N, k) that are their own least rotation."""
    return np.all(_least_rotations(words) == words, axis=1)


def _one_per_necklace(words: np.ndarray) -> np.ndarray:
    """Indices of one row per class of cyclic rotations (spectra agree within a class)."""
    if words.shape[1] == 1:
        return np.arange(words.shape[0])
    _, first = np.unique(_least_rotations(words), axis=0, return_index=True)
    return np.sort(first)


def _pow2(x: float) -> float:
    """Power of two closest to ``x`` (> 0): scaling by it is exact in floating point."""
    return math.ldexp(1.0, round(math.log2(x))) if x > 0 else 1.0


def _balance(mats: np.ndarray, sweeps: int = 20) -> np.ndarray:
    """Powers of two ``d`` so that ``D^{-1} A D`` (D = diag(d)) has balanced rows and columns.

    Osborne's iteration on ``sum_i |A_i|``. Where a row or column is zero outside the diagonal
    (reducible structure) the off-diagonal part is pushed towards a small multiple of the
    diagonal, within 2^±200, so huge couplings such as [[0.5, 1e6], [0, 0.5]] become harmless.
    """
    s = np.abs(mats).sum(axis=0)
    n = s.shape[0]
    logd = np.zeros(n)
    ref = max(float(np.abs(np.diagonal(s)).max()), float(s.max()) * 1e-6, 1e-300)
    for _ in range(sweeps):
        changed = False
        for i in range(n):
            d = np.exp2(logd)
            sc = s * d[None, :] / d[:, None]
            c = sc[:, i].sum() - sc[i, i]
            r = sc[i, :].sum() - sc[i, i]
            if c == 0 and r == 0:
                continue
            if c == 0:
                step = math.log2(r / (1e-3 * ref)) if r > 1e-3 * ref else 0.0
            elif r == 0:
                step = -math.log2(c / (1e-3 * ref)) if c > 1e-3 * ref else 0.0
            else:
                step = 0.5 * math.log2(r / c)
            step = float(round(step))
            new = float(np.clip(logd[i] + step, -200, 200))
            if new != logd[i]:
                logd[i] = new
                changed = True
        if not changed:
            break
    return np.exp2(logd)


def balanced(A: np.ndarray):
    """``(B, d, s, exact)`` with ``A = s D B D^{-1}`` (D = diag(d), d and s powers of two).

    B is balanced (:func:`_balance`) and scaled so that its spectral radii are about 1.
    ``exact`` tells whether the similarity is exact in floating point (it is unless some entry
    under- or overflowed); only then do exact checks on B prove statements about A.

    Examples
    --------
    >>> B, d, s, exact = balanced(np.array([[[0.5, 1e6], [0.0, 0.5]]]))
    >>> float(np.abs(B).max()) < 10, s, exact
    (True, 0.5, True)
    """
    d = _balance(A)
    with np.errstate(all="ignore"):
        B = A * d[None, None, :] / d[None, :, None]
        if not np.all(np.isfinite(B)):
            d = np.ones(A.shape[1])
            B = A.copy()
        big = float(np.abs(B).max())
        r = float(spectral_radius(B / big).max()) * big       # no overflow in eig
        s = _pow2(r if r > 0 else big)
        B = B / s
        back = (B * s) * d[None, :, None] / d[None, None, :]
    return B, d, s, bool(np.array_equal(back, A))


def _brute_upper(mats: np.ndarray, max_products: int = 4096) -> tuple[float, int]:
    """``max_{|w|=k} ||A_w||_2^{1/k}`` for the largest k with m^k <= max_products (k >= 1)."""
    m = mats.shape[0]
    best = (float(_norm2(mats).max()), 1)
    prods = mats
    k = 1
    while prods.shape[0] * m <= max_products and k < 12:
        prods = np.einsum("aij,bjk->abik", mats, prods).reshape(-1, *mats.shape[1:])
        k += 1
        val = float(_norm2(prods).max()) ** (1.0 / k)
        if val < best[0]:
            best = (val, k)
    return best


# ---------------------------------------------------------------------------------------------
# common quadratic Lyapunov function


def _quadratic_gamma(mats: np.ndarray, P: np.ndarray) -> float:
    """``max_i ||A_i||_P`` in floating point (inf if P is not positive definite)."""
    try:
        T = _in_p_norm(mats, (P + P.T) / 2)
    except np.linalg.LinAlgError:
        return math.inf
    val = float(_norm2(T).max())
    return val if math.isfinite(val) else math.inf


def _in_p_norm(mats: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Matrices ``L^T A L^{-T}`` (P = L L^T) whose 2-norms are the P-norms of ``A``."""
    L = np.linalg.cholesky(P)
    # (L^T A L^{-T})^T = L^{-1} (A^T L)
    return np.swapaxes(np.linalg.solve(L, mats.transpose(0, 2, 1) @ L), 1, 2)


def _import_cvxpy():
    try:
        import cvxpy  # noqa: F401
    except Exception:  # noqa: BLE001 -- no cvxpy: quadratic norms are simply skipped
        return None
    return cvxpy


class _QuadraticSDP:
    """Feasibility SDP ``I ⪯ P ⪯ t I, g^2 P - A_i^T P A_i ⪰ 0`` (min t), compiled once."""

    def __init__(self, mats: np.ndarray):
        import cvxpy as cp

        self.cp = cp
        k, n, _ = mats.shape
        self.P = cp.Variable((n, n), symmetric=True)
        self.t = cp.Variable()
        self.g2 = cp.Parameter(nonneg=True)
        eye = np.eye(n)
        cons = [self.P >> eye, self.t * eye - self.P >> 0]
        for a in mats:
            q = a.T @ self.P @ a
            cons.append(self.g2 * self.P - (q + q.T) / 2 >> 0)
        self.problem = cp.Problem(cp.Minimize(self.t), cons)

    def solve(self, gamma: float, deadline: float = math.inf) -> np.ndarray | None:
        """A candidate P for this gamma, or None (infeasible or every solver failed).

        CLARABEL first; SCS (first order, slow to high accuracy) only as a fallback with an
        iteration and time cap, so a hard instance cannot stall the caller.
        """
        self.g2.value = gamma * gamma
        for solver in ("CLARABEL", "SCS"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            opts = {} if solver == "CLARABEL" else {
                "max_iters": 2500, "time_limit_secs": float(min(left, 1.0))}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.problem.solve(solver=solver, **opts)
            except Exception:  # noqa: BLE001 -- any solver crash means "try the next one"
                continue
            status = self.problem.status
            if status in ("infeasible", "infeasible_inaccurate"):
                return None
            P = self.P.value
            if P is not None and np.all(np.isfinite(P)):
                return (P + P.T) / 2
        return None


def quadratic_norm(mats: np.ndarray, lo: float, hi: float, *, rtol: float = 1e-6,
                   deadline: float = math.inf, max_iter: int = 40):
    """Best common quadratic norm by SDP bisection on gamma in [lo, hi].

    Solves ``P ⪰ I, A_i^T P A_i ⪯ gamma^2 P`` (convex for fixed gamma). Every returned P is
    re-evaluated in floating point, ``gamma(P) = max_i ||A_i||_P``, which is what moves the upper
    end; solver verdicts only guide the search. Returns ``(gamma(P), P)``; if no solve succeeds
    (or cvxpy is unavailable) that is ``P = I``, feasible for ``hi >= max_i ||A_i||_2``.

    Examples
    --------
    >>> A = np.array([[[1., -.25], [1., 0.]], [[-1., -.25], [1., 0.]]])
    >>> g, P = quadratic_norm(A, 1.0, 2.0, rtol=1e-5)
    >>> round(g, 4), np.round(P / P[1, 1], 3).tolist()
    (1.2071, [[4.0, 0.0], [0.0, 1.0]])
    """
    try:
        sdp = _QuadraticSDP(mats)
    except Exception:  # noqa: BLE001 -- cvxpy missing or refusing the model: P = I
        eye = np.eye(mats.shape[1])
        return _quadratic_gamma(mats, eye), eye
    best_g, best_P = math.inf, None
    # the best quadratic bound is often within a few percent of the lower bound: try there
    # first, so that a feasible answer shrinks the bracket at once
    g_try = min(hi, lo * 1.02) if lo > 0 else hi
    for _ in range(max_iter):
        if time.monotonic() > deadline:
            break
        P = sdp.solve(g_try, deadline)
        g_val = _quadratic_gamma(mats, P) if P is not None else math.inf
        if g_val < best_g:
            best_g, best_P = g_val, P
        if g_val <= g_try * (1 + 1e-6):        # feasible up to the solver's accuracy
            hi = min(g_try, g_val)
        else:                                   # infeasible, or a useless "solution"
            lo = g_try
        if hi - lo <= rtol * hi or lo >= hi:
            break
        g_try = 0.5 * (lo + hi)
    if best_P is None:                          # every solve failed: P = I is always a norm
        eye = np.eye(mats.shape[1])
        return _quadratic_gamma(mats, eye), eye
    return best_g, best_P


def rational_quadratic(mats: np.ndarray, P: np.ndarray, *, limit: float = math.inf):
    """Round P to short dyadic rationals and find gamma with an *exact* proof.

    Returns ``(gamma, P_rounded)`` such that ``check_quadratic(mats, P_rounded, gamma)`` holds,
    or None. Candidates are gamma(P) * (1 + eps), rounded up to 40-bit dyadics, and must stay
    below ``limit``.
    """
    scale = _pow2(float(np.abs(P).max()))
    Pr = np.vectorize(_exact.dyadic_round)(P / scale)
    Pr = (Pr + Pr.T) / 2
    g0 = _quadratic_gamma(mats, Pr)
    if not math.isfinite(g0):
        return None
    for eps in (1e-12, 1e-9, 1e-6, 1e-3):
        gamma = _exact.dyadic_round(g0 * (1 + eps), 40)
        gamma = math.nextafter(gamma, math.inf) if gamma < g0 else gamma
        if gamma >= limit:
            return None
        if _exact.check_quadratic(mats, Pr, gamma):
            return gamma, Pr
    return None


# ---------------------------------------------------------------------------------------------
# branch and bound over products (Gripenberg)


@dataclass
class _Search:
    alpha: float
    word: tuple
    upper: float
    complete: bool


def _rho_roots(prods: np.ndarray, k: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        return spectral_radius(prods) ** (1.0 / k)


def gripenberg(mats: np.ndarray, *, alpha: float = 0.0, word: tuple = (), delta: float = 1e-6,
               max_length: int = 30, max_nodes: int = 20000,
               deadline: float = math.inf) -> _Search:
    """Gripenberg's branch and bound in the 2-norm of ``mats`` (pass P-norm transformed ones).

    A product's bound is ``min_{j<=k} ||A_{w[:j]}||^{1/j}`` over its prefixes. Products whose
    bound is ``<= alpha + delta`` are pruned (``alpha`` = best lower bound so far); any infinite
    product splits into such blocks, hence

        JSR <= max(alpha + delta, bounds of the survivors at the last level and of those dropped
                   for lack of room).

    Lower bounds ``rho(A_w)^{1/|w|}`` are computed once per class of cyclic rotations.
    """
    m, n, _ = mats.shape
    prods = mats.copy()
    words = np.arange(m)[:, None]
    bounds = _norm2(prods)
    dropped = 0.0
    best_alpha, best_word = alpha, tuple(word)
    for k in range(1, max_length + 1):
        # a rotation pruned elsewhere in the tree may survive here, so evaluate one
        # representative per rotation class among the survivors
        reps = _one_per_necklace(words)
        rr = _rho_roots(prods[reps], k)
        j = int(np.nanargmax(rr)) if np.isfinite(rr).any() else -1
        if j >= 0 and rr[j] > best_alpha * (1 + 1e-13):
            best_alpha, best_word = float(rr[j]), tuple(int(i) for i in words[reps[j]])
        keep = bounds > best_alpha + delta
        prods, words, bounds = prods[keep], words[keep], bounds[keep]
        if prods.shape[0] == 0:
            return _Search(best_alpha, best_word, max(best_alpha + delta, dropped), dropped == 0)
        if k == max_length or time.monotonic() > deadline:
            break
        if prods.shape[0] * m > max_nodes:
            order = np.argsort(-bounds)
            cut = max(max_nodes // m, 1)
            dropped = max(dropped, float(bounds[order[cut:]].max()))
            sel = order[:cut]
            prods, words, bounds = prods[sel], words[sel], bounds[sel]
        # extend: the new factor is applied last, A_i @ product
        new = np.einsum("aij,bjk->abik", mats, prods).reshape(-1, n, n)
        scale = np.abs(new).max()
        if not np.isfinite(scale):
            break
        words = np.concatenate([np.tile(words, (m, 1)),
                                np.repeat(np.arange(m), words.shape[0])[:, None]], axis=1)
        with np.errstate(all="ignore"):
            bounds = np.minimum(np.tile(bounds, m), _norm2(new) ** (1.0 / (k + 1)))
        prods = new
    upper = max(best_alpha + delta, dropped, float(bounds.max()) if bounds.size else 0.0)
    return _Search(best_alpha, best_word, upper, False)


# ---------------------------------------------------------------------------------------------
# invariant polytope (Guglielmi-Protasov), real case


def _absconv_value(V: np.ndarray, y: np.ndarray):
    """``min ||lam||_1 s.t. V lam = y`` by LP; returns (value, support indices)."""
    from scipy.optimize import linprog

    N = V.shape[1]
    res = linprog(np.ones(2 * N), A_eq=np.hstack([V, -V]), b_eq=y, bounds=(0, None),
                  method="highs")
    if res.status != 0:
        return math.inf, ()
    lam = res.x[:N] - res.x[N:]
    big = np.abs(lam).max() if lam.size else 0.0
    support = tuple(int(i) for i in np.argsort(-np.abs(lam)) if abs(lam[i]) > 1e-12 * big)
    return float(res.fun), support


class _AbsConvNorm:
    """Float evaluation of the polytope norm ``||y||_V = min{||lam||_1 : V lam = y}``.

    In dimensions 2 to 4 through the facets of ``conv(±V)`` (qhull): ``||y|| = max_k a_k . y``
    and the facet's vertices form the basis for the later exact check; otherwise one LP per
    point.
    """

    def __init__(self, V: np.ndarray):
        self.V = V
        self._rebuild()

    def _rebuild(self):
        from scipy.spatial import ConvexHull

        self.facets = None
        n, N = self.V.shape
        if 2 <= n <= 4 and np.linalg.matrix_rank(self.V) == n:
            try:
                hull = ConvexHull(np.hstack([self.V, -self.V]).T)
            except Exception:  # noqa: BLE001 -- qhull trouble: use LPs instead
                return
            off = -hull.equations[:, -1]
            if np.all(off > 0):
                self.facets = hull.equations[:, :-1] / off[:, None]
                self.simplices = hull.simplices % N

    def add(self, Y: np.ndarray):
        self.V = np.hstack([self.V, Y])
        self._rebuild()

    def values(self, Y: np.ndarray):
        """Norms of the columns of Y and, for each, indices of a representing basis."""
        if self.facets is not None:
            G = self.facets @ Y
            k = G.argmax(axis=0)
            return G[k, np.arange(Y.shape[1])], [tuple(self.simplices[kk]) for kk in k]
        out = [_absconv_value(self.V, Y[:, c]) for c in range(Y.shape[1])]
        return np.array([o[0] for o in out]), [o[1] for o in out]


def _leading_real_vector(Aw: np.ndarray):
    """Leading eigenvalue modulus and real eigenvector, or None if the leader is complex or
    not unique in modulus (then a real polytope cannot be extremal from this product)."""
    lam, vecs = np.linalg.eig(Aw)
    order = np.argsort(-np.abs(lam))
    top = lam[order[0]]
    if abs(top) == 0 or abs(top.imag) > 1e-12 * abs(top):
        return None
    if len(lam) > 1 and np.abs(lam[order[1]]) > abs(top) * (1 - 1e-9) and \
            not np.isclose(lam[order[1]], top, rtol=1e-9):
        return None
    v = np.real(vecs[:, order[0]])
    return abs(top), v / np.abs(v).max()


def invariant_polytope(mats: np.ndarray, word: tuple, *, max_vertices: int = 200,
                       deadline: float = math.inf, tol: float = 1e-9):
    """Invariant polytope algorithm (Guglielmi-Protasov) from the candidate product ``A_word``.

    Scale by ``r = rho(A_w)^{1/|w|}``; start from the leading (real, simple in modulus)
    eigenvector v of ``A_w`` and its cyclic images; generation by generation add the images
    ``A_i x / r`` of new vertices that leave the symmetric convex hull. If the process stops,
    the hull is invariant: ``||A_i||_V <= r`` in the polytope norm, so JSR = r. The bound is
    then recomputed *exactly* for the unscaled matrices (:func:`polytope_bound`). A flat hull
    (reducible set) gets small complement vectors added once, to become full-dimensional.

    Returns ``(upper, V)`` with ``upper`` a float >= the exact bound, or None (complex or
    multiple leading eigenvalue, too many vertices, time out).

    Examples
    --------
    >>> A = np.array([[[1., 1.], [0., 1.]], [[1., 0.], [1., 1.]]])
    >>> upper, V = invariant_polytope(A, (0, 1))
    >>> abs(upper - (1 + 5 ** 0.5) / 2) < 1e-9, V.shape[0]
    (True, 2)
    """
    n, k = mats.shape[1], len(word)
    lead = _leading_real_vector(product(mats, word))
    if lead is None:
        return None
    r = lead[0] ** (1.0 / k)
    S = mats / r
    roots = [lead[1]]
    for i in word[:-1]:
        roots.append(S[i] @ roots[-1])
    norm = _AbsConvNorm(np.stack(roots, axis=1))
    new = list(range(norm.V.shape[1]))
    supports: dict = {}
    padded = False
    while True:
        while new:
            if norm.V.shape[1] > max_vertices or time.monotonic() > deadline:
                return None
            pairs = [(i, j) for i in range(S.shape[0]) for j in new]
            Y = np.stack([S[i] @ norm.V[:, j] for i, j in pairs], axis=1)
            vals, sups = norm.values(Y)
            out = vals > 1 + tol
            start = norm.V.shape[1]
            for c, (pair, sup) in enumerate(zip(pairs, sups)):
                if not out[c]:
                    supports[pair] = sup
            for pos, c in enumerate(np.flatnonzero(out)):
                supports[pairs[c]] = (start + pos,)
            new = list(range(start, start + int(out.sum())))
            if new:
                norm.add(Y[:, out])
        if np.linalg.matrix_rank(norm.V) == n:
            break
        if padded:
            return None
        # flat polytope (reducible set): add a small basis of the complement and continue
        rank = np.linalg.matrix_rank(norm.V)
        extra = 1e-3 * np.linalg.svd(norm.V)[0][:, rank:]
        start = norm.V.shape[1]
        norm.add(extra)
        new = list(range(start, norm.V.shape[1]))
        padded = True
    bound = polytope_bound(mats, norm.V, supports)
    return None if bound is None else (bound, norm.V)


# ---------------------------------------------------------------------------------------------
# driver


@dataclass(frozen=True)
class UpperBound:
    """One upper bound on the JSR with its evidence (input coordinates)."""

    value: float
    method: str
    verified: str                       # "exact" or "float"
    P: np.ndarray | None = None         # quadratic norm
    V: np.ndarray | None = None         # polytope vertices (columns)
    k: int = 1                          # product length of a lifted quadratic norm


@dataclass(frozen=True)
class Analysis:
    """Everything :func:`analyse` found: the lower bound and every upper bound."""

    lower: float
    word: tuple
    lower_method: str
    uppers: tuple

    def best(self, *, exact_only: bool = False) -> UpperBound | None:
        """Smallest bound; an exact one wins over a float one within 1e-9 relative."""
        cands = [u for u in self.uppers if u.verified == "exact" or not exact_only]
        if not cands:
            return None
        low = min(u.value for u in cands)
        exact = [u for u in cands if u.verified == "exact" and u.value <= low * (1 + 1e-9)]
        return min(exact or cands, key=lambda u: u.value)


def lifted_quadratic(B: np.ndarray, k: int, lo: float, *, deadline: float = math.inf,
                     limit: float = math.inf, rtol: float = 1e-6):
    """Quadratic norm for the products of length k, exactly verified.

    Finds P with ``A_w^T P A_w ⪯ g^{2k} P`` for all ``|w| = k``; then every ``A_i`` has norm
    ``<= g`` in ``||x|| = max_{|u|<k} g^{-|u|} ||A_u x||_P`` (see
    :func:`_exact.check_quadratic_products`). Returns ``(g, P)`` or None.
    """
    m, n, _ = B.shape
    prods = B
    for _ in range(k - 1):
        prods = np.einsum("aij,bjk->abik", B, prods).reshape(-1, n, n)
    hi = float(_norm2(prods).max()) * (1 + 1e-9)
    gk, P = quadratic_norm(prods, lo ** k, hi, rtol=rtol, deadline=deadline)
    if P is None:
        return None
    scale = _pow2(float(np.abs(P).max()))
    Pr = np.vectorize(_exact.dyadic_round)(P / scale)
    Pr = (Pr + Pr.T) / 2
    g0 = _quadratic_gamma(prods, Pr) ** (1.0 / k)
    for eps in (1e-12, 1e-9, 1e-6, 1e-3):
        g = _exact.dyadic_round(g0 * (1 + eps), 40)
        g = math.nextafter(g, math.inf) if g < g0 else g
        if g >= limit:
            return None
        if _exact.check_quadratic_products(B, Pr, g, k):
            return g, Pr
    return None


def polytope_bound(mats: np.ndarray, V: np.ndarray, supports: dict | None = None):
    """Exact bound on ``max_i ||A_i||_V`` (unit ball ``absconv(V)``), rounded up to a float.

    Float LPs only choose bases; the bound itself is computed in rationals. A relative slack
    of 1e-12 is added so that anyone re-checking with another optimal LP basis (which may
    differ in the last bits) still confirms the bound.
    """
    if supports is None:
        supports = {}
        for i, a in enumerate(mats):
            for j in range(V.shape[1]):
                supports[(i, j)] = _absconv_value(V, a @ V[:, j])[1]
    q = _exact.polytope_norm_bound(mats, V, supports)
    return None if q is None else _exact.float_at_least(q * (1 + Fraction(1, 10 ** 12)))


def analyse(A: np.ndarray, *, tol: float = 1e-6, max_length: int = 30,
            time_limit: float = 20.0, max_nodes: int = 20000, use_sdp: bool = True,
            use_polytope: bool = True, use_lifted: bool = True,
            stop_at: float = math.inf, stop_below: float = -math.inf) -> Analysis:
    """All bounds for a validated stack ``A`` (k, n, n); :func:`jsr` picks the best.

    A quick product search runs first; if its lower bound reaches ``stop_at`` the upper-bound
    machinery is skipped (a certifier does not need it once a product with
    ``rho(A_w)^{1/|w|} >= 1`` is known). Likewise the search stops as soon as an exactly
    verified common quadratic norm gives a bound below ``stop_below``.
    """
    sdp_rtol = min(max(tol, 1e-8), 1e-4)
    if use_sdp:
        _import_cvxpy()                  # the first import is slow; keep it off the clock
    deadline = time.monotonic() + time_limit
    m, n, _ = A.shape
    if not np.any(A):
        zero = UpperBound(0.0, "all matrices are zero", "exact", np.eye(n))
        return Analysis(0.0, (0,), "all matrices are zero", (zero,))
    B, d, s, exact_similarity = balanced(A)
    rho1 = spectral_radius(B)
    i1 = int(np.argmax(rho1))
    lower, word, lower_method = float(rho1[i1]), (i1,), "spectral radius of one matrix"
    cheap, cheap_k = _brute_upper(B)

    def to_input(Pb):  # A = s D B D^{-1}: ||.||_Pb for B is ||.||_{D^-1 Pb D^-1} for A
        return Pb / d[:, None] / d[None, :]

    def finish():
        # exact checks were run on B; they speak about A only if A = s D B D^{-1} exactly
        ups = tuple(uppers) if exact_similarity else tuple(
            replace(u, verified="float", method=u.method + " [exact for rescaled matrices]")
            if u.verified == "exact" else u for u in uppers)
        return Analysis(float(lower * s), _canonical_rotation(word), lower_method, ups)

    uppers = [UpperBound(cheap * s, "max ||A_w||_2^(1/k) over all products of length "
                         f"{cheap_k} (balanced 2-norm)", "float")]
    # quick product search for a lower bound (and an early exit for certifiers)
    quick = gripenberg(B, alpha=lower, word=word, delta=1e-3 * max(lower, 1e-300),
                       max_length=min(max_length, 12), max_nodes=min(max_nodes, 2000),
                       deadline=min(deadline, time.monotonic() + 0.2 * time_limit))
    if quick.alpha > lower:
        lower, word = quick.alpha, quick.word
        lower_method = f"spectral radius of a product of length {len(word)} (branch and bound)"
    if lower * s >= stop_at:
        return finish()
    # common quadratic Lyapunov function (SDP), re-checked exactly
    P = None
    if use_sdp:
        hi = float(_norm2(B).max()) * (1 + 1e-9)       # P = I is feasible there
        g, Pq = quadratic_norm(B, lower, hi, rtol=sdp_rtol, deadline=deadline)
        if Pq is not None:
            exact = rational_quadratic(B, Pq)
            if exact is not None:
                P = exact[1]
                uppers.append(UpperBound(exact[0] * s, "common quadratic Lyapunov function "
                                         "(SDP, exact LDL^T check)", "exact", to_input(P)))
                if exact[0] * s < stop_below:
                    return finish()
            else:
                P = Pq
                uppers.append(UpperBound(g * s, "common quadratic Lyapunov function (SDP)",
                                         "float", to_input(P)))
    # branch and bound, in the quadratic norm when we have one
    C = _in_p_norm(B, P) if P is not None else B
    gb = gripenberg(C, alpha=lower, word=word, delta=tol * max(lower, 1e-300),
                    max_length=max_length, max_nodes=max_nodes, deadline=deadline)
    if gb.alpha > lower:
        lower, word = gb.alpha, gb.word
        lower_method = f"spectral radius of a product of length {len(word)} (branch and bound)"
    norm_name = "quadratic norm" if P is not None else "balanced 2-norm"
    uppers.append(UpperBound(gb.upper * s, f"Gripenberg branch and bound in the {norm_name}"
                             + ("" if gb.complete else f" (stopped at length {max_length})"),
                             "float", to_input(P) if P is not None else None))

    def open_gap():
        best = Analysis(lower * s, word, lower_method, tuple(uppers)).best()
        return best.verified != "exact" or best.value > lower * s * (1 + tol)

    # invariant polytope from the best product
    if use_polytope and open_gap() and time.monotonic() < deadline:
        try:
            left = deadline - time.monotonic()
            poly = invariant_polytope(B, word, deadline=time.monotonic() + 0.5 * left)
        except Exception:  # noqa: BLE001 -- LP trouble: keep the other bounds
            poly = None
        if poly is not None:
            ub, V = poly
            uppers.append(UpperBound(ub * s, f"invariant polytope ({V.shape[1]} vertex pairs,"
                                     " exact rational check)", "exact", None, V * d[:, None]))
    # quadratic norm of products of length k (handles complex leading eigenvalues)
    if use_sdp and use_lifted and open_gap():
        for k in (2, 3, 4):
            if m ** k > 64 or time.monotonic() > deadline:
                break
            got = lifted_quadratic(B, k, lower, deadline=deadline, rtol=sdp_rtol)
            if got is not None:
                uppers.append(UpperBound(got[0] * s, f"quadratic norm of products of length "
                                         f"{k} (SDP, exact check)", "exact",
                                         to_input(got[1]), k=k))
                if got[0] * s < stop_below or not open_gap():
                    break
    return finish()


def jsr(mats: Any, *, tol: float = 1e-6, max_length: int = 30, time_limit: float = 20.0,
        max_nodes: int = 20000, use_sdp: bool = True, use_polytope: bool = True) -> JSRResult:
    """Bracket the joint spectral radius of a finite set of square matrices.

    .. math::

        \\max_{w \\text{ found}} \\rho(A_w)^{1/|w|} \\;\\le\\; \\mathrm{JSR}(S) \\;\\le\\;
        \\sup_{A \\in S} \\|A\\| \\quad \\text{for every operator norm.}

    The lower bound comes from a pruned search over products (cyclic words, one evaluation per
    rotation class). The upper bound is the best of: norms of all products of a fixed length,
    a common quadratic norm (SDP, exact re-check), Gripenberg's branch and bound in that norm,
    the invariant polytope algorithm started from the best product (exact re-check; closes
    the gap when that product is extremal), and quadratic norms of products of length 2-4.

    Parameters
    ----------
    mats : array_like (k, n, n), list of matrices, or JacobianSet
        The set S. For a JacobianSet ``js`` the vertices ``js.A.vertices`` are used, since
        JSR(conv S) = JSR(S).
    tol : float
        Target relative width of the bracket (Gripenberg's pruning margin is ``tol * lower``).
    max_length : int
        Longest product examined by the branch and bound.
    time_limit : float
        Seconds (soft) for the whole computation.
    max_nodes : int
        Products kept per level of the branch and bound (those with the largest bounds).
    use_sdp, use_polytope : bool
        Switch off the quadratic-norm SDP or the invariant polytope algorithm.

    Returns
    -------
    JSRResult
        ``lower``, ``upper``, ``word`` (read ``A[w[-1]] @ ... @ A[w[0]]``), the methods, and the
        norm (``P`` or ``polytope``) behind the upper bound.

    Raises
    ------
    ShapeError
        Not a non-empty stack of square matrices.
    NonFiniteError
        NaN or infinite entries.
    InputError
        Bad options, or complex/bool/object input.

    Examples
    --------
    >>> r = jsr([[[1, 1], [0, 1]], [[1, 0], [1, 1]]])
    >>> abs(r.lower - (1 + 5 ** 0.5) / 2) < 1e-12, r.upper - r.lower < 1e-6, r.word
    (True, True, (0, 1))
    >>> r = jsr(np.array([[[3, 0], [1, 3]], [[3, -3], [0, -1]]]) / 5)    # Gripenberg's pair
    >>> r.word, r.upper - r.lower < 1e-9, r.upper_verified
    ((0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), True, 'exact')
    """
    A = parse_matrix_set(mats, call=_CALL)
    if not (tol > 0 and max_length >= 1 and time_limit > 0 and max_nodes >= 1):
        raise InputError(fail_message(
            _CALL, f"tol={tol!r}, max_length={max_length!r}, time_limit={time_limit!r}, "
                   f"max_nodes={max_nodes!r}", "pass positive values"))
    an = analyse(A, tol=tol, max_length=max_length, time_limit=time_limit,
                 max_nodes=max_nodes, use_sdp=use_sdp, use_polytope=use_polytope)
    best = an.best()
    return JSRResult(an.lower, max(best.value, an.lower), an.word, an.lower_method,
                     best.method, best.verified, best.P, best.V)
