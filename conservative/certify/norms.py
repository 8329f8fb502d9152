"""Norms as values: each family finds itself for a set of matrices, proves a bound, describes
and serialises itself.

A contraction certificate is a norm ``||.||`` and a number ``rho`` with ``||A|| <= rho`` for
every matrix ``A`` of the target (:mod:`conservative.certify.targets`). A family is one class:

``find(target, ctx)`` (classmethod)
    propose a norm from floating-point work (an SDP, a scaling, a Lyapunov solve), or None;
    ``applies(target, ctx)`` says whether trying is worth it (kind, size, time left);
``estimate(target)``
    the float value of ``sup ||A||`` in this norm (no proof);
``prove(target, rho)``
    a rigorous proof of ``sup ||A|| <= rho``: returns ``Verified.EXACT`` (rational
    arithmetic), ``Verified.INTERVAL`` (rigorous floating point) or None;
``describe()``, ``to_dict()``
    what the norm is, in words and as JSON-ready data.

:meth:`Norm.certify` turns ``estimate`` into a proved value with the single margin rule of
:func:`conservative.certify.rigorous.prove_with_margin`. :data:`conservative.certify.finders.
FINDERS` lists the families in the order they are tried (cheap ones first); adding a family is
one class here and one line there (``docs/adding_a_norm_family.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .. import _exact
from .. import interval as iv
from .._deadline import Deadline
from . import rigorous
from .matrices import norm2
from .polytope import invariant_polytope, polytope_bound, polytope_values
from .report import Verified
from .rigorous import (EXACT_MAX_DIM, dyadic_matrix, dyadic_round_array, dyadic_scale,
                       prove_with_margin)
from .scaling import lyapunov_form, optimal_diagonal_scaling, perron_weights
from .sdp import (LMIProblem, bisect, import_cvxpy, quadratic_lmis, quadratic_value,
                  setup_estimate, structured_lmis)
from .targets import IntervalBox, MatrixSet, StructuredSet

__all__ = ["Context", "Norm", "QuadraticNorm", "EuclideanNorm", "DiagonalQuadraticNorm",
           "LyapunovNorm", "StructuredQuadraticNorm", "WeightedInfinityNorm", "PolytopeNorm",
           "LiftedQuadraticNorm", "ExtendedNorm", "BlockQuadraticNorm", "extend_norm",
           "norm_from_dict"]

#: Largest box dimension checked by the exact midpoint-radius enclosure (else: interval).
EXACT_BOX_DIM = 24
#: Largest dimension at which an SDP is solved even when a cheaper norm has certified already
#: (for a tighter bound); above it SDPs are a rescue only.
SDP_TIGHT_DIM = 16


@dataclass
class Context:
    """What the finders share while they search one target.

    Attributes
    ----------
    lower, word : float, tuple
        Best lower bound on the JSR so far and its product (working coordinates).
    deadline : Deadline
    tol : float
        Relative accuracy sought (bisections, pruning).
    best : float
        Smallest proved bound so far (working coordinates).
    quadratic : QuadraticNorm or None
        The best proved quadratic norm so far (later finders start from it).
    enough : float
        A proposal with a value below this is all the caller needs (``-inf``: the tightest
        norm is sought); finders may then stop at the first such proposal.
    """

    lower: float
    word: tuple
    deadline: Deadline
    tol: float = 1e-6
    best: float = math.inf
    quadratic: "QuadraticNorm | None" = None
    refine: object = None              # runs the full product search once (set by analyse)
    scale: float = 1.0                 # working coordinates are the input divided by this
    notes: list = field(default_factory=list)
    enough: float = -math.inf

    @property
    def certified(self) -> bool:
        """Whether some norm has already proved a bound below 1 (for the input)."""
        return self.best * self.scale < 1

    def worth_an_sdp(self, n: int) -> bool:
        """SDPs are slow (seconds from a few dozen coordinates): small problems get one for
        the tightest bound, larger ones only when no cheaper norm has certified."""
        return n <= SDP_TIGHT_DIM or not self.certified

    @property
    def sdp_rtol(self) -> float:
        return min(max(self.tol, 1e-8), 1e-4)

    def upper_hint(self, target) -> float:
        """An upper end for a bisection: the best bound so far, or a cheap norm."""
        if math.isfinite(self.best):
            return self.best * (1 + 1e-9)
        return float(norm2(target.samples()).max()) * (1 + 1e-9)


class Norm:
    """A norm on ``R^n`` used to bound every matrix of a target (see the module docstring)."""

    family: ClassVar[str] = "norm"
    title: ClassVar[str] = ""
    found_by: str = ""

    def describe(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.describe()

    def __contains__(self, text: str) -> bool:      # `"quadratic" in cert.norm` (old str API)
        return text in self.describe()

    def to_dict(self) -> dict:
        raise NotImplementedError

    def estimate(self, target) -> float:
        raise NotImplementedError

    def prove(self, target, rho: float) -> Verified | None:
        raise NotImplementedError

    def certify(self, target, *, limit: float = math.inf, deadline: float = math.inf):
        """``(rho, verified)``: a proved bound just above :meth:`estimate`, or None."""
        return prove_with_margin(self.estimate(target), lambda r: self.prove(target, r),
                                 limit=limit, deadline=deadline)

    def in_coordinates(self, d: np.ndarray) -> "Norm | None":
        """The same norm for ``A = D B D^{-1}`` (this norm being one for B), or None if it
        cannot be represented exactly in floating point."""
        return None

    def euclidean_factor(self) -> float | None:
        """A proved ``kappa`` with ``||v|| <= kappa ||v||_2``, or None (see ExtendedNorm)."""
        return None

    @classmethod
    def applies(cls, target, ctx: Context) -> bool:
        return False

    @classmethod
    def fits(cls, target, ctx: Context) -> bool:
        """Whether the search fits the time left (a family that applies but does not fit is
        reported as skipped, so that a partial result says so)."""
        return not ctx.deadline.expired()

    @classmethod
    def find(cls, target, ctx: Context) -> "Norm | None":
        return None


# ---------------------------------------------------------------------------------------------
# quadratic norms ||v||_P = sqrt(v^T P v)


class QuadraticNorm(Norm):
    """``||v||_P = sqrt(v^T P v)``: the bound is ``A^T P A ⪯ rho^2 P`` for every A (convex in A,
    so vertices of a hull suffice). Found by SDP bisection (common quadratic Lyapunov function).
    """

    family = "quadratic"
    title = "common quadratic Lyapunov function (SDP)"

    def __init__(self, P: np.ndarray, found_by: str = ""):
        P = np.asarray(P, dtype=float)
        self._P = P
        self.found_by = found_by or self.title

    @property
    def P(self) -> np.ndarray:
        return self._P

    @property
    def n(self) -> int:
        return self.P.shape[0]

    @property
    def is_diagonal(self) -> bool:
        P = self.P
        return bool(np.array_equal(P, np.diag(np.diagonal(P))))

    def describe(self) -> str:
        return "quadratic ||v||_P = sqrt(v^T P v)"

    def to_dict(self) -> dict:
        return {"family": self.family, "kind": type(self).__name__, "P": self.P.tolist()}

    def __call__(self, v) -> float:
        v = np.asarray(v, dtype=float).ravel()
        return float(math.sqrt(max(v @ self.P @ v, 0.0)))

    def in_coordinates(self, d):
        P = self.P / d[:, None] / d[None, :]
        if not np.array_equal(P * d[:, None] * d[None, :], self.P):
            return None
        if isinstance(self, EuclideanNorm) and not np.all(d == 1):
            return DiagonalQuadraticNorm(P, found_by=self.found_by + " of the balanced matrices")
        out = type(self).__new__(type(self))
        out.__dict__.update(self.__dict__)
        out._P = P
        return out

    def euclidean_factor(self) -> float | None:
        lam = float(np.max(rigorous.upper_sum(np.abs(self.P), axis=1)))   # Gershgorin
        return rigorous.sqrt_up(lam) if math.isfinite(lam) else None

    # --- estimates and proofs per kind of target ---------------------------------------------

    def estimate(self, target) -> float:
        if isinstance(target, MatrixSet):
            return quadratic_value(target.mats, self.P)
        if isinstance(target, StructuredSet):
            verts = target.vertices()
            if verts is not None:
                return quadratic_value(verts, self.P)
            scaled = target.scaled_rows() if self.is_diagonal else None
            if scaled is not None:
                return quadratic_value(scaled[0][None], self.P)
            box = target.intervals()[0]
            return _box_gamma(box.lo, box.hi, self.P)
        return _box_gamma(target.lo, target.hi, self.P)

    def prove(self, target, rho: float) -> Verified | None:
        P = self.P
        if isinstance(target, MatrixSet):
            if target.n <= EXACT_MAX_DIM:
                return Verified.EXACT if _exact.check_quadratic(target.mats, P, rho) else None
            return Verified.INTERVAL if rigorous.check_quadratic_rigorous(
                target.mats, P, rho) else None
        if isinstance(target, StructuredSet):
            verts = target.vertices()
            if verts is not None:
                return self.prove(MatrixSet(verts), rho)
            scaled = target.scaled_rows() if self.is_diagonal else None
            parts = [scaled[1]] if scaled is not None else target.intervals()
            return Verified.INTERVAL if rigorous.check_quadratic_rigorous(parts, P, rho) \
                else None
        if target.n <= EXACT_BOX_DIM:
            return Verified.EXACT if _exact.check_quadratic_box(target.lo, target.hi, P, rho) \
                else None
        return Verified.INTERVAL if rigorous.check_quadratic_rigorous(
            target.intervals(), P, rho) else None

    # --- the SDP finder ----------------------------------------------------------------------

    @classmethod
    def applies(cls, target, ctx):
        if import_cvxpy() is None or isinstance(target, StructuredSet):
            return False
        return ctx.worth_an_sdp(target.n)

    @classmethod
    def fits(cls, target, ctx):
        return ctx.deadline.fits(setup_estimate(len(_sdp_matrices(target)), target.n))

    @classmethod
    def find(cls, target, ctx):
        mats = _sdp_matrices(target)
        hi = ctx.upper_hint(target)
        first = None
        if ctx.lower * 1.02 < min(hi, 1.0) and ctx.lower > 0:
            first = math.sqrt(ctx.lower * min(hi, 1.0))      # halfway to 1, in log scale
        try:
            problem = LMIProblem(target.n, quadratic_lmis(mats), count=len(mats))
        except Exception:  # noqa: BLE001 -- cvxpy refused the model: no proposal
            return None
        value, sol = bisect(problem, lambda s: quadratic_value(mats, s[0]),
                            ctx.lower if isinstance(target, MatrixSet) else ctx.lower / 2,
                            hi, rtol=ctx.sdp_rtol, deadline=ctx.deadline.part(0.7).at,
                            first=first, enough=ctx.enough)
        if sol is None:
            return None
        where = "" if isinstance(target, MatrixSet) else " on sampled matrices"
        return cls(dyadic_matrix(sol[0]), found_by=cls.title + where)


def _sdp_matrices(target) -> np.ndarray:
    if isinstance(target, MatrixSet):
        return target.mats
    samples = target.samples()
    return np.concatenate([samples, ((target.lo + target.hi) / 2)[None]]) \
        if isinstance(target, IntervalBox) else samples


def _box_gamma(lo, hi, P) -> float:
    """Float estimate of the smallest gamma with ``A^T P A ⪯ gamma^2 P`` proved through a
    midpoint-radius enclosure of ``A^T P A`` over the box ``lo <= A <= hi``."""
    c, r = (lo + hi) / 2, (hi - lo) / 2
    try:
        pc, pr = P @ c, np.abs(P) @ r
        sc = c.T @ pc
        sr = np.abs(c.T) @ pr + r.T @ np.abs(pc) + r.T @ pr
        sc, sr = (sc + sc.T) / 2, np.maximum(sr, sr.T)
        dd = np.exp2(np.round(np.log2(np.diag(P)) / 2))
        rad = float(np.max(np.abs(np.linalg.eigvals(sr / dd[:, None] / dd[None, :]))))
        M = sc + rad * np.diag(dd ** 2)
        L = np.linalg.cholesky(P)
        G = np.linalg.solve(L, np.linalg.solve(L, M).T)
        return float(math.sqrt(max(np.linalg.eigvalsh((G + G.T) / 2).max(), 0.0)))
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        return math.inf


class EuclideanNorm(QuadraticNorm):
    """``||v||_2`` (``P = I``): the bound is a proved upper bound on the largest singular value.
    The cheapest norm, tried first."""

    title = "Euclidean norm (largest singular value)"

    def __init__(self, n: int, found_by: str = ""):
        super().__init__(np.eye(n), found_by)

    def describe(self) -> str:
        return "quadratic ||v||_P = sqrt(v^T P v) with P = I (Euclidean)"

    @classmethod
    def applies(cls, target, ctx):
        return True

    @classmethod
    def fits(cls, target, ctx):
        return not ctx.deadline.expired()       # no SDP: the time check of the base class

    @classmethod
    def find(cls, target, ctx):
        return cls(target.n)


class DiagonalQuadraticNorm(QuadraticNorm):
    """``||D v||_2`` with a positive diagonal D (``P = D^2``), the scaling that (nearly)
    minimises ``max ||D A D^{-1}||_2``. For sets of rows scaled by kink slopes
    (``diag(delta) W``) the bound is exact without enumerating the slopes."""

    title = "diagonal scaling of the Euclidean norm"

    def describe(self) -> str:
        return "quadratic ||v||_P = sqrt(v^T P v) with diagonal P (scaled Euclidean)"

    @classmethod
    def applies(cls, target, ctx):
        return target.n > 1 and not ctx.deadline.expired() and \
            (target.n <= 100 or not ctx.certified)

    @classmethod
    def fits(cls, target, ctx):
        return not ctx.deadline.expired()       # no SDP: the time check of the base class

    @classmethod
    def find(cls, target, ctx):
        mats = _scaling_matrices(target)
        if mats is None:
            return None
        start = perron_weights(np.abs(mats).max(axis=0).T + np.abs(mats).max(axis=0))
        d = optimal_diagonal_scaling(mats, 1.0 / np.maximum(start, 1e-300),
                                     deadline=ctx.deadline.part(0.3).at)
        d2 = dyadic_round_array(d * d / np.max(d * d), 30)
        if not np.all(d2 > 0):
            return None
        return cls(np.diag(d2), found_by=cls.title)


def _scaling_matrices(target):
    if isinstance(target, MatrixSet):
        return target.mats if len(target) <= 16 else None
    if isinstance(target, StructuredSet):
        scaled = target.scaled_rows()
        if scaled is not None:
            return scaled[0][None]
        verts = target.vertices(16)
        return verts
    return np.maximum(np.abs(target.lo), np.abs(target.hi))[None]


class LyapunovNorm(QuadraticNorm):
    """For a single matrix: ``P`` solving ``P - (A/r)^T P (A/r) = I`` (discrete Lyapunov
    equation) at a rate ``r`` slightly above the spectral radius, so that
    ``||A||_P < r``: a norm within a few percent of the spectral radius, no SDP."""

    title = "discrete Lyapunov equation"

    def describe(self) -> str:
        return "quadratic ||v||_P = sqrt(v^T P v) with P from a Lyapunov equation"

    @classmethod
    def applies(cls, target, ctx):
        return (isinstance(target, MatrixSet) and len(target) == 1 and target.n <= 1500
                and not ctx.deadline.expired())

    @classmethod
    def fits(cls, target, ctx):
        return not ctx.deadline.expired()       # no SDP: the time check of the base class

    @classmethod
    def find(cls, target, ctx):
        A = target.mats[0]
        radius = float(np.max(np.abs(np.linalg.eigvals(A)))) if target.n > 1 else abs(A[0, 0])
        if not (radius > 0 and math.isfinite(radius)):     # (working coordinates: rho ~ 1)
            return None
        best, best_value = None, math.inf
        # rates closer and closer to the spectral radius, while P stays usable
        rates = (0.3, 0.1, 0.03, 0.01, 1e-3, 1e-4) if target.n <= 200 else (0.05, 0.005)
        for t in rates:
            rate = radius * (1 + t)
            P = lyapunov_form(A, rate)
            if P is None or not np.linalg.cond(P) < 1e10:
                break
            P = dyadic_matrix(P)
            value = quadratic_value(target.mats, P)
            if value < best_value:
                best, best_value = P, value
            if ctx.deadline.expired() or value <= ctx.lower * (1 + ctx.tol):
                break
        return None if best is None else cls(best, found_by=cls.title)


class StructuredQuadraticNorm(QuadraticNorm):
    """A quadratic norm for ``{C + U diag(delta) R : lo <= delta <= hi}`` proved by one LMI
    with a diagonal multiplier ``lam >= 0`` (S-procedure; LipSDP's device), never by the
    ``2^k`` vertices: ``[C U]^T P [C U] - blkdiag(rho^2 P, 0) + G(lam) ≺ 0``."""

    title = "LMI with a diagonal multiplier (structured set)"

    def __init__(self, P: np.ndarray, lam: np.ndarray, found_by: str = ""):
        super().__init__(P, found_by)
        self.lam = np.asarray(lam, dtype=float)

    def describe(self) -> str:
        return ("quadratic ||v||_P = sqrt(v^T P v), proved with a diagonal multiplier over "
                f"the {len(self.lam)} kink slopes")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "multiplier": self.lam.tolist()}

    def in_coordinates(self, d):
        return None

    def _gap(self, target, rho):
        """Interval enclosure of ``-(LMI)`` at rate rho: positive definite means proved."""
        n, S = target.U.shape
        X = iv.Interval(np.hstack([target.C, target.U]))
        P = iv.Interval(self.P)
        quad = iv.matmul(X.T, iv.matmul(P, X))
        r = iv.Interval(np.float64(rho))
        top = iv.multiply(iv.multiply(r, r), P)
        lam = iv.Interval(self.lam)
        prod = iv.multiply(lam, iv.multiply(iv.Interval(target.lo), iv.Interval(target.hi)))
        summ = iv.multiply(lam, iv.multiply(iv.add(iv.Interval(target.lo),
                                                   iv.Interval(target.hi)), iv.Interval(0.5)))
        Rt = iv.Interval(target.R.T)
        xx = iv.matmul(iv.multiply(Rt, prod.reshape(1, -1)), iv.Interval(target.R))
        xy = iv.multiply(Rt, summ.reshape(1, -1))
        lo = np.zeros((n + S, n + S))
        hi = np.zeros((n + S, n + S))
        lo[:n, :n], hi[:n, :n] = top.lo + xx.lo, top.hi + xx.hi
        lo[:n, n:], hi[:n, n:] = -xy.hi, -xy.lo
        lo[n:, :n], hi[n:, :n] = -xy.hi.T, -xy.lo.T
        lo[n:, n:], hi[n:, n:] = np.diag(self.lam), np.diag(self.lam)
        whole = iv.subtract(iv.Interval(lo, hi), quad)
        return whole

    def estimate(self, target) -> float:
        if not isinstance(target, StructuredSet):
            return super().estimate(target)
        lo, hi = 0.0, max(float(norm2(target.samples()).max()), 1e-300) * 4
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            g = self._gap(target, mid)
            if np.linalg.eigvalsh((g.mid + g.mid.T) / 2).min() >= 0:
                hi = mid
            else:
                lo = mid
            if hi - lo <= 1e-12 * hi:
                break
        return hi

    def prove(self, target, rho):
        if not isinstance(target, StructuredSet):
            return super().prove(target, rho)
        if np.any(self.lam < 0) or not rigorous.spd_point(self.P):
            return None
        g = self._gap(target, rho)
        return Verified.INTERVAL if rigorous.spd_interval(g.lo, g.hi) else None

    @classmethod
    def applies(cls, target, ctx):
        if not isinstance(target, StructuredSet) or import_cvxpy() is None:
            return False
        if target.vertices() is not None:
            return False
        size = target.n + target.slots
        return size <= 400 and ctx.worth_an_sdp(size)

    @classmethod
    def fits(cls, target, ctx):
        return ctx.deadline.fits(setup_estimate(1, target.n + target.slots) * 4)

    @classmethod
    def find(cls, target, ctx):
        try:
            problem = LMIProblem(target.n, structured_lmis(target.C, target.U, target.R,
                                                           target.lo, target.hi),
                                 extra=target.slots, count=1)
        except Exception:  # noqa: BLE001 -- cvxpy refused the model
            return None

        def value(sol):
            return cls(sol[0], sol[1]).estimate(target)

        val, sol = bisect(problem, value, ctx.lower, ctx.upper_hint(target) * 1.5,
                          rtol=ctx.sdp_rtol, deadline=ctx.deadline.part(0.8).at)
        if sol is None:
            return None
        scale = dyadic_scale(sol[0])             # the LMI is homogeneous in (P, lam)
        P = dyadic_matrix(sol[0])
        lam = dyadic_round_array(sol[1] * scale, 30)
        return cls(P, np.maximum(lam, 0.0), found_by=cls.title)


# ---------------------------------------------------------------------------------------------
# weighted infinity norms


class WeightedInfinityNorm(Norm):
    """``||v||_w = max_i |v_i| / w_i``, whose operator norm is ``max_i sum_j |A_ij| w_j / w_i``.
    With ``w`` a Perron vector of an entrywise bound ``B >= |A|`` of the set, the bound is
    close to ``rho(B)``: cheap (no factorisation) and exact for non-negative sets."""

    family = "weighted infinity"
    title = "weighted infinity norm (Perron scaling)"

    def __init__(self, w: np.ndarray, found_by: str = ""):
        self.w = np.asarray(w, dtype=float)
        self.found_by = found_by or self.title

    @property
    def n(self) -> int:
        return len(self.w)

    def describe(self) -> str:
        return "weighted infinity ||v|| = max_i |v_i| / w_i"

    def to_dict(self) -> dict:
        return {"family": self.family, "kind": type(self).__name__, "w": self.w.tolist()}

    def __call__(self, v) -> float:
        return float(np.max(np.abs(np.asarray(v, dtype=float).ravel()) / self.w))

    def estimate(self, target) -> float:
        B = target.magnitude()
        return float(np.max((B @ self.w) / self.w))

    def prove(self, target, rho):
        exact = target.n <= EXACT_MAX_DIM and not isinstance(target, StructuredSet)
        bound = rigorous.nonnegative_ratio_bound(target.magnitude(), self.w, exact=exact)
        if not bound <= rho:
            return None
        return Verified.EXACT if exact else Verified.INTERVAL

    def in_coordinates(self, d):
        w = self.w * d
        return WeightedInfinityNorm(w, self.found_by) if np.array_equal(w / d, self.w) \
            else None

    def euclidean_factor(self):
        small = float(np.min(self.w))
        return float(np.nextafter(1.0 / small, np.inf) * (1 + 2 ** -52)) if small > 0 \
            else None

    @classmethod
    def applies(cls, target, ctx):
        return not ctx.deadline.expired()

    @classmethod
    def find(cls, target, ctx):
        w = perron_weights(target.magnitude())
        w = dyadic_round_array(w / np.max(w), 30)
        return cls(w) if np.all(w > 0) else None


# ---------------------------------------------------------------------------------------------
# polytope norms and quadratic norms of products


class PolytopeNorm(Norm):
    """The norm whose unit ball is ``absconv(V)`` (columns of V), from the invariant polytope
    algorithm started at the best product; proved by exact basis solves. Often closes the
    JSR bracket exactly."""

    family = "polytope"
    title = "invariant polytope"

    def __init__(self, V: np.ndarray, found_by: str = ""):
        self.V = np.asarray(V, dtype=float)
        self.found_by = found_by or f"{self.title} ({self.V.shape[1]} vertex pairs)"

    @property
    def n(self) -> int:
        return self.V.shape[0]

    def describe(self) -> str:
        return "polytope (unit ball = symmetric convex hull of the columns of .polytope)"

    def to_dict(self) -> dict:
        return {"family": self.family, "kind": type(self).__name__, "V": self.V.T.tolist()}

    def estimate(self, target):
        found = polytope_values(target.mats, self.V)         # float, from the facets
        if found is not None:
            return found[0]
        bound = polytope_bound(target.mats, self.V)
        return math.inf if bound is None else bound

    def prove(self, target, rho):
        bound = polytope_bound(target.mats, self.V)
        return Verified.EXACT if bound is not None and bound <= rho else None

    def certify(self, target, *, limit=math.inf, deadline=math.inf):
        bound = polytope_bound(target.mats, self.V, limit=limit)      # exact, rounded up
        if bound is None or not bound < limit:
            return None
        return bound, Verified.EXACT

    def in_coordinates(self, d):
        V = self.V * d[:, None]
        return PolytopeNorm(V, self.found_by) if np.array_equal(V / d[:, None], self.V) \
            else None

    @classmethod
    def applies(cls, target, ctx):
        return isinstance(target, MatrixSet) and target.n <= EXACT_MAX_DIM and \
            not ctx.deadline.expired()

    @classmethod
    def find(cls, target, ctx):
        if math.isfinite(ctx.enough):    # the word of the short search may already do
            poly = cls._polytope(target, ctx, max_vertices=60)
            if poly is not None and poly[0] < ctx.enough:
                return cls(poly[1])
        if callable(ctx.refine):
            ctx.refine()                 # start from the best product the full search finds
        poly = cls._polytope(target, ctx)
        return None if poly is None else cls(poly[1])

    @staticmethod
    def _polytope(target, ctx, max_vertices: int = 200):
        try:
            return invariant_polytope(target.mats, ctx.word, max_vertices=max_vertices,
                                      deadline=ctx.deadline.part(0.5).at)
        except Exception:  # noqa: BLE001 -- LP trouble: no proposal
            return None


class LiftedQuadraticNorm(Norm):
    """``||x|| = max_{|u| < k} rho^{-|u|} ||A_u x||_P`` with ``A_w^T P A_w ⪯ rho^{2k} P`` for
    every product of length k: handles sets whose extremal products have complex leading
    eigenvalues, where one-step quadratic norms and real polytopes fall short."""

    family = "lifted quadratic"
    title = "quadratic norm of products"

    def __init__(self, P: np.ndarray, k: int, found_by: str = ""):
        self.P = np.asarray(P, dtype=float)
        self.k = int(k)
        self.found_by = found_by or f"quadratic norm of products of length {k} (SDP)"

    @property
    def n(self) -> int:
        return self.P.shape[0]

    def describe(self) -> str:
        return (f"lifted quadratic ||v|| = max over products A_u with |u| < {self.k} of "
                f"rho^-|u| ||A_u v||_Pk")

    def to_dict(self) -> dict:
        return {"family": self.family, "kind": type(self).__name__, "k": self.k,
                "P": self.P.tolist()}

    def _products(self, mats):
        prods = mats
        for _ in range(self.k - 1):
            prods = np.einsum("aij,bjk->abik", mats, prods).reshape(-1, *mats.shape[1:])
        return prods

    def estimate(self, target):
        return quadratic_value(self._products(target.mats), self.P) ** (1.0 / self.k)

    def prove(self, target, rho):
        ok = _exact.check_quadratic_products(target.mats, self.P, rho, self.k)
        return Verified.EXACT if ok else None

    def in_coordinates(self, d):
        P = self.P / d[:, None] / d[None, :]
        return LiftedQuadraticNorm(P, self.k, self.found_by) \
            if np.array_equal(P * d[:, None] * d[None, :], self.P) else None

    @classmethod
    def applies(cls, target, ctx):
        return (isinstance(target, MatrixSet) and target.n <= EXACT_MAX_DIM and
                import_cvxpy() is not None and len(target) ** 2 <= 64)

    @classmethod
    def fits(cls, target, ctx):
        return ctx.deadline.fits(setup_estimate(len(target) ** 2, target.n))

    @classmethod
    def find(cls, target, ctx):
        best, best_value = None, math.inf
        for k in (2, 3, 4):
            if len(target) ** k > 64 or not ctx.deadline.fits(
                    setup_estimate(len(target) ** k, target.n)):
                break
            norm = cls(np.eye(target.n), k)
            prods = norm._products(target.mats)
            hi = float(norm2(prods).max()) * (1 + 1e-9)
            try:
                problem = LMIProblem(target.n, quadratic_lmis(prods), count=len(prods))
            except Exception:  # noqa: BLE001
                return best
            value, sol = bisect(problem, lambda s: quadratic_value(prods, s[0]),
                                ctx.lower ** k, hi, rtol=ctx.sdp_rtol,
                                deadline=ctx.deadline.at)
            if sol is not None and value ** (1.0 / k) < best_value:
                best_value = value ** (1.0 / k)
                best = cls(dyadic_matrix(sol[0]), k)
            if best_value <= ctx.lower * (1 + ctx.tol):
                break
        return best


# ---------------------------------------------------------------------------------------------
# extension from the rows that are not identically zero


class ExtendedNorm(Norm):
    """A norm on ``R^n`` built from a norm on the coordinates ``keep`` when every matrix sends
    the other coordinates to zero (rows outside ``keep`` vanish):

    ``||v|| = ||v_keep||_inner + c ||v_drop||_2``, with ``c >= kappa F / rho``, ``kappa`` the
    inner norm's Euclidean factor and ``F >= ||A[keep, drop]||_F`` over the set. Then
    ``||A v|| <= rho ||v_keep|| + kappa F ||v_drop||_2 <= rho ||v||``: the bound is unchanged.

    For a quadratic inner norm the extension is quadratic instead (``P = blockdiag(P_keep,
    c I)``, see :func:`conservative.certify.contraction` ``extend``) at a slightly larger rho.
    """

    family = "extended"

    def __init__(self, inner: Norm, keep: np.ndarray, n: int, c: float, found_by: str = ""):
        self.inner, self.keep, self.size, self.c = inner, np.asarray(keep), int(n), float(c)
        self.found_by = found_by or inner.found_by

    @property
    def n(self) -> int:
        return self.size

    def describe(self) -> str:
        return (f"{self.inner.describe()} on the {len(self.keep)} coordinates not sent to zero"
                f", plus {self.c:.3g} ||v||_2 on the other {self.size - len(self.keep)}")

    def to_dict(self) -> dict:
        return {"family": self.family, "kind": type(self).__name__,
                "inner": self.inner.to_dict(), "keep": self.keep.tolist(), "n": self.size,
                "c": self.c}

    def __call__(self, v) -> float:
        v = np.asarray(v, dtype=float).ravel()
        drop = np.setdiff1d(np.arange(self.size), self.keep)
        return self.inner(v[self.keep]) + self.c * float(np.linalg.norm(v[drop]))


class BlockQuadraticNorm(QuadraticNorm):
    """The quadratic extension ``P = blockdiag(P_keep, c I)`` of a quadratic norm on the
    coordinates ``keep`` (stored factored; :attr:`P` assembles the dense matrix on request)."""

    def __init__(self, inner: QuadraticNorm, keep: np.ndarray, n: int, c: float):
        self.inner, self.keep, self.size, self.c = inner, np.asarray(keep), int(n), float(c)
        self.found_by = inner.found_by
        self._P = None

    @property
    def n(self) -> int:
        return self.size

    @property
    def P(self) -> np.ndarray:
        if self._P is None:
            P = np.zeros((self.size, self.size))
            drop = np.setdiff1d(np.arange(self.size), self.keep)
            P[np.ix_(self.keep, self.keep)] = self.inner.P
            P[drop, drop] = self.c
            self._P = P
        return self._P

    @property
    def is_diagonal(self) -> bool:
        return self.inner.is_diagonal

    def describe(self) -> str:
        return self.inner.describe()

    def to_dict(self) -> dict:
        return {"family": self.family, "kind": type(self).__name__,
                "inner": self.inner.to_dict(), "keep": self.keep.tolist(), "n": self.size,
                "c": self.c}

    def __call__(self, v) -> float:
        v = np.asarray(v, dtype=float).ravel()
        drop = np.setdiff1d(np.arange(self.size), self.keep)
        return math.sqrt(self.inner(v[self.keep]) ** 2 + self.c * float(v[drop] @ v[drop]))

    def in_coordinates(self, d):
        return None


def extend_norm(inner: Norm, rho: float, coupling) -> tuple[Norm, float] | None:
    """A norm on all ``coupling.n`` coordinates from a norm on ``coupling.keep`` proved to give
    ``||A[keep, keep]|| <= rho`` for every matrix, when the other rows of every matrix vanish.

    Quadratic inner norms stay quadratic: with ``P = blockdiag(P_N, c I)`` and any
    ``delta > 0``, ``||A v||_P^2 <= (1 + delta) rho^2 ||v_N||^2 + (1 + 1/delta) K^2 ||v_Z||^2``
    where ``K^2 >= lambda_max(P_N) ||A_NZ||_F^2``; ``rho'^2 = (1 + delta) rho^2 = rho^2 +
    (1 - rho^2)/256`` and ``c = (1 + 1/delta) K^2 / rho'^2`` give ``||A||_P <= rho'`` (exact
    rational arithmetic). Other norms with a Euclidean factor extend without loss
    (:class:`ExtendedNorm`). Returns ``(norm, rho')`` or None.
    """
    from fractions import Fraction

    frob = coupling.frobenius_up
    kappa = inner.euclidean_factor()
    if kappa is None or not math.isfinite(frob):
        return None
    if not isinstance(inner, QuadraticNorm):
        c = float(np.nextafter(kappa * frob / rho, np.inf) * (1 + 2 ** -50)) if rho > 0 \
            else math.inf
        return (ExtendedNorm(inner, coupling.keep, coupling.n, max(c, 1.0)), rho) \
            if math.isfinite(c) else None
    r = Fraction(float(rho)) if rho > 0 else Fraction(1, 2 ** 30)
    rho2 = r ** 2 + (1 - r ** 2) / 256                    # rho' only slightly above rho
    delta = rho2 / r ** 2 - 1
    K2 = Fraction(kappa) ** 2 * Fraction(frob) ** 2
    c = (1 + 1 / delta) * K2 / rho2 if K2 else Fraction(1)
    try:
        c_up = _exact.float_at_least(c)
    except OverflowError:
        return None
    rho_up = _exact.float_at_least(Fraction(math.sqrt(float(rho2))))
    while Fraction(rho_up) ** 2 < rho2:                 # the square root rounded up, exactly
        rho_up = float(np.nextafter(rho_up, math.inf))
    if not (math.isfinite(c_up) and c_up > 0):
        return None
    return BlockQuadraticNorm(inner, coupling.keep, coupling.n, c_up), rho_up


_FAMILIES = {cls.__name__: cls for cls in (QuadraticNorm, EuclideanNorm, DiagonalQuadraticNorm,
                                           LyapunovNorm, WeightedInfinityNorm, PolytopeNorm)}


def norm_from_dict(d: dict) -> Norm:
    """Rebuild a norm from :meth:`Norm.to_dict` (the round trip of a certificate's JSON).

    Examples
    --------
    >>> norm_from_dict(WeightedInfinityNorm(np.ones(2)).to_dict()).describe()
    'weighted infinity ||v|| = max_i |v_i| / w_i'
    """
    kind = d.get("kind")
    if kind == "EuclideanNorm":
        return EuclideanNorm(len(d["P"]))
    if kind in ("QuadraticNorm", "DiagonalQuadraticNorm", "LyapunovNorm"):
        return _FAMILIES[kind](np.array(d["P"], dtype=float))
    if kind == "StructuredQuadraticNorm":
        return StructuredQuadraticNorm(np.array(d["P"]), np.array(d["multiplier"]))
    if kind == "WeightedInfinityNorm":
        return WeightedInfinityNorm(np.array(d["w"], dtype=float))
    if kind == "PolytopeNorm":
        return PolytopeNorm(np.array(d["V"], dtype=float).T)
    if kind == "LiftedQuadraticNorm":
        return LiftedQuadraticNorm(np.array(d["P"], dtype=float), d["k"])
    if kind == "BlockQuadraticNorm":
        return BlockQuadraticNorm(norm_from_dict(d["inner"]), np.array(d["keep"]), d["n"],
                                  d["c"])
    if kind == "ExtendedNorm":
        return ExtendedNorm(norm_from_dict(d["inner"]), np.array(d["keep"]), d["n"], d["c"])
    raise ValueError(f"unknown norm kind {kind!r}")

