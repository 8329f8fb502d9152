"""Does a ``cv.where`` jump inside a box?

``cv.where(g > 0, a, b)`` is continuous only if its branches agree where ``g == 0``. The
package checks that at every evaluated point and samples it at trace time, but a proof over a
box (Krawczyk's test, a Banach ball) needs F Lipschitz on the whole box: a jump the samples
missed can make the box "contain" a fixed point that does not exist.

:func:`jumping_where` names the nodes that provably jump inside a box, in two ways:

1. the gap ``a - b`` is bounded away from 0 on the whole box (centred form, so that branches
   sharing terms are compared without the dependency plain intervals lose); or
2. a point of the boundary inside the box is found where the branches differ: two points of
   the box where the interval evaluation proves that the condition picks ``a`` at one and
   ``b`` at the other, close enough that ``|a(p) - b(q)|`` is bounded away from 0 for every
   ``p, q`` on the hull of the segment between them. Where the segment first switches to the
   other branch (the infimum of the points that pick it), points arbitrarily close pick
   different branches, so the where is discontinuous there (no continuity of ``g`` needed).

Both are proofs of a jump; neither proves continuity. A box with neither keeps its caveat
(continuity checked at evaluated points). Refusing is always safe, so the search is a bounded
effort (:data:`MAX_BOUNDARY_PROBES` elements per node).
"""

from __future__ import annotations

import numpy as np

from . import interval as iv
from .enclose import enclose_program, enclose_values
from .errors import ConservativeError
from .evaluate import evaluate

__all__ = ["jumping_where", "MAX_FLOAT_PROBES", "MAX_BOUNDARY_PROBES"]

#: Elements per ``cv.where`` node whose boundary point is estimated in floats (one batched
#: evaluation per chord step) ...
MAX_FLOAT_PROBES = 256
#: ... and, of those whose branches differ there, the number tested in interval arithmetic.
MAX_BOUNDARY_PROBES = 8

# Float chord steps towards the boundary g_i == 0 (a nonlinear g needs more than one).
_NEWTON_STEPS = 8


def jumping_where(program, x, lo, hi, t_box, met, call: str) -> list:
    """The ``cv.where`` nodes among ``met`` that provably jump inside the box ``[lo, hi]``.

    Parameters
    ----------
    program : Program
        The traced map.
    x : ndarray, (n,)
        A point of the box (its centre for the centred form).
    lo, hi : ndarray, (n,)
        The box.
    t_box : Interval
        The parameters (a point or a box: a jump is proved for every theta in it).
    met : list
        The ``cv.where`` nodes whose boundary may meet the box.
    call : str
        Named in errors.
    """
    shape = program.shape(program.x_node)
    n = x.size
    at_x = enclose_values(program, iv.Interval(x.reshape(shape)), t_box, call=call)
    box = iv.Interval(lo.reshape(shape), hi.reshape(shape))
    unit = iv.Interval(np.eye(n).reshape(shape + (n,)))          # the Jacobians over the box
    on_box, tans = enclose_program(program, box, t_box, call=call, seeds=(unit, None),
                                   keep=True)
    d = iv.subtract(iv.Interval(lo, hi), iv.Interval(x)).reshape((n, 1))      # X - x
    t_point = iv.Interval.point(t_box.mid)
    out = []
    for node in dict.fromkeys(met):
        attrs = program.graph.nodes[node]
        g, a, b = attrs["inputs"]
        node_shape = program.shape(node)
        size = int(np.prod(node_shape, dtype=np.int64))
        # only the elements whose condition may switch on the box can jump
        may_switch = attrs["prim"].boundary_mask([on_box[i] for i in attrs["inputs"]], 0.0,
                                                 attrs["params"])
        may_switch = np.ones(size, dtype=bool) if may_switch is None else \
            np.broadcast_to(may_switch, node_shape).reshape((size,))
        t_a, t_b = (_tangent(tans, program, v, node_shape, n) for v in (a, b))
        slope = iv.subtract(t_a, t_b).reshape((size, n))
        # each branch's own slope bound: a(r) - b(s) at two points of a segment
        branch_mag = (t_a.mag + t_b.mag).reshape((size, n))
        centre = iv.subtract(at_x[a].broadcast_to(node_shape),
                             at_x[b].broadcast_to(node_shape)).reshape((size,))
        gap = iv.add(centre, iv.matmul(slope, d).reshape((size,)))
        if np.any(may_switch & (gap.mig > 0)):
            out.append(node)
            continue
        grad = _tangent(tans, program, g, node_shape, n).reshape((size, n))
        # the direction of the chord steps and of the probe segments: the box's mean gradient
        # of g, or its magnitudes where no sign is decided on the box ((x - 1)**2 > e**2
        # around 1: the mean is 0 to rounding), then secant steps
        secant = ~np.any(np.abs(grad.mid) > 0.5 * grad.mag, axis=1)
        along = np.where(secant[:, None], grad.mag, grad.mid)
        # the elements most likely to jump first: the largest gap at x
        candidates = np.flatnonzero(may_switch & np.any(grad.mag > 0, axis=1))
        candidates = candidates[np.argsort(-centre.mig[candidates], kind="stable")]
        candidates = candidates[:MAX_FLOAT_PROBES]
        points = _boundary_points(program, node, candidates, x, lo, hi, t_box, along[candidates],
                                  secant[candidates], slope, call)
        strict = attrs["params"].get("strict", True)
        for i, y in points[:MAX_BOUNDARY_PROBES]:
            # at one theta: a jump for one parameter of a box is enough to refuse it
            if _jump_across(program, node, i, y, lo, hi, t_point, along[i], branch_mag[i],
                            strict, call):
                out.append(node)
                break
    return out


def _tangent(tans, program, node, shape, n) -> iv.Interval:
    """The interval tangent of ``node`` broadcast to ``shape + (n,)`` (zero when absent)."""
    t = tans.get(node)
    if t is None:
        return iv.Interval(np.zeros(tuple(shape) + (n,)))
    return t.broadcast_to(tuple(shape) + (n,))


def _boundary_points(program, node, candidates, x, lo, hi, t_box, along, secant, slope, call
                     ) -> list:
    """``(i, y)`` for the candidate elements whose branches differ (in floats) at ``y``, a
    float estimate of a point of the box on ``g_i == 0``, most different first.

    Chord steps along ``along`` (per candidate: the box's mean gradient of ``g_i``, or its
    magnitudes with secant steps where ``secant``) start from ``x`` and from the two
    points of the box farthest from ``x`` along the gap's gradient (``slope``, the enclosure
    of the gradient of ``a_i - b_i``) with ``grad g_i`` projected out: a gap that is 0 at the
    boundary point nearest ``x`` but not elsewhere on the boundary is found there. All starts
    of all candidates run in one batched evaluation per step. "Differ" means by more than a
    continuous where could at ``y``: the gap's Lipschitz bound along ``grad`` times the
    estimated distance to the boundary, plus rounding; a point where the float evaluation
    itself meets the jump counts first. Floats only propose here: every jump is then proved
    in interval arithmetic."""
    if len(candidates) == 0:
        return []
    g, a, b = program.graph.nodes[node]["inputs"]
    k, n = len(candidates), x.size
    G = np.repeat(along, 3, axis=0)
    norm2 = np.einsum("ij,ij->i", G, G)
    ok = np.isfinite(norm2) & (norm2 > 0)
    with np.errstate(all="ignore"):
        # along the gap's gradient; where its sign is undecided on the box (|v - c| across c)
        # either way, since both directions are tried
        mid, mag = slope.mid[candidates], slope.mag[candidates]
        toward = np.where(mid != 0, np.sign(mid), (mag > 0).astype(float))
        # off grad g (a real gradient only: magnitudes would cancel a 1-D state's direction)
        off = np.where(secant, 0.0, np.einsum("ij,ij->i", toward, along) /
                       np.where(ok[::3], norm2[::3], 1.0))
        toward = toward - off[:, None] * along
        reach = 0.5 * (hi - lo) / np.maximum(np.max(np.abs(toward), axis=1, initial=0.0),
                                             1e-300)[:, None]
        Y = np.repeat(np.broadcast_to(x, (k, n)), 3, axis=0)
        Y[1::3] = np.clip(x + reach * toward, lo, hi)
        Y[2::3] = np.clip(x - reach * toward, lo, hi)
    rows, secant = np.repeat(candidates, 3), np.repeat(secant, 3)
    ok &= np.all(np.isfinite(Y), axis=1)
    values, raised, settled = None, np.zeros(len(rows), dtype=bool), False
    for step_count in range(_NEWTON_STEPS + 1):
        values, raised = _evaluate_rows(program, Y, t_box, call)
        if step_count == _NEWTON_STEPS or raised.any() or settled:
            break                         # a float point on the jump: as close as it gets
        with np.errstate(all="ignore"):
            vg = _element(program, node, values, g, rows)
            # on the boundary to rounding (one step does it for a linear g): this last step
            # still lands on it (a subnormal g), then stop
            scale = np.sqrt(norm2) * (np.max(np.abs(Y), axis=1) + 1.0)
            settled = not np.any(ok & (np.abs(vg) > 64 * np.finfo(float).eps * scale))
            step = np.where(ok, vg / np.where(ok, norm2, 1.0), 0.0)
        if np.any(secant & ok):
            step[secant & ok] = _secant_steps(program, node, Y, G, vg, rows, secant & ok,
                                              lo, hi, t_box, call)
        with np.errstate(all="ignore"):
            Y = np.clip(Y - step[:, None] * G, lo, hi)
        ok &= np.all(np.isfinite(Y), axis=1)
    with np.errstate(all="ignore"):
        va, vb, vg = (_element(program, node, values, v, rows) for v in (a, b, g))
        norm = np.sqrt(np.where(ok, norm2, 1.0))
        lipschitz = np.einsum("ij,ij->i", np.repeat(slope.mag[candidates], 3, axis=0),
                              np.abs(G)) / norm
        allowed = 2.0 * lipschitz * np.abs(vg) / norm + \
            8 * np.finfo(float).eps * (np.abs(va) + np.abs(vb))
        excess = np.where(raised, np.inf, np.abs(va - vb) - allowed)
    excess = np.where(ok & ~np.isnan(excess), excess, -np.inf).reshape(k, 3)
    best = np.argmax(excess, axis=1)
    score = excess[np.arange(k), best]
    order = np.argsort(-score, kind="stable")
    return [(candidates[j], Y[3 * j + best[j]]) for j in order if score[j] > 0]


def _secant_steps(program, node, Y, D, vg, rows, which, lo, hi, t_box, call) -> np.ndarray:
    """Steps ``s`` towards ``g_i == 0`` along ``D`` for the points ``which``: ``g / slope``,
    the slope a secant through ``Y`` and ``Y -/+ h D`` (towards the inside of the box)."""
    at = np.flatnonzero(which)
    with np.errstate(all="ignore"):
        h = 2.0 ** -20 * float(np.max(hi - lo)) / np.sqrt(np.einsum("ij,ij->i", D[at], D[at]))
        inside = np.all((Y[at] + h[:, None] * D[at] <= hi) & (Y[at] + h[:, None] * D[at] >= lo),
                        axis=1)
        h = np.where(inside, h, -h)
        values, raised = _evaluate_rows(program, Y[at] + h[:, None] * D[at], t_box, call)
        g = program.graph.nodes[node]["inputs"][0]
        slope = (_element(program, node, values, g, rows[at]) - vg[at]) / h
        good = ~raised & np.isfinite(slope) & (slope != 0)
        return np.where(good, vg[at] / np.where(good, slope, 1.0), 0.0)


def _element(program, node, values, node_in, rows) -> np.ndarray:
    """Element ``rows[r]`` of ``node``'s input ``node_in`` at evaluated point ``r``."""
    node_shape = program.shape(node)
    v = np.broadcast_to(values[node_in], (len(rows),) + tuple(node_shape))
    return v.reshape(len(rows), -1)[np.arange(len(rows)), rows]


def _evaluate_rows(program, Y, t_box, call):
    """Float values of every node at the points ``Y`` (one batch); when the batch raises (a
    point outside the domain, or on a jump), point by point: the rows that raise are flagged
    and get NaN values."""
    shape, t_shape = program.shape(program.x_node), program.shape(program.theta_node)
    theta = np.broadcast_to(t_box.mid, (1,) + tuple(t_shape))
    batch = Y.reshape((len(Y),) + tuple(shape))
    try:
        with np.errstate(all="ignore"):
            return evaluate(program, batch, theta, call=call, keep=True), \
                np.zeros(len(Y), dtype=bool)
    except ConservativeError:
        pass
    raised = np.zeros(len(Y), dtype=bool)
    per_row = []
    for r in range(len(Y)):
        try:
            with np.errstate(all="ignore"):
                per_row.append(evaluate(program, batch[r:r + 1], theta, call=call, keep=True))
        except ConservativeError:
            raised[r] = True
            per_row.append(None)
    template = next((v for v in per_row if v is not None), None)
    if template is None:
        return {node: np.full((len(Y),) + tuple(program.shape(node)), np.nan)
                for node in program.order}, raised
    values = {}
    for node, v in template.items():
        tail = np.shape(v)[1:] if np.ndim(v) == len(program.shape(node)) + 1 else None
        if tail is None:                  # not batched (a constant): shared by every row
            values[node] = v
            continue
        values[node] = np.concatenate([np.asarray(pr[node]) if pr is not None else
                                       np.full((1,) + tail, np.nan) for pr in per_row])
    return values, raised


def _jump_across(program, node, i, y, lo, hi, t_box, grad, branch_mag, strict, call) -> bool:
    """Whether element ``i`` of the where ``node`` provably jumps on a short segment of the
    box along ``grad`` through ``y`` (a float estimate of a point of its boundary).

    ``branch_mag`` bounds ``|grad a_i| + |grad b_i|`` over the box: the segment is made short
    enough that ``a_i(r) - b_i(s)``, for any two of its points, stays within half the gap at
    ``y`` of that gap (when the gap did not close at ``y``)."""
    shape = program.shape(program.x_node)
    at_y = enclose_values(program, iv.Interval(y.reshape(shape)), t_box, call=call)
    margin = _gap(program, node, at_y).mig[i]
    if not margin > 0:                  # the branches agree at y (to rounding): no jump here
        return False
    u = grad / np.sqrt(float(grad @ grad))
    radius = float(np.max(hi - lo))
    lipschitz = float(branch_mag @ np.abs(u))
    h = radius if lipschitz == 0 else min(radius, 0.25 * margin / lipschitz)
    pick_y = _picks(program, node, at_y, i, strict)
    # shorter segments when rounding widens the gap's enclosure (subnormal scales); h = 0 is
    # one ulp of each coordinate
    for step in (h, h * 2.0 ** -10, 0.0):
        below, above = _segment_ends(y, u, step, lo, hi)
        picks = {"y": pick_y, "below": _picks_at(program, node, below, i, t_box, strict, call),
                 "above": _picks_at(program, node, above, i, t_box, strict, call)}
        ends = {"y": y, "below": below, "above": above}
        # centred, and one-sided with y as an end (g(y) may be exactly 0)
        for p, q in (("below", "above"), ("y", "above"), ("below", "y")):
            if {picks[p], picks[q]} == {"a", "b"} and \
                    _apart_on_hull(program, node, i, ends[p], ends[q], t_box, call):
                return True
    return False


def _segment_ends(y, u, h, lo, hi):
    """The ends ``(below, above)`` of the segment ``y -/+ h u``, clipped to the box; when ``h``
    moves no coordinate, the step is one ulp of each coordinate that ``u`` moves."""
    with np.errstate(all="ignore"):
        below, above = y - h * u, y + h * u
        if np.array_equal(below, y) and np.array_equal(above, y):
            moves, towards = u != 0, np.where(u > 0, np.inf, -np.inf)
            below = np.where(moves, np.nextafter(y, -towards), y)
            above = np.where(moves, np.nextafter(y, towards), y)
    return np.clip(below, lo, hi), np.clip(above, lo, hi)


def _flat(program, node, values, k) -> iv.Interval:
    """Input ``k`` of a where node (0: g, 1: a, 2: b) broadcast to its shape, flat."""
    value = values[program.graph.nodes[node]["inputs"][k]]
    return value.broadcast_to(program.shape(node)).reshape(-1)


def _gap(program, node, values) -> iv.Interval:
    """``a - b`` of a where node, flat, from enclosures of its branches."""
    return iv.subtract(_flat(program, node, values, 1), _flat(program, node, values, 2))


def _picks(program, node, values, i, strict):
    """The branch the condition of element ``i`` provably picks ("a", "b"), or None."""
    g = _flat(program, node, values, 0)
    if (g.lo[i] > 0) if strict else (g.lo[i] >= 0):
        return "a"
    if (g.hi[i] <= 0) if strict else (g.hi[i] < 0):
        return "b"
    return None


def _picks_at(program, node, point, i, t_box, strict, call):
    shape = program.shape(program.x_node)
    values = enclose_values(program, iv.Interval(point.reshape(shape)), t_box, call=call)
    return _picks(program, node, values, i, strict)


def _apart_on_hull(program, node, i, p, q, t_box, call) -> bool:
    """``|a_i(r) - b_i(s)| > 0`` for every ``r, s`` on the segment ``[p, q]``: from plain
    enclosures over its bounding box ``H``, else in centred form along it,
    ``a(p + s (q - p)) ∈ a(p) + [0, 1] [Da(H)] (q - p)`` for each branch (the mean value
    theorem on the segment, one tangent direction whatever the dimension), which keeps the
    terms the branches share from widening the gap (``S x - S x`` has the tangent 0 exactly
    along a point direction)."""
    shape = program.shape(program.x_node)
    hull = iv.Interval(np.minimum(p, q).reshape(shape), np.maximum(p, q).reshape(shape))
    values = enclose_values(program, hull, t_box, call=call)
    if _gap(program, node, values).mig[i] > 0:
        return True
    at_p = enclose_values(program, iv.Interval(p.reshape(shape)), t_box, call=call)
    direction = iv.subtract(iv.Interval(q), iv.Interval(p)).reshape(shape + (1,))   # q - p
    _, tans = enclose_program(program, hull, t_box, call=call, seeds=(direction, None),
                              keep=True)
    g, a, b = program.graph.nodes[node]["inputs"]
    node_shape = program.shape(node)
    size = int(np.prod(node_shape, dtype=np.int64))
    moves = []
    for v in (a, b):
        t = _tangent(tans, program, v, node_shape, 1).reshape((size,))[i]
        moves.append(iv.Interval(min(0.0, float(t.lo)), max(0.0, float(t.hi))))   # [0, 1] t
    gap = iv.subtract(iv.add(_gap(program, node, at_p)[i], moves[0]), moves[1])
    return bool(gap.mig > 0)
