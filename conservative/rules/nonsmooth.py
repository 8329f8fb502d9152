"""Nonsmooth elementwise primitives, one block each: every rule side by side.

Each primitive is a selection function: f(x) = f_{s(x)}(x) with finitely many affine pieces.
At a point the *active* pieces are those whose region touches the point within ``tol``; the
conservative Jacobian is the set of their Jacobians (or its convex hull). The *default* is the
piece an AD program returns there; it is always one of the pieces, and it is documented below
and pinned by tests. Conventions of other frameworks that are not pieces (PyTorch's
``abs'(0) = 0``, JAX's tie split 1/2) belong to the convex hull, not to the finite set.

A block gives: ``impl``; ``piece_partials`` (the constant partials of each piece); ``active``
(where each piece is active at points, with ``tol``) and ``interval_active`` (where each may be
active on a box); ``default`` and ``kink_default`` (the piece on a kink); ``default_partials``
(the default's partials computed directly); the ``interval`` value rule; ``sympy``; printing and
NumPy names. The interval hull of the partials and the interval tangents follow from the pieces
(``conservative.primitives.Nonsmooth``).
"""

from __future__ import annotations

import numpy as np
from ..primitives import lazy_sympy as sympy  # imported on first use, not by `import conservative`

from .. import interval as iv
from ..errors import InputError, UndecidedError, fail_message
from ..primitives import Nonsmooth, check_branches_agree, register

__all__ = ["relu_p", "abs_p", "maximum_p", "minimum_p", "soft_threshold_p", "clip_p",
           "select_p"]


def _same_shape(*shapes, **_):
    return shapes[0]


# --- relu ---------------------------------------------------------------------------------------

def _sign_pieces_active(vals, tol):
    """Pieces (x <= 0, x >= 0) of relu and abs, within tol."""
    return vals[0] <= tol, vals[0] >= -tol


def _sign_pieces_possible(ivs, tol):
    """Pieces (x <= 0, x >= 0) of relu and abs: where each may be active on the box."""
    return ivs[0].lo <= tol, ivs[0].hi >= -tol


relu_p = register(Nonsmooth(
    name="relu", impl=lambda x: np.maximum(x, 0.0), shape_rule=_same_shape,
    piece_partials=((0.0,), (1.0,)),                    # pieces 0 and x
    piece_offsets=(0.0, 0.0),
    active=_sign_pieces_active,
    default=lambda vals: vals[0] > 0,
    default_partials=lambda vals, out: ((vals[0] > 0).astype(float),),
    interval=lambda x: iv.maximum(x, 0.0),               # exact: max is monotone
    interval_active=_sign_pieces_possible,
    kink_default=lambda: 0,
    default_rule="relu'(0) = 0 (the zero piece), as in JAX and PyTorch; the set at 0 is {0, 1}",
    sympy=lambda x: sympy.Max(x, 0)))


# --- abs ----------------------------------------------------------------------------------------

abs_p = register(Nonsmooth(
    name="abs", impl=np.abs, shape_rule=_same_shape, ufuncs=("absolute", "fabs"),
    piece_partials=((-1.0,), (1.0,)),                   # pieces -x and x
    piece_offsets=(0.0, 0.0),
    active=_sign_pieces_active,
    default=lambda vals: vals[0] >= 0,
    default_partials=lambda vals, out: (np.where(vals[0] >= 0, 1.0, -1.0),),
    interval=iv.absolute,
    interval_active=_sign_pieces_possible,
    kink_default=lambda: 1,
    default_rule="abs'(0) = 1 (the piece x), as in JAX; the set at 0 is {-1, 1}, its hull "
                 "[-1, 1] contains PyTorch's 0",
    sympy=sympy.Abs))


# --- maximum / minimum --------------------------------------------------------------------------

_TIE_PARTIALS = ((1.0, 0.0), (0.0, 1.0))                 # pieces a and b


def _first_or_second(first):
    f = first.astype(float)
    return f, 1.0 - f


def _maximum_possible(ivs, tol):
    """Pieces (first, second) of maximum: where a - b may be >= 0, where it may be <= 0."""
    d = iv.subtract(ivs[0], ivs[1])
    return d.hi >= -tol, d.lo <= tol


maximum_p = register(Nonsmooth(
    name="maximum", impl=np.maximum, shape_rule=_same_shape, ufuncs=("maximum",),
    piece_partials=_TIE_PARTIALS,
    piece_offsets=(0.0, 0.0),
    active=lambda vals, tol: (vals[0] - vals[1] >= -tol, vals[0] - vals[1] <= tol),
    default=lambda vals: vals[0] - vals[1] < 0,
    default_partials=lambda vals, out: _first_or_second(vals[0] >= vals[1]),
    interval=iv.maximum,
    interval_active=_maximum_possible,
    kink_default=lambda: 0,
    default_rule="at a tie a == b the first argument is selected (partials (1, 0)); the set is "
                 "{(1, 0), (0, 1)}, its hull contains JAX's split (1/2, 1/2)",
    sympy=sympy.Max))


minimum_p = register(Nonsmooth(
    name="minimum", impl=np.minimum, shape_rule=_same_shape, ufuncs=("minimum",),
    piece_partials=_TIE_PARTIALS,
    piece_offsets=(0.0, 0.0),
    active=lambda vals, tol: (vals[0] - vals[1] <= tol, vals[0] - vals[1] >= -tol),
    default=lambda vals: vals[0] - vals[1] > 0,
    default_partials=lambda vals, out: _first_or_second(vals[0] <= vals[1]),
    interval=iv.minimum,
    interval_active=lambda ivs, tol: _maximum_possible(ivs[::-1], tol),
    kink_default=lambda: 0,
    default_rule="at a tie a == b the first argument is selected (partials (1, 0)); the set is "
                 "{(1, 0), (0, 1)}",
    sympy=sympy.Min))


# --- soft_threshold -----------------------------------------------------------------------------

def _soft_threshold(z, t):
    # array methods and ufuncs, not np.any / np.clip: their Python layers cost more than the
    # arithmetic at these sizes, most of all right after a large product has evicted them
    if (t < 0).any():
        raise InputError(
            "cv.soft_threshold: received a negative threshold t (min "
            f"{float(np.min(t)):.3g}); the map sign(z) max(|z| - t, 0) is discontinuous for t < 0, "
            "pass t >= 0 (e.g. step * lam with lam >= 0)")
    # = sign(z) max(|z| - t, 0) for t >= 0 (np.clip's own definition of the middle term)
    return z - np.minimum(np.maximum(z, -t), t)


def _refuse_outside(call, certain, possible, describe, fix):
    """An interval rule's domain check: InputError at the first index where the box is
    ``certain``ly outside the domain, UndecidedError where it ``possible``y is (``describe(k)``
    names the operands at index k)."""
    for bad, error, what in ((certain, InputError, "outside the domain"),
                             (possible, UndecidedError, "partly outside the domain")):
        if np.any(bad):
            k = tuple(int(i) for i in np.argwhere(bad)[0])
            raise error(fail_message(call, f"{describe(k)}, {what}", fix))


def _soft_threshold_interval(z, t):
    """``sign(z) max(|z| - t, 0)`` over boxes, for thresholds ``t >= 0``.

    Nondecreasing in ``z``; for fixed ``z`` its magnitude is nonincreasing in ``t``, so the
    range over a box is ``[S(z.lo, t.hi if z.lo >= 0 else t.lo), S(z.hi, t.lo if z.hi >= 0
    else t.hi)]``, computed as ``max(z - t, 0) + min(z + t, 0)`` (at most one term is nonzero)
    with each difference rounded outward.

    Raises InputError if ``t`` is certainly negative somewhere and UndecidedError if it may be
    (the map is discontinuous for negative thresholds).
    """
    call = "cv.soft_threshold (interval rule)"
    z = z if isinstance(z, iv.Interval) else iv.Interval(z)
    t = t if isinstance(t, iv.Interval) else iv.Interval(t)
    _refuse_outside(call, t.hi < 0, t.lo < 0,
                    lambda k: f"a threshold [{float(t.lo[k])!r}, {float(t.hi[k])!r}] at index "
                              f"{k}", "pass thresholds t >= 0 (tighten the box of t)")
    # z - t = [z.lo - t.hi, z.hi - t.lo] and z + t = [z.lo + t.lo, z.hi + t.hi], rounded outward
    minus, plus = iv.subtract(z, t), iv.add(z, t)
    lo = np.maximum(minus.lo, 0.0) + np.minimum(plus.lo, 0.0)
    hi = np.maximum(minus.hi, 0.0) + np.minimum(plus.hi, 0.0)
    return iv.Interval._new(lo, hi)         # monotone in each endpoint: lo <= hi


def _soft_threshold_possible(ivs, tol):
    """Pieces (z >= t, |z| <= t, z <= -t): where each may be active on the box."""
    z, t = ivs
    if tol == 0:
        # the signs of the exact differences of floats, compared directly (max z - t >= 0,
        # min |z| - t <= 0, min z + t <= 0): no rounding to direct
        return (z.hi >= t.lo, z.mig <= t.hi, z.lo <= -t.lo)
    return (iv.subtract(z, t).hi >= -tol, iv.subtract(iv.absolute(z), t).lo <= tol,
            iv.add(z, t).lo <= tol)


def _soft_threshold_default(vals, out):
    # the output is nonzero exactly off the zero piece, with the sign of z
    sign = np.sign(out)
    return np.abs(sign), -sign


soft_threshold_p = register(Nonsmooth(
    name="soft_threshold", impl=_soft_threshold, shape_rule=_same_shape,
    piece_partials=((1.0, -1.0), (0.0, 0.0), (1.0, 1.0)),     # z - t, 0, z + t in (z, t)
    piece_offsets=(0.0, 0.0, 0.0),
    active=lambda vals, tol: (vals[0] - vals[1] >= -tol, np.abs(vals[0]) - vals[1] <= tol,
                              vals[0] + vals[1] <= tol),
    default=lambda vals: np.where(vals[0] > vals[1], 0, np.where(vals[0] < -vals[1], 2, 1)),
    default_partials=_soft_threshold_default,
    interval=_soft_threshold_interval,
    interval_active=_soft_threshold_possible,
    kink_default=lambda: 1,
    default_rule="at |z| == t the zero piece is selected (partials (0, 0) in (z, t)); the set "
                 "at z == t > 0 is {(1, -1), (0, 0)}, at z == t == 0 all three pieces",
    sympy=lambda z, t: sympy.sign(z) * sympy.Max(sympy.Abs(z) - t, 0)))


# --- clip ---------------------------------------------------------------------------------------

def _clip(z, lo, hi):
    if np.any(lo > hi):
        raise InputError("cv.clip: received lo > hi somewhere; pass bounds with lo <= hi")
    return np.minimum(np.maximum(z, lo), hi)


def _clip_active(vals, tol):
    """Pieces (z <= lo, lo <= z <= hi, z >= hi), within tol."""
    z, lo, hi = vals
    return z - lo <= tol, (z - lo >= -tol) & (z - hi <= tol), z - hi >= -tol


def _clip_possible(ivs, tol):
    """Pieces (z <= lo, lo <= z <= hi, z >= hi): where each may be active on the box."""
    z, lo, hi = ivs
    below, above = iv.subtract(z, lo), iv.subtract(z, hi)
    return below.lo <= tol, (below.hi >= -tol) & (above.lo <= tol), above.hi >= -tol


def _clip_interval(z, lo, hi):
    """``min(max(z, lo), hi)`` over boxes (exact: monotone in every input), for bounds with
    ``lo <= hi``: InputError where ``lo > hi`` certainly, UndecidedError where it may be (the
    map is not defined there, and its pieces would overlap)."""
    call = "cv.clip (interval rule)"
    lo = lo if isinstance(lo, iv.Interval) else iv.Interval(lo)
    hi = hi if isinstance(hi, iv.Interval) else iv.Interval(hi)
    shape = np.broadcast_shapes(lo.shape, hi.shape)
    a_lo, a_hi, b_lo, b_hi = (np.broadcast_to(e, shape) for e in (lo.lo, lo.hi, hi.lo, hi.hi))
    _refuse_outside(call, a_lo > b_hi, a_hi > b_lo,
                    lambda k: f"bounds lo = [{float(a_lo[k])!r}, {float(a_hi[k])!r}] and hi = "
                              f"[{float(b_lo[k])!r}, {float(b_hi[k])!r}] at index {k}",
                    "pass bounds with lo <= hi (tighten the box of the parameters)")
    return iv.minimum(iv.maximum(z, lo), hi)


def _clip_default_partials(vals, out):
    z, lo, hi = vals
    below, above = (z < lo).astype(float), (z > hi).astype(float)
    return 1.0 - below - above, below, above


clip_p = register(Nonsmooth(
    name="clip", impl=_clip, shape_rule=_same_shape,
    piece_partials=((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),   # lo, z, hi
    piece_offsets=(0.0, 0.0, 0.0),
    active=_clip_active,
    default=lambda vals: np.where(vals[0] < vals[1], 0, np.where(vals[0] > vals[2], 2, 1)),
    default_partials=_clip_default_partials,
    interval=_clip_interval,
    interval_active=_clip_possible,
    kink_default=lambda: 1,
    default_rule="at z == lo or z == hi the identity piece is selected (partial 1 in z), as "
                 "PyTorch's clamp; the set at z == lo < hi is {(0, 1, 0), (1, 0, 0)} in "
                 "(z, lo, hi)",
    sympy=lambda z, lo, hi: sympy.Min(sympy.Max(z, lo), hi)))


# --- select (cv.where) --------------------------------------------------------------------------
# The pieces are the user's branches a and b, switched by the sign of g. They must agree where
# g == 0 (continuity); the ``branches`` hook tells the package which values to compare there:
# checked whenever such a point is evaluated, sampled when the map is traced, and reported for
# boxes that meet g == 0 (a certificate's mean-value argument refuses them).

def _select(g, a, b, strict):
    check_branches_agree(g, a, b)
    return np.where(g > 0 if strict else g >= 0, a, b)


select_p = register(Nonsmooth(
    name="select", impl=_select, shape_rule=_same_shape, call="cv.where",
    piece_partials=((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),        # branches a and b in (g, a, b)
    piece_offsets=(0.0, 0.0),
    active=lambda vals, tol, strict: (vals[0] >= -tol, vals[0] <= tol),
    default=lambda vals, strict: ~(vals[0] > 0 if strict else vals[0] >= 0),
    default_partials=lambda vals, out, strict: (
        0.0, (vals[0] > 0 if strict else vals[0] >= 0).astype(float),
        (~(vals[0] > 0 if strict else vals[0] >= 0)).astype(float)),
    interval=lambda g, a, b, strict: iv.where(iv.gt(g, 0.0), a, b),
    interval_active=lambda ivs, tol, strict: (ivs[0].hi >= -tol, ivs[0].lo <= tol),
    kink_default=lambda strict: 1 if strict else 0,
    branches=lambda vals, strict: tuple(vals),
    default_rule="cv.where(cond, a, b) selects the branch the condition picks at the point "
                 "(for cond g > 0 at g == 0: b; for g >= 0: a); on the boundary both branches "
                 "are active",
    pretty=lambda args, params: f"where({args[0]} {'>' if params['strict'] else '>='} 0, "
                                f"{args[1]}, {args[2]})",
    sympy=lambda g, a, b, strict: sympy.Piecewise((a, g > 0 if strict else g >= 0), (b, True))))
