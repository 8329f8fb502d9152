"""What a certificate is about: the set of matrices every norm is checked against.

``MatrixSet``
    a finite stack ``(k, n, n)``; a norm bound on it holds on its convex hull.
``IntervalBox``
    every matrix ``lo <= A <= hi`` (entrywise), e.g. an interval enclosure over a box.
``StructuredSet``
    ``{C + U diag(delta) R : lo <= delta <= hi}``: rank-one changes with independent
    coefficients. Every layer of elementwise kinks (relu, clip, abs, maximum, soft-threshold)
    has this form, at a point (``delta`` the convex weights of each kink's pieces) and over a
    box (``delta`` the range of each kink's slope): ``2^k`` vertices, held as ``k`` intervals.

Each target also says which rows may be non-zero (:meth:`live_rows`): coordinates that every
matrix sends to zero do not change the joint spectral radius and are certified apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import interval as iv
from ..sets import distinct_matrices

__all__ = ["MatrixSet", "IntervalBox", "StructuredSet", "Coupling", "VERTEX_LIMIT"]

#: Largest number of vertices for which a box or a structured set is certified through its
#: vertices (every norm test used here is convex in A, so the vertices decide).
VERTEX_LIMIT = 64


def _bits(count: int, width: int) -> np.ndarray:
    return ((np.arange(count)[:, None] >> np.arange(width)[None, :]) & 1).astype(bool)


@dataclass(frozen=True)
class Coupling:
    """Rows kept after removing the rows that are zero in every matrix, with a bound on what
    the kept rows receive from the removed coordinates.

    ``offblock[i] >= sup ||A[keep[i], drop]||_1`` over the set (the l1 norm of the part of
    row ``keep[i]`` in the removed columns): what a norm on the kept coordinates needs in
    order to be extended to all ``n`` (:mod:`conservative.certify.norms`).
    """

    n: int
    keep: np.ndarray
    offblock: np.ndarray
    verified: str = "interval"          # "exact" when offblock is the exact value rounded up

    @property
    def frobenius_up(self) -> float:
        """An upper bound on ``||A[keep, drop]||_F`` over the set (``||row||_2 <= ||row||_1``)."""
        from fractions import Fraction
        from .rigorous import sqrt_up, upper_sum
        if self.verified == "exact":
            total = sum((Fraction(float(v)) ** 2 for v in self.offblock if v), Fraction(0))
            from .._exact import float_at_least
            try:
                return sqrt_up(float_at_least(total))
            except OverflowError:                   # beyond float64: no usable bound
                return float("inf")
        return sqrt_up(float(upper_sum(np.square(self.offblock) * (1 + 4 * 2.0 ** -53))))


@dataclass(frozen=True)
class MatrixSet:
    """A finite set of matrices (their convex hull has the same JSR and the same norms)."""

    mats: np.ndarray

    kind = "set"

    @property
    def n(self) -> int:
        return self.mats.shape[1]

    def __len__(self) -> int:
        return self.mats.shape[0]

    def magnitude(self) -> np.ndarray:
        """Entrywise ``max |A|`` over the set (exact)."""
        return np.abs(self.mats).max(axis=0)

    def live_rows(self) -> np.ndarray:
        return np.flatnonzero(np.any(self.mats != 0, axis=(0, 2)))

    def restrict(self, keep: np.ndarray) -> "MatrixSet":
        return MatrixSet(self.mats[:, keep[:, None], keep[None, :]])

    def coupling(self, keep: np.ndarray) -> Coupling:
        return _exact_coupling(self.magnitude(), keep)

    def samples(self) -> np.ndarray:
        return self.mats

    def intervals(self):
        return [iv.Interval(a) for a in self.mats]


@dataclass(frozen=True)
class IntervalBox:
    """Every matrix ``A`` with ``lo <= A <= hi`` entrywise."""

    lo: np.ndarray
    hi: np.ndarray

    kind = "box"

    @property
    def n(self) -> int:
        return self.lo.shape[0]

    def magnitude(self) -> np.ndarray:
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    def live_rows(self) -> np.ndarray:
        return np.flatnonzero(np.any(self.magnitude() != 0, axis=1))

    def restrict(self, keep: np.ndarray) -> "IntervalBox":
        ix = np.ix_(keep, keep)
        return IntervalBox(self.lo[ix], self.hi[ix])

    def coupling(self, keep: np.ndarray) -> Coupling:
        return _exact_coupling(self.magnitude(), keep)

    def vertices(self, limit: int = VERTEX_LIMIT) -> np.ndarray | None:
        """All vertices of the box if there are at most ``limit`` (few uncertain entries)."""
        free = np.flatnonzero(self.lo.ravel() != self.hi.ravel())
        if 2 ** min(len(free), 62) > limit:
            return None
        out = np.repeat(self.lo.ravel()[None], 2 ** len(free), axis=0)
        bits = _bits(2 ** len(free), len(free))
        out[:, free] = np.where(bits, self.hi.ravel()[free], self.lo.ravel()[free])
        return out.reshape(-1, *self.lo.shape)

    def samples(self, count: int = 12) -> np.ndarray:
        """Midpoint, the two extreme corners and a few deterministic random corners."""
        rng = np.random.default_rng(0)
        corners = [np.where(rng.random(self.lo.shape) < 0.5, self.lo, self.hi)
                   for _ in range(count)]
        return np.stack([(self.lo + self.hi) / 2, self.lo, self.hi, *corners])

    def intervals(self):
        return [iv.Interval(self.lo, self.hi)]


@dataclass(frozen=True)
class StructuredSet:
    """``{C + U diag(delta) R : lo <= delta <= hi}`` with ``C`` (n, n), ``U`` (n, S), ``R``
    (S, n), ``lo <= hi`` (S,).

    When each ``U[:, s]`` is a unit vector (``rows`` given: slot s changes row ``rows[s]``
    only), norms with a diagonal structure are checked without any relaxation.
    """

    C: np.ndarray
    U: np.ndarray
    R: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    rows: np.ndarray | None = None
    notes: tuple = field(default=(), compare=False)

    kind = "structured"

    @property
    def n(self) -> int:
        return self.C.shape[0]

    @property
    def slots(self) -> int:
        return len(self.lo)

    def free(self) -> np.ndarray:
        """Slots whose coefficient is not fixed."""
        return np.flatnonzero(self.lo != self.hi)

    def at(self, delta: np.ndarray) -> np.ndarray:
        """The matrices for coefficient vectors ``delta`` (N, S)."""
        delta = np.atleast_2d(delta)
        return self.C[None] + np.einsum("is,ns,sj->nij", self.U, delta, self.R)

    def vertices(self, limit: int = VERTEX_LIMIT) -> np.ndarray | None:
        free = self.free()
        if 2 ** min(len(free), 62) > limit:
            return None
        bits = _bits(2 ** len(free), len(free))
        delta = np.repeat(self.lo[None], len(bits), axis=0)
        delta[:, free] = np.where(bits, self.hi[free], self.lo[free])
        return distinct_matrices(self.at(delta))

    def samples(self, count: int = 12, seed: int = 0) -> np.ndarray:
        """Vertices at random (seeded), and the two extreme ones."""
        rng = np.random.default_rng(seed)
        picks = rng.random((count, self.slots)) < 0.5
        delta = np.where(picks, self.hi[None], self.lo[None])
        return distinct_matrices(self.at(np.concatenate([self.lo[None], self.hi[None], delta])))

    def magnitude(self) -> np.ndarray:
        """An entrywise bound on ``|A|`` over the set (rounded up)."""
        m = np.maximum(np.abs(self.lo), np.abs(self.hi))
        with np.errstate(all="ignore"):
            bound = np.abs(self.C) + (np.abs(self.U) * m[None, :]) @ np.abs(self.R)
        k = self.slots + 2
        return np.nextafter(bound * (1 + 2 * (k + 2) * 2.0 ** -53) + k * 2.0 ** -1074, np.inf)

    def live_rows(self) -> np.ndarray:
        live = np.any(self.C != 0, axis=1)
        moving = np.any(self.R != 0, axis=1) & ((self.lo != 0) | (self.hi != 0))
        live |= np.any(self.U[:, moving] != 0, axis=1)
        return np.flatnonzero(live)

    def restrict(self, keep: np.ndarray) -> "StructuredSet":
        rows = None
        if self.rows is not None:
            where = {int(r): i for i, r in enumerate(keep)}
            if not all(int(r) in where for r in self.rows):
                return self._restricted_general(keep)
            rows = np.array([where[int(r)] for r in self.rows], dtype=np.int64)
        return StructuredSet(self.C[np.ix_(keep, keep)], self.U[keep], self.R[:, keep],
                             self.lo, self.hi, rows, self.notes)

    def _restricted_general(self, keep):
        return StructuredSet(self.C[np.ix_(keep, keep)], self.U[keep], self.R[:, keep],
                             self.lo, self.hi, None, self.notes)

    def coupling(self, keep: np.ndarray) -> Coupling:
        from .rigorous import upper_sum
        drop = np.setdiff1d(np.arange(self.n), keep)
        if not len(drop):
            return Coupling(self.n, keep, np.zeros(len(keep)))
        mag = self.magnitude()[np.ix_(keep, drop)]
        return Coupling(self.n, keep, upper_sum(mag, axis=1))

    def intervals(self):
        """One interval matrix holding the whole set (entrywise: a relaxation)."""
        d = iv.Interval(self.lo, self.hi)
        scaled = iv.multiply(iv.Interval(self.U), d.reshape(1, -1))
        return [iv.add(iv.Interval(self.C), iv.matmul(scaled, iv.Interval(self.R)))]

    def scaled_rows(self):
        """For row-structured sets whose moving rows have no fixed part (``C`` is zero there),
        the matrix ``M`` (moving rows times their largest ``|delta|``) with
        ``sup_delta ||A(delta) v||_P = ||M v||_P`` for every *diagonal* P (rows do not mix).

        Returns ``(M, M_enclosure)``: floats for estimates, an Interval holding the exact
        products for proofs; None when the set is not of that form.
        """
        if self.rows is None or len(np.unique(self.rows)) != len(self.rows):
            return None
        if np.any(self.C[self.rows] != 0):
            return None
        unit = np.zeros_like(self.U)
        unit[self.rows, np.arange(self.slots)] = 1.0
        if not np.array_equal(unit, self.U):
            return None
        m = np.maximum(np.abs(self.lo), np.abs(self.hi))
        M = np.array(self.C)
        M[self.rows] = m[:, None] * self.R
        fixed = np.setdiff1d(np.arange(self.n), self.rows)
        lo, hi = np.array(M), np.array(M)
        if len(self.rows):
            prod = iv.multiply(iv.Interval(m[:, None]), iv.Interval(self.R))
            lo[self.rows], hi[self.rows] = prod.lo, prod.hi
        lo[fixed], hi[fixed] = self.C[fixed], self.C[fixed]
        return M, iv.Interval(lo, hi)


def _exact_coupling(mag: np.ndarray, keep: np.ndarray) -> Coupling:
    """Row sums of ``mag[keep, drop]`` (exact entries): exactly (rounded up) when small."""
    from fractions import Fraction
    from .._exact import float_at_least
    from .rigorous import upper_sum
    n = mag.shape[0]
    drop = np.setdiff1d(np.arange(n), keep)
    part = mag[np.ix_(keep, drop)]
    if part.size <= 200_000:
        sums = [float_at_least(sum((Fraction(float(v)) for v in row if v), Fraction(0)))
                for row in part]
        return Coupling(n, keep, np.array(sums, dtype=float), "exact")
    return Coupling(n, keep, upper_sum(part, axis=1))
