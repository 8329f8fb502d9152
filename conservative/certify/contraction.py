"""Contraction certificates: a norm in which every Jacobian block A has ``||A|| <= rho < 1``.

Piggyback differentiation ``J <- A J + B`` converges (to the attractor of the iterated function
system) when the set of A blocks is a contraction in *some* operator norm, which is equivalent
to JSR < 1. A :class:`Certificate` is that norm plus the bound, and says how it was checked
(:class:`~conservative.certify.report.Verified`):

* ``"exact"`` -- rational arithmetic on the exact values of the float64 data;
* ``"interval"`` -- rigorous floating point (outward rounding, Cholesky with a proven
  rounding-error bound), used above a few dozen coordinates;
* ``"float"`` -- only floating point evidence; then ``certified`` is False.

Floating SDPs, scalings and LPs are never trusted on their own: they only propose the norm.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._deadline import Deadline, check_progress, progress_bar
from .._types import check_real
from ..errors import ConservativeError, InputError, NonFiniteError, fail_message
from .finders import PHASES, Analysis, analyse
from .norms import EuclideanNorm, Norm, QuadraticNorm, extend_norm
from .. import _display
from .report import Verified, format_word, number, verified_words
from .sdp import import_cvxpy
from ..sets import distinct_matrices
from .targets import MatrixSet

__all__ = ["Certificate", "certify_contraction", "certify_target", "own_jacobians",
           "SMALL_DIM"]

_CALL = "cv.certify_contraction"

#: Up to this dimension the whole set is certified directly (tightest rho); above it, rows that
#: every matrix sends to zero are removed first and the norm extended (slightly looser).
SMALL_DIM = 24


@dataclass(frozen=True, repr=False)          # repr from _display.Summary
class Certificate(_display.Summary):
    """A contraction certificate (or the reason there is none).

    Attributes
    ----------
    certified : bool
        True iff ``rho < 1`` and the final check passed ("exact" or "interval").
    rho : float
        Upper bound on ``sup ||A||`` over the set in the certificate's norm (inf if none).
    norm : Norm or None
        The norm (:mod:`conservative.certify.norms`): ``str(cert.norm)`` describes it,
        ``cert.norm.to_dict()`` serialises it. None when no norm was proved.
    verified : Verified
        ``"exact"``, ``"interval"`` or ``"float"`` (then ``certified`` is False); a ``str``.
    lower : float
        Best lower bound on the JSR, ``rho(A_word)^(1/len(word))``.
    word : tuple of int or None
        Product attaining ``lower``: ``A[w[-1]] @ ... @ A[w[0]]``. If ``lower > 1`` it is a
        divergent switching product. For Map and box targets it indexes :attr:`samples`.
    reason : str
        Why not certified ("" when certified).
    method : str
        How the norm was found and checked.
    samples : ndarray or None
        The matrices ``word`` indexes when they are not the target's own vertices: the
        A-blocks of the map's own Jacobians at sampled points (a lower bound for the map,
        never for an enclosure's over-wide matrices), restricted to the rows that can be
        non-zero when the map is large; for an interval matrix, sampled matrices of the box.
    notes : tuple of str
        What the certificate assumed or noticed (the proved enclosure of the exact fixed
        point and the kinks inside it, removed coordinates, ...).

    The old attributes remain as read-only properties: ``P`` (quadratic form of a one-step
    quadratic norm), ``polytope`` (vertices of a polytope norm), ``k`` and ``Pk`` (lifted
    quadratic norms of products of length k).

    Examples
    --------
    >>> cert = certify_contraction([[[0.5, 1e6], [0.0, 0.5]]])   # huge norm, JSR 1/2
    >>> print(cert)                                              # doctest: +ELLIPSIS
    certified contraction: rho = 0.5... < 1
      norm: quadratic ||v||_P = sqrt(v^T P v)...
      check: exact
      method: ...
      JSR >= 0.5 (product word [0])
    """

    certified: bool
    rho: float
    norm: Norm | None
    verified: Verified
    lower: float
    word: tuple | None
    reason: str = ""
    method: str = ""
    samples: np.ndarray | None = field(default=None, repr=False)
    notes: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "verified", Verified(self.verified))

    # --- the old attributes ------------------------------------------------------------------

    @property
    def P(self) -> np.ndarray | None:
        """The quadratic form of a one-step quadratic norm (``A^T P A ⪯ rho^2 P``), else None."""
        return self.norm.P if isinstance(self.norm, QuadraticNorm) else None

    @property
    def polytope(self) -> np.ndarray | None:
        """Vertices (columns) of a polytope norm's unit ball ``absconv(polytope)``, else None."""
        return getattr(self.norm, "V", None) if getattr(self.norm, "family", "") == "polytope" \
            else None

    @property
    def k(self) -> int:
        """Product length of a lifted quadratic norm (1 otherwise)."""
        return getattr(self.norm, "k", 1) if getattr(self.norm, "family", "") == \
            "lifted quadratic" else 1

    @property
    def Pk(self) -> np.ndarray | None:
        """For a lifted norm: ``A_w^T Pk A_w ⪯ rho^(2k) Pk`` for every product of length k."""
        return self.norm.P if self.k > 1 else None

    @property
    def family(self) -> str:
        """The norm family ("quadratic", "weighted infinity", "polytope", ...; "none")."""
        return getattr(self.norm, "family", "none")

    # --- reading -----------------------------------------------------------------------------

    def __bool__(self) -> bool:
        return self.certified

    def __str__(self) -> str:
        head = (f"certified contraction: rho = {self.rho:.10g} < 1" if self.certified
                else "NOT certified")
        lines = [head, f"  norm: {self.norm if self.norm is not None else 'none'}",
                 f"  check: {self.verified}", f"  method: {self.method}",
                 f"  JSR >= {self.lower:.10g}"
                 + ("" if self.word is None else f" (product word {list(self.word)})")]
        if not self.certified:
            lines.append(f"  reason: {self.reason}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def _summary(self):
        """``(title, rows)`` of the repr and the HTML table (what matters, not P)."""
        title = (f"Certificate: certified, rho = {number(self.rho)} < 1" if self.certified
                 else "Certificate: NOT certified")
        rows = [("norm", f"{self.family} ({_source(self)})" if self.norm is not None
                 else "none proved"),
                ("verified", verified_words(self.verified)),
                ("JSR lower bound", f"{number(self.lower)}, word {format_word(self.word)}")]
        if not self.certified:
            rows.append(("reason", _clip(self.reason, 96)))
        if self.notes:
            rows.append(("notes", f"{len(self.notes)}: " + _clip(self.notes[0], 90)))
        return title, rows

    def to_dict(self) -> dict:
        """JSON-ready dictionary (arrays become nested lists, inf becomes None)."""
        def num(x):
            return None if x is None or not math.isfinite(x) else float(x)
        big = self.norm is not None and getattr(self.norm, "n", 0) > 2000
        return {
            "certified": self.certified, "rho": num(self.rho),
            "norm": None if self.norm is None else str(self.norm), "family": self.family,
            "norm_data": None if self.norm is None or big else self.norm.to_dict(),
            "P": None if self.P is None or big else self.P.tolist(),
            "verified": str(self.verified), "lower": num(self.lower),
            "word": None if self.word is None else list(self.word),
            "reason": self.reason, "method": self.method, "k": self.k,
            "Pk": None if self.Pk is None else self.Pk.tolist(),
            "polytope": None if self.polytope is None else self.polytope.T.tolist(),
            "notes": list(self.notes),
        }


def _source(cert) -> str:
    how = getattr(cert.norm, "found_by", "") or cert.method
    return _clip(how, 70)


def _clip(text: str, width: int = 110) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _refuse(lower, word, reason, samples=None) -> Certificate:
    return Certificate(False, math.inf, None, Verified.FLOAT, lower, word, reason,
                       "lower bound by products", samples=samples)


# ---------------------------------------------------------------------------------------------
# one target


def certify_target(target, *, tol: float = 1e-4, prefer: str = "quadratic",
                   deadline: Deadline | None = None, bar=None, coupling=None,
                   stop_below: float = -math.inf) -> Certificate:
    """Certify a target of :mod:`conservative.certify.targets` (the engine behind
    :func:`certify_contraction`, for callers that build targets themselves).

    Rows that every matrix sends to zero are removed first when the target is large (their
    coordinates do not change the JSR) and the norm is extended to them afterwards
    (:func:`conservative.certify.norms.extend_norm`). A ``coupling`` says that ``target`` is
    already the restriction of a larger set to ``coupling.keep``. With ``stop_below`` the
    search ends at the first norm proving a bound below it (no tightening).
    """
    dl = deadline if deadline is not None else Deadline(20.0)
    n = target.n
    keep = target.live_rows()
    if len(keep) == 0:
        cert = Certificate(True, 0.0, EuclideanNorm(n, "every matrix is zero"),
                           Verified.EXACT, 0.0, None, "", "every matrix is zero")
    elif len(keep) < n and n > SMALL_DIM:
        inner = certify_target(target.restrict(keep), tol=tol, prefer=prefer, deadline=dl,
                               bar=bar, stop_below=stop_below)
        cert = _extended(inner, target.coupling(keep))
    else:
        cert = _certify_whole(target, tol=tol, prefer=prefer, dl=dl, bar=bar,
                              stop_below=stop_below)
    return _extended(cert, coupling) if coupling is not None else cert


def _extended(cert: Certificate, coupling) -> Certificate:
    """A certificate on the kept coordinates, extended to all of them."""
    note = (f"{coupling.n - len(coupling.keep)} of {coupling.n} coordinates are sent to zero by "
            f"every matrix; the norm was found on the other {len(coupling.keep)} and extended")
    if not cert.certified or cert.norm is None:
        return replace(cert, notes=cert.notes + (note,))
    got = extend_norm(cert.norm, cert.rho, coupling)
    if got is None or not got[1] < 1:
        return replace(cert, certified=False, verified=Verified.FLOAT, notes=cert.notes + (
            note,), reason="the certificate of the coordinates not sent to zero could not be "
                           "extended to the others (too close to 1, or a norm without a "
                           "Euclidean bound such as a polytope norm)")
    return replace(cert, norm=got[0], rho=got[1], notes=cert.notes + (note,),
                   verified=Verified.weakest(cert.verified, coupling.verified),
                   method=cert.method + f"; found on the {len(coupling.keep)} coordinates not "
                   f"sent to zero by every matrix, extended to all {coupling.n}")


def _certify_whole(target, *, tol, prefer, dl, bar, stop_below=-math.inf) -> Certificate:
    verts = target.vertices() if not isinstance(target, MatrixSet) else None
    if verts is not None:
        cert = _certify_whole(MatrixSet(verts), tol=tol, prefer=prefer, dl=dl, bar=bar,
                              stop_below=stop_below)
        what = "box" if target.kind == "box" else "set (every choice of its kink slopes)"
        return replace(cert, samples=verts,
                       method=cert.method + f" (on the {len(verts)} vertices of the {what})")
    try:
        an = analyse(target, tol=tol, stop_at=1.0, prefer_quadratic=prefer == "quadratic",
                     stop_below=stop_below, deadline=dl, bar=bar, call=_CALL)
    except NonFiniteError:               # a JSR beyond float64 is certainly not below 1
        return _refuse(sys.float_info.max, None, "the joint spectral radius is beyond the "
                       "float64 range (a product's spectral radius^(1/length) exceeds 1.8e308):"
                       " the set does not contract")
    samples = None if isinstance(target, MatrixSet) else target.samples()
    return _choose(an, prefer, dl, samples)


def _choose(an: Analysis, prefer: str, dl: Deadline, samples) -> Certificate:
    """The certificate from everything :func:`analyse` proved (see certify_contraction)."""
    lower, word = an.lower, an.word
    if lower >= 1:
        where = "" if samples is None else " among sampled matrices of the set (see .samples)"
        return _refuse(lower, word, f"the product of length {len(word)}{where} has spectral "
                       f"radius^(1/{len(word)}) = {lower:.10g} >= 1 in floating point (numerical"
                       " evidence, not a proof: eigenvalues of defective products can err by "
                       "sqrt(eps) ||A||): switching along this word appears not to converge, so "
                       "no norm was sought", samples)

    def rank(u):
        one_step = isinstance(u.norm, QuadraticNorm)
        return (not (prefer == "quadratic" and one_step), u.value)

    proved = [u for u in an.uppers if u.verified.rigorous and u.norm is not None
              and u.value < 1]
    if proved:
        u = min(proved, key=rank)
        return Certificate(True, u.value, u.norm, u.verified, lower, word, "", u.method,
                           samples=samples)
    best = an.best()
    if best is None:                     # nothing bounded the set (the time ran out first)
        from .finders import UpperBound
        best = UpperBound(math.inf, "no upper bound computed", Verified.FLOAT)
    reason = (f"no norm with sup ||A|| < 1 was verified; JSR bracket [{lower:.10g}, "
              f"{best.value:.10g}] by {best.method}")
    if an.stopped:
        reason = (f"time limit: {an.stopped}. Pass a larger time_limit (or None) to continue; "
                  + reason)
    if lower > 1 - 1e-9:
        reason += (f"; the product word {list(word)} has spectral radius^(1/{len(word)}) "
                   "equal to 1 up to rounding, so the JSR is (numerically) 1 and the set "
                   "does not contract")
    if best.value < 1:
        reason += " (float evidence only: not a proof)"
    return Certificate(False, best.value, best.norm if best.verified.rigorous else None,
                       Verified.FLOAT, lower, word, reason, best.method, samples=samples)


# ---------------------------------------------------------------------------------------------
# the public call


def own_jacobians(F, x_box, theta_box, *, count: int = 8, seed: int = 0) -> np.ndarray:
    """The A-blocks of the map's own conservative Jacobians at points of a box.

    The centre, the two extreme corners and ``count`` seeded random points; each point
    contributes every element of its (finite) set. A lower bound computed from them is a bound
    for the map on the box, not for an enclosure's over-wide matrices. Distinct matrices in
    the order found (the centre's elements first, as ``F.jacobian`` lists them).
    """
    from .maps import sample_points
    points = sample_points(x_box, theta_box, count, seed)
    found = []
    for xp, tp in points:
        try:
            found.append(F.jacobian(xp, tp, hull=False).A.vertices)
        except ConservativeError:
            continue                       # a point outside the domain says nothing here
    if not found:
        return np.zeros((0, F.n, F.n))
    return distinct_matrices(np.concatenate(found))


def certify_contraction(target: Any, theta: Any = None, x: Any = None, *, tol: float = 1e-4,
                        time_limit: float | None = 20.0, prefer: str = "quadratic",
                        progress: bool | None = None) -> Certificate:
    """Find and verify a norm in which every A of the target has ``||A|| <= rho < 1``.

    For a set S (or its convex hull) the certificate is a norm with
    ``sup_{A in S} ||A|| <= rho < 1``, which implies JSR <= rho. The norm families of
    :data:`conservative.certify.finders.FINDERS` are tried cheapest first (Euclidean, weighted
    infinity with a Perron scaling, diagonal quadratic, discrete Lyapunov for one matrix, the
    SDP of a common quadratic norm, an LMI with a diagonal multiplier for sets of kink slopes,
    invariant polytopes, quadratic norms of products), each proved by its own check, exact
    (rationals) up to a few dozen coordinates and in rigorous floating point above. The
    search stops when the bound is within ``tol`` of the best lower bound; the tightest
    verified norm found is returned. No certificate is ever issued for a set with a product of
    spectral radius >= 1.

    Parameters
    ----------
    target : array_like (k, n, n), list of matrices, JacobianSet, interval matrix, or Map
        * matrices, or a JacobianSet ``js`` (its ``js.A`` is used; kept factored when large);
        * an interval matrix (attributes ``lo``, ``hi`` of shape (n, n) or (n, n + m); the first
          n columns): every matrix of the box is covered;
        * a Map ``F``: with point ``x`` and ``theta`` its set of A-blocks there (at a computed
          fixed point: every piece active on a proved enclosure of the exact fixed point); if
          either is a box ``(lo, hi)``, every A-block of every Jacobian on the box.
    theta, x : array_like or tuple (lo, hi), optional
        Only for a Map.
    tol : float
        Relative accuracy sought for rho; it never affects soundness.
    time_limit : float or None
        Seconds (None: no limit). No search level, solver call or check starts after it (one
        already running may finish); a certificate not reached in time is refused with a
        reason that starts with "time limit".
    prefer : {"quadratic", "tightest"}
        Which verified norm to return when several prove ``rho < 1``: the tightest one-step
        quadratic norm (what attractor computations use) or the tightest of all.
    progress : bool or None
        None: a progress bar (tqdm) when the call runs for more than 2 s and a terminal or
        notebook is attached; True: always; False: never.

    Returns
    -------
    Certificate
        ``.certified`` is True only after a rigorous check with ``rho < 1``. Otherwise
        ``.reason`` explains, and ``.lower``/``.word`` give the best product found.

    Raises
    ------
    ShapeError, NonFiniteError, InputError
        Bad matrices, NaN, empty sets, inconsistent boxes, a Map without a point.

    Examples
    --------
    >>> M = lambda c: [[1 + 0.25 - 0.25 * c, -0.25], [1, 0]]      # heavy ball, alpha=beta=1/4
    >>> cert = certify_contraction([M(1), M(3)])
    >>> cert.certified, cert.verified, cert.rho < 1
    (True, 'exact', True)
    >>> bad = certify_contraction([M(1), M(9)])                     # each rho(M) = 1/2
    >>> bad.certified, round(bad.lower, 6), bad.word
    (False, 1.207107, (0, 1))
    """
    from .maps import from_map, is_map, target_of

    tol = check_real(tol, name="tol", call=_CALL, minimum=0.0, strict=True)
    progress = check_progress(progress, call=_CALL)
    Deadline.from_time_limit(time_limit, call=_CALL)       # validate before any work
    if prefer not in ("quadratic", "tightest"):
        raise InputError(fail_message(_CALL, f"prefer={prefer!r}",
                                      'pass prefer="quadratic" or prefer="tightest"'))
    import_cvxpy()                       # the first import is slow; keep it off the clock
    dl = Deadline.from_time_limit(time_limit, call=_CALL)
    mt = from_map(target, theta, x, call=_CALL) if is_map(target) else \
        target_of(target, call=_CALL)
    with progress_bar(len(PHASES), _CALL, progress) as bar:
        cert = certify_target(mt.target, tol=tol, prefer=prefer, deadline=dl, bar=bar,
                              coupling=mt.coupling)
    return report_for_map(cert, mt, deadline=dl.at)


def report_for_map(cert: Certificate, mt, *, deadline: float,
                   stop_above: float = math.inf) -> Certificate:
    """Lower bound and word from the map's own Jacobians; refusals and notes of the target.
    ``stop_above``: the product search ends at the first length with a product above it."""
    from .search import product_lower_bound

    changes: dict = {}
    if mt.own is not None and len(mt.own):
        lower, word = product_lower_bound(mt.own, deadline=max(deadline, time.monotonic() + 1),
                                          stop_above=stop_above)
        changes.update(lower=lower, word=word, samples=mt.own)
        if not cert.certified and lower < 1 and not mt.refusal:
            changes["reason"] = (cert.reason + f"; the map's own Jacobians sampled there have "
                                 f"JSR >= {lower:.6g} < 1 only, so the refusal may be due to "
                                 "the width of the enclosure: a smaller box may certify")
    if mt.refusal:
        status = "certified" if cert.certified else "not certified"
        changes.update(certified=False, verified=Verified.FLOAT, reason=mt.refusal + (
            f" (the set counting those pieces: {status}, rho {cert.rho:.6g})"))
    if mt.notes:
        changes["notes"] = cert.notes + tuple(mt.notes)
    return replace(cert, **changes) if changes else cert

