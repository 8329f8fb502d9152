"""Contraction certificates: a norm in which every Jacobian block A has ``||A|| <= rho < 1``.

Piggyback differentiation ``J <- A J + B`` converges (to the attractor of the iterated function
system) when the set of A blocks is a contraction in *some* operator norm, which is equivalent
to JSR < 1. A :class:`Certificate` is that norm plus the bound, and says how it was checked:

* ``"exact"`` -- rational arithmetic on the exact values of the float64 input: ``P ≻ 0`` and
  ``rho^2 P - A^T P A ⪰ 0`` by exact LDL^T (quadratic norms; for boxes through an exact
  midpoint-radius enclosure), or an exact basis solve for each vertex image (polytope norms);
* ``"float"`` -- only floating point evidence; then ``certified`` is False.

Floating SDP/LP solutions are never trusted on their own: they only propose the norm.
"""

from __future__ import annotations

import math
import time
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import _exact
from ._spectral import spectral_lower_bound
from ._deadline import Deadline, check_progress, progress_bar
from ._types import as_float_array, check_real
from .errors import ConservativeError, InputError, NonFiniteError, ShapeError, fail_message
from .fixed_point_set import (is_numerical_fixed_point, jacobian_at_fixed_point,
                              kinks_near, refusal)
from .jsr import (PHASES, analyse, balanced, gripenberg, import_cvxpy, parse_matrix_set,
                  polytope_bound, quadratic_norm, spectral_radius)

__all__ = ["Certificate", "certify_contraction", "own_jacobians", "product_lower_bound"]

_CALL = "cv.certify_contraction"


@dataclass(frozen=True)
class Certificate:
    """A contraction certificate (or the reason there is none).

    Attributes
    ----------
    certified : bool
        True iff ``rho < 1`` and the final check passed in exact rational arithmetic.
    rho : float
        Upper bound on ``sup ||A||`` over the set in the certificate's norm (inf if none).
    norm : str
        The norm, e.g. ``"quadratic ||v||_P = sqrt(v^T P v)"``.
    P : ndarray or None
        The quadratic form (input coordinates) of a one-step quadratic norm:
        ``A^T P A ⪯ rho^2 P`` for every A. None for polytope and lifted norms.
    verified : str
        ``"exact"`` (rational arithmetic; box targets too, through an exact enclosure),
        ``"interval"`` (outward-rounded intervals; reserved, not produced at present) or
        ``"float"`` (then ``certified`` is False).
    lower : float
        Best lower bound on the JSR, ``rho(A_word)^(1/len(word))``.
    word : tuple of int or None
        Product attaining ``lower``: ``A[w[-1]] @ ... @ A[w[0]]``. If ``lower > 1`` it is a
        divergent switching product. For box targets it indexes :attr:`samples` (the box's
        vertices when there are few, else sampled corners and the midpoint).
    reason : str
        Why not certified ("" when certified).
    method : str
        How the norm was found and checked.
    polytope : ndarray or None
        Polytope vertices (columns) for polytope norms: unit ball ``absconv(polytope)``.
    k : int
        Product length of a lifted quadratic norm ``max_{|u|<k} rho^-|u| ||A_u v||_Pk``
        (1 otherwise).
    Pk : ndarray or None
        For a lifted norm: ``A_w^T Pk A_w ⪯ rho^(2k) Pk`` for every product of length k.
    samples : ndarray or None
        The matrices ``word`` indexes when they are not the target's own vertices: for a Map
        over a box, or at a computed fixed point near a kink, the A-blocks of the map's own
        Jacobians at sampled points (so ``lower`` is a bound for the map, never for an
        enclosure's over-wide matrices); for an interval matrix, sampled matrices of the box.
    notes : tuple of str
        What the certificate assumed or noticed about the point: the proved enclosure of the
        exact fixed point and the kinks inside it, or a kink within a few ulps of the point.

    Examples
    --------
    >>> cert = certify_contraction([[[0.5, 1e6], [0.0, 0.5]]])   # huge norm, JSR 1/2
    >>> print(cert)                                              # doctest: +ELLIPSIS
    certified contraction: rho = 0.5... < 1
      norm: quadratic ||v||_P = sqrt(v^T P v)
      check: exact
      method: ...
      JSR >= 0.5 (product word [0])
    """

    certified: bool
    rho: float
    norm: str
    P: np.ndarray | None
    verified: str
    lower: float
    word: tuple | None
    reason: str = ""
    method: str = ""
    polytope: np.ndarray | None = field(default=None, repr=False)
    k: int = 1
    Pk: np.ndarray | None = field(default=None, repr=False)
    samples: np.ndarray | None = field(default=None, repr=False)
    notes: tuple = ()

    def __bool__(self) -> bool:
        return self.certified

    def __str__(self) -> str:
        head = (f"certified contraction: rho = {self.rho:.10g} < 1" if self.certified
                else "NOT certified")
        lines = [head, f"  norm: {self.norm}", f"  check: {self.verified}",
                 f"  method: {self.method}",
                 f"  JSR >= {self.lower:.10g}"
                 + ("" if self.word is None else f" (product word {list(self.word)})")]
        if not self.certified:
            lines.append(f"  reason: {self.reason}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (arrays become nested lists, inf becomes None)."""
        def num(x):
            return None if x is None or not math.isfinite(x) else float(x)
        return {
            "certified": self.certified, "rho": num(self.rho), "norm": self.norm,
            "P": None if self.P is None else self.P.tolist(), "verified": self.verified,
            "lower": num(self.lower), "word": None if self.word is None else list(self.word),
            "reason": self.reason, "method": self.method, "k": self.k,
            "Pk": None if self.Pk is None else self.Pk.tolist(),
            "polytope": None if self.polytope is None else self.polytope.T.tolist(),
            "notes": list(self.notes),
        }


_QUAD = "quadratic ||v||_P = sqrt(v^T P v)"


def _lifted_name(k: int) -> str:
    return (f"lifted quadratic ||v|| = max over products A_u with |u| < {k} of "
            f"rho^-|u| ||A_u v||_Pk")


# ---------------------------------------------------------------------------------------------
# finite sets


def _certify_set(A: np.ndarray, *, tol: float, time_limit: float | None,
                 prefer: str, deadline: Deadline | None = None, bar=None) -> Certificate:
    dl = deadline if deadline is not None else Deadline(time_limit)
    try:
        an = analyse(A, tol=tol, stop_at=1.0,
                     stop_below=1.0 if prefer == "quadratic" else -math.inf, deadline=dl,
                     bar=bar, call=_CALL)
    except NonFiniteError:               # a JSR beyond float64 is certainly not below 1
        return _refuse(sys.float_info.max, None, "the joint spectral radius is beyond the "
                       "float64 range (a product's spectral radius^(1/length) exceeds 1.8e308):"
                       " the set does not contract")
    lower, word = an.lower, an.word
    if lower >= 1:
        return _refuse(lower, word, f"the product of length {len(word)} has spectral radius"
                       f"^(1/{len(word)}) = {lower:.10g} >= 1 in floating point (numerical "
                       "evidence, not a proof: eigenvalues of defective products can err by "
                       "sqrt(eps) ||A||): switching along this word appears not to converge, so "
                       "no norm was sought")
    # try exactly verified norms (one-step quadratic ones first if preferred, then from the
    # smallest bound up) and re-check each on the input matrices themselves
    def rank(u):
        plain_quadratic = u.P is not None and u.k == 1
        return (not (prefer == "quadratic" and plain_quadratic), u.value)

    # every candidate norm (even one only float-checked so far) gets the final exact check
    unchecked = 0
    for ub in sorted((u for u in an.uppers if u.P is not None or u.V is not None), key=rank):
        if ub.value >= 1:
            continue
        if dl.expired():                # no new exact check after the deadline
            if ub.verified == "exact":
                return _transferred(ub, lower, word, dl)
            unchecked += 1
            continue
        cert = _recheck(A, ub, lower, word)
        if cert is not None:
            return cert
    best = an.best()
    reason = (f"no norm with sup ||A|| < 1 was verified; JSR bracket [{lower:.10g}, "
              f"{best.value:.10g}] by {best.method}")
    if an.stopped or unchecked:
        skipped = an.stopped or f"{dl.describe()} reached after {dl.elapsed():.1f} s"
        if unchecked:
            skipped += f"; {unchecked} candidate norm(s) left without their exact check"
        reason = (f"time limit: {skipped}. Pass a larger time_limit (or None) to continue; "
                  + reason)
    if lower > 1 - 1e-9:
        reason += (f"; the product word {list(word)} has spectral radius^(1/{len(word)}) "
                   "equal to 1 up to rounding, so the JSR is (numerically) 1 and the set "
                   "does not contract")
    if best.value < 1:
        reason += " (float evidence only: not a proof)"
    return Certificate(False, best.value, "none verified" if best.verified != "exact"
                       else _norm_of(best), best.P if best.k == 1 else None, "float", lower,
                       word, reason, best.method)


def _norm_of(ub) -> str:
    if ub.V is not None:
        return "polytope (unit ball = symmetric convex hull of the columns of .polytope)"
    if ub.k > 1:
        return _lifted_name(ub.k)
    return _QUAD


def _recheck(A: np.ndarray, ub, lower: float, word: tuple) -> Certificate | None:
    """Final exact check of one candidate norm on the user's own matrices."""
    rho = ub.value
    if ub.V is not None:
        bound = polytope_bound(A, ub.V)
        if bound is None or bound >= 1:
            return None
        return Certificate(True, bound, _norm_of(ub), None, "exact", lower, word, "",
                           ub.method, polytope=ub.V)
    if ub.P is None:
        return None
    ok = (_exact.check_quadratic_products(A, ub.P, rho, ub.k) if ub.k > 1
          else _exact.check_quadratic(A, ub.P, rho))
    if not ok:
        return None
    if ub.k > 1:
        return Certificate(True, rho, _norm_of(ub), None, "exact", lower, word, "", ub.method,
                           k=ub.k, Pk=ub.P)
    return Certificate(True, rho, _norm_of(ub), ub.P, "exact", lower, word, "", ub.method)


def _transferred(ub, lower: float, word: tuple, dl: Deadline) -> Certificate:
    """A certificate from a bound that :func:`analyse` proved exactly on the balanced matrices.

    ``A = s D B D^-1`` holds exactly (analyse marks the bound "float" otherwise) and the norm
    was converted exactly (else it is None), so the proof for B is one for A: e.g.
    ``B^T Pb B ⪯ g^2 Pb`` gives ``A^T P A ⪯ (s g)^2 P`` with ``P = D^-1 Pb D^-1``. Used when the
    time limit leaves no room for the re-check on the input matrices.
    """
    method = (f"{ub.method}; proved exactly on the balanced matrices (A = s D B D^-1, exact); "
              f"the re-check on the input was skipped ({dl.describe()} reached)")
    if ub.V is not None:
        return Certificate(True, ub.value, _norm_of(ub), None, "exact", lower, word, "", method,
                           polytope=ub.V)
    if ub.k > 1:
        return Certificate(True, ub.value, _norm_of(ub), None, "exact", lower, word, "", method,
                           k=ub.k, Pk=ub.P)
    return Certificate(True, ub.value, _norm_of(ub), ub.P, "exact", lower, word, "", method)


def _refuse(lower, word, reason, samples=None) -> Certificate:
    return Certificate(False, math.inf, "none", None, "float", lower, word, reason,
                       "lower bound by products", samples=samples)


# ---------------------------------------------------------------------------------------------
# interval boxes lo <= A <= hi


def _box_samples(lo: np.ndarray, hi: np.ndarray, count: int = 12) -> np.ndarray:
    """Midpoint, the two extreme corners and a few deterministic random corners of the box."""
    rng = np.random.default_rng(0)
    corners = [np.where(rng.random(lo.shape) < 0.5, lo, hi) for _ in range(count)]
    return np.stack([(lo + hi) / 2, lo, hi, *corners])


def _box_vertices(lo: np.ndarray, hi: np.ndarray, limit: int) -> np.ndarray | None:
    """All vertices of the box if there are at most ``limit`` (few uncertain entries)."""
    free = np.flatnonzero(lo.ravel() != hi.ravel())
    if 2 ** len(free) > limit:
        return None
    out = np.repeat(lo.ravel()[None], 2 ** len(free), axis=0)
    bits = (np.arange(2 ** len(free))[:, None] >> np.arange(len(free))[None, :]) & 1
    out[:, free] = np.where(bits == 1, hi.ravel()[free], lo.ravel()[free])
    return out.reshape(-1, *lo.shape)


def _certify_box(lo: np.ndarray, hi: np.ndarray, *, tol: float, time_limit: float | None,
                 prefer: str, max_vertices: int = 64, deadline: Deadline | None = None,
                 bar=None) -> Certificate:
    """Certify every matrix of the box.

    With few uncertain entries the box is the convex hull of its vertices, and every norm
    check used here (``||A||`` convex in A; products multi-convex) holds on the hull once it
    holds at the vertices, so the finite-set certifier applies exactly. Otherwise a quadratic
    norm is checked through an exact enclosure of ``A^T P A`` over the box.
    """
    dl = deadline if deadline is not None else Deadline(time_limit)
    verts = _box_vertices(lo, hi, max_vertices)
    if verts is not None:
        cert = _certify_set(verts, tol=tol, time_limit=None, prefer=prefer, deadline=dl,
                            bar=bar)
        return replace(cert, samples=verts,
                       method=cert.method + f" (on the {len(verts)} vertices of the box)")
    samples = _box_samples(lo, hi)
    lower, word = product_lower_bound(samples, deadline=dl.part(0.3).at)
    if lower >= 1:
        return _refuse(lower, word, f"sampled matrices of the box have a product of "
                       f"length {len(word)} with spectral radius^(1/{len(word)}) = "
                       f"{lower:.10g} >= 1 (see .samples)", samples)
    lo_b, hi_b, d = _balance_box(lo, hi)
    mid = (lo_b + hi_b) / 2
    if dl.expired():
        return _refuse(lower, word, f"time limit: {dl.describe()} reached after "
                       f"{dl.elapsed():.1f} s, before a norm was sought for the box", samples)
    _, P = quadratic_norm(np.concatenate([mid[None], _box_samples(lo_b, hi_b)]), lower / 2,
                          _box_norm(lo_b, hi_b) * (1 + 1e-9), rtol=min(max(tol, 1e-8), 1e-4),
                          deadline=dl.at)
    P = P / d[:, None] / d[None, :]                     # back to input coordinates
    P = np.vectorize(_exact.dyadic_round)(P / np.abs(P).max())
    P = (P + P.T) / 2
    try:
        gamma = _box_gamma(lo, hi, P)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError):
        gamma = math.inf                                # rounded P not definite: no proof
    if not math.isfinite(gamma):
        return Certificate(False, math.inf, _QUAD, P, "float", lower, word,
                           "the quadratic norm found for the sampled matrices is numerically "
                           "singular, so it cannot be checked over the box",
                           "quadratic norm from SDP on sampled matrices", samples=samples)
    for eps in (1e-9, 1e-6, 1e-3):
        g = _exact.dyadic_round(gamma * (1 + eps), 40)
        if not g < 1:
            break
        if dl.expired():                # no new exact check after the deadline
            return Certificate(False, math.inf, _QUAD, P, "float", lower, word,
                               f"time limit: {dl.describe()} reached after "
                               f"{dl.elapsed():.1f} s, before the exact check over the box "
                               f"(float bound {gamma:.6g})",
                               "quadratic norm from SDP on sampled matrices", samples=samples)
        if _exact.check_quadratic_box(lo, hi, P, g):
            return Certificate(True, g, _QUAD, P, "exact", lower, word, "",
                               "quadratic norm from SDP on sampled matrices; exact "
                               "midpoint-radius enclosure of A^T P A over the whole box",
                               samples=samples)
    return Certificate(False, max(gamma, lower), _QUAD, P, "float", lower, word,
                       f"the quadratic norm found bounds the box only by {gamma:.6g} >= 1 "
                       f"(sampled JSR >= {lower:.6g}); the box may be too wide or need a "
                       "non-quadratic norm", "quadratic norm from SDP on sampled matrices",
                       samples=samples)


def product_lower_bound(mats: np.ndarray, *, deadline: float) -> tuple[float, tuple]:
    """``(rho(A_w)^(1/|w|), w)`` for the best product ``A_w`` of ``mats`` found by a short
    branch-and-bound search (a floating-point lower bound on the JSR of ``mats``).

    Rows that every matrix sends to zero are dropped first: the products' spectral radii are
    those of the blocks on the other rows.
    """
    keep = np.flatnonzero(np.any(mats != 0, axis=(0, 2)))
    if len(keep) == 0:
        return 0.0, (0,)
    sub = mats[:, keep[:, None], keep[None, :]]
    B, _, s, _ = balanced(sub)
    rho1 = spectral_radius(B)
    quick = gripenberg(B, alpha=float(rho1.max()), word=(int(rho1.argmax()),), delta=1e-3,
                       max_length=8, max_nodes=2000, deadline=deadline)
    word = tuple(int(i) for i in quick.word)
    word = min(word[r:] + word[:r] for r in range(len(word)))
    estimate = quick.alpha * s
    if estimate > 0:               # a float eigenvalue can overshoot: prove the bound
        estimate, _ = spectral_lower_bound(sub, word, estimate)
    return estimate, word


def _balance_box(lo, hi):
    _, d, _, _ = balanced(np.stack([np.maximum(np.abs(lo), np.abs(hi))]))
    return lo * d[None, :] / d[:, None], hi * d[None, :] / d[:, None], d


def _box_norm(lo, hi) -> float:
    return float(np.linalg.norm(np.maximum(np.abs(lo), np.abs(hi)), 2))


def _box_gamma(lo, hi, P) -> float:
    """Float estimate of the smallest gamma that :func:`_exact.check_quadratic_box` accepts."""
    c, r = (lo + hi) / 2, (hi - lo) / 2
    pc, pr = P @ c, np.abs(P) @ r
    sc = c.T @ pc
    sr = np.abs(c.T) @ pr + r.T @ np.abs(pc) + r.T @ pr
    sc, sr = (sc + sc.T) / 2, np.maximum(sr, sr.T)
    dd = np.exp2(np.round(np.log2(np.diag(P)) / 2))
    rad = float(spectral_radius((sr / dd[:, None] / dd[None, :])))
    M = sc + rad * np.diag(dd ** 2)
    L = np.linalg.cholesky(P)
    G = np.linalg.solve(L, np.linalg.solve(L, M).T)
    return float(math.sqrt(max(np.linalg.eigvalsh((G + G.T) / 2).max(), 0.0)))


# ---------------------------------------------------------------------------------------------
# dispatch


def _is_box(value: Any, shape) -> bool:
    if not isinstance(value, tuple) or len(value) != 2:
        return False
    if shape is None:
        return True
    return all(np.shape(v) == tuple(shape) for v in value)


def _interval_bounds(obj: Any, call: str):
    lo = as_float_array(obj.lo, name="target.lo", call=call)
    hi = as_float_array(obj.hi, name="target.hi", call=call)
    if lo.ndim != 2 or lo.shape != hi.shape or lo.shape[1] < lo.shape[0] or lo.shape[0] == 0:
        raise ShapeError(fail_message(
            call, f"an interval matrix with lo {lo.shape} and hi {hi.shape}",
            "pass lo and hi of equal shape (n, n) or (n, n + m); the first n columns are A"))
    n = lo.shape[0]
    lo, hi = lo[:, :n], hi[:, :n]
    if np.any(lo > hi):
        raise InputError(fail_message(call, "an interval matrix with lo > hi somewhere",
                                      "pass boxes with lo <= hi entrywise"))
    return lo, hi


@dataclass(frozen=True)
class _MapTarget:
    """What ``certify_contraction(F, theta, x)`` certifies, and what it reports besides."""

    kind: str                       # "set" or "box"
    data: list                      # [matrices] or [lo, hi]
    own: np.ndarray | None = None   # the map's own A-blocks at sampled points (for .lower)
    notes: tuple = ()
    refusal: str = ""               # when set, never certified (the reason)


def _from_map(F: Any, theta: Any, x: Any) -> _MapTarget:
    if x is None or theta is None:
        raise InputError(fail_message(
            _CALL, "a Map without x and theta",
            "pass the point (or boxes) as certify_contraction(F, theta=..., x=...)"))
    shape_x = getattr(F, "state_shape", None)
    shape_t = getattr(F, "param_shape", None)
    if _is_box(x, shape_x) or _is_box(theta, shape_t):
        xb = x if _is_box(x, shape_x) else (x, x)
        tb = theta if _is_box(theta, shape_t) else (theta, theta)
        lo, hi = _interval_bounds(F.enclose(xb, tb), _CALL)
        return _MapTarget("box", [lo, hi], own=own_jacobians(F, xb, tb))
    x = as_float_array(x, name="x", call=_CALL, shape=shape_x)
    theta = as_float_array(theta, name="theta", call=_CALL, shape=shape_t)
    if is_numerical_fixed_point(F, x, theta):
        # the question is about the exact fixed point: count every piece active near it
        js, enc = jacobian_at_fixed_point(F, theta, x, hull=True)
        A = parse_matrix_set(js.A.vertices, call=_CALL, name="the A-blocks at the fixed point")
        notes = (str(enc).replace("\n ", ";"),)
        own = own_jacobians(F, (enc.lo, enc.hi), (theta, theta)) if enc.kinks else None
        return _MapTarget("set", [A], own=own, notes=notes,
                          refusal="" if enc.proven else refusal(enc))
    A = parse_matrix_set(F.jacobian(x, theta, hull=True).A.vertices, call=_CALL,
                         name="F.jacobian(x, theta).A.vertices")
    near = kinks_near(F, _ulp_box(x, 4), _ulp_box(theta, 4))
    notes = () if not near else (
        "a kink lies within 4 ulps of the point (" + "; ".join(near) + "); the set is the one "
        "at the point as given, whose pieces a rounding of x could change",)
    return _MapTarget("set", [A], notes=notes)


def _ulp_box(v: np.ndarray, ulps: int):
    lo, hi = np.array(v, dtype=float), np.array(v, dtype=float)
    for _ in range(ulps):
        lo, hi = np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)
    return lo, hi


def own_jacobians(F, x_box, theta_box, *, count: int = 8, seed: int = 0) -> np.ndarray:
    """The A-blocks of the map's own conservative Jacobians at points of a box.

    The centre, the two extreme corners and ``count`` seeded random points; each point
    contributes every element of its (finite) set. A lower bound computed from them is a bound
    for the map on the box, not for an enclosure's over-wide matrices.
    """
    lo_x, hi_x = (np.asarray(v, dtype=float) for v in x_box)
    lo_t, hi_t = (np.asarray(v, dtype=float) for v in theta_box)
    rng = np.random.default_rng(seed)
    points = [((lo_x + hi_x) / 2, (lo_t + hi_t) / 2), (lo_x, lo_t), (hi_x, hi_t)]
    points += [(lo_x + rng.random(lo_x.shape) * (hi_x - lo_x),
                lo_t + rng.random(lo_t.shape) * (hi_t - lo_t)) for _ in range(count)]
    found = []
    for xp, tp in points:
        try:
            found.append(F.jacobian(np.clip(xp, lo_x, hi_x), np.clip(tp, lo_t, hi_t),
                                    hull=False).A.vertices)
        except ConservativeError:
            continue                       # a point outside the domain says nothing here
    if not found:
        return np.zeros((0, F.n, F.n))
    return np.unique(np.concatenate(found), axis=0)


def certify_contraction(target: Any, theta: Any = None, x: Any = None, *, tol: float = 1e-4,
                        time_limit: float | None = 20.0, prefer: str = "quadratic",
                        progress: bool | None = None) -> Certificate:
    """Find and exactly verify a norm in which every A of the target has ``||A|| <= rho < 1``.

    For a set S (or its convex hull) the certificate is a norm with
    ``sup_{A in S} ||A|| <= rho < 1``. Quadratic norms ``||v||_P = sqrt(v^T P v)`` are checked
    as ``P ≻ 0`` and ``rho^2 P - A^T P A ⪰ 0`` for every vertex (convex in A, so the hull
    follows) by exact LDL^T on the rational values of the float64 data. Lifted quadratic and
    polytope norms are checked exactly too (see :mod:`conservative._exact`). An exact check
    implies JSR <= rho, so no certificate is ever issued for a set with a product of spectral
    radius >= 1.

    Parameters
    ----------
    target : array_like (k, n, n), list of matrices, JacobianSet, interval matrix, or Map
        * matrices, or a JacobianSet ``js`` (its ``js.A.vertices`` are used);
        * an interval matrix (attributes ``lo``, ``hi`` of shape (n, n) or (n, n + m); the first
          n columns): every matrix of the box is covered;
        * a Map ``F``: with point ``x`` and ``theta`` the set ``F.jacobian(x, theta).A``; if
          either is a box ``(lo, hi)``, the enclosure ``F.enclose(x_box, theta_box)``.
    theta, x : array_like or tuple (lo, hi), optional
        Only for a Map.
    tol : float
        Relative accuracy sought for rho (bisection of the SDP, pruning of the product search);
        it never affects soundness, only how close rho gets to the JSR.
    time_limit : float or None
        Seconds (None: no limit). No search level, solver call or exact check starts after
        it (one already running may finish); a certificate not reached in time is refused
        with a reason that starts with "time limit".
    progress : bool or None
        None: a progress bar (tqdm) when the call runs for more than 2 s and a terminal or
        notebook is attached; True: always; False: never.
    prefer : {"quadratic", "tightest"}
        Which verified norm to return when several prove ``rho < 1``: a one-step quadratic
        norm (what attractor computations use) or the one with the smallest rho.

    Returns
    -------
    Certificate
        ``.certified`` is True only after an exact check with ``rho < 1``. Otherwise
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
    tol = check_real(tol, name="tol", call=_CALL, minimum=0.0, strict=True)
    progress = check_progress(progress, call=_CALL)
    Deadline.from_time_limit(time_limit, call=_CALL)       # validate before any work
    import_cvxpy()                       # the first import is slow; keep it off the clock
    dl = Deadline.from_time_limit(time_limit, call=_CALL)
    if prefer not in ("quadratic", "tightest"):
        raise InputError(fail_message(_CALL, f"prefer={prefer!r}",
                                      'pass prefer="quadratic" or prefer="tightest"'))
    if callable(getattr(target, "jacobian", None)) and callable(getattr(target, "enclose", None)):
        mt = _from_map(target, theta, x)
    elif hasattr(target, "lo") and hasattr(target, "hi"):
        mt = _MapTarget("box", list(_interval_bounds(target, _CALL)))
    else:
        mt = _MapTarget("set", [parse_matrix_set(target, call=_CALL, name="target")])
    with progress_bar(len(PHASES), _CALL, progress) as bar:
        cert = _certify(mt.kind, mt.data, tol=tol, time_limit=None, prefer=prefer, deadline=dl,
                        bar=bar)
    return _report_for_map(cert, mt, deadline=dl.at)


def _report_for_map(cert: Certificate, mt: _MapTarget, *, deadline: float) -> Certificate:
    """Lower bound and word from the map's own Jacobians; refusals and notes of the target."""
    changes: dict = {}
    if mt.own is not None and len(mt.own):
        lower, word = product_lower_bound(mt.own, deadline=max(deadline, time.monotonic() + 1))
        changes.update(lower=lower, word=word, samples=mt.own)
        if not cert.certified and lower < 1 and not mt.refusal:
            changes["reason"] = (cert.reason + f"; the map's own Jacobians sampled there have "
                                 f"JSR >= {lower:.6g} < 1 only, so the refusal may be due to "
                                 "the width of the enclosure: a smaller box may certify")
    if mt.refusal:
        status = "certified" if cert.certified else "not certified"
        changes.update(certified=False, verified="float", reason=mt.refusal + (
            f" (the set counting those pieces: {status}, rho {cert.rho:.6g})"))
    if mt.notes:
        changes["notes"] = cert.notes + mt.notes
    return replace(cert, **changes) if changes else cert


# ---------------------------------------------------------------------------------------------
# reduction: coordinates that every matrix sends to zero


#: Largest dimension certified directly (exact rational LDL^T grows like n^3 with long numbers).
MAX_EXACT_DIM = 80
#: Up to this dimension the whole set is certified directly (tightest rho); above it, rows that
#: every matrix sends to zero are removed first and the certificate lifted (slightly looser).
SMALL_DIM = 24


def _certify(kind: str, data: list, *, tol, time_limit, prefer, deadline=None,
             bar=None) -> Certificate:
    """Certify a set or a box, first removing the rows that are zero in every matrix.

    If rows Z vanish in every matrix, then ``(A v)_Z = 0`` and every product's spectral
    radius is that of the product of the ``N x N`` blocks (N the other rows), so the set's JSR
    is the JSR of the blocks. A quadratic certificate ``P_N, rho_N`` for the blocks lifts to the
    whole space (:func:`_lift`). At a Lasso solution N is the support.
    """
    dl = deadline if deadline is not None else Deadline(time_limit)
    mags = np.abs(data[0]) if kind == "set" else np.maximum(np.abs(data[0]), np.abs(data[1]))
    bound = mags.max(axis=0) if kind == "set" else mags
    n = bound.shape[0]
    keep = np.flatnonzero(np.any(bound != 0, axis=1))
    if 0 < len(keep) < n and n > SMALL_DIM:
        sub = [d[..., keep[:, None], keep[None, :]] for d in data]
        cert = _certify(kind, sub, tol=tol, time_limit=None, prefer=prefer, deadline=dl,
                        bar=bar)
        if cert.certified and cert.P is not None:
            return _lift(cert, keep, bound, n)
        if n > MAX_EXACT_DIM:
            return replace(cert, certified=False, reason=cert.reason or (
                f"the {len(keep)} coordinates left after removing zero rows were certified "
                "only in a non-quadratic norm, which is not lifted at this size"))
    if len(keep) == 0:
        return Certificate(True, 0.0, _QUAD, np.eye(n), "exact", 0.0, None, "",
                           "every matrix is zero")
    if n > MAX_EXACT_DIM and len(keep) == n:
        return Certificate(False, math.inf, "none", None, "float", math.nan, None,
                           f"{n} coordinates, none sent to zero by every matrix: beyond the "
                           f"size ({MAX_EXACT_DIM}) where the exact check is run",
                           "no attempt")
    if kind == "box":
        return _certify_box(*data, tol=tol, time_limit=None, prefer=prefer, deadline=dl,
                            bar=bar)
    return _certify_set(data[0], tol=tol, time_limit=None, prefer=prefer, deadline=dl, bar=bar)


def _lift(cert: Certificate, keep: np.ndarray, bound: np.ndarray, n: int) -> Certificate:
    """Extend a quadratic certificate on the rows ``keep`` to all n coordinates.

    With ``P = blockdiag(P_N, c I)`` and any ``delta > 0``, for every A of the set
    ``||A v||_P^2 = ||A_NN v_N + A_NZ v_Z||_{P_N}^2 <= (1 + delta) rho_N^2 ||v_N||^2 +
    (1 + 1/delta) K^2 ||v_Z||^2`` with ``K^2 >= lambda_max(P_N) ||A_NZ||_F^2``; choosing
    ``rho'^2 = (1 + delta) rho_N^2 = rho_N^2 + (1 - rho_N^2)/256 < 1`` and
    ``c = (1 + 1/delta) K^2 / rho'^2`` gives ``||A||_P <= rho'``. K is bounded in exact
    rationals (Gershgorin for lambda_max).
    """
    from fractions import Fraction

    zero = np.setdiff1d(np.arange(n), keep)
    coupling = bound[keep[:, None], zero[None, :]]
    frob2 = sum((Fraction(float(v)) ** 2 for v in coupling.ravel() if v != 0), Fraction(0))
    P_N = _exact.to_fractions(cert.P)
    lam_max = max(sum((abs(v) for v in row), Fraction(0)) for row in P_N)
    rho = Fraction(float(cert.rho))
    if rho == 0:
        rho = Fraction(1, 2 ** 30)
    rho2 = rho ** 2 + (1 - rho ** 2) / 256         # rho' only slightly above rho_N
    delta = rho2 / rho ** 2 - 1
    c = (1 + 1 / delta) * lam_max * frob2 / rho2 if frob2 else Fraction(1)
    try:
        c_up = _exact.float_at_least(c) if frob2 else 1.0
    except OverflowError:
        c_up = math.inf
    if not math.isfinite(c_up):
        return replace(cert, certified=False, reason=(
            "the coupling to the coordinates sent to zero is too large to lift the norm in "
            "float64; rescale the problem"))
    rho_up = _exact.float_at_least(Fraction(math.sqrt(float(rho2))))
    while Fraction(rho_up) ** 2 < rho2:          # round the square root up, exactly checked
        rho_up = float(np.nextafter(rho_up, math.inf))
    if not rho_up < 1:
        return replace(cert, certified=False, rho=rho_up, reason=(
            "the certificate of the non-zero rows is too close to 1 to be lifted"))
    P = np.zeros((n, n))
    P[np.ix_(keep, keep)] = cert.P
    P[zero, zero] = c_up
    return replace(cert, rho=rho_up, P=P, polytope=None, Pk=None, k=1,
                   method=f"{cert.method}; on the {len(keep)} coordinates not sent to zero by "
                          f"every matrix, lifted to all {n} exactly")
