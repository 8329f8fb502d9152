"""From a Map (or a JacobianSet, or an interval matrix) to the target a certificate is about.

Structure is kept wherever the program gives it, and nothing of size ``n x n`` is formed when a
smaller problem says the same:

* **rows that can be non-zero.** One interval sweep with a single direction holding the whole
  box (``enclose_program`` with seed ``[-1, 1]^n``) bounds each row's l1 norm over every
  Jacobian on the box. Rows bounded by 0 vanish in every element (inactive Lasso coordinates,
  dead ReLU units); only the others are certified, and the norm is extended afterwards.
* **kinks as slopes.** The Jacobian at a point is ``C + U diag(delta) R`` with one coefficient
  per kink choice (:class:`~conservative.certify.targets.StructuredSet`), computed by forward
  mode with tangents only for the kept rows, never by enumerating vertices.
* **boxes.** When every smooth partial on the paths from ``x`` is constant over the box (the
  map is piecewise affine in ``x`` there: ReLU layers, forward-backward for the Lasso), every
  Jacobian on the box is in the structured set of the centre counting every piece that may be
  active on the box (``possible_pieces``): an interval diagonal times fixed rows, not an
  entrywise interval matrix. Otherwise the entrywise enclosure is used, for the kept columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import interval as iv
from .._types import as_float_array
from ..enclose import as_box, enclose_program, enclose_values, possible_pieces
from ..errors import ConservativeError, InputError, ShapeError, fail_message
from ..evaluate import evaluate
from ..fixed_point_set import fixed_point_enclosure, is_numerical_fixed_point, kinks_near, refusal
from ..jacobian import jvp, linearise, tangent_matrix
from ..sets import AffineGenerator, distinct_matrices
from .matrices import parse_matrix_set
from .targets import VERTEX_LIMIT, Coupling, IntervalBox, MatrixSet, StructuredSet

__all__ = ["MapTarget", "is_map", "from_map", "target_of", "probe_rows", "structured_jacobian",
           "structured_from_generator", "piecewise_constant_in_x", "own_jacobians_restricted",
           "box_target", "sample_points", "SMALL_MAP_DIM"]

#: Maps with at most this many state coordinates are certified on all of them.
SMALL_MAP_DIM = 24
#: Structural primitives that are linear in their inputs with constant coefficients.
_LINEAR_STRUCTURAL = {"broadcast_to", "reshape", "transpose", "getitem", "sum", "concatenate"}


@dataclass(frozen=True)
class MapTarget:
    """What ``certify_contraction`` certifies, and what it reports besides."""

    target: object
    coupling: Coupling | None = None     # the target is the restriction to coupling.keep
    own: np.ndarray | None = None        # the map's own A-blocks at sampled points (lower)
    notes: tuple = ()
    refusal: str = ""                    # when set, never certified (the reason)


def is_map(obj) -> bool:
    return callable(getattr(obj, "jacobian", None)) and callable(getattr(obj, "enclose", None))


# ---------------------------------------------------------------------------------------------
# targets that are not maps


def _interval_bounds(obj, call: str):
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


def structured_from_generator(gen, n: int) -> StructuredSet | None:
    """The A-block of an affine Jacobian set as a structured set: one coefficient in [0, 1]
    per non-default option of every slot (the hull of a slot's options lies in the sum of
    its segments, so the structured set contains the Jacobian set's hull)."""
    if not isinstance(gen, AffineGenerator):
        return None
    terms_u, terms_r = [], []
    for s, count in enumerate(gen.counts):
        for o in range(int(count)):
            if o == gen.default_choice[s] or not np.any(gen.C[s, o, :n]):
                continue
            terms_u.append(gen.U[:, s])
            terms_r.append(gen.C[s, o, :n])
    C = np.array(gen.J0[:, :n], dtype=float)
    if not terms_u:
        return StructuredSet(C, np.zeros((n, 0)), np.zeros((0, n)), np.zeros(0), np.zeros(0))
    U, R = np.stack(terms_u, axis=1), np.stack(terms_r)
    return _with_rows(StructuredSet(C, U, R, np.zeros(len(R)), np.ones(len(R))))


def _with_rows(S: StructuredSet) -> StructuredSet:
    """Mark the row structure when every U column is a unit vector."""
    if S.slots == 0:
        return S
    nz = S.U != 0
    if np.all(nz.sum(axis=0) == 1) and np.all(S.U[nz] == 1.0):
        rows = np.argmax(nz, axis=0)
        return StructuredSet(S.C, S.U, S.R, S.lo, S.hi, rows, S.notes)
    return S


def _from_jacobian_set(js, call):
    A = js.A if hasattr(js, "A") else js
    try:
        count = A.n_selections
    except AttributeError:
        return MatrixSet(parse_matrix_set(js, call=call, name="target"))
    if count <= VERTEX_LIMIT or A.generator is None:
        return MatrixSet(parse_matrix_set(A.vertices, call=call, name="target"))
    structured = structured_from_generator(A.generator, A.shape[0])
    if structured is None:
        return MatrixSet(parse_matrix_set(A.vertices, call=call, name="target"))
    return structured


def target_of(obj, *, call: str) -> MapTarget:
    """The target of a non-Map argument: matrices, a JacobianSet or an interval matrix."""
    if hasattr(obj, "lo") and hasattr(obj, "hi"):
        return MapTarget(IntervalBox(*_interval_bounds(obj, call)))
    if hasattr(getattr(obj, "A", None), "generator"):
        return MapTarget(_from_jacobian_set(obj, call))
    return MapTarget(MatrixSet(parse_matrix_set(obj, call=call, name="target")))


# ---------------------------------------------------------------------------------------------
# rows, and the structured Jacobian restricted to them


def _iv_box(F, box, shape):
    lo, hi = (np.asarray(v, dtype=float).reshape(shape) for v in box)
    return iv.Interval(lo, hi)


def probe_rows(F, x_box, theta_box, *, call: str, boundaries: list | None = None):
    """``(rows, l1)``: the rows of A that may be non-zero somewhere on the box, and an upper
    bound on each row's l1 norm over every Jacobian there (one interval sweep). ``boundaries``
    receives the ``cv.where`` nodes whose boundary meets the box."""
    xb, tb = _iv_box(F, x_box, F.state_shape), _iv_box(F, theta_box, F.param_shape)
    ones = np.ones(F.state_shape + (1,))
    _, J = enclose_program(F.program, xb, tb, call=call, seeds=(iv.Interval(-ones, ones), None),
                           boundaries=boundaries)
    l1 = np.maximum(np.abs(J.lo), np.abs(J.hi))[:, 0]
    return np.flatnonzero(l1 != 0), l1


def _slots(lin):
    """Kink nodes with two or more active pieces somewhere: node -> (positions, pieces)."""
    out = {}
    for node, pc in lin.pieces.items():
        active = np.asarray(pc.active).reshape(np.shape(pc.active)[0], -1)
        multi = np.flatnonzero(active.sum(axis=0) >= 2)
        if multi.size:
            out[node] = (multi, active)
    return out


def structured_jacobian(F, x, theta, *, rows, possible=None, call: str):
    """The A-block at a point as ``C + U diag(delta) R`` on the coordinates ``rows`` (rows and
    columns), ``delta`` in [0, 1] per non-default active piece; None when kinks are nested
    (a kink downstream of another: then the set is not affine in the choices).

    ``possible`` (from ``possible_pieces`` over a box around the point) counts every piece
    that may be active on the box, as ``Map.jacobian(box=...)`` does.
    """
    import networkx as nx

    program = F.program
    xb, tb = F.point(x, theta, call=call)
    values = evaluate(program, xb, tb, call=call, keep=True)
    lin = linearise(program, values, tol=0.0, call=call, possible=possible)
    k, n = len(rows), F.n
    seed = np.zeros((n, k))
    seed[rows, np.arange(k)] = 1.0
    tangents = jvp(program, values, lin.partials,
                   {program.x_node: seed.reshape((1,) + F.state_shape + (k,))}, keep=True)
    C = tangent_matrix(tangents.get(program.out_node), n, k)[0][rows]
    slots = _slots(lin)
    if any(nx.descendants(program.graph, a) & set(slots) for a in slots):
        return None
    terms_u, terms_r = [], []
    for node, (positions, active) in slots.items():
        u, r = _slot_terms(program, values, lin, tangents, node, positions, active, rows, n, k)
        terms_u.extend(u)
        terms_r.extend(r)
    if not terms_u:
        return MatrixSet(C[None])
    U, R = np.stack(terms_u, axis=1), np.stack(terms_r)
    return _with_rows(StructuredSet(C, U, R, np.zeros(len(R)), np.ones(len(R))))


def _slot_terms(program, values, lin, tangents, node, positions, active, rows, n, k):
    """U columns and R rows of one kink node's slots (kept rows and columns only)."""
    shape = program.shape(node)
    size = int(np.prod(shape, dtype=np.int64))
    pc = lin.pieces[node]
    K = len(positions)
    seed = np.zeros((size, K))
    seed[positions, np.arange(K)] = 1.0
    out = jvp(program, values, lin.partials, {node: seed.reshape((1,) + shape + (K,))})
    U = tangent_matrix(out, n, K)[0][rows]
    inputs = program.graph.nodes[node]["inputs"]
    default = np.asarray(pc.default).reshape(-1)
    rows_in = []
    for src in inputs:
        t = tangents.get(src)
        rows_in.append(None if t is None else np.broadcast_to(
            t, (1,) + shape + (k,)).reshape(size, k)[positions])
    flat = [[np.broadcast_to(np.asarray(p[i], dtype=float), (1,) + shape).reshape(-1)
             for i in range(len(inputs))] for p in pc.partials]
    terms_u, terms_r = [], []
    for j, e in enumerate(positions):
        for p in np.flatnonzero(active[:, e]):
            if p == default[e]:
                continue
            r = np.zeros(k)
            for i, t in enumerate(rows_in):
                if t is not None:
                    r += (flat[p][i][e] - flat[default[e]][i][e]) * t[j]
            if np.any(r) and np.any(U[:, j]):
                terms_u.append(U[:, j])
                terms_r.append(r)
    return terms_u, terms_r


def _restricted_set(F, x, theta, rows, possible, call):
    """The structured set on ``rows`` (None when kinks are nested)."""
    return structured_jacobian(F, x, theta, rows=rows, possible=possible, call=call)


# ---------------------------------------------------------------------------------------------
# boxes


def piecewise_constant_in_x(F, x_box, theta_box) -> bool:
    """Whether every smooth partial on the paths from ``x`` is constant over the box, so that
    the A-block of every Jacobian on the box is that of some choice of pieces at any point of
    the box (decided in interval arithmetic; anything not recognised answers False)."""
    try:
        program = F.program
        vals = enclose_values(program, _iv_box(F, x_box, F.state_shape),
                              _iv_box(F, theta_box, F.param_shape), call="piecewise check")
        dep = {program.x_node}
        for step in program.steps:
            xdep = [i in dep for i in step.inputs]
            if not any(xdep):
                continue
            dep.add(step.node)
            if not _constant_partials(step, xdep, vals):
                return False
        return True
    except Exception:  # noqa: BLE001 -- an unfamiliar program: the entrywise enclosure is sound
        return False


def _degenerate(v) -> bool:
    if isinstance(v, iv.Interval):
        return bool(np.array_equal(v.lo, v.hi))
    return True


def _constant_partials(step, xdep, vals) -> bool:
    prim = step.prim
    if prim.pieces is not None:
        return True                     # every piece of a selection function is affine
    args = [vals[i] for i in step.inputs]
    if prim.kind == "elementwise":
        parts = prim.interval_partials(args, vals[step.node], 0.0, **step.params)
        return all(_degenerate(d) for d, isx in zip(parts, xdep) if isx)
    if prim.name in _LINEAR_STRUCTURAL:
        return True
    if prim.name == "matmul":
        return sum(xdep) == 1 and all(_degenerate(a) for a, isx in zip(args, xdep) if not isx)
    return False


def sample_points(x_box, theta_box, count: int = 8, seed: int = 0) -> list:
    """The centre, the two extreme corners and ``count`` seeded random points of a box (all
    inside it, also for huge boxes where midpoints overflow)."""
    lo_x, hi_x = (np.asarray(v, dtype=float) for v in x_box)
    lo_t, hi_t = (np.asarray(v, dtype=float) for v in theta_box)
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        points = [(0.5 * lo_x + 0.5 * hi_x, 0.5 * lo_t + 0.5 * hi_t), (lo_x, lo_t), (hi_x, hi_t)]
        for _ in range(count):
            a, b = rng.random(lo_x.shape), rng.random(lo_t.shape)
            points.append(((1 - a) * lo_x + a * hi_x, (1 - b) * lo_t + b * hi_t))
    return [(np.clip(np.nan_to_num(p), lo_x, hi_x), np.clip(np.nan_to_num(q), lo_t, hi_t))
            for p, q in points]


def own_jacobians_restricted(F, x_box, theta_box, rows, *, count: int = 8, seed: int = 0,
                             call: str) -> np.ndarray:
    """The map's own A-blocks (every element, hull=False) at sampled points of a box, on the
    coordinates ``rows`` (rows and columns): what ``own_jacobians`` gives for large maps.

    Distinct matrices in the order found (the centre's first): a word reported on them
    indexes this stack, which certificates return as ``samples``."""
    points = sample_points(x_box, theta_box, count, seed)
    found = []
    for xp, tp in points:
        try:
            got = structured_jacobian(F, xp, tp, rows=rows, call=call)
        except ConservativeError:
            continue
        if got is None:
            continue
        verts = got.mats if isinstance(got, MatrixSet) else got.vertices(16)
        found.append(got.samples(4) if verts is None else verts)
    if not found:
        return np.zeros((0, len(rows), len(rows)))
    return distinct_matrices(np.concatenate(found))


def box_target(F, x_box, theta_box, *, call: str, x_point=None, enclosure=None,
               own_samples: int | None = None) -> MapTarget:
    """Every A-block of every Jacobian of F on the box (structured when the map is piecewise
    affine in x there), restricted to the rows that can be non-zero when F is large.

    ``enclosure`` (a proven ``FixedPointEnclosure`` whose box is ``x_box``, at a point theta)
    supplies the rows and the pieces its test computed, saving interval sweeps.
    ``own_samples``: random points (besides the centre and two corners) where the map's own
    Jacobians are taken for the lower bound (default 8, 2 above 2000 coordinates).
    """
    shape_x, shape_t = F.state_shape, F.param_shape
    xb = tuple(np.asarray(v, dtype=float).reshape(shape_x) for v in x_box)
    tb = tuple(np.asarray(v, dtype=float).reshape(shape_t) for v in theta_box)
    reuse = enclosure is not None and enclosure.rows is not None and \
        np.array_equal(enclosure.lo, xb[0]) and np.array_equal(enclosure.hi, xb[1]) and \
        np.array_equal(tb[0], tb[1])
    if F.n <= SMALL_MAP_DIM:                 # certified on every coordinate: no probe
        rows, l1 = np.arange(F.n), None
    else:
        rows, l1 = (enclosure.rows, enclosure.row_l1) if reuse else \
            probe_rows(F, xb, tb, call=call)
    coupling = None if len(rows) == F.n else Coupling(F.n, rows, l1[rows])
    centre_x = (xb[0] + xb[1]) / 2 if x_point is None else x_point
    centre_t = (tb[0] + tb[1]) / 2
    target = None
    if piecewise_constant_in_x(F, xb, tb):
        possible = enclosure.possible if reuse else \
            possible_pieces(F.program, iv.Interval(*xb), iv.Interval(*tb), call=call)
        target = _restricted_set(F, centre_x, centre_t, rows, possible, call)
    if target is None:
        k = len(rows)
        seed = np.zeros((F.n, k))
        seed[rows, np.arange(k)] = 1.0
        _, J = enclose_program(F.program, iv.Interval(*xb), iv.Interval(*tb), call=call,
                               seeds=(iv.Interval(seed.reshape(shape_x + (k,))), None))
        target = IntervalBox(J.lo[rows], J.hi[rows])
    if isinstance(target, MatrixSet) and len(target) == 1:
        own = target.mats                  # no kink on the box: the map's only Jacobian
    else:
        count = own_samples if own_samples is not None else (8 if F.n <= 2000 else 2)
        own = own_jacobians_restricted(F, xb, tb, rows, count=count, call=call)
    return MapTarget(target, coupling, own=own)


# ---------------------------------------------------------------------------------------------
# the dispatch


def _is_box(value, shape) -> bool:
    if not isinstance(value, tuple) or len(value) != 2:
        return False
    if shape is None:
        return True
    return all(np.shape(v) == tuple(shape) for v in value)


def _ulp_box(v: np.ndarray, ulps: int):
    lo, hi = np.array(v, dtype=float), np.array(v, dtype=float)
    for _ in range(ulps):
        lo, hi = np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)
    return lo, hi


def from_map(F, theta, x, *, call: str) -> MapTarget:
    """The target of ``certify_contraction(F, theta, x)``: a point, a box, or a computed fixed
    point (every piece active on a proved enclosure of the exact fixed point)."""
    if x is None or theta is None:
        raise InputError(fail_message(
            call, "a Map without x and theta",
            "pass the point (or boxes) as certify_contraction(F, theta=..., x=...)"))
    shape_x, shape_t = F.state_shape, F.param_shape
    if _is_box(x, shape_x) or _is_box(theta, shape_t):
        xb = as_box(x if _is_box(x, shape_x) else (x, x), shape_x, name="x", call=call)
        tb = as_box(theta if _is_box(theta, shape_t) else (theta, theta), shape_t,
                    name="theta", call=call)
        return box_target(F, (xb.lo, xb.hi), (tb.lo, tb.hi), call=call)
    x = as_float_array(x, name="x", call=call, shape=shape_x)
    theta = as_float_array(theta, name="theta", call=call, shape=shape_t)
    if is_numerical_fixed_point(F, x, theta):
        return _fixed_point_target(F, theta, x, call)
    return _point_target(F, theta, x, call)


def _point_target(F, theta, x, call) -> MapTarget:
    near = kinks_near(F, _ulp_box(x, 4), _ulp_box(theta, 4))
    notes = () if not near else (
        "a kink lies within 4 ulps of the point (" + "; ".join(near) + "); the set is the one "
        "at the point as given, whose pieces a rounding of x could change",)
    if F.n <= SMALL_MAP_DIM:
        js = F.jacobian(x, theta, hull=True)
        return MapTarget(_from_jacobian_set(js, call), notes=notes)
    rows, l1 = probe_rows(F, (x, x), (theta, theta), call=call)
    target = _restricted_set(F, x, theta, rows, None, call)
    if target is None:
        return MapTarget(_from_jacobian_set(F.jacobian(x, theta, hull=True), call),
                         notes=notes)
    coupling = Coupling(F.n, rows, l1[rows]) if len(rows) < F.n else None
    return MapTarget(target, coupling, notes=notes)


def _fixed_point_target(F, theta, x, call) -> MapTarget:
    """At a computed fixed point the question is about the exact one: count every piece that
    may be active on a proved enclosure of it."""
    enc = fixed_point_enclosure(F, theta, x)
    box = (np.asarray(enc.lo), np.asarray(enc.hi))
    notes = (str(enc).replace("\n ", ";"),)
    why = "" if enc.proven else refusal(enc)
    if F.n <= SMALL_MAP_DIM or not enc.proven:
        if F.n > SMALL_MAP_DIM:            # no proof: the set near x, for the lower bound
            rows, l1 = probe_rows(F, box, (theta, theta), call=call)
            got = _restricted_set(F, x, theta, rows, None, call)
            if got is not None:
                coupling = Coupling(F.n, rows, l1[rows]) if len(rows) < F.n else None
                return MapTarget(got, coupling, notes=notes, refusal=why)
        js = F.jacobian(x, theta, hull=True, box=(box, theta))
        own = None
        if enc.kinks:
            from .contraction import own_jacobians
            own = own_jacobians(F, box, (theta, theta))
        return MapTarget(_from_jacobian_set(js, call), own=own, notes=notes, refusal=why)
    rows, l1 = enc.rows, enc.row_l1
    target = _restricted_set(F, x, theta, rows, enc.possible, call)
    coupling = Coupling(F.n, rows, l1[rows]) if len(rows) < F.n else None
    if target is None:
        got = box_target(F, box, (theta, theta), call=call, x_point=x, enclosure=enc)
        return MapTarget(got.target, got.coupling, got.own, notes, why)
    own = own_jacobians_restricted(F, box, (theta, theta), rows, call=call) if enc.kinks \
        else None
    return MapTarget(target, coupling, own=own, notes=notes, refusal=why)
