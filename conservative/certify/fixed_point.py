"""Rigorous certification of a map at its (unknown, exact) fixed point.

A computed ``x_k`` is not the fixed point ``x̄``, and the Jacobian at ``x_k`` need not be the one
at ``x̄`` (a kink may sit in between). :func:`certify_fixed_point` proves that

1. a box ``X`` around ``x_k`` contains a fixed point ``x̄`` of F: Krawczyk's test
   (:func:`conservative.fixed_point_enclosure`) or, when it does not close, Banach's theorem on
   a ball of the certified norm inside the box;
2. every element of every conservative Jacobian of F on ``X`` has A-block with
   ``||A|| <= rho < 1`` in one norm (so F is a rho-contraction on the box, by the Clarke
   mean-value theorem: the Clarke Jacobian lies in the hull of any conservative one). This
   needs F Lipschitz on the box: nonsmooth primitives are continuous by construction, but a
   ``cv.where`` is continuous only as far as its checks go, so a box meeting the boundary of
   one is refused;
3. hence ``D_F(x̄, theta)`` lies in the box's set, and the certificate holds at ``x̄``.

Large maps are certified on the rows that can be non-zero on the box (the support of a Lasso
solution, the active units of a layer), with the kink slopes kept as intervals
(:mod:`conservative.certify.maps`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .._deadline import Deadline, check_progress, progress_bar
from .._types import as_float_array, check_int, check_real
from ..fixed_point_set import fixed_point_enclosure
from ..interval import IntervalMatrix
from .contraction import Certificate, certify_target, report_for_map
from .maps import box_target, probe_rows
from .norms import QuadraticNorm
from .. import _display
from .report import Verified, format_word, number, verified_words
from .rigorous import lambda_min_lower, sqrt_up, upper_sum
from .sdp import import_cvxpy

__all__ = ["FixedPointCertificate", "certify_fixed_point", "box_certificate"]

_CALL = "cv.certify_fixed_point"


@dataclass(frozen=True, repr=False)          # repr from _display.Summary
class FixedPointCertificate(_display.Summary):
    """Result of :func:`certify_fixed_point`.

    Attributes
    ----------
    certified : bool
    certificate : Certificate
        The contraction certificate valid on the whole box (hence at ``x̄``).
    x_box : tuple of ndarray
        ``(lo, hi)``: a box proved to contain the exact fixed point (when certified).
    radius : float
        Proved bound on ``||x_k - x̄||_inf``.
    reason : str
        Why not certified ("" when certified).
    jacobian : IntervalMatrix
        Entrywise enclosure of every ``[A B]`` of every conservative Jacobian over the box
        (computed on first access: for large maps it is a dense ``n x (n + m)`` matrix).
    """

    certified: bool
    certificate: Certificate | None
    x_box: tuple
    radius: float
    source: tuple = field(default=(), repr=False, compare=False)
    reason: str = ""
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def jacobian(self) -> IntervalMatrix | None:
        if "jacobian" not in self.cache:
            if not self.source:
                return None
            F, theta = self.source
            self.cache["jacobian"] = F.enclose(self.x_box, theta)
        return self.cache["jacobian"]

    @property
    def rho(self) -> float:
        """The contraction bound on the box (inf when not certified)."""
        return self.certificate.rho if self.certified else math.inf

    @property
    def verified(self) -> Verified:
        return self.certificate.verified if self.certified else Verified.FLOAT

    @property
    def lower(self) -> float:
        """A lower bound on the JSR of the map's own Jacobians near the fixed point."""
        return self.certificate.lower if self.certificate is not None else math.nan

    @property
    def word(self):
        """The product attaining :attr:`lower` (indexes ``certificate.samples``)."""
        return self.certificate.word if self.certificate is not None else None

    def __str__(self) -> str:
        if not self.certified:
            text = f"fixed point not certified: {self.reason}"
            if self.certificate is not None and np.isfinite(self.lower):
                text += (f"\n  the map's own Jacobians near x: JSR >= {self.lower:.10g} "
                         f"(product word {list(self.word)})")
            return text
        c = self.certificate
        return (f"fixed point certified: ||x_k - x̄||_inf <= {self.radius:.3e}; every Jacobian "
                f"on the box contracts with rho = {c.rho:.6g} in {c.norm} (check: {c.verified})")

    def _summary(self):
        """``(title, rows)`` of the repr and the HTML table."""
        c = self.certificate
        title = (f"FixedPointCertificate: certified, rho = {number(self.rho)} < 1"
                 if self.certified else "FixedPointCertificate: NOT certified")
        rows = [("fixed point", f"in a proved box, ||x - x̄||_inf <= {self.radius:.3e}"
                 if self.certified else "not located")]
        if c is not None:
            rows += [("norm", c.family), ("verified", verified_words(self.verified)),
                     ("JSR lower bound", f"{number(c.lower)}, word {format_word(c.word)}")]
        if not self.certified:
            text = " ".join(self.reason.split())
            rows.append(("reason", text if len(text) <= 96 else text[:93] + "..."))
        return title, rows

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the box as lists; the certificate's own dictionary)."""
        return {"certified": self.certified, "radius": self.radius if math.isfinite(
                    self.radius) else None,
                "x_box": [np.asarray(v).tolist() for v in self.x_box],
                "reason": self.reason,
                "certificate": None if self.certificate is None else self.certificate.to_dict()}


def box_certificate(F, theta, x_box, *, x_point=None, tol: float = 1e-4,
                    deadline: Deadline, call: str = _CALL, enclosure=None) -> Certificate:
    """Certify every A-block of every Jacobian of F on ``x_box`` at ``theta`` (a point or a
    box); the lower bound and word from the map's own Jacobians sampled there."""
    lo_t, hi_t = theta if isinstance(theta, tuple) else (theta, theta)
    mt = box_target(F, x_box, (lo_t, hi_t), call=call, x_point=x_point, enclosure=enclosure)
    cert = certify_target(mt.target, tol=tol, deadline=deadline, coupling=mt.coupling)
    return report_for_map(cert, mt, deadline=deadline.at)


def _where_in(F, theta, enc) -> str:
    """The refusal for an enclosure whose box meets a cv.where boundary ("" if none: the
    enclosure's caveat says whether one does)."""
    return _meets_where(F, theta, np.asarray(enc.lo), np.asarray(enc.hi)) if enc.caveat else ""


def _meets_where(F, theta, lo, hi) -> str:
    met: list = []
    probe_rows(F, (lo, hi), (theta, theta), call=_CALL, boundaries=met)
    return _where_refusal(F, met)


def _where_refusal(F, met) -> str:
    if not met:
        return ""
    node = met[0]
    where = F.program.expression(node)
    src = F.program.graph.nodes[node]["source"]
    return (f"the box meets the boundary of `{where}` (defined at {src}); the continuity of a "
            "cv.where is checked only at evaluated points, so the mean-value argument is not "
            "applied across it. Write kinks you want certified with cv.relu / cv.maximum / "
            "cv.minimum / cv.clip / cv.soft_threshold")


def _refused(F, theta, lo, hi, reason, dl, cert=None) -> FixedPointCertificate:
    """A refusal that still reports the best lower bound of the map's own Jacobians on the box
    (sampled points), so that a divergent switching word is named when there is one."""
    if cert is None and not dl.expired():
        from .maps import own_jacobians_restricted
        from .search import product_lower_bound
        rows, _ = probe_rows(F, (lo, hi), (theta, theta), call=_CALL)
        own = own_jacobians_restricted(F, (lo, hi), (theta, theta), rows, call=_CALL) \
            if len(rows) else np.zeros((0, 0, 0))
        if len(own):
            lower, word = product_lower_bound(own, deadline=time.monotonic() + 2.0)
            cert = Certificate(False, math.inf, None, Verified.FLOAT, lower, word, reason,
                               "lower bound by products of the map's own Jacobians on the box",
                               samples=own)
    return FixedPointCertificate(False, cert, (lo, hi), math.inf, (F, theta), reason)


def certify_fixed_point(F, theta, x, *, radius: float | None = None, attempts: int = 8,
                        time_limit: float | None = 60.0, progress: bool | None = None
                        ) -> FixedPointCertificate:
    """Prove that F contracts at its exact fixed point near ``x``, and locate that point.

    Parameters
    ----------
    F : Map
    theta : array_like
        Parameters (a point).
    x : array_like
        An approximate fixed point (e.g. ``cv.fixed_point(F, x0, theta).x``).
    radius : float, optional
        Half-width of the first box tried by the ball argument when Krawczyk's test does not
        close (default: 100 times the residual, at least 1e-9).
    attempts : int
        Box sizes tried by the ball argument (the box grows when too small to contain the
        ball, shrinks when its set is too wide to certify).
    time_limit : float or None
        Seconds; no new box is tried after it (then "not certified: time limit").
    progress : bool or None
        A progress bar when the call runs long (None: automatic).

    Returns
    -------
    FixedPointCertificate

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> X, y = cv.datasets.lasso_small()
    >>> F = cv.algorithms.forward_backward_lasso(X, y)
    >>> w = cv.fixed_point(F, np.zeros(8), 5.0).x
    >>> res = cv.certify_fixed_point(F, 5.0, w)
    >>> res.certified, res.radius < 1e-7
    (True, True)
    """
    x = as_float_array(x, name="x", call=_CALL, shape=F.state_shape)
    theta = as_float_array(theta, name="theta", call=_CALL, shape=F.param_shape)
    attempts = check_int(attempts, name="attempts", call=_CALL, minimum=1)
    if radius is not None:
        radius = check_real(radius, name="radius", call=_CALL, minimum=0.0, strict=True)
    progress = check_progress(progress, call=_CALL)
    import_cvxpy()
    dl = Deadline.from_time_limit(time_limit, call=_CALL)
    with progress_bar(attempts + 1, _CALL, progress) as bar:
        enc = fixed_point_enclosure(F, theta, x)
        if enc.proven and radius is None:
            lo, hi = np.asarray(enc.lo), np.asarray(enc.hi)
            why = _where_in(F, theta, enc)
            if why:
                return _refused(F, theta, lo, hi, why, dl)
            cert = box_certificate(F, theta, (lo, hi), x_point=x, deadline=dl, enclosure=enc)
            bar.update()
            if cert.certified:
                return FixedPointCertificate(True, cert, (lo, hi), enc.radius, (F, theta))
            if cert.lower >= 1 or dl.expired():
                return _refused(F, theta, lo, hi, f"no certified contraction on the box that "
                                f"holds the fixed point ({cert.reason})", dl, cert)
        return _ball_argument(F, theta, x, radius, attempts, dl, bar)


def _ball_argument(F, theta, x, radius, attempts, dl, bar) -> FixedPointCertificate:
    """Banach on a ball of the certified (quadratic) norm inside a box of certified
    contraction: the box grows until it holds the ball, shrinks when it does not certify."""
    value = F.enclose(x, theta, value=True)[0]
    gap = np.nextafter(np.maximum(np.abs(value.lo - x), np.abs(value.hi - x)).ravel(), np.inf)
    r = radius if radius is not None else max(1e-9, 100.0 * float(np.max(gap)))
    reason = "no attempt made"
    for attempt in range(attempts):
        if attempt and dl.expired():
            reason = f"time limit: {dl.describe()} reached after {attempt} box(es); {reason}"
            break
        lo, hi = np.nextafter(x - r, -np.inf), np.nextafter(x + r, np.inf)
        why = _meets_where(F, theta, lo, hi)
        if why:
            return _refused(F, theta, lo, hi, why, dl)
        cert = box_certificate(F, theta, (lo, hi), x_point=x, deadline=dl)
        bar.update()
        if not cert.certified or not isinstance(cert.norm, QuadraticNorm):
            reason = (f"no certified quadratic contraction on the box of radius {r:.2e} "
                      f"({cert.reason or cert.norm})")
            if cert.lower >= 1:
                return _refused(F, theta, lo, hi, reason, dl, cert)
            r /= 10.0
            continue
        with np.errstate(all="ignore"):
            inf_radius = _ball_radius(cert, gap)
        if inf_radius is None:
            reason = ("could not bound the distance to the fixed point (the smallest "
                      "eigenvalue of P, or the residual, is out of range)")
            break
        if inf_radius <= r:
            return FixedPointCertificate(True, cert, (lo, hi), inf_radius, (F, theta))
        reason = (f"the ball that holds the fixed point (radius {inf_radius:.2e}) exceeds the "
                  f"box (radius {r:.2e})")
        r = 2.0 * inf_radius
    lo, hi = np.nextafter(x - r, -np.inf), np.nextafter(x + r, np.inf)
    return _refused(F, theta, lo, hi, reason, dl)


def _ball_radius(cert: Certificate, gap: np.ndarray) -> float | None:
    """A bound on ``||x - x̄||_inf`` from ``||x - x̄||_P <= ||F(x) - x||_P / (1 - rho)``."""
    P = cert.norm.P
    lam_min = lambda_min_lower(P)
    if lam_min <= 0:
        return None
    lam_max = float(np.max(upper_sum(np.abs(P), axis=1)))            # Gershgorin
    step = sqrt_up(lam_max) * sqrt_up(float(upper_sum(gap * gap)))    # >= ||F(x) - x||_P
    ball = step / (1.0 - cert.rho) * (1 + 1e-12)
    radius = ball / math.sqrt(lam_min) * (1 + 1e-12)                  # ||v||_inf <= ||v||_P/√λ
    return radius if math.isfinite(radius) else None
