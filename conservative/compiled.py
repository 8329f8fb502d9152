"""Small calls and derivative runs: a traced program compiled to Python functions of bound
NumPy calls.

At small sizes the interpreter walk's bookkeeping per node (dict lookups, a rule call) costs
more than the NumPy operation itself. For the two transformations a small call needs, the value
and the value with the default selection's tangent, this module generates once per program a
Python function that calls each node's bound implementation (``Step.impl``, prepared when the
program was frozen) in topological order and keeps the values in local variables: a flat list
of NumPy calls, with nothing else between them.

The generated functions do no checking: the callers (:func:`conservative.evaluate.evaluate`,
:func:`conservative.jacobian.value_and_jvp`) run them inside ``np.errstate``, check the result
for NaN and infinity, and on any error or non-finite result run the interpreter walk again,
which names the node (errors and results are the walk's; only the time differs).

Runs of many steps at one ``theta`` (fixed-point solves, piggyback derivatives) get functions
in two parts: a prologue for the nodes that do not depend on ``x``, run once per run, and the
step (:func:`values_run_function`); for large programs the step also computes the default
selection's partials, the demanded elements of every tangent and the tangents on them
(:func:`demand_tangents_function`), which the interpreter would decide node by node on every
step.

Examples
--------
>>> import numpy as np, conservative as cv
>>> F = cv.trace(lambda x, t: cv.relu(x - t) * 2.0, (2,), ())
>>> print(source(F.program))
def values(v0, v1):
    v2 = f2(v1)
    v3 = f3(v0, v2)
    v4 = f4(v3)
    v6 = f6(v4, c5)
    return v6
>>> values_function(F.program)(np.array([[1.0, -1.0]]), np.array([0.5]))
array([[1., 0.]])
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from .graph import Program
from .primitives import ALL, Primitive, Smooth

__all__ = ["values_function", "tangents_function", "source", "values_run_function",
           "demand_tangents_function", "demand_source"]


def _name(program: Program, node: int, prefix: str = "v") -> str:
    return f"c{node}" if node in program.consts else f"{prefix}{node}"


def _seeded_nodes(program: Program, seeded: tuple) -> set:
    """The inputs (``x``, ``theta``) that carry a seed."""
    return {n for n, sd in zip((program.x_node, program.theta_node), seeded) if sd}


def _tangent_modes(program: Program, seeded: tuple) -> dict:
    """How each node that carries a tangent computes it: ``"linear"`` (its value function on
    the input tangents), ``"scaled"`` (one input carries one: times that partial; ``"scaled,
    may be None"`` when that tangent may be None) or ``"rule"`` (the primitive's tangent rule,
    which takes None for zero tangents and may return None: a ``cv.where`` whose carried
    inputs all have partial 0). A node reading a tangent that may be None never takes the
    linear form (its value function cannot add None)."""
    carried, may_be_none, modes = _seeded_nodes(program, seeded), set(), {}
    for step in program.steps:
        along = [i for i in step.inputs if i in carried]
        if not along:
            continue
        none_in = any(i in may_be_none for i in along)
        if step.prim.linear and len(along) == len(step.inputs) and not none_in:
            modes[step.node] = "linear"
        elif isinstance(step.prim, Smooth) and len(along) == 1:
            modes[step.node] = "scaled, may be None" if none_in else "scaled"
            if none_in:
                may_be_none.add(step.node)
        else:
            modes[step.node] = "rule"
            may_be_none.add(step.node)
        carried.add(step.node)
    return modes


def _all_none(nodes) -> str:
    """The test that every tangent of ``nodes`` is None (zero), as source."""
    return " and ".join(f"t{i} is None" for i in dict.fromkeys(nodes))


def source(program: Program, seeded: tuple | None = None, modes: dict | None = None) -> str:
    """The generated source: values only, or with tangents when ``seeded`` (whether ``x`` and
    ``theta`` carry tangents) is given (``modes``: :func:`_tangent_modes`, when computed)."""
    x, theta = program.x_node, program.theta_node
    args = [f"v{x}", f"v{theta}"] + ([f"t{x}", f"t{theta}"] if seeded is not None else [])
    lines = [f"def {'values' if seeded is None else 'values_and_tangents'}({', '.join(args)}):"]
    if modes is None:
        modes = _tangent_modes(program, seeded) if seeded is not None else {}
    carried = set(modes) | _seeded_nodes(program, seeded or ())
    for step in program.steps:
        ins = [_name(program, i) for i in step.inputs]
        lines.append(f"    v{step.node} = f{step.node}({', '.join(ins)})")
        mode = modes.get(step.node)
        if mode is None:
            continue
        along = [i for i in step.inputs if i in carried]
        # a zero tangent (None) in every carried input gives None, without the rule
        guard = "" if mode in ("linear", "scaled") else f"None if {_all_none(along)} else "
        if mode == "linear":
            # a linear value function maps the input tangents to the output's
            tin = [f"t{i}" for i in step.inputs]
            lines.append(f"    t{step.node} = f{step.node}({', '.join(tin)})")
        elif mode.startswith("scaled"):
            # one input carries a tangent: scale it by that input's partial
            lines.append(f"    t{step.node} = {guard}g{step.node}(({', '.join(ins)},), "
                         f"v{step.node}, t{along[0]})")
        else:
            tin = [f"t{i}" if i in carried else "None" for i in step.inputs]
            lines.append(f"    t{step.node} = {guard}g{step.node}(({', '.join(ins)},), "
                         f"v{step.node}, ({', '.join(tin)},))")
    out = program.out_node
    result = _name(program, out)
    if seeded is not None:
        result += f", {'t' + str(out) if out in carried else 'None'}"
    lines.append(f"    return {result}")
    return "\n".join(lines)


def _build(program: Program, seeded: tuple | None) -> Callable:
    namespace = {f"c{n}": v for n, v in program.batched_consts.items()}
    modes = _tangent_modes(program, seeded) if seeded is not None else {}
    carried = _seeded_nodes(program, seeded or ()) | set(modes)
    for step in program.steps:
        namespace[f"f{step.node}"] = step.impl
        mode = modes.get(step.node)
        if mode is None or mode == "linear":
            continue
        if mode.startswith("scaled"):
            along = [k for k, i in enumerate(step.inputs) if i in carried]
            namespace[f"g{step.node}"] = _scaled_by_partial(step.prim, step.kwargs, along[0])
        else:
            namespace[f"g{step.node}"] = functools.partial(step.prim.default_tangent,
                                                           params=step.kwargs)
    code = source(program, seeded, modes)
    exec(_code(code, "values"), namespace)
    return namespace["values" if seeded is None else "values_and_tangents"]


@functools.lru_cache(maxsize=256)
def _code(source_text: str, kind: str):
    """The compiled code of a generated source, shared by programs of the same shape (the
    names it calls are bound per program, in the namespace it runs in): Maps traced again on
    new data skip the compiler."""
    return compile(source_text, f"<conservative program ({kind})>", "exec")


def _scaled_by_partial(prim: Smooth, params: dict, k: int) -> Callable:
    """The tangent of a smooth node whose input ``k`` alone carries a tangent ``t``."""
    partials = functools.partial(prim.partials, **params) if params else prim.partials

    def tangent(vals, out, t):
        d = partials(vals, out)[k]
        return t * d if not isinstance(d, np.ndarray) or d.ndim == 0 else t * d[..., None]
    return tangent


def values_function(program: Program) -> Callable:
    """``values(x, theta) -> output`` for batched inputs (built once per program)."""
    return program.cached("compiled values", lambda: _build(program, None))


def tangents_function(program: Program, seeded: tuple) -> Callable:
    """``values_and_tangents(x, theta, tx, ttheta) -> (output, tangent or None)``: the default
    selection's tangent, for seeds at ``x`` and/or ``theta`` (``seeded``: which of them)."""
    return program.cached(("compiled tangents", seeded), lambda: _build(program, seeded))


# --- large programs: values, partials, demanded rows and tangents in one compiled function --
#
# A derivative run (piggyback, FPAD) evaluates the same program at a new x and the same theta on
# every step. Its function comes in two parts: a prologue for the nodes that do not depend on x
# (values, and their tangents along theta), run once per run, and the step proper.


def _join(a, b):
    """Two demands of one node (two consumers): the union; None is "nothing"."""
    if a is None:
        return b
    return a if b is None else a + b


class _Plan:
    """What the demand-aware step computes, decided once per program and seeding."""

    def __init__(self, program: Program, seeded: tuple):
        x, theta = program.x_node, program.theta_node
        self.program, self.live = program, program.live
        on_x = {x}                                   # nodes that change from step to step
        for s in program.steps:
            if any(i in on_x for i in s.inputs):
                on_x.add(s.node)
        self.pre = [s for s in program.steps if s.node not in on_x]
        self.steps = [s for s in program.steps if s.node in on_x]
        self.carried = {n for n, sd in zip((x, theta), seeded) if sd}
        for s in program.steps:
            if any(i in self.carried for i in s.inputs):
                self.carried.add(s.node)
        # the prologue's nodes that the step reads: values, and tangents
        # (and the output, which may not depend on x: ``lambda x, t: 2 * t``)
        used = {i for s in self.steps for i in s.inputs} | {program.out_node}
        self.pre_values = [n for n in [theta] + [s.node for s in self.pre] if n in used]
        self.pre_tangents = [n for n in self.pre_values if n in self.carried]
        self.reaching = {}                           # demands reaching each node of the step
        for s in self.steps:
            for i in s.inputs:
                if i in on_x and i != x:
                    self.reaching[i] = self.reaching.get(i, 0) + 1
        self.last_use = {}                           # the last step reading each tangent
        for k, s in enumerate(self.steps):
            if s.node in self.carried:
                for i in s.inputs:
                    if i in self.carried:
                        self.last_use[i] = k


def _prologue_lines(plan: _Plan) -> list:
    program = plan.program
    theta = program.theta_node
    lines = [f"def prologue(v{theta}, t{theta}):"]
    for step in plan.pre:
        ins = [_name(program, i) for i in step.inputs]
        lines.append(f"    v{step.node} = f{step.node}({', '.join(ins)})")
        if step.node in plan.carried:             # the whole tangent: its demand varies
            tin = [f"t{i}" if i in plan.carried else "None" for i in step.inputs]
            nothing = _all_none(i for i in step.inputs if i in plan.carried)
            lines.append(f"    t{step.node} = None if {nothing} else g{step.node}(("
                         f"{', '.join(ins)},), v{step.node}, ({', '.join(tin)},), "
                         f"{_partials_call(step, ins)}, ALL)")
    names = [f"v{n}" for n in plan.pre_values] + [f"t{n}" for n in plan.pre_tangents]
    lines.append(f"    return ({', '.join(names)}{',' if names else ''})")
    return lines


def _partials_call(step, ins: list) -> str:
    return (f"p{step.node}(({', '.join(ins)},), v{step.node})" if _has_partials(step.prim)
            else "None")


def _step_lines(plan: _Plan) -> list:
    program = plan.program
    x, out = program.x_node, program.out_node
    lines = [f"def value_and_tangent(v{x}, t{x}, pre):"]
    names = [f"v{n}" for n in plan.pre_values] + [f"t{n}" for n in plan.pre_tangents]
    if names:
        lines.append(f"    {', '.join(names)}, = pre")
    for step in plan.steps:                       # every value: the tangent rules read them
        ins = [_name(program, i) for i in step.inputs]
        lines.append(f"    v{step.node} = f{step.node}({', '.join(ins)})")
    steps = [s for s in plan.steps if s.node in plan.live]
    for step in steps:                            # the default selection's partials
        ins = [_name(program, i) for i in step.inputs]
        lines.append(f"    d{step.node} = {_partials_call(step, ins)}")
    if out not in plan.carried:
        return lines + [f"    return v{out}, None"]
    lines += [f"    n{node} = None" for node in plan.reaching if node != out]
    lines.append(f"    n{out} = ALL")
    for step in reversed(steps):                  # demanded elements, in reverse
        if not any(i in plan.reaching for i in step.inputs):
            continue                              # nothing reads its inputs' demand
        ins = [_name(program, i) for i in step.inputs]
        lines.append(f"    if n{step.node} is not None:")
        lines.append(f"        c = m{step.node}(n{step.node}, ({', '.join(ins)},), "
                     f"v{step.node}, d{step.node})")
        for k, i in enumerate(step.inputs):
            if i in plan.reaching:
                lines.append(f"        n{i} = c[{k}]" if plan.reaching[i] == 1 else
                             f"        n{i} = join(n{i}, c[{k}])")
    for k, step in enumerate(steps):              # tangents, each freed after its last use
        if step.node not in plan.carried:
            continue
        ins = [_name(program, i) for i in step.inputs]
        tin = [f"t{i}" if i in plan.carried else "None" for i in step.inputs]
        nothing = _all_none(i for i in step.inputs if i in plan.carried)
        lines.append(f"    t{step.node} = None if n{step.node} is None or ({nothing}) else "
                     f"g{step.node}(({', '.join(ins)},), v{step.node}, ({', '.join(tin)},), "
                     f"d{step.node}, n{step.node})")
        dead = [i for i in dict.fromkeys(step.inputs) if plan.last_use.get(i) == k and
                i != out and i not in plan.pre_tangents]
        if dead:
            lines.append(f"    del {', '.join(f't{i}' for i in dead)}")
    return lines + [f"    return v{out}, t{out}"]


def demand_source(program: Program, seeded: tuple) -> str:
    """The generated source of :func:`demand_tangents_function` (for reading and tests)."""
    plan = _Plan(program, seeded)
    return "\n".join(_prologue_lines(plan) + [""] + _step_lines(plan))


def _has_partials(prim) -> bool:
    """Elementwise kinds linearise to partials; the others (structural) have a tangent rule."""
    return type(prim).linearise is not Primitive.linearise


def _demand_rules(step, live: tuple):
    """The partial, demand and tangent rules of one live step, with its parameters bound."""
    prim, kwargs = step.prim, step.kwargs

    def partials(vals, out):
        return prim.linearise(vals, out, kwargs, tol=0.0, with_pieces=False)[0]

    def demand(need, vals, out, d):
        return prim.demand(need, vals, out, d, live, kwargs)

    def tangent(vals, out, tin, d, need):
        return prim.tangent(vals, out, tin, d, kwargs, need=need)
    return partials, demand, tangent


def _build_demand(program: Program, seeded: tuple) -> tuple:
    namespace = {f"c{n}": v for n, v in program.batched_consts.items()}
    namespace.update(ALL=ALL, join=_join)
    for step in program.steps:
        namespace[f"f{step.node}"] = step.impl
        if step.node in program.live:
            live = tuple(i in program.live for i in step.inputs)
            (namespace[f"p{step.node}"], namespace[f"m{step.node}"],
             namespace[f"g{step.node}"]) = _demand_rules(step, live)
    code = demand_source(program, seeded)
    exec(_code(code, "demand"), namespace)
    return namespace["prologue"], namespace["value_and_tangent"]


def demand_tangents_function(program: Program, seeded: tuple) -> tuple:
    """``(prologue, step)`` for large programs: ``pre = prologue(theta, ttheta)`` computes the
    nodes that do not depend on ``x`` (once per run of many steps at one theta), then
    ``step(x, tx, pre) -> (output, tangent or None)`` the values, the default selection's
    partials, the demanded elements of every tangent (a reverse pass over the nodes, as
    :func:`conservative.jacobian.demanded`) and the tangents on them
    (:func:`conservative.jacobian.jvp`).

    The same rules on the same values as the interpreter walks, so the same numbers (a node
    of the prologue has its whole tangent; the walk may skip one that the output does not
    read, which then only adds zeros); what goes is the walks' bookkeeping per node and step
    (dicts, rule wrappers, the live and demand look-ups). Nothing is checked: the caller runs
    it inside ``np.errstate`` and falls back to the walks after an error or a non-finite
    result.
    """
    return program.cached(("compiled demand tangents", seeded),
                          lambda: _build_demand(program, seeded))


def _values_run_source(plan: _Plan) -> str:
    program = plan.program
    x, theta = program.x_node, program.theta_node
    lines = [f"def prologue(v{theta}):"]
    for step in plan.pre:
        ins = [_name(program, i) for i in step.inputs]
        lines.append(f"    v{step.node} = f{step.node}({', '.join(ins)})")
    names = [f"v{n}" for n in plan.pre_values]
    lines += [f"    return ({', '.join(names)}{',' if names else ''})", "",
              f"def values(v{x}, pre):"]
    if names:
        lines.append(f"    {', '.join(names)}, = pre")
    for step in plan.steps:
        ins = [_name(program, i) for i in step.inputs]
        lines.append(f"    v{step.node} = f{step.node}({', '.join(ins)})")
    lines.append(f"    return {_name(program, program.out_node)}")
    return "\n".join(lines)


def _build_values_run(program: Program) -> tuple:
    namespace = {f"c{n}": v for n, v in program.batched_consts.items()}
    namespace.update({f"f{s.node}": s.impl for s in program.steps})
    code = _values_run_source(_Plan(program, (False, False)))
    exec(_code(code, "run"), namespace)
    return namespace["prologue"], namespace["values"]


def values_run_function(program: Program) -> tuple:
    """``(prologue, values)`` for many evaluations at one theta (a fixed-point solve):
    ``pre = prologue(theta)`` computes the nodes that do not depend on ``x`` once, then
    ``values(x, pre)`` the output. Unchecked, as :func:`values_function`.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.trace(lambda x, t: cv.relu(x - cv.exp(t)), (2,), ())
    >>> prologue, values = values_run_function(F.program)
    >>> pre = prologue(np.array([0.0]))
    >>> values(np.array([[2.0, 0.5]]), pre)
    array([[1., 0.]])
    """
    return program.cached("compiled run values", lambda: _build_values_run(program))
