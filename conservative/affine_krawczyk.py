"""Krawczyk's test for ``F(x) = P(u(x), ...)``: P piecewise affine elementwise, u affine in x.

Where every element of P keeps one piece on a box, F is affine there with the Jacobian
``diag(s) L`` (s the pieces' slopes), the same at every point of the box: the rows N where s
is not zero, the entries ``L[N, cols]`` with their rounding bounds
(:mod:`conservative.affine_enclosure`), and the residual at x with its error bound give
Krawczyk's test without a sweep of interval arithmetic over the box; the value over the box
is ``u(x) + L (X - x)`` exactly, bounded by ``|L| |X - x|``. The pieces are guessed at the
floats and decided on the box; the test must map the box strictly inside itself, which also
proves ``I - A_NN`` nonsingular. :func:`affine_proof` returns the proved box or None (then
the general test of :mod:`conservative.fixed_point_set` decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from . import interval as iv
from .affine_enclosure import (Approx, affine_plan, midrad_product, outward, rounding, up,
                               up_add)
from .errors import ConservativeError

__all__ = ["AffineProof", "affine_proof", "complement", "outward_box", "theta_interval",
           "MAX_DENSE_ROWS"]

#: Largest number of coordinates with a non-zero Jacobian row for the dense Krawczyk test.
MAX_DENSE_ROWS = 3000


@dataclass(frozen=True)
class AffineProof:
    """A box ``[lo, hi]`` proved to hold a fixed point, on which F is affine.

    Attributes
    ----------
    lo, hi : ndarray (n,)
    rows : ndarray
        The rows N of the Jacobian that are not zero on the box.
    row_l1 : callable
        ``row_l1()``: upper bounds on the l1 norms of the Jacobian's rows (n,).
    block : ndarray
        A float estimate of the Jacobian's block ``A[N][:, N]`` (read-only), for solves.
    """

    lo: np.ndarray
    hi: np.ndarray
    rows: np.ndarray
    row_l1: Callable[[], np.ndarray]
    block: np.ndarray


def affine_proof(F, theta, x, values=None) -> AffineProof | None:
    """The affine test at the point ``x`` (theta a point or an :class:`~conservative.interval.
    Interval` box): a proof, or None where the map is not of this form, a box meets a kink,
    or the test fails. ``values``: the float node values of an evaluation at ``(x, theta)``,
    whose products are reused (:meth:`~conservative.affine_enclosure.AffinePlan.value`)."""
    plan = affine_plan(F.program)
    if plan is None:
        return None
    try:
        with np.errstate(all="ignore"):
            return _attempt(F, plan, theta, x, values)
    except (ConservativeError, np.linalg.LinAlgError, FloatingPointError):
        return None


def complement(n: int, rows: np.ndarray) -> np.ndarray:
    """The indices below ``n`` not in ``rows``, in order (a mask: no sort)."""
    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    return np.flatnonzero(keep)


def outward_box(x, rho):
    """``[x - rho, x + rho]`` rounded outward."""
    return np.nextafter(x - rho, -np.inf), np.nextafter(x + rho, np.inf)


def theta_interval(theta) -> iv.Interval:
    """Parameters as an interval: a point, or a box (parametric enclosures)."""
    return theta if isinstance(theta, iv.Interval) else iv.Interval.point(
        np.asarray(theta, dtype=float))


def _attempt(F, plan, theta, x, values=None):
    n, prim, params = F.n, plan.prim, plan.params
    free = plan.free_values(theta_interval(theta))
    u = plan.value(free, x, values)
    if not (np.isfinite(u.v).all() and np.isfinite(u.e).all()):
        return None
    rest = [_compact(free[i]) for i in plan.out_inputs[1:]]
    # the pieces of the default selection at the floats: only a guess, which sizes the box;
    # the box decides (every element must keep this piece on all of it)
    guess = np.asarray(prim.default([u.v] + [a.mid for a in rest], **params)).astype(np.intp)
    if guess.shape != (n,):
        guess = np.broadcast_to(guess, (n,))
    slope = plan.slopes[guess]
    rows = np.flatnonzero(slope != 0)
    if len(rows) > MAX_DENSE_ROWS:
        return None
    fx_lo, fx_hi = _values_on_pieces(plan, u, rest, guess, n)
    # F is constant in x along the other rows on the box (one piece, of slope 0): T keeps F
    # there, and the box is hull(x, F(x)), which must hold F(X)
    base_lo, base_hi = np.minimum(x, fx_lo), np.maximum(x, fx_hi)
    moved = base_lo != base_hi                          # the other rows where x != F(x)
    moved[rows] = False
    moved = np.flatnonzero(moved)
    wide = np.union1d(rows, moved) if len(moved) else rows
    block = _recent_block(plan, free, rows, wide, slope)
    if block is None:
        return None
    # g(x) = x - F(x) on the rows N, as midpoint and radius
    x_rows = x[rows]
    g_lo, g_hi = outward(x_rows - fx_hi[rows], x_rows - fx_lo[rows])
    gm = 0.5 * g_lo + 0.5 * g_hi
    gr = up(np.maximum(g_hi - gm, gm - g_lo))
    if not np.isfinite(gr).all():
        return None
    floor = 4.0 * np.abs(np.nextafter(np.abs(x_rows), np.inf) - np.abs(x_rows))
    C = block.C
    g = up(np.abs(gm) + gr)
    if len(wide) > len(rows):
        # the other rows where x != F(x) move the rows N too, by about C A_NZ (X_Z - x_Z):
        # the first box holds that (a float estimate: the test decides)
        others = complement(len(wide), block.on_rows)
        cols = wide[others]
        d_z = np.maximum(x[cols] - base_lo[cols], base_hi[cols] - x[cols])
        g = g + (np.abs(block.Mv[:, others]) + block.Me[:, others]) @ d_z
    own = np.maximum(2.0 * (np.abs(C) @ g), 4.0 * g) + floor
    uniform = np.full(len(rows), float(np.max(own, initial=0.0))) + floor
    cap = 1e-2 * (1.0 + float(np.max(np.abs(x))))
    for radius in (own, uniform):
        if not (np.isfinite(radius).all() and float(np.max(radius, initial=0.0)) <= cap):
            return None
        lo, hi = base_lo.copy(), base_hi.copy()
        lo[rows], hi[rows] = outward_box(x_rows, radius)
        d = _difference(lo[wide], hi[wide], x[wide])              # X - x (0 off the rows wide)
        d_mag = np.zeros(n)
        d_mag[wide] = d.mag
        spread = plan.spread(free, d_mag)
        if not np.isfinite(spread).all():
            return None
        reach = up(u.e + spread)                  # u(X) within u.e + |L| |X - x| of u.v
        u_box = iv.Interval._new(*outward(u.v - reach, u.v + reach))
        if not _keeps_pieces(prim, [u_box] + rest, params, guess, n):
            return None                               # the box meets a kink: the general test
        # on the rows Z the piece's partial in u is 0: an affine piece constant in u, so F(X)
        # there is the real value F(x), inside the enclosure fx, inside X = hull(x, fx)
        if _strict_krawczyk(x_rows, lo[rows], hi[rows], d, gm, gr, block):
            def row_l1():                   # for certificates; derivatives never need it
                l1 = np.zeros(n)
                if len(rows):
                    with np.errstate(all="ignore"):
                        l1[rows] = up(np.abs(slope[rows]) * plan.row_l1(free, rows))
                return l1
            return AffineProof(lo, hi, rows, row_l1, block.A_NN)
    return None


class _Block(NamedTuple):
    """What the test needs of the Jacobian ``A[N, wide]`` (constant on every box where the
    pieces are ``guess``): its floats ``Mv`` within ``Me``, ``C ~ (I - A_NN)^-1`` and
    ``E = I - C (I - A_NN)`` within ``Er`` of ``Em``, ``on_rows`` the positions of N in wide."""

    on_rows: np.ndarray
    Mv: np.ndarray
    Me: np.ndarray
    C: np.ndarray
    Em: np.ndarray
    Er: np.ndarray
    A_NN: np.ndarray


def _recent_block(plan, free, rows, wide, slope) -> _Block | None:
    """The block of the last call when nothing it depends on changed (a hypergradient loop
    keeps its support along the penalties), else computed (None: not finite or singular)."""
    key = plan.columns_key(free, rows, wide) + (slope[rows].tobytes(),)
    hit = plan.recent.get(key)
    if hit is None:
        hit = _block(plan, free, rows, wide, slope)
        if hit is None:
            return None
        plan.recent.clear()
        plan.recent[key] = hit
    return hit


def _block(plan, free, rows, wide, slope) -> _Block | None:
    L = plan.columns(free, wide, rows)
    s_rows = slope[rows][:, None]
    Mv = s_rows * L.v                                 # A[N, wide], the same on the whole box
    Me = up(up(np.abs(s_rows) * L.e) + rounding(Mv))
    if not (np.isfinite(Mv).all() and np.isfinite(Me).all()):
        return None
    on_rows = np.arange(len(rows)) if wide is rows else np.searchsorted(wide, rows)
    k = len(rows)
    G = np.eye(k) - Mv[:, on_rows]                                            # I - A_NN
    try:
        with np.errstate(all="ignore"):
            C = np.linalg.inv(G)
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(C).all():
        return None
    # E = I - C (I - A_NN), with (I - A_NN) within Me and its own rounding
    P, Pr = midrad_product(C, None, G, up(Me[:, on_rows] + rounding(G)))
    Em = np.eye(k) - P
    Er = up(Pr + rounding(Em))
    A_NN = Mv[:, on_rows].copy()
    for arr in (on_rows, Mv, Me, C, Em, Er, A_NN):     # shared by the calls that reuse it
        arr.setflags(write=False)
    return _Block(on_rows, Mv, Me, C, Em, Er, A_NN)


def _values_on_pieces(plan, u, rest, guess, n):
    """Bounds ``(lo, hi)`` on ``F(x) = P(u(x), *rest)``, each element on its piece ``guess``
    (valid once the box shows that piece is the only one possible there): exactly ``c_p`` for
    a piece ``c_p`` constant in all inputs, ``sum_i d_pi input_i + c_p`` in midpoint-radius
    form on the others when the primitive declares its offsets
    (:attr:`~conservative.primitives.Nonsmooth.piece_offsets`), else the primitive's interval
    rule on those elements only (on the Lasso: the active ones)."""
    if plan.prim.piece_offsets is not None:
        # the primitive's own checks of its other inputs (soft-threshold: t >= 0), which the
        # pieces' formulas below do not make: its interval rule at u = 0 raises where they fail
        plan.prim.interval(iv.Interval._new(np.array(0.0), np.array(0.0)), *rest,
                           **plan.params)
    lo = plan.constant_values[guess]                   # NaN where not a known constant
    todo = np.flatnonzero(np.isnan(lo))
    lo, hi = lo.copy(), lo.copy()
    if not len(todo):
        return lo, hi
    args = [Approx(u.v[todo], u.e[todo])] + [_elements(a, todo, n) for a in rest]
    offsets = plan.prim.piece_offsets
    if offsets is None:
        got = plan.prim.interval(*(a.interval() for a in args), **plan.params)
        got = got.broadcast_to((len(todo),))
        lo[todo], hi[todo] = got.lo, got.hi
        return lo, hi
    pick = guess[todo]
    v = np.asarray(offsets, dtype=float)[pick]
    e = np.zeros(len(todo))
    for i, a in enumerate(args):
        d = plan.partials[pick, i]
        term = d * a.v
        acc = v + term
        e = up_add(e, rounding(acc))
        if not plan.unit_partials:                      # else d a.v is exact
            e = up_add(e, rounding(term))
        if np.ndim(a.e) or a.e != 0.0:
            e = up_add(e, up(np.abs(d) * a.e))
        v = acc
    lo[todo], hi[todo] = outward(v - e, v + e)
    return lo, hi


def _elements(a: iv.Interval, idx: np.ndarray, n: int) -> Approx:
    """The elements ``idx`` of an interval broadcast to ``(n,)``, as midpoint and radius."""
    lo, hi = a.lo, a.hi
    if lo is hi:
        return Approx(lo if lo.ndim == 0 else np.broadcast_to(lo, (n,))[idx], 0.0)
    if lo.ndim:
        lo, hi = np.broadcast_to(lo, (n,))[idx], np.broadcast_to(hi, (n,))[idx]
    return Approx.of(iv.Interval._new(lo, hi))


def _compact(a: iv.Interval) -> iv.Interval:
    """A broadcast scalar (the Lasso's threshold ``step * lam`` on every element) as a 0-d
    interval: the primitive's rules broadcast it, without n-element arithmetic on copies."""
    lo, hi = a.lo, a.hi
    if lo.ndim == 0 or any(lo.strides) or any(hi.strides):
        return a
    lo0 = np.array(lo.reshape(-1)[0])
    return iv.Interval._new(lo0, lo0 if hi is lo else np.array(hi.reshape(-1)[0]))


def _keeps_pieces(prim, args, params, guess, n) -> bool:
    """Whether every element has its piece ``guess``, and no other, possible over ``args``."""
    for piece, may in enumerate(prim.interval_active(args, 0.0, **params)):
        may = np.asarray(may)
        if np.any((may if may.shape == (n,) else np.broadcast_to(may, (n,))) != (guess == piece)):
            return False
    return True


def _strict_krawczyk(x, lo, hi, d, gm, gr, block: _Block) -> bool:
    """Whether ``K(X)`` (:func:`~conservative.fixed_point_set._krawczyk_image`) lies in the
    *interior* of X on the rows N, for a Jacobian ``A`` constant on the box (``block``), the
    residual ``g_N(x)`` within ``gr`` of ``gm``; in midpoint-radius form with a-priori rounding
    bounds (:func:`conservative.affine_enclosure.midrad_product`). ``x``, ``lo``, ``hi`` are on
    the rows N, ``d`` encloses ``X - x`` on the columns wide.

    Strictly inside, K's radius, at least ``|E| w`` for ``w`` the half-widths of X, is below
    ``w``: the spectral radius of ``|E|`` is below 1 (Perron-Frobenius), so ``I - E =
    C (I - A_NN)`` and C are nonsingular, and a fixed point of ``T(x) = x - C g(x)`` in X
    (Brouwer) is one of F."""
    on_rows, C = block.on_rows, block.C
    k = len(on_rows)
    if k == 0:
        return True
    Cg, Cg_r = midrad_product(C, None, gm, gr)
    dm = 0.5 * d.lo + 0.5 * d.hi
    dr = up(np.maximum(d.hi - dm, dm - d.lo))
    Ed, Ed_r = midrad_product(block.Em, block.Er, dm[on_rows], dr[on_rows])
    head = x - Cg
    K = head + Ed
    Kr = up(up(Cg_r + Ed_r) + up(rounding(head) + rounding(K)))
    if k < len(dm):                                             # C A_NZ (X_Z - x_Z)
        others = complement(len(dm), on_rows)
        Md, Md_r = midrad_product(block.Mv[:, others], block.Me[:, others], dm[others],
                                  dr[others])
        Cc, Cc_r = midrad_product(C, None, Md, Md_r)
        K2 = K + Cc
        Kr = up(up(Kr + Cc_r) + rounding(K2))
        K = K2
    if not (np.isfinite(K).all() and np.isfinite(Kr).all()):
        return False
    k_lo, k_hi = outward(K - Kr, K + Kr)
    return bool(np.all(k_lo > lo) and np.all(k_hi < hi))


def _difference(lo, hi, x) -> iv.Interval:
    """``[lo, hi] - x`` rounded outward, exactly 0 where ``lo == x`` (``hi == x``): a float
    difference is 0 only between equal numbers."""
    a, b = lo - x, hi - x
    out_a, out_b = outward(a, b)
    return iv.Interval._new(np.where(a == 0, 0.0, out_a), np.where(b == 0, 0.0, out_b))
