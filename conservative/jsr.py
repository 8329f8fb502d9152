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
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

from . import _exact
from ._spectral import spectral_lower_bound
from ._deadline import Deadline, NoProgress, check_progress, progress_bar
from ._types import as_matrix_stack, check_bool, check_int, check_real
from .errors import InputError, NonFiniteError, fail_message

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
    stopped : str
        "" when every phase ran; otherwise the time limit that cut the computation short and
        the phases it skipped (the bracket is valid, only wider than it could be).

    Examples
    --------
    >>> print(jsr([[[0.5, 1e6], [0.0, 0.5]]]))      # doctest: +ELLIPSIS
    JSR in [0.5, 0.50000...] (relative gap ...)
      lower: spectral radius of one matrix (proved), word 0 (A[w[-1]]...A[w[0]])
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
    stopped: str = ""

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
        # the method already carries "partial bracket: <stopped>" when the limit was hit

    def to_dict(self) -> dict:
        """JSON-ready dictionary (arrays become nested lists)."""
        return {
            "lower": self.lower, "upper": self.upper, "word": list(self.word),
            "lower_method": self.lower_method, "upper_method": self.upper_method,
            "upper_verified": self.upper_verified, "stopped": self.stopped,
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


def _pow2(x: float, log2_x: float | None = None) -> float:
    """Power of two closest to ``x`` (> 0), within the float64 range (2^-1074 to 2^1023).

    ``log2_x`` may be given instead of an ``x`` that would overflow. Scaling by the result is
    exact in floating point unless a result under- or overflows.
    """
    if log2_x is None:
        if not x > 0:
            return 1.0
        log2_x = math.log2(x) if math.isfinite(x) else 1023.0
    return math.ldexp(1.0, min(max(round(log2_x), -1074), 1023))


def _scale_bound(value: float, s: float, *, up: bool) -> float:
    """``value * s`` for a power of two ``s``, rounded up (``up``) or down, never to nearest.

    The product is exact unless it under- or overflows; a bound scaled back from balanced
    coordinates must then move outward, or an upper bound 1.618 * 2^-1072 would become
    1.5 * 2^-1072 (the subnormals near it hold two bits).
    """
    if value == 0 or not math.isfinite(value):      # 0 and inf are the same after scaling
        return value
    with np.errstate(all="ignore"):
        out = float(np.float64(value) * np.float64(s))
    if not math.isfinite(out):                       # overflow: +inf is still an upper bound
        return out if up else sys.float_info.max
    exact = Fraction(value) * Fraction(s)
    if up and Fraction(out) < exact:
        out = math.nextafter(out, math.inf)
    elif not up and Fraction(out) > exact:
        out = math.nextafter(out, -math.inf)
    return out


def _log2_sum(logs: np.ndarray) -> float:
    """``log2(sum 2^logs)`` without overflow or underflow (``-inf`` for an empty or zero sum)."""
    logs = logs[np.isfinite(logs)]
    if logs.size == 0:
        return -math.inf
    top = float(logs.max())
    return top + math.log2(float(np.exp2(logs - top).sum()))


def _balance(mats: np.ndarray, sweeps: int = 20) -> np.ndarray:
    """Powers of two ``d`` so that ``D^{-1} A D`` (D = diag(d)) has balanced rows and columns.

    Osborne's iteration on ``max_i |A_i|``, in base-2 logarithms, so that entries as far apart
    as 1e-300 and 1e300 keep their weight (a common scaling would flush the small ones to
    zero). Where a row or column is zero outside the diagonal (reducible structure) the
    off-diagonal part is pushed towards 2^-10 of the largest diagonal entry, so huge couplings
    such as [[0.5, 1e6], [0, 0.5]] become harmless.
    """
    with np.errstate(divide="ignore"):
        L = np.log2(np.abs(mats).max(axis=0))                  # -inf for zero entries
    n = L.shape[0]
    logd = np.zeros(n)
    finite = L[np.isfinite(L)]
    if finite.size == 0:
        return np.ones(n)
    diag = np.diagonal(L)
    # the scale that decoupled (reducible) off-diagonal parts are pushed towards: the diagonal
    ref = max(float(diag.max()) if np.isfinite(diag).any() else float(finite.max()) - 20.0,
              -996.0)
    off = ~np.eye(n, dtype=bool)
    for _ in range(sweeps):
        changed = False
        for i in range(n):
            scaled = L + logd[None, :] - logd[:, None]         # log2 |D^-1 A D|
            c = _log2_sum(scaled[:, i][off[:, i]])
            r = _log2_sum(scaled[i, :][off[i, :]])
            if c == -math.inf and r == -math.inf:
                continue
            if c == -math.inf:
                step = r - (ref - 10.0) if r > ref - 10.0 else 0.0
            elif r == -math.inf:
                step = (ref - 10.0) - c if c > ref - 10.0 else 0.0
            else:
                step = 0.5 * (r - c)
            step = float(round(float(np.clip(step, -400.0, 400.0))))
            new = float(np.clip(logd[i] + step, -510, 510))    # d_i / d_j stays in float range
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
        if big == 0:
            return B, d, 1.0, True
        r = float(spectral_radius(B / big).max())             # no overflow in eig
        s = _pow2(big, math.log2(r) + math.log2(big)) if r > 0 else _pow2(big)
        if big / s > 2.0 ** 1000:              # a tiny spectral radius beside a huge entry
            s = _pow2(big, math.log2(big) - 1000.0)
        B = B / s
        back = (B * s) * d[None, :, None] / d[None, None, :]
    return B, d, s, bool(np.array_equal(back, A))


def _brute_upper(mats: np.ndarray, max_products: int = 4096,
                 deadline: float = math.inf) -> tuple[float, int]:
    """``max_{|w|=k} ||A_w||_2^{1/k}`` for the largest k with m^k <= max_products (k >= 1);
    shorter products once the deadline has passed."""
    m = mats.shape[0]
    best = (float(_norm2(mats).max()), 1)
    prods = mats
    k = 1
    while prods.shape[0] * m <= max_products and k < 12 and time.monotonic() < deadline:
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


def import_cvxpy():
    """cvxpy, imported once (slow the first time: callers do it before starting the clock),
    or None when it is not installed."""
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
        self.setup = _sdp_setup_estimate(k, n)      # first solve only: compile and set up

    def solve(self, gamma: float, deadline: float = math.inf) -> np.ndarray | None:
        """A candidate P for this gamma, or None (infeasible or every solver failed).

        CLARABEL first; SCS (first order, slow to high accuracy) only as a fallback with an
        iteration and time cap, so a hard instance cannot stall the caller. Both are told the
        time left before ``deadline``.
        """
        self.g2.value = gamma * gamma
        for solver in ("CLARABEL", "SCS"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # each solve is capped at the time left, so one call cannot overrun by much
            if solver == "CLARABEL":
                limit = max(left - self.setup, 0.1)
                opts = {"time_limit": float(limit)} if math.isfinite(left) else {}
                self.setup = 0.0
            else:
                opts = {"max_iters": 2500, "time_limit_secs": float(min(left, 1.0))}
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
                   deadline: float = math.inf, max_iter: int = 40,
                   first: float | None = None):
    """Best common quadratic norm by SDP bisection on gamma in [lo, hi].

    Solves ``P ⪰ I, A_i^T P A_i ⪯ gamma^2 P`` (convex for fixed gamma). Every returned P is
    re-evaluated in floating point, ``gamma(P) = max_i ||A_i||_P``, which is what moves the upper
    end; solver verdicts only guide the search. Returns ``(gamma(P), P)``; if no solve succeeds
    (or cvxpy is unavailable) that is ``P = I``, feasible for ``hi >= max_i ||A_i||_2``.

    The first gamma tried is ``first`` if given (e.g. halfway to what a certifier needs),
    else just above ``lo``. No solve starts after ``deadline``, and each is told the time left.

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
    if first is not None and lo < first <= hi:
        g_try = first
    last = 0.0                                  # duration of the previous solve
    for _ in range(max_iter):
        now = time.monotonic()
        if now > deadline or now + 0.5 * last > deadline:   # would end well past it
            break
        P = sdp.solve(g_try, deadline)
        last = time.monotonic() - now
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


def _chunked(fn, count: int, deadline: float, *, fill: float, chunk: int = 1024) -> np.ndarray:
    """``fn(slice)`` over ``range(count)`` in chunks; entries after the deadline get ``fill``."""
    out = np.full(count, fill)
    for start in range(0, count, chunk):
        if start and time.monotonic() > deadline:
            break
        sel = slice(start, min(start + chunk, count))
        out[sel] = fn(sel)
    return out


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
        rr = _chunked(lambda sel: _rho_roots(prods[reps[sel]], k), len(reps), deadline,
                      fill=-np.inf)
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
        # a product whose norm was not computed before the deadline keeps its parent's
        # bound (the minimum over prefixes is at most that), so the upper bound stays valid
        with np.errstate(all="ignore"):
            norms = _chunked(lambda sel: _norm2(new[sel]) ** (1.0 / (k + 1)), len(new),
                             deadline, fill=np.inf)
            bounds = np.minimum(np.tile(bounds, m), norms)
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
    if time.monotonic() > deadline:
        return None                                  # no exact check after the deadline
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
    stopped: str = ""                   # why the search ended early ("" if it did not)

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
    if time.monotonic() > deadline:
        return None                                  # no exact check after the deadline
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
            time_limit: float | None = 20.0, max_nodes: int = 20000, use_sdp: bool = True,
            use_polytope: bool = True, use_lifted: bool = True,
            stop_at: float = math.inf, stop_below: float = -math.inf,
            deadline: Deadline | None = None, bar=None, call: str = _CALL) -> Analysis:
    """All bounds for a validated stack ``A`` (k, n, n); :func:`jsr` picks the best.

    A quick product search runs first; if its lower bound reaches ``stop_at`` the upper-bound
    machinery is skipped (a certifier does not need it once a product with
    ``rho(A_w)^{1/|w|} >= 1`` is known). Likewise the search stops as soon as an exactly
    verified common quadratic norm gives a bound below ``stop_below``.

    Time: ``deadline`` (else one made from ``time_limit``) is shared by the phases; none starts
    a solver call, a search level or an exact check after it has passed, and
    :attr:`Analysis.stopped` then names what was skipped. Bounds found in the balanced and
    scaled coordinates (``A = s D B D^-1``) are scaled back by :func:`_scale_bound`, rounded
    outward.

    Raises
    ------
    NonFiniteError
        When the joint spectral radius exceeds the float64 range.
    """
    sdp_rtol = min(max(tol, 1e-8), 1e-4)
    if use_sdp:
        import_cvxpy()                  # the first import is slow; keep it off the clock
    dl = deadline if deadline is not None else Deadline(time_limit)
    bar = bar if bar is not None else NoProgress()
    m, n, _ = A.shape
    if not np.any(A):
        zero = UpperBound(0.0, "all matrices are zero", "exact", np.eye(n))
        return Analysis(0.0, (0,), "all matrices are zero", (zero,))
    with np.errstate(all="ignore"):
        return _analyse(A, dl, bar, tol=tol, sdp_rtol=sdp_rtol, max_length=max_length,
                        max_nodes=max_nodes, use_sdp=use_sdp, use_polytope=use_polytope,
                        use_lifted=use_lifted, stop_at=stop_at, stop_below=stop_below,
                        call=call)


def _sdp_setup_estimate(k: int, n: int) -> float:
    """Rough seconds to compile and set up the SDP with k LMIs of size n (cvxpy, CLARABEL):
    about 1 ms per LMI entry on a laptop. An SDP is not started when even that does not fit."""
    return 1e-3 * k * n * n


#: the phases of :func:`analyse`, in order (the progress bar counts them)
PHASES = ("products", "quadratic norm", "branch and bound", "invariant polytope",
          "lifted quadratic norms")


def _analyse(A, dl, bar, *, tol, sdp_rtol, max_length, max_nodes, use_sdp, use_polytope,
             use_lifted, stop_at, stop_below, call) -> Analysis:
    m, n, _ = A.shape
    B, d, s, exact_similarity = balanced(A)
    rho1 = spectral_radius(B)
    i1 = int(np.argmax(rho1))
    lower, word, lower_method = float(rho1[i1]), (i1,), "spectral radius of one matrix"
    skipped: list[str] = []

    def scaled_lower():
        low = _scale_bound(lower, s, up=False)
        if low >= sys.float_info.max:
            raise NonFiniteError(fail_message(
                call, f"matrices whose joint spectral radius is at least "
                       f"2^{math.log2(lower) + math.log2(s):.1f}, beyond float64",
                "rescale them (JSR(c S) = |c| JSR(S)) so that entries stay well below 1e308"))
        return low

    def to_input(Pb):  # A = s D B D^{-1}: ||.||_Pb for B is ||.||_{D^-1 Pb D^-1} for A
        Pa = Pb / d[:, None] / d[None, :]
        return Pa if np.array_equal(Pa * d[:, None] * d[None, :], Pb) else None

    def add(value_b, method, verified, P=None, V=None, k=1):
        """Record a bound found for B, scaled back to A (upward), its norm in A's coords."""
        P_a = to_input(P) if P is not None else None
        V_a = V * d[:, None] if V is not None else None
        if V_a is not None and not np.array_equal(V_a / d[:, None], V):
            V_a = None
        if (P is not None and P_a is None) or (V is not None and V_a is None):
            method += " [the norm under- or overflows in the input's coordinates]"
        uppers.append(UpperBound(_scale_bound(value_b, s, up=True), method, verified, P_a,
                                 V_a, k=k))
        return uppers[-1].value

    def finish():
        # exact checks were run on B; they speak about A only if A = s D B D^{-1} exactly
        ups = tuple(uppers) if exact_similarity else tuple(
            replace(u, verified="float", method=u.method + " [exact for rescaled matrices]")
            if u.verified == "exact" else u for u in uppers)
        stopped = ""
        if skipped:
            stopped = (f"{dl.describe()} reached after {dl.elapsed():.1f} s; skipped: "
                       + ", ".join(skipped))
        low = scaled_lower()
        if low > 0:                 # a float eigenvalue can overshoot: prove the bound on A
            low, proved = spectral_lower_bound(A, word, low)
            if not proved:
                lower_note = " (floating point, not proved)"
            else:
                lower_note = " (proved)"
        else:
            lower_note = ""
        return Analysis(low, _canonical_rotation(word), lower_method + lower_note, ups, stopped)

    def tick(phase):
        bar.update()
        bar.set_postfix_str(f"{phase}: JSR in [{lower * s:.6g}, "
                            f"{min(u.value for u in uppers):.6g}]")

    uppers: list[UpperBound] = []
    # all products up to a length; fewer for large matrices (the cost is count * n^3)
    budget = max(m, int(4096 * min(1.0, (8.0 / n) ** 3)))
    cheap, cheap_k = _brute_upper(B, max_products=budget, deadline=dl.part(0.1).at)
    add(cheap, f"max ||A_w||_2^(1/k) over all products of length {cheap_k} "
               "(balanced 2-norm)", "float")
    # quick product search for a lower bound (and an early exit for certifiers)
    quick = gripenberg(B, alpha=lower, word=word, delta=1e-3 * max(lower, 1e-300),
                       max_length=min(max_length, 12), max_nodes=min(max_nodes, 2000),
                       deadline=dl.part(0.2).at)
    if quick.alpha > lower:
        lower, word = quick.alpha, quick.word
        lower_method = f"spectral radius of a product of length {len(word)} (branch and bound)"
    tick(PHASES[0])
    if scaled_lower() >= stop_at:
        return finish()
    # the balanced 2-norm itself (P = I), exactly checked: cheap, and a certificate in hand
    # should the SDP not finish in time
    hi = float(_norm2(B).max()) * (1 + 1e-9)           # P = I is feasible there
    if hi * s < stop_below and not dl.expired():
        eye = rational_quadratic(B, np.eye(n))
        if eye is not None:
            add(eye[0], "balanced 2-norm (P = D^-2, exact LDL^T check)", "exact", eye[1])
    # common quadratic Lyapunov function (SDP), re-checked exactly
    P = None
    if use_sdp and dl.fits(_sdp_setup_estimate(m, n)):
        # a certifier needs any gamma below stop_below: first try halfway there (in log
        # scale), since a 40 x 40 solve can take ten seconds and infeasible ones are slowest
        goal = min(hi, stop_below / s) if math.isfinite(stop_below) else hi
        first = math.sqrt(lower * goal) if lower * 1.02 < goal and lower > 0 else None
        g, Pq = quadratic_norm(B, lower, hi, rtol=sdp_rtol, deadline=dl.part(0.7).at,
                               first=first)
        exact = None
        if Pq is not None and not dl.expired():
            exact = rational_quadratic(B, Pq)
        elif Pq is not None:
            skipped.append("the exact check of the quadratic norm")
        if exact is not None:
            P = exact[1]
            value = add(exact[0], "common quadratic Lyapunov function (SDP, exact LDL^T "
                                  "check)", "exact", P)
            if value < stop_below:
                return finish()
        elif Pq is not None:
            P = Pq
            add(g, "common quadratic Lyapunov function (SDP)", "float", P)
        tick(PHASES[1])
    elif use_sdp:
        skipped.append(PHASES[1])
    # branch and bound, in the quadratic norm when we have one
    if not dl.expired():
        C = _in_p_norm(B, P) if P is not None else B
        gb = gripenberg(C, alpha=lower, word=word, delta=tol * max(lower, 1e-300),
                        max_length=max_length, max_nodes=max_nodes, deadline=dl.at)
        if gb.alpha > lower:
            lower, word = gb.alpha, gb.word
            lower_method = (f"spectral radius of a product of length {len(word)} "
                            "(branch and bound)")
        norm_name = "quadratic norm" if P is not None else "balanced 2-norm"
        cut = (" (stopped by the time limit)" if dl.expired()
               else f" (stopped at length {max_length})")
        if not gb.complete and dl.expired():
            skipped.append("the rest of the branch and bound")
        add(gb.upper, f"Gripenberg branch and bound in the {norm_name}"
                      + ("" if gb.complete else cut), "float", P)
        tick(PHASES[2])
    else:
        skipped.append(PHASES[2])

    def open_gap():
        best = Analysis(lower * s, word, lower_method, tuple(uppers)).best()
        return best.verified != "exact" or best.value > lower * s * (1 + tol)

    # invariant polytope from the best product
    if use_polytope and open_gap():
        if dl.expired():
            skipped.append(PHASES[3])
        else:
            try:
                poly = invariant_polytope(B, word, deadline=dl.part(0.5).at)
            except Exception:  # noqa: BLE001 -- LP trouble: keep the other bounds
                poly = None
            if poly is not None:
                ub, V = poly
                add(ub, f"invariant polytope ({V.shape[1]} vertex pairs, exact rational "
                        "check)", "exact", None, V)
            tick(PHASES[3])
    # quadratic norm of products of length k (handles complex leading eigenvalues)
    if use_sdp and use_lifted and open_gap():
        for k in (2, 3, 4):
            if m ** k > 64:
                break
            if not dl.fits(_sdp_setup_estimate(m ** k, n)):
                skipped.append(f"{PHASES[4]} (length {k})")
                break
            got = lifted_quadratic(B, k, lower, deadline=dl.at, rtol=sdp_rtol)
            if got is not None:
                value = add(got[0], f"quadratic norm of products of length {k} (SDP, exact "
                                    "check)", "exact", got[1], k=k)
                if value < stop_below or not open_gap():
                    break
        tick(PHASES[4])
    return finish()


def jsr(mats: Any, *, tol: float = 1e-6, max_length: int = 30,
        time_limit: float | None = 20.0, max_nodes: int = 20000, use_sdp: bool = True,
        use_polytope: bool = True, progress: bool | None = None) -> JSRResult:
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
    time_limit : float or None
        Seconds for the whole computation (None: no limit). No search level, solver call or
        exact check starts after it; one already running may finish (a single SDP solve
        cannot be interrupted). When the limit cuts the computation short, the bracket is
        still valid and ``stopped`` (and ``upper_method``) says what was skipped.
    max_nodes : int
        Products kept per level of the branch and bound (those with the largest bounds).
    use_sdp, use_polytope : bool
        Switch off the quadratic-norm SDP or the invariant polytope algorithm.
    progress : bool or None
        None: a progress bar (tqdm) when the call runs for more than 2 s and a terminal or
        notebook is attached; True: always; False: never.

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
    tol = check_real(tol, name="tol", call=_CALL, minimum=0.0, strict=True)
    max_length = check_int(max_length, name="max_length", call=_CALL, minimum=1)
    max_nodes = check_int(max_nodes, name="max_nodes", call=_CALL, minimum=1)
    use_sdp = check_bool(use_sdp, name="use_sdp", call=_CALL)
    use_polytope = check_bool(use_polytope, name="use_polytope", call=_CALL)
    progress_flag = check_progress(progress, call=_CALL)
    if use_sdp:
        import_cvxpy()                  # the first import is slow; keep it off the clock
    dl = Deadline.from_time_limit(time_limit, call=_CALL)
    with progress_bar(len(PHASES), _CALL, progress_flag) as bar:
        an = analyse(A, tol=tol, max_length=max_length, max_nodes=max_nodes, use_sdp=use_sdp,
                     use_polytope=use_polytope, deadline=dl, bar=bar)
    best = an.best()
    upper = max(best.value, an.lower)
    method = best.method + (f" -- partial bracket: {an.stopped}" if an.stopped else "")
    return JSRResult(an.lower, upper, an.word, an.lower_method, method, best.verified, best.P,
                     best.V, stopped=an.stopped)
