"""Small tools on stacks of square matrices: input, products, spectra, balancing.

Everything here is floating point and proves nothing by itself; the norms of
:mod:`conservative.certify.norms` decide. Balancing is a diagonal similarity with powers of two
(exact in floating point unless an entry under- or overflows) followed by a power-of-two
scaling, so statements proved about the balanced matrices transfer exactly to the input.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from typing import Any

import numpy as np

from .._types import as_matrix_stack
from ..errors import InputError, fail_message

__all__ = ["parse_matrix_set", "product", "spectral_radius", "norm2", "canonical_rotation",
           "least_rotations", "one_per_necklace", "pow2", "scale_bound", "balance_vector",
           "balanced", "BALANCE_MAX_DIM"]

#: Osborne balancing costs O(k n^2) per sweep; above this size it is skipped.
BALANCE_MAX_DIM = 2000


def parse_matrix_set(mats: Any, *, call: str = "cv.jsr", name: str = "mats") -> np.ndarray:
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
    """Spectral radius of one matrix or of a stack (last two axes); 2 x 2 in closed form.

    Examples
    --------
    >>> float(spectral_radius(np.array([[0., 2.], [2., 0.]])))
    2.0
    """
    m = np.asarray(m)
    if m.shape[-2:] == (2, 2) and m.dtype.kind == "f" and np.all(np.isfinite(m)):
        return _radius_2x2(m)
    return np.abs(np.linalg.eigvals(m)).max(axis=-1)


def _pow2_scale(m: np.ndarray) -> np.ndarray:
    """A power of two per matrix of the stack at least its largest entry (1 for zero ones):
    dividing by it is exact and keeps squares in range."""
    big = np.abs(m).max(axis=(-2, -1))
    _, e = np.frexp(np.where(big > 0, big, 1.0))
    return np.ldexp(1.0, e)


def _radius_2x2(m: np.ndarray) -> np.ndarray:
    """Largest eigenvalue modulus of 2 x 2 matrices: ``mean +- sqrt(h^2 + b c)`` with
    ``mean = (a + d)/2``, ``h = (a - d)/2``; a complex pair has modulus ``sqrt(mean^2 - q)``."""
    s = _pow2_scale(m)
    a, b = m[..., 0, 0] / s, m[..., 0, 1] / s
    c, d = m[..., 1, 0] / s, m[..., 1, 1] / s
    mean, h = 0.5 * (a + d), 0.5 * (a - d)
    q = h * h + b * c
    with np.errstate(invalid="ignore"):
        r = np.where(q >= 0, np.abs(mean) + np.sqrt(np.maximum(q, 0.0)),
                     np.sqrt(np.maximum(mean * mean - q, 0.0)))
    return r * s


def norm2(stack: np.ndarray) -> np.ndarray:
    """Spectral norms of a stack; inf where an entry overflowed (LAPACK refuses inf/NaN).
    2 x 2 in closed form: ``(|(a + d, b - c)| + |(a - d, b + c)|) / 2``."""
    if stack.shape[-1] == 1:
        return np.abs(stack[..., 0, 0])
    ok = np.isfinite(stack).all(axis=(-2, -1))
    if stack.shape[-2:] == (2, 2):
        s = _pow2_scale(np.where(ok[..., None, None], stack, 0.0))
        with np.errstate(invalid="ignore"):
            a, b = stack[..., 0, 0] / s, stack[..., 0, 1] / s
            c, d = stack[..., 1, 0] / s, stack[..., 1, 1] / s
            val = 0.5 * (np.hypot(a + d, b - c) + np.hypot(a - d, b + c)) * s
        return np.where(ok, val, np.inf)
    if ok.all():
        return np.linalg.norm(stack, ord=2, axis=(-2, -1))
    out = np.full(ok.shape, np.inf)
    out[ok] = np.linalg.norm(stack[ok], ord=2, axis=(-2, -1))
    return out


def canonical_rotation(word) -> tuple:
    """The lexicographically least cyclic rotation of a word (same spectrum).

    Examples
    --------
    >>> canonical_rotation((1, 0, 0))
    (0, 0, 1)
    """
    word = tuple(int(i) for i in word)
    if not word:
        return word
    return min(word[r:] + word[:r] for r in range(len(word)))


def _necklace_codes(words: np.ndarray) -> np.ndarray | None:
    """The least rotation of each row of (N, k), as an integer: the row read as a number in base
    ``m`` (``m`` = the largest letter + 1, first letter most significant), so numeric order is
    lexicographic order. None when ``m^k`` does not fit in 62 bits."""
    n, k = words.shape
    m = max(int(words.max(initial=0)) + 1, 2)
    if k * math.log2(m) >= 62:
        return None
    w = words.astype(np.int64)
    code = np.zeros(n, dtype=np.int64)
    for j in range(k):
        code = code * m + w[:, j]
    best = code.copy()
    for r in range(1, k):              # word[r:] + word[:r] from the digits of code
        low = m ** (k - r)
        np.minimum(best, (code % low) * m ** r + code // low, out=best)
    return best


def least_rotations(words: np.ndarray) -> np.ndarray:
    """Lexicographically least rotation (necklace representative) of each row of (N, k)."""
    n, k = words.shape
    codes = _necklace_codes(words) if n and k else None
    if codes is not None:
        m = max(int(words.max(initial=0)) + 1, 2)
        out = np.empty((n, k), dtype=words.dtype)
        for j in range(k - 1, -1, -1):
            out[:, j], codes = codes % m, codes // m
        return out
    best = words.copy()
    idx = np.arange(n)
    for r in range(1, k):
        rot = np.roll(words, -r, axis=1)
        diff = rot != best
        first = diff.argmax(axis=1)
        smaller = diff.any(axis=1) & (rot[idx, first] < best[idx, first])
        best[smaller] = rot[smaller]
    return best


def one_per_necklace(words: np.ndarray) -> np.ndarray:
    """Indices of one row per class of cyclic rotations (spectra agree within a class): the
    first row of each class, in order.

    Examples
    --------
    >>> one_per_necklace(np.array([[0, 1], [1, 0], [1, 1]])).tolist()
    [0, 2]
    """
    if words.shape[1] == 1 or words.shape[0] == 0:
        return np.arange(words.shape[0])
    codes = _necklace_codes(words)
    if codes is not None:                  # one integer per row: a 1-D unique, no row sort
        _, first = np.unique(codes, return_index=True)
    else:
        _, first = np.unique(least_rotations(words), axis=0, return_index=True)
    return np.sort(first)


def pow2(x: float, log2_x: float | None = None) -> float:
    """Power of two closest to ``x`` (> 0), within the float64 range (2^-1074 to 2^1023).

    ``log2_x`` may be given instead of an ``x`` that would overflow. Scaling by the result is
    exact in floating point unless a result under- or overflows.
    """
    if log2_x is None:
        if not x > 0:
            return 1.0
        log2_x = math.log2(x) if math.isfinite(x) else 1023.0
    return math.ldexp(1.0, min(max(round(log2_x), -1074), 1023))


def scale_bound(value: float, s: float, *, up: bool) -> float:
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


def _osborne_step(c: float, r: float, ref: float) -> float:
    """log2 step of one Osborne update from the log2 off-diagonal column and row sums."""
    if c == -math.inf:
        return r - (ref - 10.0) if r > ref - 10.0 else 0.0
    if r == -math.inf:
        return (ref - 10.0) - c if c > ref - 10.0 else 0.0
    return 0.5 * (r - c)


def balance_vector(mats: np.ndarray, sweeps: int = 20) -> np.ndarray:
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
            c = _log2_sum(L[:, i][off[:, i]] + logd[i] - logd[off[:, i]])
            r = _log2_sum(L[i, :][off[i, :]] + logd[off[i, :]] - logd[i])
            if c == -math.inf and r == -math.inf:
                continue
            step = float(round(float(np.clip(_osborne_step(c, r, ref), -400.0, 400.0))))
            new = float(np.clip(logd[i] + step, -510, 510))    # d_i / d_j stays in float range
            if new != logd[i]:
                logd[i] = new
                changed = True
        if not changed:
            break
    return np.exp2(logd)


def balanced(A: np.ndarray):
    """``(B, d, s, exact)`` with ``A = s D B D^{-1}`` (D = diag(d), d and s powers of two).

    B is balanced (:func:`balance_vector`, skipped above :data:`BALANCE_MAX_DIM`) and scaled so
    that its spectral radii are about 1. ``exact`` tells whether the similarity is exact in
    floating point (it is unless some entry under- or overflowed); only then do proofs about B
    prove statements about A.

    Examples
    --------
    >>> B, d, s, exact = balanced(np.array([[[0.5, 1e6], [0.0, 0.5]]]))
    >>> float(np.abs(B).max()) < 10, s, exact
    (True, 0.5, True)
    """
    n = A.shape[1]
    d = balance_vector(A) if n <= BALANCE_MAX_DIM else np.ones(n)
    with np.errstate(all="ignore"):
        B = A * d[None, None, :] / d[None, :, None]
        if not np.all(np.isfinite(B)):
            d = np.ones(n)
            B = A.copy()
        big = float(np.abs(B).max())
        if big == 0:
            return B, d, 1.0, True
        # the scale only keeps products in range: a cheap norm does for large matrices
        r = float(spectral_radius(B / big).max()) if n <= 200 else \
            float(np.abs(B / big).sum(axis=2).max())
        s = pow2(big, math.log2(r) + math.log2(big)) if r > 0 else pow2(big)
        if big / s > 2.0 ** 1000:              # a tiny spectral radius beside a huge entry
            s = pow2(big, math.log2(big) - 1000.0)
        B = B / s
        back = (B * s) * d[None, :, None] / d[None, None, :]
    return B, d, s, bool(np.array_equal(back, A))
