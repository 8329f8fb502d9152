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
from .primitives import ALL, Elementwise

__all__ = ["enclose_program", "enclose_values", "possible_pieces", "as_box", "interval_demand"]


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


def interval_consts(program: Program) -> dict:
    """The program's constants as degenerate intervals (built once per program; the trace's
    own read-only copies are shared, not copied)."""
    return program.cached("interval_consts", lambda: {
        node: iv.Interval._point(value, share=True) for node, value in program.consts.items()})


def enclose_program(program: Program, x_box: iv.Interval, theta_box: iv.Interval, *,
                    tol: float = 0.0, call: str = "Map.enclose", boundaries: list | None = None,
                    seeds: tuple | None = None, keep: bool = False, rows=None,
                    pieces: dict | None = None, centre: dict | None = None,
                    values: dict | None = None):
    """Enclose the output and the Jacobian ``[A B]`` of ``program`` over a box.

    Parameters
    ----------
    boundaries : list, optional
        If given, the nodes whose continuity is only checked (``cv.where``: the primitive's
        ``branches`` hook) and whose boundary may meet the box are appended to it. Their
        continuity is checked only at evaluated points, so a caller that needs F to be
        Lipschitz on the box (a mean-value argument) must refuse them.
    seeds : tuple (x_seed, theta_seed), optional
        Interval tangents of ``x`` (shape ``(*state_shape, T)``) and ``theta`` (or None for
        zero) in place of the identity: the result then encloses ``{[A B] S : S in seeds}``
        for every Jacobian on the box, ``T`` columns (a few directions, or a whole box of
        directions at once).
    keep : bool
        Return the enclosures of every node instead: ``(values, tangents)``, dicts node ->
        Interval (a node missing from ``tangents`` has tangent 0).
    rows : array of int, optional
        The output elements (flat indices) whose Jacobian rows the caller reads: products are
        then computed on the rows these need only (:func:`interval_demand`); the other rows of
        the returned Jacobian are left zero and must not be read. Not with ``keep``.
    pieces : dict, optional
        Filled with :func:`possible_pieces` over the box, from the same sweep.
    centre : dict, optional
        The enclosures of every node at a point ``c`` of the box (:func:`enclose_values` at
        ``c`` and the same ``theta_box``); the first column of the ``x`` seed must then be
        ``x_box - c``. Products of a large constant matrix with a live operand take their
        value over the box in centred form, ``value(c) + tangent along x_box - c`` (the mean
        value theorem; F Lipschitz on the box, which the callers check for ``cv.where``
        through ``boundaries``): one product with the matrix's absolute value instead of
        three.
    values : dict, optional
        The enclosures of every node over this box (from an earlier sweep with ``keep``):
        only tangents are computed.

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
    needs = None if rows is None or keep else interval_demand(program, rows)

    def value_and_tangent_rule(step, args):
        prim = step.prim
        if values is not None:
            out = values[step.node]
        elif centre is not None and _large_constant_product(program, step):
            return _centred_product(step, args, tans, centre[step.node], tol)
        else:
            out = prim.interval(*args, **step.params)
        if boundaries is not None and prim.meets_boundary(args, tol, step.params):
            boundaries.append(step.node)
        if pieces is not None and not prim.smooth:
            _record_pieces(pieces, program, step, args, tol)
        tin = [tans.get(i) for i in step.inputs]
        if any(t is not None for t in tin):
            need = ALL if needs is None else needs.get(step.node)
            if need is None:                 # no demanded output row reads this tangent
                return out
            if np.ndim(need) == 0:
                acc = prim.interval_tangent(args, out, tin, tol, step.params)
            elif getattr(prim, "jvp_uses_need", False):
                acc = prim.interval_tangent(args, out, tin, tol, {**step.params, "need": need})
            else:
                acc = _tangent_on_demand(step, args, out, tin, tol, need)
            if acc is not None:
                tans[step.node] = acc
        return out

    env = seed(program, x_box, theta_box, interval_consts(program))
    vals = walk(program, env, value_and_tangent_rule, call=call)
    if keep:
        return vals, tans
    out_shape = program.shape(program.out_node)
    n_out = int(np.prod(out_shape, dtype=np.int64))
    t = tans.get(program.out_node)
    if t is None:
        jac = iv.IntervalMatrix(np.zeros((n_out, ndir)))
    else:
        t = t.broadcast_to(out_shape + (ndir,)).reshape((n_out, ndir))
        jac = iv.IntervalMatrix(t.lo, t.hi)
    return vals[program.out_node], jac


def _tangent_on_demand(step, args, out, tin, tol, need):
    """An elementwise node's interval tangent on the demanded elements of a large vector only
    (the others are left zero: no demanded output element reads them); the whole tangent
    for other kinds and layouts."""
    prim = step.prim
    idx = np.flatnonzero(need) if need.shape == out.shape else None
    ndir = next(t.shape[-1] for t in tin if t is not None)
    if (not isinstance(prim, Elementwise) or out.ndim != 1 or idx is None
            or 2 * len(idx) > out.size
            or any(t is not None and t.shape != out.shape + (ndir,) for t in tin)
            or any(np.ndim(v) for v in step.params.values())):     # per-element parameters
        return prim.interval_tangent(args, out, tin, tol, step.params)
    part = prim.interval_tangent([a[idx] if a.shape == out.shape else a for a in args], out[idx],
                                 [None if t is None else t[idx] for t in tin], tol, step.params)
    if part is None:
        return None
    lo, hi = np.zeros(out.shape + (ndir,)), np.zeros(out.shape + (ndir,))
    lo[idx] = np.broadcast_to(part.lo, (len(idx), ndir))
    hi[idx] = np.broadcast_to(part.hi, (len(idx), ndir))
    return iv.Interval._new(lo, hi)         # an interval's endpoints, and zeros: valid


def _large_constant_product(program: Program, step) -> bool:
    """A product ``C @ v`` of a large constant matrix with a live operand (the sweep's cost)."""
    if step.prim.name != "matmul" or step.inputs[0] not in program.consts:
        return False
    c = program.consts[step.inputs[0]]
    return c.ndim == 2 and c.size >= 4096 and step.inputs[1] in program.live


def _centred_product(step, args, tans, at_centre, tol):
    """Value of ``C @ v`` over the box as ``(C @ v)(c) + (C @ t_v)[..., 0]`` (column 0 of the
    tangent is along ``box - c``), storing the node's tangent in ``tans``."""
    tin = [tans.get(i) for i in step.inputs]
    if all(t is None for t in tin):               # v has no x-tangent (theta only): plain value
        return step.prim.interval(*args, **step.params)
    acc = step.prim.interval_tangent(args, at_centre, tin, tol, step.params)
    if acc is None:
        return at_centre
    tans[step.node] = acc
    return iv.add(at_centre, acc[..., 0])


def interval_demand(program: Program, rows) -> dict:
    """Which elements of each node's interval tangent the output elements ``rows`` depend on:
    node -> ``ALL`` or a boolean mask of the node's shape (absent: nothing).

    The interval twin of forward mode's demanded rows, without partials (an interval partial
    is never known to vanish before the sweep): elementwise nodes need their inputs where
    they are needed themselves, structural nodes say what they read (matmul: the demanded
    rows of a matrix, the other operand whole), every other kind needs its inputs whole.
    """
    out_shape = program.shape(program.out_node)
    start = np.zeros(int(np.prod(out_shape, dtype=np.int64)), dtype=bool)
    start[np.asarray(rows, dtype=np.intp)] = True
    live = program.live
    needs = {}

    def like(node):                       # a batched stand-in of the node's value (no memory)
        return np.broadcast_to(np.zeros(()), (1,) + tuple(program.shape(node)))

    def demand_rule(step, need):
        needs[step.node] = need
        alive = tuple(i in live for i in step.inputs)
        if step.node not in live:
            return (None,) * len(step.inputs)
        if isinstance(step.prim, Elementwise):
            shape = program.shape(step.node)
            return tuple((need if program.shape(i) == shape else ALL) if a else None
                         for i, a in zip(step.inputs, alive))
        return step.prim.demand(need, [like(i) for i in step.inputs], like(step.node), None,
                                alive, step.kwargs)

    walk(program, {program.out_node: start.reshape(out_shape)}, demand_rule,
         call="demanded rows", reverse=True)
    return needs


def _interval_value_rule(step, args):
    return step.prim.interval(*args, **step.params)


def enclose_values(program: Program, x_box: iv.Interval, theta_box: iv.Interval, *,
                   call: str = "Map.enclose", pieces: dict | None = None,
                   tol: float = 0.0) -> dict:
    """Interval enclosures of every node's value over a box (no derivatives): node -> Interval.

    ``pieces``, when given, is filled with :func:`possible_pieces` over the box (within
    ``tol``), from the same sweep (empty: every nonsmooth element has one piece on the whole
    box)."""
    env = seed(program, x_box, theta_box, interval_consts(program))
    if pieces is None:
        return walk(program, env, _interval_value_rule, call=call)

    def value_and_pieces_rule(step, args):
        if not step.prim.smooth:
            _record_pieces(pieces, program, step, args, tol)
        return step.prim.interval(*args, **step.params)
    return walk(program, env, value_and_pieces_rule, call=call)


def _record_pieces(found: dict, program: Program, step, args, tol: float):
    """Store the pieces of a nonsmooth node that may be active on the box (if it meets a kink)."""
    masks = step.prim.interval_active(args, tol, **step.params)
    shape = program.shape(step.node)
    stacked = np.stack([np.broadcast_to(m, shape) for m in masks])
    if np.any(stacked.sum(axis=0) >= 2):
        found[step.node] = stacked


def possible_pieces(program: Program, x_box: iv.Interval, theta_box: iv.Interval, *,
                    tol: float = 0.0, call: str = "Map.jacobian") -> dict:
    """The pieces of each nonsmooth node that may be active somewhere on a box.

    Returns
    -------
    dict node -> ndarray of bool (P, *shape)
        Only nodes where some element may have two or more active pieces (a kink the box
        meets); elsewhere the pieces active at any point of the box are those at the point.
    """
    found: dict = {}
    enclose_values(program, x_box, theta_box, call=call, pieces=found, tol=tol)
    return found
