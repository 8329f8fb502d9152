"""Nonsmooth elementwise primitives, one block each: value, pieces, activity, default, sympy.

Each primitive is a selection function: f(x) = f_{s(x)}(x) with finitely many smooth pieces.
At a point the *active* pieces are those whose region touches the point within ``tol``; the
conservative Jacobian is the set of their Jacobians (or its convex hull). The *default* is the
piece an AD program returns there; it is always one of the pieces, and it is documented below
and pinned by tests. Conventions of other frameworks that are not pieces (PyTorch's
``abs'(0) = 0``, JAX's tie split 1/2) belong to the convex hull, not to the finite set.
"""

from __future__ import annotations

import numpy as np
from ..primitives import lazy_sympy as sympy  # imported on first use, not by `import conservative`

from .. import interval as iv
from ..errors import DiscontinuityError, InputError
from ..primitives import Pieces, Primitive, register


def _same_shape(*shapes, **_):
    return shapes[0]


def _active(*masks):
    return np.stack(np.broadcast_arrays(*masks))


def _piece_hull(partials, possible):
    """Interval hull, per input, of the constant partials of the pieces that may be active.

    ``partials[p][i]`` is piece p's (constant) partial w.r.t. input i; ``possible[p]`` a boolean
    array telling where piece p may be active on the box. Every conservative Jacobian element
    at every point of the box uses partials of active pieces, so it lies in this hull.
    """
    possible = np.stack(np.broadcast_arrays(*possible))
    out = []
    for i in range(len(partials[0])):
        c = np.array([float(p[i]) for p in partials]).reshape((-1,) + (1,) * (possible.ndim - 1))
        lo = np.min(np.where(possible, c, np.inf), axis=0)
        hi = np.max(np.where(possible, c, -np.inf), axis=0)
        out.append(iv.Interval(lo, hi))
    return tuple(out)


def _sign_pieces_possible(ivs, tol):
    """Pieces (x <= 0, x >= 0) of relu and abs: where each may be active on the box."""
    return ivs[0].lo <= tol, ivs[0].hi >= -tol


def _hull_of(partials, active_rule):
    """The ``interval_partials`` rule of a primitive whose pieces have constant ``partials``:
    the hull of the partials of the pieces that ``active_rule`` says may be active."""
    def rule(ivs, out, tol, **params):
        return _piece_hull(partials, active_rule(ivs, tol, **params))
    return rule


# --- relu ---------------------------------------------------------------------------------------

_RELU_PARTIALS = ((0.0,), (1.0,))


def _relu_pieces(vals, out, tol):
    x = vals[0]
    return Pieces(partials=_RELU_PARTIALS,
                  active=_active(x <= tol, x >= -tol),
                  default=(x > 0).astype(np.intp))


relu_p = register(Primitive(
    name="relu", kind="elementwise", impl=lambda x: np.maximum(x, 0.0), shape_rule=_same_shape,
    pieces=_relu_pieces,
    default_partials=lambda vals, out: ((vals[0] > 0).astype(float),),
    interval=iv.relu,
    piece_partials=_RELU_PARTIALS,
    interval_active=_sign_pieces_possible,
    interval_partials=_hull_of(_RELU_PARTIALS, _sign_pieces_possible),
    kink_default=lambda: 0,
    default_rule="relu'(0) = 0 (the zero piece), as in JAX and PyTorch; the set at 0 is {0, 1}",
    sympy=lambda x: sympy.Max(x, 0)))


# --- abs ----------------------------------------------------------------------------------------

_ABS_PARTIALS = ((-1.0,), (1.0,))


def _abs_pieces(vals, out, tol):
    x = vals[0]
    return Pieces(partials=_ABS_PARTIALS,
                  active=_active(x <= tol, x >= -tol),
                  default=(x >= 0).astype(np.intp))


abs_p = register(Primitive(
    name="abs", kind="elementwise", impl=np.abs, shape_rule=_same_shape, pieces=_abs_pieces,
    default_partials=lambda vals, out: (np.where(vals[0] >= 0, 1.0, -1.0),),
    interval=iv.absolute,
    piece_partials=_ABS_PARTIALS,
    interval_active=_sign_pieces_possible,
    interval_partials=_hull_of(_ABS_PARTIALS, _sign_pieces_possible),
    kink_default=lambda: 1,
    default_rule="abs'(0) = 1 (the piece x), as in JAX; the set at 0 is {-1, 1}, its hull "
                 "[-1, 1] contains PyTorch's 0",
    sympy=sympy.Abs))


# --- maximum / minimum --------------------------------------------------------------------------

_TIE_PARTIALS = ((1.0, 0.0), (0.0, 1.0))


def _maximum_possible(ivs, tol):
    """Pieces (first, second) of maximum: where a - b may be >= 0, where it may be <= 0."""
    d = iv.subtract(ivs[0], ivs[1])
    return d.hi >= -tol, d.lo <= tol


def _minimum_possible(ivs, tol):
    """Pieces (first, second) of minimum: where b - a may be >= 0, where it may be <= 0."""
    return _maximum_possible(ivs[::-1], tol)


def _first_or_second(first):
    f = first.astype(float)
    return f, 1.0 - f


def _maximum_pieces(vals, out, tol):
    d = vals[0] - vals[1]
    return Pieces(partials=_TIE_PARTIALS,
                  active=_active(d >= -tol, d <= tol),
                  default=(d < 0).astype(np.intp))


maximum_p = register(Primitive(
    name="maximum", kind="elementwise", impl=np.maximum, shape_rule=_same_shape,
    pieces=_maximum_pieces,
    default_partials=lambda vals, out: _first_or_second(vals[0] >= vals[1]),
    interval=iv.maximum,
    piece_partials=_TIE_PARTIALS,
    interval_active=_maximum_possible,
    interval_partials=_hull_of(_TIE_PARTIALS, _maximum_possible),
    kink_default=lambda: 0,
    default_rule="at a tie a == b the first argument is selected (partials (1, 0)); the set is "
                 "{(1, 0), (0, 1)}, its hull contains JAX's split (1/2, 1/2)",
    sympy=sympy.Max))


def _minimum_pieces(vals, out, tol):
    d = vals[0] - vals[1]
    return Pieces(partials=_TIE_PARTIALS,
                  active=_active(d <= tol, d >= -tol),
                  default=(d > 0).astype(np.intp))


minimum_p = register(Primitive(
    name="minimum", kind="elementwise", impl=np.minimum, shape_rule=_same_shape,
    pieces=_minimum_pieces,
    default_partials=lambda vals, out: _first_or_second(vals[0] <= vals[1]),
    interval=iv.minimum,
    piece_partials=_TIE_PARTIALS,
    interval_active=_minimum_possible,
    interval_partials=_hull_of(_TIE_PARTIALS, _minimum_possible),
    kink_default=lambda: 0,
    default_rule="at a tie a == b the first argument is selected (partials (1, 0)); the set is "
                 "{(1, 0), (0, 1)}",
    sympy=sympy.Min))


# --- soft_threshold -----------------------------------------------------------------------------

def _soft_threshold(z, t):
    if np.any(t < 0):
        raise InputError(
            "cv.soft_threshold: received a negative threshold t (min "
            f"{float(np.min(t)):.3g}); the map sign(z) max(|z| - t, 0) is discontinuous for t < 0, "
            "pass t >= 0 (e.g. step * lam with lam >= 0)")
    return z - np.clip(z, -t, t)        # = sign(z) max(|z| - t, 0) for t >= 0, in two passes


_SOFT_THRESHOLD_PARTIALS = ((1.0, -1.0), (0.0, 0.0), (1.0, 1.0))


def _soft_threshold_pieces(vals, out, tol):
    z, t = vals
    return Pieces(partials=_SOFT_THRESHOLD_PARTIALS,
                  active=_active(z - t >= -tol, np.abs(z) - t <= tol, z + t <= tol),
                  default=np.where(z > t, 0, np.where(z < -t, 2, 1)).astype(np.intp))


def _soft_threshold_possible(ivs, tol):
    """Pieces (z >= t, |z| <= t, z <= -t): where each may be active on the box."""
    z, t = ivs
    return (iv.subtract(z, t).hi >= -tol, iv.subtract(iv.absolute(z), t).lo <= tol,
            iv.add(z, t).lo <= tol)


def _soft_threshold_default(vals, out):
    # the output is nonzero exactly off the zero piece, with the sign of z
    sign = np.sign(out)
    return np.abs(sign), -sign


soft_threshold_p = register(Primitive(
    name="soft_threshold", kind="elementwise", impl=_soft_threshold, shape_rule=_same_shape,
    pieces=_soft_threshold_pieces,
    default_partials=_soft_threshold_default,
    interval=iv.soft_threshold,
    piece_partials=_SOFT_THRESHOLD_PARTIALS,
    interval_active=_soft_threshold_possible,
    interval_partials=_hull_of(_SOFT_THRESHOLD_PARTIALS, _soft_threshold_possible),
    kink_default=lambda: 1,
    default_rule="at |z| == t the zero piece is selected (partials (0, 0) in (z, t)); the set "
                 "at z == t > 0 is {(1, -1), (0, 0)}, at z == t == 0 all three pieces",
    sympy=lambda z, t: sympy.sign(z) * sympy.Max(sympy.Abs(z) - t, 0)))


# --- clip ---------------------------------------------------------------------------------------

def _clip(z, lo, hi):
    if np.any(lo > hi):
        raise InputError("cv.clip: received lo > hi somewhere; pass bounds with lo <= hi")
    return np.minimum(np.maximum(z, lo), hi)


_CLIP_PARTIALS = ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0))


def _clip_pieces(vals, out, tol):
    z, lo, hi = vals
    return Pieces(partials=_CLIP_PARTIALS,
                  active=_active(z - lo <= tol, (z - lo >= -tol) & (z - hi <= tol),
                                 z - hi >= -tol),
                  default=np.where(z < lo, 0, np.where(z > hi, 2, 1)).astype(np.intp))


def _clip_possible(ivs, tol):
    """Pieces (z <= lo, lo <= z <= hi, z >= hi): where each may be active on the box."""
    z, lo, hi = ivs
    below, above = iv.subtract(z, lo), iv.subtract(z, hi)
    return below.lo <= tol, (below.hi >= -tol) & (above.lo <= tol), above.hi >= -tol


def _clip_default(vals, out):
    z, lo, hi = vals
    below, above = (z < lo).astype(float), (z > hi).astype(float)
    return 1.0 - below - above, below, above


clip_p = register(Primitive(
    name="clip", kind="elementwise", impl=_clip, shape_rule=_same_shape, pieces=_clip_pieces,
    default_partials=_clip_default,
    interval=iv.clip,
    piece_partials=_CLIP_PARTIALS,
    interval_active=_clip_possible,
    interval_partials=_hull_of(_CLIP_PARTIALS, _clip_possible),
    kink_default=lambda: 1,
    default_rule="at z == lo or z == hi the identity piece is selected (partial 1 in z), as "
                 "PyTorch's clamp; the set at z == lo < hi is {(0, 1, 0), (1, 0, 0)} in "
                 "(z, lo, hi)",
    sympy=lambda z, lo, hi: sympy.Min(sympy.Max(z, lo), hi)))


# --- select (cv.where) --------------------------------------------------------------------------

_SELECT_PARTIALS = ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
_CONTINUITY_RTOL = 1e-8
_CONTINUITY_ATOL = 1e-12


def check_branches_agree(g, a, b, on_boundary):
    """Raise DiscontinuityError where ``on_boundary`` holds but the branches differ."""
    a, b = np.broadcast_arrays(a, b)
    gap = np.abs(a - b)
    bad = on_boundary & (gap > _CONTINUITY_ATOL + _CONTINUITY_RTOL * np.maximum(np.abs(a),
                                                                               np.abs(b)))
    if np.any(bad):
        i = np.argwhere(bad)[0]
        raise DiscontinuityError(
            f"cv.where: the two branches differ on the boundary of the condition (at element "
            f"{tuple(int(k) for k in i[1:])}: a = {a[tuple(i)]:.6g}, b = {b[tuple(i)]:.6g}); a "
            "conservative Jacobian exists only for continuous piecewise maps: make the branches "
            "agree where the condition switches, or use cv.maximum / cv.minimum / cv.relu")


def _select(g, a, b, strict):
    check_branches_agree(g, a, b, np.broadcast_to(g == 0, np.broadcast_shapes(
        np.shape(g), np.shape(a), np.shape(b))))
    return np.where(g > 0 if strict else g >= 0, a, b)


def _select_pieces(vals, out, tol, strict):
    g, a, b = vals
    both = (g >= -tol) & (g <= tol)
    check_branches_agree(g, a, b, np.broadcast_to(both, out.shape) if tol == 0 else
                         np.broadcast_to(g == 0, out.shape))
    first = g > 0 if strict else g >= 0
    return Pieces(partials=_SELECT_PARTIALS,
                  active=_active(g >= -tol, g <= tol),
                  default=(~first).astype(np.intp))


def _select_possible(ivs, tol, strict):
    """Branches (a where g >= 0, b where g <= 0): where each may be active on the box."""
    return ivs[0].hi >= -tol, ivs[0].lo <= tol


def _select_default(vals, out, strict):
    g = vals[0]
    first = (g > 0 if strict else g >= 0).astype(float)
    return 0.0, first, 1.0 - first


select_p = register(Primitive(
    name="select", kind="elementwise", impl=_select, shape_rule=_same_shape,
    pieces=_select_pieces,
    default_partials=_select_default,
    interval=lambda g, a, b, strict: iv.where(iv.gt(g, 0.0), a, b),
    piece_partials=_SELECT_PARTIALS,
    interval_active=_select_possible,
    interval_partials=_hull_of(_SELECT_PARTIALS, _select_possible),
    kink_default=lambda strict: 1 if strict else 0,
    default_rule="cv.where(cond, a, b) selects the branch the condition picks at the point "
                 "(for cond g > 0 at g == 0: b; for g >= 0: a); on the boundary both branches "
                 "are active",
    sympy=lambda g, a, b, strict: sympy.Piecewise((a, g > 0 if strict else g >= 0), (b, True))))
