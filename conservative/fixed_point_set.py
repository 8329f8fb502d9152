"""Where is the exact fixed point, and which pieces can be active there?

A computed fixed point ``x_k`` is a float; the fixed point ``x̄ = F(x̄, theta)`` a user asks about
is a real number that may sit exactly on a kink while ``x_k`` lands one rounding beside it
(heavy-ball on a piecewise quadratic: 3e-13 off, on the side where a single curvature is
active). Deciding the active pieces from ``x_k`` alone is then a decision made by a float.

:func:`fixed_point_enclosure` proves a box ``X`` around ``x_k`` that contains a fixed point of
F, with Krawczyk's test (Krawczyk 1969; Rump's epsilon-inflation) on ``g(x) = x - F(x, theta)``:
with ``M`` an interval enclosure of every conservative Jacobian of F over ``X`` (``F.enclose``;
it contains the Clarke Jacobian, so Clarke's mean-value theorem gives
``g(x) - g(x_k) ∈ (I - M)(x - x_k)``) and any matrix ``C``, the continuous map
``T(x) = x - C g(x)`` satisfies ``T(X) ⊆ K(X) = x_k - C g(x_k) + (I - C (I - M))(X - x_k)``. If
``K(X) ⊆ X``, Brouwer's theorem gives a fixed point of ``T`` in ``X``, and ``C`` is nonsingular
(``|I - C (I - M)|`` has spectral radius below 1), so it is a fixed point of F. Rows of ``M``
that are identically zero (coordinates that F sends to a constant over the box, such as the
inactive coordinates of a soft-threshold) are not iterated: ``T`` keeps ``F`` itself there, and
``F(X) ⊆ X`` is checked on them, so the dense part of the test is only as large as the rest.

The first test is run on a box sized by a float Newton estimate (``|(I - mid M)^-1| |g(x_k)|``
on the rows where ``M`` may be non-zero at ``x_k``) and wide only on those rows; over it, the
values of large constant products are taken in centred form (the value at ``x_k`` plus the
tangent along ``X - x_k``, the mean value theorem again) and the Jacobian's columns on the
rows that can be non-zero only. When that test fails, the general loop above decides.

:func:`jacobian_at_fixed_point` then counts as active every piece that may be active somewhere
on ``X`` (``Map.jacobian(..., box=...)``). When no box can be proved, callers refuse and say how
close the point is to a kink.
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass, field

import numpy as np

from . import interval as iv
from ._types import as_float_array
from .affine_krawczyk import (MAX_DENSE_ROWS, affine_proof, complement, outward_box,
                              theta_interval)
from .enclose import enclose_program, enclose_values
from .errors import ConservativeError
from .sets import JacobianSet
from .where_jumps import jumping_where

__all__ = ["FixedPointEnclosure", "fixed_point_enclosure", "jacobian_at_fixed_point",
           "parametric_enclosure", "kinks_near", "pieces_on_box", "describe_kinks",
           "is_numerical_fixed_point", "refusal"]

_CALL = "cv.fixed_point_enclosure"


@dataclass(frozen=True)
class FixedPointEnclosure:
    """A box around a computed point, proved (or not) to contain a fixed point of F.

    Attributes
    ----------
    lo, hi : ndarray, state shape
        The box. When ``proven``, it contains a fixed point ``x̄ = F(x̄, theta)``; otherwise it
        is the last box tried, an estimate of where ``x̄`` lies.
    proven : bool
        True when Krawczyk's test succeeded.
    radius : float
        ``max |x - lo|, |hi - x|``: a bound (when proven) on ``||x - x̄||_inf``.
    reason : str
        Why no box was proved ("" when proven).
    caveat : str
        An assumption the proof makes ("" if none): the continuity of a ``cv.where`` whose
        boundary meets the box (its branches are checked to agree only at evaluated points).
    kinks : tuple of str
        The nonsmooth operations with a kink inside the box (the point is this close to them).
    rows, row_l1 : ndarray or None
        When proven: the rows of A that may be non-zero somewhere on the box, and an upper
        bound on each row's l1 norm over every Jacobian there (computed by the test anyway;
        certificates reuse them instead of another interval sweep).
    l1_source : ndarray, callable or None
        What ``row_l1`` is read from: the array, or a function of no arguments computing it
        on first use (the affine test's bound, which only certificates read).
    possible : dict or None
        When proven: ``possible_pieces`` over the box (the kinks it meets).
    block : ndarray or None
        When the Jacobian is one matrix on the whole box (an affine map there, proved by the
        affine test): a float estimate of its block ``A[rows][:, rows]``, for derivative
        solves (never for a proof).
    """

    lo: np.ndarray
    hi: np.ndarray
    proven: bool
    radius: float
    reason: str = ""
    caveat: str = ""
    kinks: tuple = field(default=())
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    l1_source: object = field(default=None, repr=False, compare=False)
    possible: dict | None = field(default=None, repr=False, compare=False)
    block: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def row_l1(self) -> np.ndarray | None:
        """Upper bounds on the rows' l1 norms over every Jacobian on the box (see above)."""
        got = self.l1_source
        if callable(got):
            got = got()
            object.__setattr__(self, "l1_source", got)
        return got

    def __getstate__(self):
        # a function computing row_l1 does not pickle (worker processes send enclosures back):
        # its value does
        state = dict(self.__dict__)
        state["l1_source"] = self.row_l1
        return state

    def __post_init__(self):
        for name in ("lo", "hi"):             # shared between callers (cached): read-only
            arr = np.array(getattr(self, name), dtype=float)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    def __str__(self) -> str:
        head = (f"fixed point enclosed: ||x - x̄||_inf <= {self.radius:.3e}" if self.proven else
                f"fixed point NOT enclosed ({self.reason}); estimated distance "
                f"{self.radius:.3e}")
        lines = [head]
        if self.kinks:
            lines.append("  kinks within the box: " + "; ".join(self.kinks))
        if self.caveat:
            lines.append(f"  assumes: {self.caveat}")
        return "\n".join(lines)


def is_numerical_fixed_point(F, x, theta, rtol: float = 1e-6) -> bool:
    """``||F(x) - x||_inf <= rtol (1 + ||x||_inf)``: the question is about a fixed point."""
    if F.n == 0:
        return True
    with np.errstate(all="ignore"):
        residual = float(np.max(np.abs(F(x, theta) - x)))
    return residual <= rtol * (1.0 + float(np.max(np.abs(x), initial=0.0)))


def kinks_near(F, x_box, theta_box, *, tol: float = 0.0) -> tuple:
    """Descriptions (expression and source line) of the kinks that a box meets."""
    return describe_kinks(F, pieces_on_box(F, x_box, theta_box, tol=tol))


def pieces_on_box(F, x_box, theta_box, *, tol: float = 0.0) -> dict:
    """``possible_pieces`` of F's program over a box given as (lo, hi) pairs or points."""
    from .enclose import as_box, possible_pieces
    xb = as_box(x_box, F.state_shape, name="x_box", call="kinks_near")
    tb = as_box(theta_box, F.param_shape, name="theta_box", call="kinks_near")
    return possible_pieces(F.program, xb, tb, tol=tol, call="kinks_near")


def describe_kinks(F, found: dict) -> tuple:
    """Descriptions of the kinks in ``found`` (from ``possible_pieces``)."""
    out = []
    for node, masks in found.items():
        count = int(np.sum(masks.sum(axis=0) >= 2))
        src = F.program.graph.nodes[node]["source"]
        expr = F.program.expression(node, depth=2)
        out.append(f"`{expr}` at {os.path.basename(src)} ({count} element"
                   f"{'s' if count != 1 else ''})")
    return tuple(out)


def _probe(shape) -> iv.Interval:
    """One direction holding a whole box, ``[-1, 1]`` in every coordinate: its tangent is
    zero exactly on the rows of A that are zero everywhere on the box."""
    return iv.Interval(-np.ones(tuple(shape) + (1,)), np.ones(tuple(shape) + (1,)))


def _unit_matrix(n: int, cols: np.ndarray) -> np.ndarray:
    """The columns ``cols`` of the n x n identity, (n, len(cols))."""
    unit = np.zeros((n, len(cols)))
    unit[cols, np.arange(len(cols))] = 1.0
    return unit


def _unit_columns(n: int, cols: np.ndarray) -> iv.Interval:
    """The columns ``cols`` of the identity, as interval seeds (n, len(cols))."""
    return iv.Interval.point(_unit_matrix(n, cols))


def _columns_on_rows(F, box, t_box, cols, rows, values) -> iv.Interval:
    """The enclosure of ``A[rows][:, cols]`` over a box whose node values ``values`` an
    earlier sweep computed: tangents only, on the demanded rows only."""
    shape = F.state_shape
    seed = _unit_columns(F.n, cols).reshape(shape + (len(cols),))
    _, M = enclose_program(F.program, box, t_box, call=_CALL,
                           seeds=(seed, None), rows=rows, values=values)
    return M[rows]


def _directions(F, theta, lo, hi, seed, met=None, rows=None, pieces=None):
    """``(value, D)``: enclosures of F and of ``{A S}`` over the box, ``S`` in ``seed`` (only
    the rows ``rows`` of D, when given: the others are left zero; ``pieces`` is filled with
    the pieces that may be active on the box)."""
    shape = F.state_shape
    x_box = iv.Interval(lo.reshape(shape), hi.reshape(shape))
    t_box = theta_interval(theta)
    value, D = enclose_program(F.program, x_box, t_box, call=_CALL,
                               boundaries=met, seeds=(seed.reshape(shape + (-1,)), None),
                               rows=rows, pieces=pieces)
    return value.reshape((F.n,)), D


def _krawczyk_step(F, x, theta, lo, hi, residual, hints=None):
    """One Krawczyk test on ``[lo, hi]``.

    Returns ``(contained, box_lo, box_hi, K_lo, K_hi, met, probe)``: the box actually tested
    (its constant coordinates shrunk to the values F takes there), the Krawczyk image, and
    ``(rows, l1)``: the rows of A that may be non-zero on the box tested and a bound on their
    l1 norms there (from the probe, over the box before shrinking: a superset). ``hints``
    (a dict) receives :func:`_krawczyk_image`'s proposal of a box shape when the test fails.
    """
    n = F.n
    met: list = []
    # which rows of A may be non-zero somewhere on the box: one direction holding the box
    value, probe = _directions(F, theta, lo, hi, _probe((n,)), met)
    l1 = probe.mag[:, 0]
    rows = np.flatnonzero(l1)
    found = (rows, l1)
    const = complement(n, rows)
    k_lo, k_hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    # F is constant in x on the box along the other rows: T keeps F there, so F(X) must lie in
    # X, and the box may shrink to hull(x, F(X)) there (F stays constant on a smaller box)
    k_lo[const], k_hi[const] = value.lo[const], value.hi[const]
    if not (np.all(k_lo[const] >= lo[const]) and np.all(k_hi[const] <= hi[const])):
        return False, lo, hi, k_lo, k_hi, met, found
    lo, hi = np.array(lo), np.array(hi)
    lo[const] = np.minimum(x[const], k_lo[const])
    hi[const] = np.maximum(x[const], k_hi[const])
    if len(rows) == 0:
        return True, lo, hi, k_lo, k_hi, met, found
    if len(rows) > MAX_DENSE_ROWS:
        raise _Refused(f"{len(rows)} coordinates with a non-zero Jacobian row, beyond the "
                       f"dense enclosure test ({MAX_DENSE_ROWS})")
    d = iv.subtract(iv.Interval(lo, hi), iv.Interval.point(x))               # X - x
    wide = np.union1d(rows, const[(d.lo[const] != 0) | (d.hi[const] != 0)])
    pieces: dict = {}
    _, M = _directions(F, theta, lo, hi, _unit_columns(n, wide), rows=rows, pieces=pieces)
    found = found + (pieces,)                       # possible pieces on the box tested
    contained, k_lo, k_hi = _krawczyk_image(x, lo, hi, d, residual, rows, wide, M[rows],
                                            k_lo, k_hi, hints)
    return contained, lo, hi, k_lo, k_hi, met, found


def _krawczyk_image(x, lo, hi, d, residual, rows, wide, M, k_lo, k_hi, hints=None):
    """``K(X) = x - C g(x) + (I - C (I - M_NN)) (X - x)_N + C M_NZ (X - x)_Z`` on the rows N
    (``M``: the enclosure of A's rows N on the columns ``wide``), written into ``k_lo, k_hi``;
    returns ``(contained, k_lo, k_hi)``. When the image is not contained and ``hints`` is a
    dict, it receives the rows N and :func:`_aligned_radius` of this test."""
    on_rows = np.searchsorted(wide, rows)
    eye = iv.Interval.point(np.eye(len(rows)))
    G = iv.subtract(eye, M[:, on_rows])                                     # I - M_NN
    try:
        C = np.linalg.inv(G.mid)
    except np.linalg.LinAlgError:
        raise _Refused("I - A is singular at the point (no isolated fixed point can be "
                       "enclosed)") from None
    if not np.all(np.isfinite(C)):
        raise _Refused("I - A is numerically singular at the point")
    Ci = iv.Interval.point(C)
    E = iv.subtract(eye, iv.matmul(Ci, G))                                  # I - C (I - M_NN)
    Cg = iv.matmul(Ci, residual[rows].reshape(-1, 1)).reshape(-1)
    K = iv.subtract(iv.Interval.point(x[rows]), Cg)
    K = iv.add(K, iv.matmul(E, d[rows].reshape(-1, 1)).reshape(-1))
    fixed = Cg.mag                          # the part of |K(X) - x| not from (X - x)_N
    others = complement(len(wide), on_rows)
    if len(others):                                         # C M_NZ (X_Z - x_Z)
        coupling = iv.matmul(Ci, iv.matmul(M[:, others], d[wide[others]].reshape(-1, 1)))
        K = iv.add(K, coupling.reshape(-1))
        fixed = fixed + coupling.mag.reshape(-1)
    k_lo[rows], k_hi[rows] = K.lo, K.hi
    contained = bool(np.all(k_lo[rows] >= lo[rows]) and np.all(k_hi[rows] <= hi[rows]))
    if not contained and hints is not None:
        radius = _aligned_radius(E.mag, fixed)
        if radius is not None:
            hints.update(rows=rows, radius=radius)
    if not contained and float(np.max(_spectral_bound(E))) >= 1:
        raise _Refused("I - A may be singular somewhere on the box: the hull of the Jacobians "
                       "there contains a matrix with eigenvalue 1, or its enclosure is too wide")
    return contained, k_lo, k_hi


def _centred_test(F, x, theta, rho, rows_f, fx, centre, residual):
    """Krawczyk's test on the box that is ``x ± rho`` on the rows ``rows_f`` where the float
    Jacobian is not zero and ``hull(x, F(x))`` elsewhere, in two sweeps: values over the box
    in centred form with the rows that may be non-zero (``enclose_program(centre=...)``,
    seeds ``X - x`` and a probe of the whole box), then the Jacobian's columns on the
    demanded rows only. Returns ``(lo, hi, met, found)`` when the box is proved, else None
    (the general test decides, from the same first box).
    """
    n, shape = F.n, F.state_shape
    lo, hi = np.minimum(x, fx.lo), np.maximum(x, fx.hi)
    wide_lo, wide_hi = outward_box(x[rows_f], rho[rows_f])
    lo[rows_f], hi[rows_f] = np.minimum(lo[rows_f], wide_lo), np.maximum(hi[rows_f], wide_hi)
    X = iv.Interval(lo, hi)                     # validated once: the box and X - x share it
    d = iv.subtract(X, iv.Interval.point(x))                                 # X - x
    # built from d's valid ends and +-1: no second validation of a (n, 2) array
    seed = iv.Interval._new(np.stack([d.lo, -np.ones(n)], axis=1),
                            np.stack([d.hi, np.ones(n)], axis=1))
    box, t_box = X.reshape(shape), theta_interval(theta)
    met: list = []
    pieces: dict = {}
    vals, tans = enclose_program(F.program, box, t_box, call=_CALL,
                                 boundaries=met, seeds=(seed.reshape(shape + (2,)), None),
                                 keep=True, pieces=pieces, centre=centre)
    out = F.program.out_node
    value = vals[out].reshape((n,))
    T = tans.get(out)
    if T is None:
        return None
    T = T.broadcast_to(F.program.shape(out) + (2,)).reshape((n, 2))
    l1 = T.mag[:, 1]
    rows = np.flatnonzero(l1)
    const = complement(n, rows)
    # T keeps F on the rows where it is constant over the box: F(X) must lie in X there
    if not (np.all(value.lo[const] >= lo[const]) and np.all(value.hi[const] <= hi[const])):
        return None
    if len(rows) == 0 or len(rows) > MAX_DENSE_ROWS:
        return None
    wide = np.union1d(rows, np.flatnonzero((d.lo != 0) | (d.hi != 0)))
    M = _columns_on_rows(F, box, t_box, wide, rows, vals)
    contained, _, _ = _krawczyk_image(x, lo, hi, d, residual, rows, wide, M,
                                      np.array(lo), np.array(hi))
    return (lo, hi, met, (rows, l1, pieces)) if contained else None


def _aligned_radius(E_mag, a):
    """A float proposal ``r = 2 (I - |E|)^-1 a`` for the radii of the box on the rows N, or
    None when ``|E|`` may not have spectral radius below 1 (the solve is not positive).

    With ``E`` and the fixed part ``a`` of the Krawczyk image unchanged on the new box, its
    image lies within ``a + |E| r = r - a`` of x, strictly inside; the epsilon-inflation of
    the loop grows a box along its own image, which never aligns with the Perron vector of a
    period-two ``|E|`` (``[[0, 3], [0.3, 0]]``), so a box of the right shape is never tried.
    Only the shape is proposed here: the test decides."""
    a = np.maximum(a, 1e-3 * float(np.max(a, initial=0.0)))
    if not (a.size and np.all(np.isfinite(a)) and np.all(a > 0)):
        return None
    try:
        with np.errstate(all="ignore"):
            r = 2.0 * np.linalg.solve(np.eye(len(a)) - E_mag, a)
    except np.linalg.LinAlgError:
        return None
    return r if np.all(np.isfinite(r)) and np.all(r >= a) else None


def _spectral_bound(E) -> float:
    """Float estimate of the spectral radius of ``|E|`` (a diagnostic only)."""
    mag = E.mag
    if mag.size == 0:
        return 0.0
    return float(np.max(np.abs(np.linalg.eigvals(mag))))


class _Refused(Exception):
    """The enclosure test cannot be run (the message says why)."""


#: Recent enclosures per program (programs are frozen, so a result stays valid): attractor,
#: implicit_jacobian, fpad and certify_contraction at one point share one proof.
_RECENT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_RECENT_PER_PROGRAM = 8


def fixed_point_enclosure(F, theta, x, *, max_iter: int = 12) -> FixedPointEnclosure:
    """Prove a box around ``x`` that contains a fixed point ``x̄ = F(x̄, theta)``.

    Krawczyk's test with epsilon-inflation (module docstring); every step is in outward-rounded
    interval arithmetic, so a returned ``proven=True`` box is rigorous, given that the map is
    continuous (``cv.where`` boundaries meeting the box are named in ``.caveat``).

    Parameters
    ----------
    F : Map
    theta : array_like
        Parameters (a point).
    x : array_like
        A computed fixed point.
    max_iter : int
        Inflation steps tried.

    Returns
    -------
    FixedPointEnclosure

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + t, (), ())
    >>> enc = cv.fixed_point_enclosure(F, 1.0, 2.0 + 1e-13)     # x̄ = 2
    >>> enc.proven, bool(enc.lo <= 2.0 <= enc.hi), enc.radius < 1e-12
    (True, True, True)
    """
    call = _CALL
    x = as_float_array(x, name="x", call=call, shape=F.state_shape).reshape(-1)
    theta = as_float_array(theta, name="theta", call=call, shape=F.param_shape)
    return _recent_enclosure(F, theta, x, max_iter, call)


def enclosure_at_evaluated(F, theta, x, values: dict) -> FixedPointEnclosure:
    """:func:`fixed_point_enclosure` at a point where ``values`` (node -> batched float
    value, from :func:`conservative.evaluate.evaluate` at ``(x, theta)``) were computed: the
    affine test takes large products from them instead of computing them again."""
    call = _CALL
    x = as_float_array(x, name="x", call=call, shape=F.state_shape).reshape(-1)
    theta = as_float_array(theta, name="theta", call=call, shape=F.param_shape)
    return _recent_enclosure(F, theta, x, 12, call, values)


def _recent_enclosure(F, theta, x, max_iter, call, values=None) -> FixedPointEnclosure:
    key = (x.tobytes(), theta.tobytes(), max_iter)
    recent = _RECENT.setdefault(F.program, {})
    if key not in recent:
        if len(recent) >= _RECENT_PER_PROGRAM:
            recent.pop(next(iter(recent)))
        recent[key] = _enclose(F, theta, x, max_iter, call, values)
    return recent[key]


def parametric_enclosure(F, theta_box, x, *, max_iter: int = 12) -> FixedPointEnclosure:
    """Prove a box ``X`` around ``x`` holding a fixed point of ``F(., theta)`` for *every*
    ``theta`` in ``theta_box``: Krawczyk's test with the parameters as an interval (the
    residual and the Jacobian enclosure are taken over the whole parameter box, so
    ``K(X, Theta) ⊆ X`` gives, for each theta, a fixed point in X).

    Parameters
    ----------
    F : Map
    theta_box : tuple (lo, hi) of arrays of the parameter shape
    x : array_like
        A fixed point at some parameter of the box (e.g. its centre).

    Returns
    -------
    FixedPointEnclosure
        Its kinks and ``possible`` pieces are over ``X x theta_box``.

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: 0.5 * x + t, (), ())          # x̄(t) = 2 t
    >>> enc = parametric_enclosure(F, (0.9, 1.1), 2.0)
    >>> enc.proven, bool(enc.lo <= 1.8 and 2.2 <= enc.hi)
    (True, True)
    """
    call = "cv.certify_region"
    x = as_float_array(x, name="x", call=call, shape=F.state_shape).reshape(-1)
    lo = as_float_array(theta_box[0], name="theta_box[0]", call=call, shape=F.param_shape)
    hi = as_float_array(theta_box[1], name="theta_box[1]", call=call, shape=F.param_shape)
    return _enclose(F, iv.Interval(lo, hi), x, max_iter, call)


def _enclose(F, theta, x, max_iter, call, values=None) -> FixedPointEnclosure:
    n = F.n
    if n == 0:
        return FixedPointEnclosure(x.reshape(F.state_shape), x.reshape(F.state_shape), True, 0.0)
    fast = _affine_test(F, theta, x, values)
    if fast is not None:
        return fast
    kinks_at_x: dict = {}
    try:
        point = iv.Interval.point(x.reshape(F.state_shape))
        centre = enclose_values(F.program, point, theta_interval(theta), call=call,
                                pieces=kinks_at_x)
        fx = centre[F.program.out_node].reshape((n,))
    except ConservativeError as exc:
        return _unproven(F, theta, x, np.zeros(n), f"F cannot be enclosed at x ({exc})")
    residual = iv.subtract(iv.Interval.point(x), fx)                            # g(x) = x - F(x)
    if not (np.any(residual.lo) or np.any(residual.hi)):
        # F(x) = x exactly (for every parameter of a box): x itself is the fixed point
        try:
            return _exact_point(F, theta, x)
        except ConservativeError:
            pass
    # four ulps of each coordinate (at least 4 * 2**-1074): relative, so that a state of any
    # scale, subnormal included, gets a box that meets only the kinks near it
    floor = 4.0 * np.abs(np.nextafter(np.abs(x), np.inf) - np.abs(x))
    rho = np.full(n, 4.0 * float(np.max(residual.mag))) + floor
    if not np.all(np.isfinite(rho)):
        return _unproven(F, theta, x, np.zeros(n), "the residual F(x) - x is not finite")
    step = _newton_step_estimate(F, theta, x, residual.mag, centre, kinks_at_x)
    if step is not None and 2.0 * step[0] > 1e-2 * (1.0 + float(np.max(np.abs(x)))):
        step = None                 # far from a fixed point: the loop below grows and refuses
    if step is not None:            # the first box holds the Newton step: no failed first test
        size, rows_f, delta = step
        # per coordinate first: a block of the state far smaller than the rest gets a box of
        # its own scale, which meets only the kinks near it (then the uniform box, as below)
        own = 4.0 * residual.mag + floor
        own[rows_f] = np.maximum(own[rows_f], 2.0 * delta) + floor[rows_f]
        rho = np.maximum(rho, 2.0 * size) + floor
        tries = (own, rho) if np.any(own[rows_f] < 0.25 * rho[rows_f]) else (rho,)
        for first in tries:
            try:
                quick = _centred_test(F, x, theta, first, rows_f, fx, centre, residual)
            except (_Refused, ConservativeError):
                quick = None              # the general test below says why, if it fails too
            if quick is not None:
                return _proven(F, theta, x, *quick)
    reason = "the Krawczyk test did not close within the inflation steps"
    hints: dict = {}
    for _ in range(max_iter):
        lo, hi = outward_box(x, rho)
        hints.clear()
        try:
            contained, lo, hi, k_lo, k_hi, met, found = _krawczyk_step(F, x, theta, lo, hi,
                                                                       residual, hints)
        except _Refused as exc:
            reason = str(exc)
            hints.clear()
            break
        except ConservativeError as exc:
            reason = f"F cannot be enclosed on the box ({exc})"
            hints.clear()
            break
        if contained:
            return _proven(F, theta, x, lo, hi, met, found)
        spread = np.maximum(np.abs(k_lo - x), np.abs(k_hi - x))
        if not np.all(np.isfinite(spread)):
            reason = "the Krawczyk operator diverged (I - A may be singular on the box)"
            break
        rho = np.maximum(rho, 1.5 * spread) + floor
        if float(np.max(rho)) > 1e-2 * (1.0 + float(np.max(np.abs(x)))):
            reason = ("the box needed to enclose the fixed point grew beyond 1 % of the point "
                      "(I - A may be singular nearby, or x is not close to a fixed point)")
            break
    aligned = _aligned_boxes(F, theta, x, residual, rho, floor, hints)
    return aligned if aligned is not None else _unproven(F, theta, x, rho, reason)


def _affine_test(F, theta, x, values=None):
    """The affine test (:mod:`conservative.affine_krawczyk`) for maps ``P(L x + c, ...)``: a
    proved enclosure, or None (then the general test decides)."""
    proof = affine_proof(F, theta, x, values)
    if proof is None:
        return None
    return _proven(F, theta, x, proof.lo, proof.hi, [], (proof.rows, proof.row_l1, {}),
                   block=proof.block)


def _aligned_boxes(F, theta, x, residual, rho, floor, hints, tries: int = 3):
    """After the inflation loop failed (not refused): Krawczyk's test on boxes shaped by the
    last test's :func:`_aligned_radius` on its rows N (``rho`` elsewhere); a proved
    enclosure, or None."""
    cap = 1e-2 * (1.0 + float(np.max(np.abs(x))))
    for _ in range(tries):
        if "radius" not in hints:
            return None
        r = np.array(rho)
        r[hints["rows"]] = hints["radius"] + floor[hints["rows"]]
        if not float(np.max(r)) <= cap:
            return None
        lo, hi = outward_box(x, r)
        hints.clear()
        try:
            contained, lo, hi, _, _, met, found = _krawczyk_step(F, x, theta, lo, hi,
                                                                 residual, hints)
        except (_Refused, ConservativeError):
            return None
        if contained:
            return _proven(F, theta, x, lo, hi, met, found)
    return None


def _newton_step_estimate(F, theta, x, g, at_x, kinks_at_x):
    """``(size, rows, delta)``: a float estimate of the Krawczyk image's spread on each row,
    ``delta = |(I - A)^-1| g`` for ``g`` the residual's magnitude and ``A`` a Jacobian at ``x``
    on the rows ``rows`` where it may be non-zero, and ``size = max delta``; or None. Only the
    size and the shape of the first box are taken from it (the test decides): the image of a
    box smaller than this never lies inside it, so starting there saves a failed test.

    Away from kinks (``kinks_at_x`` empty: the point sweep ``at_x`` found one piece for every
    nonsmooth element) the default selection's Jacobian is the only one at ``x``, and two float
    sweeps give it; at a kink, the interval enclosure at ``x`` on the rows that may be non-zero
    there (a probe of every coordinate) gives rows of every piece."""
    try:
        if not kinks_at_x:
            rows, M = _float_rows_and_block(F, theta, x)
        else:
            rows, M = _interval_rows_and_block(F, theta, x, at_x)
        if rows is None:
            return None
        with np.errstate(all="ignore"):
            delta = np.abs(np.linalg.inv(np.eye(len(rows)) - M)) @ g[rows]
    except (ConservativeError, np.linalg.LinAlgError, ValueError):
        return None
    size = float(np.max(delta))
    return (size, rows, delta) if math.isfinite(size) else None


def _probe_weights(n: int) -> np.ndarray:
    """Weights of the float probe direction, in [1, 2): generic, so that no row of a Jacobian
    with integer or symmetric entries sums to zero against them (a missed row only makes the
    first box worse; the test still decides)."""
    return 1.0 + np.modf(np.arange(1, n + 1) * 0.6180339887498949)[0]


def _float_rows_and_block(F, theta, x):
    """The rows where the default selection's Jacobian at ``x`` is not zero (a tangent along
    a generic direction) and its block on them, ``A[rows][:, rows]``, in floating point (the
    demanded rows of forward mode: only those rows of the products are computed)."""
    from .jacobian import value_and_jvp        # here: jacobian imports the sets layer
    n, shape, program = F.n, F.state_shape, F.program
    t = theta.mid if isinstance(theta, iv.Interval) else np.asarray(theta, dtype=float)
    xb, tb = x.reshape((1,) + shape), np.reshape(t, (1,) + F.param_shape)
    seed = _probe_weights(n).reshape((1,) + shape + (1,))
    _, tangent = value_and_jvp(program, xb, tb, {program.x_node: seed}, call=_CALL)
    if tangent is None:
        return None, None
    rows = np.flatnonzero(tangent.reshape(n))
    if len(rows) == 0 or len(rows) > MAX_DENSE_ROWS:
        return None, None
    unit = _unit_matrix(n, rows).reshape((1,) + shape + (len(rows),))
    _, tangent = value_and_jvp(program, xb, tb, {program.x_node: unit}, call=_CALL)
    if tangent is None:
        return None, None
    return rows, tangent.reshape(n, len(rows))[rows]


def _interval_rows_and_block(F, theta, x, at_x):
    """:func:`_float_rows_and_block` at a kink: the rows that may be non-zero at ``x`` (an
    interval probe of every coordinate) and the midpoint of the block's enclosure there (the
    values ``at_x`` reused)."""
    n, shape = F.n, F.state_shape
    point, t_box = iv.Interval.point(x.reshape(shape)), theta_interval(theta)
    _, probe = enclose_program(F.program, point, t_box, call=_CALL,
                               seeds=(_probe(shape), None), values=at_x, keep=True)
    probe = probe.get(F.program.out_node)
    if probe is None:
        return None, None
    probe = probe.broadcast_to(F.program.shape(F.program.out_node) + (1,)).reshape((n,))
    rows = np.flatnonzero(probe.mag)
    if len(rows) == 0 or len(rows) > MAX_DENSE_ROWS:
        return None, None
    M = _columns_on_rows(F, point, t_box, rows, rows, at_x)
    return rows, 0.5 * M.lo + 0.5 * M.hi


def _jumping_where(F, theta, x, lo, hi, met) -> list:
    """The ``cv.where`` nodes among ``met`` that provably jump inside the box
    (:func:`conservative.where_jumps.jumping_where`)."""
    return jumping_where(F.program, x.reshape(-1), lo.reshape(-1), hi.reshape(-1),
                         theta_interval(theta), met, _CALL)


def _exact_point(F, theta, x) -> FixedPointEnclosure:
    """The enclosure ``{x}`` of a point that the interval evaluation proves fixed."""
    met: list = []
    n = F.n
    _, probe = _directions(F, theta, x, x, _probe((n,)), met)
    l1 = probe.mag[:, 0]
    return _proven(F, theta, x, np.array(x), np.array(x), met, (np.flatnonzero(l1), l1))


def _proven(F, theta, x, lo, hi, met, found, *, block=None) -> FixedPointEnclosure:
    shape = F.state_shape
    caveat = ""
    jumps = _jumping_where(F, theta, x, lo, hi, met) if met else []
    if jumps:
        exprs = ", ".join(f"`{F.program.expression(node, depth=2)}`" for node in jumps)
        reason = (f"the condition of {exprs} may switch inside the box while its two branches "
                  "differ there by a positive margin: the map jumps, so no fixed point is "
                  "enclosed (make the branches agree on the boundary)")
        return _unproven(F, theta, x, np.maximum(x - lo, hi - x), reason)
    if met:
        exprs = ", ".join(f"`{F.program.expression(node, depth=2)}`"
                          for node in dict.fromkeys(met))
        caveat = (f"the branches of {exprs} agree on the boundary inside the box (checked at "
                  "evaluated points and sampled at trace time)")
    radius = float(max(np.max(x - lo), np.max(hi - x)))
    possible = found[2] if len(found) > 2 else \
        pieces_on_box(F, (lo.reshape(shape), hi.reshape(shape)), theta)
    return FixedPointEnclosure(lo.reshape(shape), hi.reshape(shape), True, radius, "", caveat,
                               describe_kinks(F, possible), rows=found[0], l1_source=found[1],
                               possible=possible, block=block)


def _unproven(F, theta, x, rho, reason: str) -> FixedPointEnclosure:
    shape = F.state_shape
    lo, hi = outward_box(x, rho)
    try:
        kinks = kinks_near(F, (lo.reshape(shape), hi.reshape(shape)), theta)
    except ConservativeError:
        kinks = ()
    radius = float(np.max(rho)) if rho.size else 0.0
    return FixedPointEnclosure(lo.reshape(shape), hi.reshape(shape), False,
                               radius if math.isfinite(radius) else math.inf, reason, "", kinks)


def jacobian_at_fixed_point(F, theta, x, *, hull: bool, tol: float = 0.0
                            ) -> tuple[JacobianSet, FixedPointEnclosure]:
    """The conservative Jacobian at the exact fixed point near ``x``, and its enclosure.

    Every piece that may be active on the enclosure's box counts as active. When no box is
    proved, the set counts the pieces that may be active within the *estimated* distance: its
    elements are still Jacobians of F near ``x`` (good for lower bounds), but no claim about
    the exact fixed point may be made from it (callers check ``enclosure.proven``).
    """
    enc = fixed_point_enclosure(F, theta, x)
    js = F.jacobian(x, theta, hull=hull, tol=tol, box=((enc.lo, enc.hi), theta))
    return js, enc


def refusal(enc: FixedPointEnclosure) -> str:
    """Plain words for a failed enclosure, naming the kinks within the estimated distance."""
    text = f"the exact fixed point could not be enclosed near x ({enc.reason})"
    if enc.kinks:
        text += (f"; x is within about {enc.radius:.1e} of the kink of "
                 + "; ".join(enc.kinks) + ", so which pieces are active at the exact fixed "
                 "point is undecided")
    return text

