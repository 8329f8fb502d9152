"""The search for norms: a loop over the families of :data:`FINDERS`, cheapest first.

:func:`analyse` bounds the joint spectral radius of a target from below (products) and from
above (every norm family that applies, each proved by its own check), and stops once the
bracket is closed to the requested accuracy or the time is up. ``jsr`` reports its best
bracket; ``certify_contraction`` picks the norm it returns from the proved bounds.

Finite sets are first balanced, ``A = s D B D^{-1}`` with powers of two (exact in floating
point): norms are found and proved for ``B`` and reported for ``A``, with the bound scaled back
by ``s`` rounded outward (:func:`conservative.certify.matrices.scale_bound`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from .._deadline import Deadline, NoProgress
from .._spectral import spectral_lower_bound
from ..errors import NonFiniteError, fail_message
from .matrices import balanced, canonical_rotation, scale_bound, spectral_radius
from .norms import (Context, DiagonalQuadraticNorm, EuclideanNorm, LiftedQuadraticNorm,
                    LyapunovNorm, Norm, PolytopeNorm, QuadraticNorm, StructuredQuadraticNorm,
                    WeightedInfinityNorm)
from .report import Verified
from .search import brute_upper, gripenberg, product_lower_bound
from .targets import MatrixSet

__all__ = ["FINDERS", "PHASES", "UpperBound", "Analysis", "analyse"]

#: The norm families, in the order they are tried. Cheap ones first (no factorisation beyond a
#: Cholesky), then SDPs, then the exact algorithms for small sets. Add a family here.
FINDERS = (
    EuclideanNorm,
    WeightedInfinityNorm,
    DiagonalQuadraticNorm,
    LyapunovNorm,
    QuadraticNorm,
    StructuredQuadraticNorm,
    PolytopeNorm,
    LiftedQuadraticNorm,
)

#: Phases of :func:`analyse`, in order (the progress bar counts them).
PHASES = ("products",) + tuple(cls.title for cls in FINDERS) + ("branch and bound",)

_SDP_FAMILIES = (QuadraticNorm, StructuredQuadraticNorm, LiftedQuadraticNorm)


@dataclass(frozen=True)
class UpperBound:
    """One upper bound on the JSR with its evidence (input coordinates).

    ``norm`` is the proved norm (None for bounds that are not a norm of the set, such as
    norms of products or the branch and bound), ``verified`` how the bound was checked.
    """

    value: float
    method: str
    verified: Verified
    norm: Norm | None = None

    @property
    def P(self):
        return getattr(self.norm, "P", None) if getattr(self.norm, "family", "") in (
            "quadratic", "lifted quadratic") else None

    @property
    def V(self):
        return getattr(self.norm, "V", None)

    @property
    def k(self) -> int:
        return getattr(self.norm, "k", 1)


@dataclass(frozen=True)
class Analysis:
    """Everything :func:`analyse` found: the lower bound and every upper bound."""

    lower: float
    word: tuple
    lower_method: str
    uppers: tuple
    stopped: str = ""                   # why the search ended early ("" if it did not)

    def best(self, *, rigorous_only: bool = False) -> UpperBound | None:
        """Smallest bound; a proved one wins over a float one within 1e-9 relative."""
        cands = [u for u in self.uppers if u.verified.rigorous or not rigorous_only]
        if not cands:
            return None
        low = min(u.value for u in cands)
        proved = [u for u in cands if u.verified.rigorous and u.value <= low * (1 + 1e-9)]
        return min(proved or cands, key=lambda u: u.value)


class _Run:
    """State of one :func:`analyse` call in working coordinates (``A = s D B D^-1``)."""

    def __init__(self, target, dl, bar, *, tol, call, prefer_quadratic=False):
        self.dl, self.bar, self.call, self.tol = dl, bar, call, tol
        self.prefer_quadratic = prefer_quadratic
        self.input = target
        self.d, self.s = np.ones(target.n), 1.0
        self.work = target
        if isinstance(target, MatrixSet):
            B, d, s, exact = balanced(target.mats)
            if exact:
                self.work, self.d, self.s = MatrixSet(B), d, s
        self.uppers: list[UpperBound] = []
        self.skipped: list[str] = []
        self.lower, self.word, self.lower_method = 0.0, (0,), "no product searched"
        self.ctx = Context(0.0, (0,), dl, tol=tol, scale=self.s)
        self.refined = False

    # --- bookkeeping ----------------------------------------------------------------------

    def scaled_lower(self) -> float:
        low = scale_bound(self.lower, self.s, up=False)
        if low >= sys.float_info.max:
            raise NonFiniteError(fail_message(
                self.call, f"matrices whose joint spectral radius is at least "
                f"2^{math.log2(self.lower) + math.log2(self.s):.1f}, beyond float64",
                "rescale them (JSR(c S) = |c| JSR(S)) so that entries stay well below 1e308"))
        return low

    def raise_lower(self, value, word, method):
        if value > self.lower:
            self.lower, self.word, self.lower_method = float(value), tuple(word), method
            self.ctx.lower, self.ctx.word = self.lower, self.word

    def add(self, value, method, verified, norm=None):
        """Record a bound found for the working target, scaled back to the input."""
        norm_in = norm
        if norm is not None and not np.all(self.d == 1):
            norm_in = norm.in_coordinates(self.d)
            if norm_in is None:
                method += " [the norm under- or overflows in the input's coordinates]"
            elif norm_in.found_by != norm.found_by:           # e.g. "... of the balanced ..."
                method = method.replace(norm.found_by, norm_in.found_by, 1)
        self.uppers.append(UpperBound(scale_bound(value, self.s, up=True), method,
                                      Verified(verified), norm_in))
        if Verified(verified).rigorous and value < self.ctx.best:
            self.ctx.best = value
            if isinstance(norm, QuadraticNorm) and not isinstance(norm, StructuredQuadraticNorm):
                self.ctx.quadratic = norm

    def tick(self, phase):
        self.bar.update()
        best = min((u.value for u in self.uppers), default=math.inf)
        self.bar.set_postfix_str(f"{phase}: JSR in [{self.lower * self.s:.6g}, {best:.6g}]")

    def closed(self) -> bool:
        """The bracket is closed to ``tol`` (by a one-step quadratic norm when preferred)."""
        best = self.ctx.best
        if self.prefer_quadratic:
            best = min((u.value for u in self.uppers if u.verified.rigorous
                        and isinstance(u.norm, QuadraticNorm)), default=math.inf) / self.s
        return best <= self.lower * (1 + self.tol)

    def analysis(self) -> Analysis:
        stopped = ""
        if self.skipped:
            when = "reached" if self.dl.expired() else "left too little time"
            stopped = (f"{self.dl.describe()} {when} after {self.dl.elapsed():.1f} s; "
                       "skipped: " + ", ".join(self.skipped))
        low, method = self.scaled_lower(), self.lower_method
        if low > 0 and isinstance(self.input, MatrixSet):
            # a float eigenvalue can overshoot: prove the bound on the input's own matrices
            # (the working set is the input or its exact balancing, so the word indexes both)
            low, proved = spectral_lower_bound(self.input.mats, self.word, low)
            method += " (proved)" if proved else " (floating point, not proved)"
        return Analysis(low, canonical_rotation(self.word), method, tuple(self.uppers), stopped)

    # --- phases ---------------------------------------------------------------------------

    def products(self, max_length, max_nodes, stop_above=math.inf):
        """Lower bound (and float upper bounds) from products of the working matrices; the
        branch and bound ends at the first length with a product above ``stop_above``."""
        if not isinstance(self.work, MatrixSet):
            samples = self.work.samples()
            low, word = product_lower_bound(samples, deadline=self.dl.part(0.2).at)
            self.raise_lower(low, word, "products of sampled matrices of the set")
            return
        B = self.work.mats
        m, n, _ = B.shape
        rho1 = spectral_radius(B) if n <= 300 else np.array(
            [np.max(np.abs(np.linalg.eigvals(b))) for b in B])
        i1 = int(np.argmax(rho1))
        self.raise_lower(float(rho1[i1]), (i1,), "spectral radius of one matrix")
        budget = max(m, int(4096 * min(1.0, (8.0 / n) ** 3)))
        cheap, cheap_k = brute_upper(B, max_products=budget, deadline=self.dl.part(0.1).at)
        self.add(cheap, f"max ||A_w||_2^(1/k) over all products of length {cheap_k} "
                        "(balanced 2-norm)", Verified.FLOAT)
        if n <= 200 and m > 1:
            small = n <= 24                    # products cost n^3 each: short words when large
            quick = gripenberg(B, alpha=self.lower, word=self.word,
                               delta=1e-3 * max(self.lower, 1e-300),
                               max_length=min(max_length, 12 if small else 4),
                               max_nodes=min(max_nodes, 2000 if small else 64),
                               deadline=self.dl.part(0.2).at, stop_above=stop_above)
            if quick.alpha > self.lower:
                self.raise_lower(quick.alpha, quick.word, "spectral radius of a product of "
                                 f"length {len(quick.word)} (branch and bound)")

    def branch_and_bound(self, max_length, max_nodes):
        """Gripenberg's search in the best quadratic norm so far (once)."""
        if self.refined or not isinstance(self.work, MatrixSet) or self.work.n > 200 or \
                len(self.work) == 1:           # one matrix: its spectral radius is the JSR
            return
        if self.work.n > 24:                   # products of large matrices: a shorter search
            max_length, max_nodes = min(max_length, 6), min(max_nodes, 256)
        self.refined = True
        if self.dl.expired():
            self.skipped.append("branch and bound")
            return
        B = self.work.mats
        Q = self.ctx.quadratic
        C = B
        if Q is not None:
            L = np.linalg.cholesky(Q.P)
            C = np.swapaxes(np.linalg.solve(L, B.transpose(0, 2, 1) @ L), 1, 2)
        gb = gripenberg(C, alpha=self.lower, word=self.word,
                        delta=self.tol * max(self.lower, 1e-300), max_length=max_length,
                        max_nodes=max_nodes, deadline=self.dl.at)
        self.raise_lower(gb.alpha, gb.word, f"spectral radius of a product of length "
                         f"{len(gb.word)} (branch and bound)")
        where = "quadratic norm" if Q is not None else "balanced 2-norm"
        cut = "" if gb.complete else (" (stopped by the time limit)" if self.dl.expired()
                                      else f" (stopped at length {max_length})")
        if not gb.complete and self.dl.expired():
            self.skipped.append("the rest of the branch and bound")
        self.add(gb.upper, f"Gripenberg branch and bound in the {where}{cut}", Verified.FLOAT)
        self.tick("branch and bound")

    def try_family(self, cls) -> None:
        if not cls.applies(self.work, self.ctx):
            return
        if self.dl.expired() or not cls.fits(self.work, self.ctx):
            self.skipped.append(cls.title)
            return
        norm = cls.find(self.work, self.ctx)
        if norm is not None and not self.dl.expired():
            got = norm.certify(self.work, deadline=self.dl.at)
            if got is not None:
                self.add(got[0], f"{norm.found_by} ({_proof_words(self.work, got[1])})", got[1],
                         norm)
            else:
                self.add(norm.estimate(self.work), norm.found_by, Verified.FLOAT, norm)
        elif norm is not None:
            self.skipped.append(f"the check of the {cls.title}")
        self.tick(cls.title)


def analyse(target, *, tol: float = 1e-6, max_length: int = 30, time_limit: float | None = 20.0,
            max_nodes: int = 20000, use_sdp: bool = True, use_polytope: bool = True,
            use_lifted: bool = True, stop_at: float = math.inf, prefer_quadratic: bool = False,
            stop_below: float = -math.inf, deadline: Deadline | None = None, bar=None,
            call: str = "cv.jsr", finders=FINDERS) -> Analysis:
    """All bounds for a target (:mod:`conservative.certify.targets`); ``jsr`` and
    ``certify_contraction`` pick from them.

    The product search runs first; if its lower bound reaches ``stop_at`` the norms are not
    sought (a certifier needs nothing more once a product with ``rho(A_w)^{1/|w|} >= 1`` is
    known). Then each family of ``finders`` that applies proposes a norm, proved at once; the
    loop ends when the best proved bound is within ``tol`` of the lower bound, when (with
    ``prefer_quadratic``) a one-step quadratic norm has proved a bound below 1, when any
    norm has proved a bound below ``stop_below`` (a certifier that needs no tight rho), or at the
    deadline (no solver call, search level or check starts after it; :attr:`Analysis.stopped`
    names what was skipped).

    Raises
    ------
    NonFiniteError
        When the joint spectral radius exceeds the float64 range.
    """
    dl = deadline if deadline is not None else Deadline(time_limit)
    bar = bar if bar is not None else NoProgress()
    if isinstance(target, MatrixSet) and not np.any(target.mats):
        zero = UpperBound(0.0, "all matrices are zero", Verified.EXACT,
                          EuclideanNorm(target.n, "all matrices are zero"))
        return Analysis(0.0, (0,), "all matrices are zero", (zero,))
    with np.errstate(all="ignore"):
        run = _Run(target, dl, bar, tol=tol, call=call, prefer_quadratic=prefer_quadratic)
        # a certifier that needs no tight rho needs no best product either: the first one
        # above stop_at ends the search for norms
        run.products(max_length, max_nodes, stop_at / run.s if math.isfinite(stop_below)
                     else math.inf)
        run.tick("products")
        if run.scaled_lower() >= stop_at:
            return run.analysis()
        run.ctx.refine = lambda: run.branch_and_bound(max_length, max_nodes)
        run.ctx.enough = stop_below / run.s         # working coordinates
        for cls in finders:
            if run.closed() or _done_with_quadratic(run, prefer_quadratic) or \
                    run.ctx.best * run.s < stop_below:
                break
            if (cls in _SDP_FAMILIES and not use_sdp) or (cls is PolytopeNorm and not use_polytope) \
                    or (cls is LiftedQuadraticNorm and not use_lifted):
                continue
            run.try_family(cls)
        if not run.closed() and not _done_with_quadratic(run, prefer_quadratic) and \
                not run.ctx.best * run.s < stop_below:
            run.branch_and_bound(max_length, max_nodes)
        return run.analysis()


def _proof_words(target, verified) -> str:
    how = "exact rational check" if verified == Verified.EXACT else \
        "rigorous floating-point check"
    if target.kind == "box":
        return how + ", midpoint-radius enclosure of A^T P A over the whole box"
    if target.kind == "structured":
        return how + ", for every value of the kink slopes"
    return how


def _done_with_quadratic(run: _Run, prefer_quadratic: bool) -> bool:
    """A certifier that prefers one-step quadratic norms needs nothing more than the tightest
    quadratic one below 1 (once the SDP has had its turn)."""
    if not prefer_quadratic or run.ctx.quadratic is None:
        return False
    return any(type(u.norm) is QuadraticNorm and u.verified.rigorous and u.value < 1
               for u in run.uppers)

