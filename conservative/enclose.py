"""Interval enclosures of programs and of their conservative Jacobians over boxes.

One forward sweep in outward-rounded interval arithmetic (``conservative.interval``):

* values: each primitive's interval rule encloses its output over the box of its inputs;
* partials: smooth primitives enclose their partial derivatives; nonsmooth ones take the hull of
  the partials of every piece that *may* be active somewhere on the box (an undecided interval
  comparison counts as possibly active, never as a guess);
* tangents: identity seeds at ``x`` and ``theta`` are pushed through in interval arithmetic.

Every element ``[A B]`` of every conservative Jacobian of the program (hull or not, any
selection) at every point of the box lies in the returned :class:`IntervalMatrix`: each node's
local derivative lies in its enclosure and interval products and sums contain the real ones.
"""

from __future__ import annotations

import numpy as np

from . import interval as iv
from ._types import as_float_array
from .errors import InputError, ShapeError, fail_message
from .graph import Program
from .interpreter import seed, walk

__all__ = ["enclose_program", "enclose_values", "possible_pieces", "as_box"]


def as_box(box, shape, *, name: str, call: str) -> iv.Interval:
    """A box given as ``(lo, hi)`` arrays, an :class:`Interval`, or a point array."""
    if isinstance(box, iv.Interval):
        result = box
    elif isinstance(box, tuple) and len(box) == 2:
        lo = as_float_array(box[0], name=f"{name}[0] (lower corner)", call=call, shape=shape)
        hi = as_float_array(box[1], name=f"{name}[1] (upper corner)", call=call, shape=shape)
        if np.any(lo > hi):
            raise InputError(fail_message(call, f"{name} with lo > hi somewhere",
                                          "pass (lo, hi) with lo <= hi elementwise"))
        result = iv.Interval(lo, hi)
    else:
        result = iv.Interval(as_float_array(box, name=name, call=call, shape=shape))
    if result.shape != tuple(shape):
        raise ShapeError(fail_message(call, f"{name} of shape {result.shape}",
                                      f"pass a box of shape {tuple(shape)}"))
    return result


def _scale(d, t: iv.Interval) -> iv.Interval:
    """Enclose ``d * t`` for a partial ``d`` (float or Interval) and a tangent ``t`` (…, T).

    Partials whose endpoints are all -1, 0 or 1 (sums, differences, the piece hulls of
    relu / abs / soft-threshold / clip / where) multiply exactly in floating point, so the
    four endpoint products need no directed rounding.
    """
    if not isinstance(d, iv.Interval):
        if d == 1.0:
            return t
        if d == -1.0:
            return -t
        return _point_scale(np.asarray(d, dtype=float), t)
    d = d.reshape(d.shape + (1,))
    ends = np.concatenate([d.lo.ravel(), d.hi.ravel()])
    if np.all((ends == 0.0) | (ends == 1.0) | (ends == -1.0)):
        products = (d.lo * t.lo, d.lo * t.hi, d.hi * t.lo, d.hi * t.hi)
        return iv.Interval(np.minimum.reduce(products), np.maximum.reduce(products))
    if np.array_equal(d.lo, d.hi):
        return _point_scale(d.lo, t)
    return iv.multiply(d, t)


def _point_scale(d: np.ndarray, t: iv.Interval) -> iv.Interval:
    """Enclose ``d * t`` for exact reals ``d``: one rounded product per endpoint, then one
    step outward (a round-to-nearest product errs by at most half an ulp, and by less than the
    smallest subnormal when it underflows)."""
    with np.errstate(invalid="ignore"):
        a, b = d * t.lo, d * t.hi
    zero = d == 0                                   # 0 * inf is 0 here, not NaN
    a, b = np.where(zero, 0.0, a), np.where(zero, 0.0, b)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return iv.Interval(np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf))


def _interval_consts(program: Program) -> dict:
    """The program's constants as degenerate intervals (built once per program)."""
    return program.cached("interval_consts", lambda: {
        node: iv.Interval(value) for node, value in program.consts.items()})


def enclose_program(program: Program, x_box: iv.Interval, theta_box: iv.Interval, *,
                    tol: float = 0.0, call: str = "Map.enclose", boundaries: list | None = None,
                    seeds: tuple | None = None):
    """Enclose the output and the Jacobian ``[A B]`` of ``program`` over a box.

    Parameters
    ----------
    boundaries : list, optional
        If given, the ``cv.where`` (select) nodes whose condition may change sign on the box
        are appended to it. Their continuity is checked only at evaluated points, so a caller
        that needs F to be Lipschitz on the box (a mean-value argument) must refuse them.
    seeds : tuple (x_seed, theta_seed), optional
        Interval tangents of ``x`` (shape ``(*state_shape, T)``) and ``theta`` (or None for
        zero) in place of the identity: the result then encloses ``{[A B] S : S in seeds}``
        for every Jacobian on the box, ``T`` columns (a few directions, or a whole box of
        directions at once).

    Returns
    -------
    value : Interval, output shape
    jacobian : IntervalMatrix, shape (n, n + m) (or (n, T) with ``seeds``)
    """
    sx, st = x_box.shape, theta_box.shape
    n_in, m = int(np.prod(sx, dtype=np.int64)), int(np.prod(st, dtype=np.int64))
    if seeds is None:
        ndir = n_in + m
        tans = {program.x_node: iv.Interval(np.eye(n_in, ndir).reshape(sx + (ndir,))),
                program.theta_node: iv.Interval(np.eye(m, ndir, k=n_in).reshape(st + (ndir,)))}
    else:
        tans = {node: seed for node, seed in zip((program.x_node, program.theta_node), seeds)
                if seed is not None}
        ndir = next(iter(tans.values())).shape[-1]

    def value_and_tangent_rule(step, args):
        prim = step.prim
        out = prim.interval(*args, **step.params)
        if boundaries is not None and prim.name == "select" and \
                np.any((args[0].lo <= tol) & (args[0].hi >= -tol)):
            boundaries.append(step.node)
        tin = [tans.get(i) for i in step.inputs]
        if any(t is not None for t in tin):
            if prim.kind == "elementwise" and prim.pieces is not None:
                acc = _piece_tangent_hull(prim, args, tin, tol, step.params)
            elif prim.kind == "elementwise":
                acc = _combine_interval(prim.interval_partials(args, out, tol, **step.params),
                                        tin)
            else:
                acc = prim.interval_jvp(args, out, tin, **step.params)
            if acc is not None:
                tans[step.node] = acc
        return out

    env = seed(program, x_box, theta_box, _interval_consts(program))
    vals = walk(program, env, value_and_tangent_rule, call=call)
    out_shape = program.shape(program.out_node)
    n_out = int(np.prod(out_shape, dtype=np.int64))
    t = tans.get(program.out_node)
    if t is None:
        jac = iv.IntervalMatrix(np.zeros((n_out, ndir)))
    else:
        t = t.broadcast_to(out_shape + (ndir,)).reshape((n_out, ndir))
        jac = iv.IntervalMatrix(t.lo, t.hi)
    return vals[program.out_node], jac


def _combine_interval(partials, tangents):
    """Enclose ``sum_i d_i * t_i`` (interval or float partials ``d_i``; None tangents are 0)."""
    acc = None
    for di, t in zip(partials, tangents):
        if t is None or (not isinstance(di, iv.Interval) and di == 0.0):
            continue
        term = _scale(di, t)
        acc = term if acc is None else iv.add(acc, term)
    return acc


def _piece_tangent_hull(prim, args, tangents, tol, params):
    """Enclose the output tangent of a nonsmooth node: the hull, over the pieces that may be
    active on the box, of each piece's own tangent ``sum_i c_{p,i} t_i``.

    Tighter than combining the hulls of the partials input by input (which lets the pieces
    mix: for ``where(g > 0, 9 d, d)`` the tangent is in ``[1, 9] dd``, not ``[0, 10] dd``),
    and as sound: at each point the output tangent is one piece's tangent.
    """
    possible = prim.interval_active(args, tol, **params)
    lo = hi = None
    for coeffs, mask in zip(prim.piece_partials, possible):
        if not np.any(mask):
            continue
        t = _combine_interval(coeffs, tangents)
        if t is None:
            t = iv.Interval(np.zeros(()))
        mask = np.asarray(mask)[..., None]
        t_lo = np.where(mask, t.lo, np.inf)
        t_hi = np.where(mask, t.hi, -np.inf)
        lo = t_lo if lo is None else np.minimum(lo, t_lo)
        hi = t_hi if hi is None else np.maximum(hi, t_hi)
    return iv.Interval(lo, hi)


def _interval_value_rule(step, args):
    return step.prim.interval(*args, **step.params)


def enclose_values(program: Program, x_box: iv.Interval, theta_box: iv.Interval, *,
                   call: str = "Map.enclose") -> dict:
    """Interval enclosures of every node's value over a box (no derivatives): node -> Interval."""
    env = seed(program, x_box, theta_box, _interval_consts(program))
    return walk(program, env, _interval_value_rule, call=call)


def possible_pieces(program: Program, x_box: iv.Interval, theta_box: iv.Interval, *,
                    tol: float = 0.0, call: str = "Map.jacobian") -> dict:
    """The pieces of each nonsmooth node that may be active somewhere on a box.

    Returns
    -------
    dict node -> ndarray of bool (P, *shape)
        Only nodes where some element may have two or more active pieces (a kink the box
        meets); elsewhere the pieces active at any point of the box are those at the point.
    """
    found = {}

    def value_and_pieces_rule(step, args):
        prim = step.prim
        if prim.kind == "elementwise" and prim.pieces is not None:
            masks = prim.interval_active(args, tol, **step.params)
            shape = program.shape(step.node)
            stacked = np.stack([np.broadcast_to(m, shape) for m in masks])
            if np.any(stacked.sum(axis=0) >= 2):
                found[step.node] = stacked
        return prim.interval(*args, **step.params)

    env = seed(program, x_box, theta_box, _interval_consts(program))
    walk(program, env, value_and_pieces_rule, call=call)
    return found
