"""Test helpers for the interval layer: what only the tests need from an :class:`Interval`.

``same`` is structural equality (``==`` on intervals is three-valued), ``sample`` draws floats
inside a box, and ``to_iv_matrix`` converts exactly to ``mpmath.iv`` for reference products.
"""

from __future__ import annotations

import mpmath
import numpy as np

from conservative.interval import Interval, workprec


def same(a: Interval, b: Interval) -> bool:
    """Same shape and identical endpoints (a statement about the objects, not the values).

    >>> same(Interval(0.0, 1.0), Interval([0.0], [1.0]))
    False
    """
    return (isinstance(a, Interval) and isinstance(b, Interval) and a.shape == b.shape
            and bool(np.array_equal(a.lo, b.lo)) and bool(np.array_equal(a.hi, b.hi)))


def sample(x: Interval, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
    """Uniform random floats inside a bounded interval, of shape ``(size, *x.shape)``.

    >>> x = Interval([0.0, 5.0], [1.0, 5.0])
    >>> bool(x.contains(sample(x, np.random.default_rng(0), 3)).all())
    True
    """
    lo, hi = x.lo, x.hi
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)), "sample bounded intervals only"
    shape = x.shape if size is None else (size,) + x.shape
    u = rng.random(shape)
    with np.errstate(all="ignore"):
        v = lo + u * (hi - lo)
        v = np.where(np.isfinite(v), v, lo + u * hi - u * lo)      # hi - lo may overflow
    return np.clip(v, lo, hi)


def to_iv_matrix(x: Interval):
    """Exact conversion of a 1-D (as a column) or 2-D interval to an ``mpmath.iv.matrix``.

    >>> m = to_iv_matrix(Interval([[0.0, 1.0]], [[1.0, 1.0]]))
    >>> (m.rows, m.cols)
    (1, 2)
    """
    assert x.ndim in (1, 2)
    lo, hi = (x.lo, x.hi) if x.ndim == 2 else (x.lo[:, None], x.hi[:, None])
    m = mpmath.iv.matrix(lo.shape[0], lo.shape[1])
    with workprec(max(53, mpmath.iv.prec)):
        for i in range(lo.shape[0]):
            for j in range(lo.shape[1]):
                m[i, j] = mpmath.iv.mpf([float(lo[i, j]), float(hi[i, j])])
    return m
