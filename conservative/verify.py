"""Rigorous certification of a map at its (unknown, exact) fixed point.

A computed ``x_k`` is not the fixed point ``x̄``, and the Jacobian at ``x_k`` need not be the one
at ``x̄`` (a kink may sit in between). :func:`certify_fixed_point` proves, with interval
enclosures and exactly re-checked certificates, that

1. every element of every conservative Jacobian of F on a box ``x_k ± r`` has A-block with
   ``||A||_P <= rho < 1`` (so F is a rho-contraction on the box in the norm ``||.||_P``, by the
   Clarke mean-value theorem: the Clarke Jacobian lies in the hull of any conservative one).
   This needs F Lipschitz on the box: nonsmooth primitives are continuous by construction, but
   a ``cv.where`` is continuous only as far as its checks go, so a box meeting the boundary of
   one is refused;
2. the ball ``{x : ||x - x_k||_P <= ||F(x_k) - x_k||_P / (1 - rho)}`` lies in the box, so
   Banach's theorem on that ball puts ``x̄`` in it;
3. hence ``D_F(x̄, theta)`` lies in the box enclosure, and the certificate holds at ``x̄``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ._exact import is_psd, to_fractions
from ._types import as_float_array, check_int, check_real
from .certify import Certificate, certify_contraction, own_jacobians, product_lower_bound
from .interval import IntervalMatrix

__all__ = ["FixedPointCertificate", "certify_fixed_point"]


@dataclass(frozen=True)
class FixedPointCertificate:
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
    jacobian : IntervalMatrix
        Enclosure of every ``[A B]`` of every conservative Jacobian over the box.
    reason : str
        Why not certified ("" when certified).
    """

    certified: bool
    certificate: Certificate | None
    x_box: tuple
    radius: float
    jacobian: IntervalMatrix | None
    reason: str = ""

    @property
    def rho(self) -> float:
        """The contraction bound on the box (inf when not certified)."""
        return self.certificate.rho if self.certified else math.inf

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


def _lambda_min_lower(P: np.ndarray) -> float:
    """A positive number proved (exactly) to be <= the smallest eigenvalue of P, or 0."""
    guess = 0.5 * float(np.linalg.eigvalsh(P).min())
    if guess <= 0:
        return 0.0
    shifted = to_fractions(P)
    g = to_fractions(np.array([[guess]]))[0][0]
    for i in range(len(shifted)):
        shifted[i][i] -= g
    return guess if is_psd(shifted) else 0.0


def _p_norm_upper(P: np.ndarray, v_abs: np.ndarray) -> float:
    """Upper bound of ||v||_P = sqrt(v^T P v) over |v| <= v_abs (Gershgorin bound on P)."""
    lam_max = float(np.max(np.sum(np.abs(P), axis=1))) * (1 + 1e-12)
    return math.sqrt(lam_max) * float(np.linalg.norm(v_abs)) * (1 + 1e-12)


def _refused(F, theta, lo, hi, reason: str, enclosure=None) -> FixedPointCertificate:
    """A refusal that still reports the best lower bound of the map's own Jacobians on the box
    (sampled points), so a divergent switching word is named when there is one."""
    own = own_jacobians(F, (lo, hi), (theta, theta))
    cert = None
    if len(own):
        lower, word = product_lower_bound(own, deadline=time.monotonic() + 2.0)
        cert = Certificate(False, math.inf, "none", None, "float", lower, word, reason,
                           "lower bound by products of the map's own Jacobians on the box",
                           samples=own)
    return FixedPointCertificate(False, cert, (lo, hi), math.inf, enclosure, reason)


def certify_fixed_point(F, theta, x, *, radius: float | None = None,
                        attempts: int = 8, time_limit: float | None = 60.0
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
        Initial half-width of the box (default: 100 times the residual, at least 1e-9).
    attempts : int
        Box sizes tried (the box grows when too small to contain the ball, shrinks when the
        enclosure is too wide to certify).
    time_limit : float or None
        Seconds; no new box is tried after it (then "not certified: time limit").

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
    call = "cv.certify_fixed_point"
    x = as_float_array(x, name="x", call=call, shape=F.state_shape)
    theta = as_float_array(theta, name="theta", call=call, shape=F.param_shape)
    attempts = check_int(attempts, name="attempts", call=call, minimum=1)
    if radius is not None:
        radius = check_real(radius, name="radius", call=call, minimum=0.0, strict=True)
    value = F.enclose(x, theta, value=True)[0]
    gap = np.maximum(np.abs(value.lo - x), np.abs(value.hi - x)).ravel()   # |F(x) - x| bound
    gap = np.nextafter(gap, np.inf)
    r = radius if radius is not None else max(1e-9, 100.0 * float(np.max(gap)))
    reason = "no attempt made"
    last_cert = None
    start = time.monotonic()
    for attempt in range(attempts):
        remaining = math.inf if time_limit is None else time_limit - (time.monotonic() - start)
        if attempt and remaining <= 0:
            reason = f"time limit ({time_limit:g} s) reached after {attempt} box(es); {reason}"
            break
        # outward-rounded corners: x - lo >= r and hi - x >= r hold exactly
        lo, hi = np.nextafter(x - r, -np.inf), np.nextafter(x + r, np.inf)
        met: list = []
        M = F.enclose((lo, hi), theta, boundaries=met)
        if met:
            node = met[0]
            where = F.program.expression(node)
            src = F.program.graph.nodes[node]["source"]
            return _refused(F, theta, lo, hi, (
                f"the box meets the boundary of `{where}` (defined at {src}); the continuity "
                "of a cv.where is checked only at evaluated points, so the mean-value "
                "argument is not applied across it. Write kinks you want certified with "
                "cv.relu / cv.maximum / cv.minimum / cv.clip / cv.soft_threshold"), M)
        A = IntervalMatrix(M.lo[:, :F.n], M.hi[:, :F.n])
        cert = certify_contraction(A, time_limit=max(remaining, 1.0) if math.isfinite(
            remaining) else 20.0)
        last_cert = cert
        if not cert.certified or cert.P is None:
            reason = f"no certified quadratic contraction on the box of radius {r:.2e} " \
                     f"({cert.reason or cert.norm})"
            r /= 10.0
            continue
        lam_min = _lambda_min_lower(cert.P)
        if lam_min <= 0:
            reason = "could not bound the smallest eigenvalue of P away from 0"
            break
        ball = _p_norm_upper(cert.P, gap) / (1.0 - cert.rho)          # radius in the P-norm
        inf_radius = ball / math.sqrt(lam_min) * (1 + 1e-12)          # ||v||_inf <= ||v||_P/√λ
        if inf_radius <= r:
            return FixedPointCertificate(True, cert, (lo, hi), inf_radius, M)
        reason = f"the ball that holds the fixed point (radius {inf_radius:.2e}) exceeds the " \
                 f"box (radius {r:.2e})"
        r = 2.0 * inf_radius
    lo, hi = np.nextafter(x - r, -np.inf), np.nextafter(x + r, np.inf)
    return _refused(F, theta, lo, hi, reason)
