"""Forward-mode derivatives through programs, one selection or the whole conservative set.

Local linearisation
    Every elementwise node becomes ``t_out = sum_i d_i * t_i`` with elementwise partials ``d_i``:
    the smooth partials, or those of the selected piece at a kink. Structural nodes use their
    ``jvp`` rule.

Chain rule on programs
    A *slot* is one coordinate of one nonsmooth node where two or more pieces are active. Each
    slot chooses independently; the composite Jacobian is a function of the choices, and the
    set of all of them is a conservative Jacobian of the program (Bolte & Pauwels 2021).

    When no nonsmooth node with slots lies downstream of another, every path from an input to
    the output crosses at most one slot, so the Jacobian is *affine* in the choices:
    ``J = J0 + sum_s outer(U[:, s], C[s, c_s])`` where ``U[:, s]`` is the output's sensitivity to
    the slot's coordinate and ``C[s, c]`` the change of that coordinate's row. This is how a ReLU
    layer with k coordinates at a kink is a box of diagonals and not 2^k matrices. Otherwise the
    set is assembled lazily, choice combination by combination, with the choices as a batch axis.
"""

from __future__ import annotations

import functools

import numpy as np

from .compiled import demand_tangents_function, tangents_function
from .errors import ConservativeError, NonFiniteError
from .graph import Program
from .interpreter import all_finite, located, raise_non_finite, seed, value_rule, walk
from .primitives import ALL
from .sets import AffineGenerator, CallableGenerator, FiniteGenerator, JacobianSet

__all__ = ["Linearisation", "linearise", "jvp", "vjp", "value_and_jvp", "jacobian_set",
           "input_seeds", "tangent_matrix", "Pullback", "pullback", "demanded", "jvp_run"]


class Linearisation:
    """Per-node partials at one batch of points, with the kink structure.

    Attributes
    ----------
    partials : dict node -> tuple of arrays
        The partials of the default selection (smooth nodes: the partials; None for
        structural nodes, which have a tangent rule instead).
    pieces : dict node -> Pieces
        For nonsmooth nodes, the pieces at the points.
    """

    def __init__(self, partials, pieces):
        self.partials = partials
        self.pieces = pieces


def _check_finite(program, node, partials, call):
    for d in partials:
        if np.ndim(d) and not np.all(np.isfinite(d)):
            name = program.graph.nodes[node]["prim"].name
            raise NonFiniteError(located(
                program, node,
                f"{call}: the derivative of `{name}` is infinite or NaN here (the "
                "map is not locally Lipschitz at this point, e.g. sqrt at 0); move the "
                "point or smooth the expression"))


def linearise(program: Program, values: dict, *, tol: float, call: str,
              with_pieces: bool = True, possible: dict | None = None) -> Linearisation:
    """Partials of every elementwise node (default selection at kinks) and the kinks' pieces.

    With ``with_pieces=False`` only the default selection's partials are computed, through each
    primitive's ``default_partials`` rule (what a derivative run needs; no piece sets).

    ``possible`` (node -> boolean array (P, *shape), from :func:`conservative.enclose.
    possible_pieces` over a box around the point, batch of one) adds every piece that may be
    active on that box: the set of a point known only through an enclosure.
    """
    possible = possible or {}
    pieces = {}

    def partials_rule(step, _):
        d, pc = step.prim.linearise([values[i] for i in step.inputs], values[step.node],
                                    step.kwargs, tol=tol, with_pieces=with_pieces,
                                    possible=possible.get(step.node))
        if pc is not None:
            pieces[step.node] = pc
        if d is not None:
            _check_finite(program, step.node, d, call)
        return d

    partials = walk(program, {}, partials_rule, call=call)
    return Linearisation(partials, pieces)


def _values_and_partials(program, x, theta, *, call, possible=None):
    """Values of every node and the default selection's partials of the nodes that depend on
    the inputs, in one walk (what a derivative run needs; nothing is checked here)."""
    live = program.live
    possible = possible or {}
    partials = {}

    def rule(step, ins):
        out = step.impl(*ins)
        if step.node in live:
            partials[step.node] = step.prim.linearise(ins, out, step.kwargs, tol=0.0,
                                                      with_pieces=False,
                                                      possible=possible.get(step.node))[0]
        return out

    values = walk(program, seed(program, x, theta), rule, call=call)
    return values, partials


def _compiled_value_and_tangent(program, x, theta, seeds):
    """Value and tangent from the compiled program (small programs with seeds at the inputs
    only), or None after an error or a non-finite result (the walk then runs and says what
    happened where)."""
    tx, tt = seeds.get(program.x_node), seeds.get(program.theta_node)
    if len(seeds) != (tx is not None) + (tt is not None):       # seeds inside the program
        return None
    run = tangents_function(program, (tx is not None, tt is not None))
    return _checked(run, x, theta, tx, tt)


def _checked(run, *args):
    """``run(*args)`` inside ``np.errstate``, or None after an error or a non-finite result."""
    try:
        with np.errstate(all="ignore"):
            out, tangent = run(*args)
    except ConservativeError:
        return None
    if not all_finite(out) or (tangent is not None and not all_finite(tangent)):
        return None
    return out, tangent


def _compiled_with_demand(program, x, theta, seeds):
    """:func:`_compiled_value_and_tangent` for large programs, on their demanded elements."""
    tx, tt = seeds.get(program.x_node), seeds.get(program.theta_node)
    if len(seeds) != (tx is not None) + (tt is not None):
        return None
    prologue, step = demand_tangents_function(program, (tx is not None, tt is not None))
    pre = _prologue(prologue, theta, tt)
    return None if pre is None else _checked(step, x, tx, pre)


def _prologue(prologue, theta, theta_seed):
    """The nodes that do not depend on ``x``, or None after an error or a non-finite value."""
    try:
        with np.errstate(all="ignore"):
            pre = prologue(theta, theta_seed)
    except ConservativeError:
        return None
    return pre if all(a is None or all_finite(np.asarray(a)) for a in pre) else None


def jvp_run(program: Program, theta: np.ndarray, theta_seed, *, call: str):
    """``step(x, x_seed) -> (value, tangent)``: :func:`value_and_jvp` at one ``theta`` and
    theta seed for many ``x`` (a derivative run), with what does not depend on ``x`` computed
    once. ``x_seed`` may be None (zero); ``theta_seed`` is None (zero), an array, or a function
    making it (then it is made again only if the walks must run, and not kept: at one penalty
    per feature the identity seed is as large as the derivative)."""
    def seed_of_theta():
        return theta_seed() if callable(theta_seed) else theta_seed

    def general(x, x_seed):
        seeds = {n: t for n, t in ((program.x_node, x_seed),
                                   (program.theta_node, seed_of_theta())) if t is not None}
        return value_and_jvp(program, x, theta, seeds, call=call)

    if not _demand_pays(program):
        return general
    first = seed_of_theta()
    prologue, compiled = demand_tangents_function(program, (True, first is not None))
    pre = _prologue(prologue, theta, first)
    del first
    if pre is None:                                 # the walks will say what went wrong
        return general

    def step(x, x_seed):
        fast = None if x_seed is None else _checked(compiled, x, x_seed, pre)
        return general(x, x_seed) if fast is None else fast
    return step


def _values_and_tangents(program, x, theta, seeds, *, call):
    """Values (the compiled value walk), then the default selection's tangents (small
    programs, where an analysis of the demanded rows costs more than it saves)."""
    values = walk(program, seed(program, x, theta), value_rule, call=call)

    def default_tangent_rule(step, tin):
        for t in tin:
            if t is not None:                   # some input carries a tangent
                return step.prim.default_tangent([values[i] for i in step.inputs],
                                                 values[step.node], tin, step.kwargs)
        return None

    tangents = walk(program, dict(seeds), default_tangent_rule, call=call, free=True)
    return values, tangents.get(program.out_node)


def jvp(program: Program, values: dict, partials: dict, seeds: dict, *, keep: bool = False,
        call: str = "jvp"):
    """Push tangents forward through the program.

    Parameters
    ----------
    values : dict node -> ndarray (B, *shape)
    partials : dict node -> tuple
        Elementwise partials per node (from :func:`linearise`, possibly with other selections).
    seeds : dict node -> ndarray (B, *shape, T)
        Tangents placed at nodes (usually the inputs). A seeded node's own rule is skipped.
    keep : bool
        Return all tangents (dict) instead of the output's (None means zero); otherwise each
        tangent is dropped after its last use.
    call : str
        Public call named in errors.
    """
    needs = None if keep else demanded(program, values, partials)

    def tangent_rule(step, tin):
        if step.node in seeds:
            return seeds[step.node]
        if all(t is None for t in tin):
            return None
        need = ALL
        if needs is not None:
            need = needs.get(step.node)
            if need is None:                     # the output needs nothing of this tangent
                return None
        return step.prim.tangent([values[i] for i in step.inputs], values[step.node], tin,
                                 partials.get(step.node), step.kwargs, need=need)

    tangents = walk(program, dict(seeds), tangent_rule, call=call, free=not keep)
    return tangents if keep else tangents.get(program.out_node)


def _demand_pays(program: Program) -> bool:
    """Whether the program has a product large enough to gain from demanded rows."""
    return program.cached("demand pays", functools.partial(_has_large_product, program))


def _has_large_product(program: Program) -> bool:
    return any(getattr(s.prim, "jvp_uses_need", False) and
               int(np.prod(program.shape(s.node), dtype=np.int64)) >= 64 for s in program.steps)


def demanded(program: Program, values: dict, partials: dict) -> dict | None:
    """Which elements of each node's tangent the output needs: node -> ``ALL`` or a boolean
    mask of the node's shape (absent: nothing), or None when the program gains nothing from it.

    Demanded rows: a later 0/1 mask (a soft-threshold's partials off its support) needs only
    some rows, and that need travels back through linear nodes, so the tangent pass computes
    only those rows of products such as ``X^T (X J)``. Worth it only for programs with a
    large product whose JVP can restrict its rows (decided once per program).
    """
    if not _demand_pays(program):
        return None
    live = program.live
    needs = {}

    def demand_rule(step, need):
        needs[step.node] = need
        if step.node not in live:
            return (None,) * len(step.inputs)
        return step.prim.demand(need, [values[i] for i in step.inputs], values[step.node],
                                partials.get(step.node), tuple(i in live for i in step.inputs),
                                step.kwargs)

    walk(program, {program.out_node: ALL}, demand_rule, call="demanded rows", reverse=True)
    return needs


def value_and_jvp(program: Program, x: np.ndarray, theta: np.ndarray, seeds: dict, *,
                  call: str):
    """Value and tangent of the default selection (what derivative runs use).

    Parameters
    ----------
    x, theta : ndarray, batched ``(B, *shape)`` (``B`` may be 1 for theta)
    seeds : dict node -> ndarray (B, *shape, T)
        Tangents at the input nodes.

    Returns
    -------
    value : ndarray (B, *out_shape)
    tangent : ndarray (B, *out_shape, T) or None (zero)
    """
    if _demand_pays(program):
        fast = _compiled_with_demand(program, x, theta, seeds)
        if fast is not None:
            return fast
        values, partials = _values_and_partials(program, x, theta, call=call)
        tangent = jvp(program, values, partials, seeds, call=call)
    else:
        fast = _compiled_value_and_tangent(program, x, theta, seeds)
        if fast is not None:
            return fast
        values, tangent = _values_and_tangents(program, x, theta, seeds, call=call)
    out = values[program.out_node]
    if not np.isfinite(out).all() or (tangent is not None and not np.isfinite(tangent).all()):
        linearise(program, values, tol=0.0, call=call)   # names the offending node
        if not np.isfinite(out).all():
            raise_non_finite(program, values, call)
        _raise_overflowed(program, {}, call)
    return out, tangent


def _raise_overflowed(program: Program, tangents: dict, call: str):
    """Raise NonFiniteError for finite values whose derivative is not: an intermediate
    derivative overflowed (``inf * 0`` then gives NaN). Names the first such node when
    ``tangents`` (node -> tangent) holds them."""
    where = ""
    for step in program.steps:
        t = tangents.get(step.node)
        if t is not None and not np.all(np.isfinite(t)):
            where = f" at `{program.expression(step.node, depth=2)}`"
            break
    raise NonFiniteError(
        f"{call}: the values are finite but a derivative{where} is infinite or NaN (an "
        "intermediate derivative exceeds the float range, about 1.8e308, e.g. 1e200 * (1e200 * "
        "x)); rescale the map so that its intermediate derivatives stay in range")


def _fit(c: np.ndarray, value: np.ndarray) -> np.ndarray:
    """A cotangent in the batched shape of the value it belongs to (a batch-free input used
    by a batch sums over the batch)."""
    if c.shape[0] != value.shape[0]:
        c = c.sum(axis=0, keepdims=True)
    if c.shape != value.shape:
        return np.broadcast_to(c, value.shape)
    view = c.view()                         # read-only, as a broadcast is (and cheaper)
    view.flags.writeable = False
    return view


def vjp(program: Program, values: dict, partials: dict, cotangent: np.ndarray, *,
        call: str, theta_only: bool = False) -> dict:
    """Pull a cotangent of the output back to ``x`` and ``theta`` (reverse mode).

    Parameters
    ----------
    values, partials : dicts from :func:`evaluate` and :func:`linearise`
    cotangent : ndarray (B, *out_shape)
    theta_only : bool
        Pull back along the nodes that depend on theta only: the entry for ``x`` is then
        zero (not computed), and the products of the x-only part of the program are skipped.

    Returns
    -------
    dict node -> cotangent, with entries for ``program.x_node`` and ``program.theta_node``
    (zeros when the output does not depend on them).
    """
    live = _theta_dependent(program) if theta_only else program.live

    def cotangent_rule(step, ct):
        if not ct.any():               # an identically zero cotangent pulls back to zero
            return (None,) * len(step.inputs)
        try:
            ins = step.prim.cotangent([values[i] for i in step.inputs], values[step.node], ct,
                                      tuple(i in live for i in step.inputs),
                                      partials.get(step.node), step.kwargs)
        except NotImplementedError as exc:
            raise NotImplementedError(f"{call}: {exc}") from None
        return tuple(_fit(c, values[src]) if src in live and c is not None else None
                     for src, c in zip(step.inputs, ins))

    cts = walk(program, {program.out_node: cotangent}, cotangent_rule, call=call, reverse=True)
    out = {}
    for node in (program.x_node, program.theta_node):
        out[node] = cts.get(node, np.zeros_like(values[node]))
    return out


def _theta_dependent(program: Program) -> frozenset:
    """The nodes whose value depends on theta (built once per program)."""
    def build():
        dep = {program.theta_node}
        for step in program.steps:
            if any(i in dep for i in step.inputs):
                dep.add(step.node)
        return frozenset(dep)
    return program.cached("theta_dependent", build)


class Pullback:
    """The reverse-mode derivative of a program at one point, for any number of cotangents.

    Built by :func:`pullback`: the program is evaluated and linearised once (default
    selection); each call pulls one batch of cotangents back through the frozen linearisation.

    Attributes
    ----------
    value : ndarray (B, *out_shape)
        The program's output at the point.
    values, partials : dict
        The node values and the selection's partials (as :func:`vjp` takes them).
    """

    def __init__(self, program: Program, values: dict, partials: dict, *, call: str):
        self.program, self.values, self.partials, self.call = program, values, partials, call
        self.value = values[program.out_node]

    def __call__(self, cotangent: np.ndarray):
        """``(A^T c, B^T c)`` for a cotangent ``c`` of shape ``(B, *out_shape)``, batched."""
        p = self.program
        cts = vjp(p, self.values, self.partials, cotangent, call=self.call)
        return cts[p.x_node], cts[p.theta_node]


def pullback(program: Program, x: np.ndarray, theta: np.ndarray, *, call: str,
             possible: dict | None = None) -> Pullback:
    """Evaluate and linearise ``program`` once at batched ``(x, theta)``, for reverse mode.

    The one VJP pipeline (evaluation, default-selection partials, the reverse walk) behind
    ``Map.vjp``, backpropagation through iterations and the adjoint fixed point of reverse
    FPAD: call the returned :class:`Pullback` with each cotangent.

    Parameters
    ----------
    x, theta : ndarray
        Batched inputs ``(B, *state_shape)``, ``(B or 1, *param_shape)``.
    call : str
        Public call named in errors.
    possible : dict, optional
        Pieces that may be active on a box around the point (:func:`conservative.enclose.
        possible_pieces`): the selection is then the one made on the kinks the box meets, as in
        :func:`linearise`.

    Raises
    ------
    NonFiniteError
        When a value or a partial derivative is NaN or infinite (the message names the node).

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.trace(lambda x, t: cv.relu(x * t), (2,), ())
    >>> back = pullback(F.program, np.array([[1.0, -1.0]]), np.array([2.0]), call="demo")
    >>> back(np.ones((1, 2)))
    (array([[2., 0.]]), array([1.]))
    """
    values, partials = _values_and_partials(program, x, theta, call=call, possible=possible)
    if not np.all(np.isfinite(values[program.out_node])):
        raise_non_finite(program, values, call)
    for node, d in partials.items():            # in topological order: the first bad node
        if d is not None:
            _check_finite(program, node, d, call)
    return Pullback(program, values, partials, call=call)


def input_seeds(program: Program) -> dict:
    """Identity tangents at ``x`` and ``theta``: directions are the columns of ``[A B]``."""
    sx, st = program.shape(program.x_node), program.shape(program.theta_node)
    n, m = int(np.prod(sx, dtype=np.int64)), int(np.prod(st, dtype=np.int64))
    return {program.x_node: np.eye(n, n + m).reshape((1,) + sx + (n + m,)),
            program.theta_node: np.eye(m, n + m, k=n).reshape((1,) + st + (n + m,))}


def tangent_matrix(tangent, n_rows: int, n_cols: int, batch: int = 1) -> np.ndarray:
    """A fresh (writable) stack of matrices from a tangent (None means zero)."""
    if tangent is None:
        return np.zeros((batch, n_rows, n_cols))
    return np.array(np.broadcast_to(tangent, (batch,) + tangent.shape[1:])
                    .reshape(batch, n_rows, n_cols))


class _Slots:
    """The slots of one nonsmooth node: flat element positions and their active pieces."""

    def __init__(self, node, positions, options, default):
        self.node = node
        self.positions = positions      # (K,) flat element indices
        self.options = options          # list of K arrays of piece indices
        self.default = default          # (K,) index into each options array


def _find_slots(program: Program, lin: Linearisation) -> list[_Slots]:
    found = []
    for node, pc in lin.pieces.items():
        active = pc.active.reshape(pc.active.shape[0], -1)   # (P, size) at batch 0
        multi = np.nonzero(active.sum(axis=0) >= 2)[0]
        if multi.size == 0:
            continue
        default = pc.default.reshape(-1)
        options = [np.nonzero(active[:, e])[0] for e in multi]
        dflt = np.array([int(np.nonzero(opt == default[e])[0][0])
                         for opt, e in zip(options, multi)])
        found.append(_Slots(node, multi, options, dflt))
    return found


def jacobian_set(program: Program, values: dict, *, hull: bool, tol: float,
                 call: str = "Map.jacobian", structure: str = "auto",
                 possible: dict | None = None) -> JacobianSet:
    """The conservative Jacobian ``[A B]`` of the program at one point (batch size 1).

    ``structure="auto"`` uses the affine (rank-one per slot) form when no kink lies downstream
    of another, and lazy assembly otherwise; ``"lazy"`` forces lazy assembly (for tests that
    compare the two). ``possible`` widens the active pieces as in :func:`linearise`.
    """
    lin = linearise(program, values, tol=tol, call=call, possible=possible)
    seeds = input_seeds(program)
    n = int(np.prod(program.shape(program.out_node), dtype=np.int64))
    T = next(iter(seeds.values())).shape[-1]
    tangents = jvp(program, values, lin.partials, seeds, keep=True, call=call)
    J0 = tangent_matrix(tangents.get(program.out_node), n, T)[0]
    if not np.isfinite(J0).all():
        _raise_overflowed(program, tangents, call)
    slots = _find_slots(program, lin)
    if not slots:
        return JacobianSet(FiniteGenerator(J0[None]), hull=hull)
    kinks = {s.node for s in slots}
    import networkx as nx  # loaded by the first trace already; local to keep import time low
    nested = any(nx.descendants(program.graph, k) & kinks for k in kinks)
    if nested or structure == "lazy":
        return JacobianSet(_callable_generator(program, values, lin, slots, seeds, n, T),
                           hull=hull)
    return JacobianSet(_affine_generator(program, values, lin, slots, tangents, J0, n, T),
                       hull=hull)



def _affine_generator(program, values, lin, slots, tangents, J0, n, T):
    U_parts, C_parts, counts, defaults = [], [], [], []
    width = max(len(o) for s in slots for o in s.options)
    for sl in slots:
        node = sl.node
        step_inputs = program.graph.nodes[node]["inputs"]
        shape = program.shape(node)
        size = int(np.prod(shape, dtype=np.int64))
        pc = lin.pieces[node]
        K = len(sl.positions)
        # rows of the node's inputs w.r.t. (x, theta) at the slot positions
        C = np.zeros((K, width, T))
        for i, src in enumerate(step_inputs):
            t = tangents.get(src)
            if t is None:
                continue
            rows = np.broadcast_to(t, (1,) + shape + (T,)).reshape(size, T)[sl.positions]
            d_default = np.broadcast_to(lin.partials[node][i], (1,) + shape).reshape(-1)
            for k, opts in enumerate(sl.options):
                e = sl.positions[k]
                for o, p in enumerate(opts):
                    d_p = np.broadcast_to(np.asarray(pc.partials[p][i], dtype=float),
                                          (1,) + shape).reshape(-1)[e]
                    C[k, o] += (d_p - d_default[e]) * rows[k]
        # the output's sensitivity to each slot coordinate: a tangent seeded at the node
        unit = np.zeros((size, K))
        unit[sl.positions, np.arange(K)] = 1.0
        out = jvp(program, values, lin.partials, {node: unit.reshape((1,) + shape + (K,))},
                  call="Map.jacobian")
        U_parts.append(tangent_matrix(out, n, K)[0])
        C_parts.append(C)
        counts.extend(len(o) for o in sl.options)
        defaults.extend(sl.default)
    return AffineGenerator(J0, np.concatenate(U_parts, axis=1), np.concatenate(C_parts),
                           counts, defaults)


def _callable_generator(program, values, lin, slots, seeds, n, T):
    counts = [len(o) for s in slots for o in s.options]
    defaults = [d for s in slots for d in s.default]

    def assemble(choices: np.ndarray) -> np.ndarray:
        batch = choices.shape[0]
        partials = dict(lin.partials)
        col = 0
        for sl in slots:
            node = sl.node
            shape = program.shape(node)
            pc = lin.pieces[node]
            n_in = len(partials[node])
            new = []
            for i in range(n_in):
                d = np.array(np.broadcast_to(lin.partials[node][i], (1,) + shape)
                             .reshape(1, -1).repeat(batch, axis=0))
                for k, opts in enumerate(sl.options):
                    pieces_chosen = opts[choices[:, col + k]]            # (batch,)
                    e = sl.positions[k]
                    table = np.array([np.broadcast_to(np.asarray(pc.partials[p][i], dtype=float),
                                                      (1,) + shape).reshape(-1)[e]
                                      for p in range(len(pc.partials))])
                    d[:, e] = table[pieces_chosen]
                new.append(d.reshape((batch,) + shape))
            partials[node] = tuple(new)
            col += len(sl.options)
        out = jvp(program, values, partials, seeds)
        return tangent_matrix(out, n, T, batch)

    return CallableGenerator(assemble, counts, defaults, (n, T))
