"""Small calls: a traced program compiled to one Python function of bound NumPy calls.

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
from .primitives import Smooth

__all__ = ["values_function", "tangents_function", "source"]


def _name(program: Program, node: int, prefix: str = "v") -> str:
    return f"c{node}" if node in program.consts else f"{prefix}{node}"


def source(program: Program, seeded: tuple | None = None) -> str:
    """The generated source: values only, or with tangents when ``seeded`` (whether ``x`` and
    ``theta`` carry tangents) is given."""
    x, theta = program.x_node, program.theta_node
    args = [f"v{x}", f"v{theta}"] + ([f"t{x}", f"t{theta}"] if seeded is not None else [])
    lines = [f"def {'values' if seeded is None else 'values_and_tangents'}({', '.join(args)}):"]
    carried = {n for n, s in zip((x, theta), seeded or ()) if s}
    for step in program.steps:
        ins = [_name(program, i) for i in step.inputs]
        lines.append(f"    v{step.node} = f{step.node}({', '.join(ins)})")
        if seeded is not None and any(i in carried for i in step.inputs):
            along = [k for k, i in enumerate(step.inputs) if i in carried]
            if step.prim.linear and len(along) == len(step.inputs):
                # a linear value function maps the input tangents to the output's
                tin = [f"t{i}" for i in step.inputs]
                lines.append(f"    t{step.node} = f{step.node}({', '.join(tin)})")
            elif isinstance(step.prim, Smooth) and len(along) == 1:
                # one input carries a tangent: scale it by that input's partial
                lines.append(f"    t{step.node} = g{step.node}(({', '.join(ins)},), "
                             f"v{step.node}, t{step.inputs[along[0]]})")
            else:
                tin = [f"t{i}" if i in carried else "None" for i in step.inputs]
                lines.append(f"    t{step.node} = g{step.node}(({', '.join(ins)},), "
                             f"v{step.node}, ({', '.join(tin)},))")
            carried.add(step.node)
    out = program.out_node
    result = _name(program, out)
    if seeded is not None:
        result += f", {'t' + str(out) if out in carried else 'None'}"
    lines.append(f"    return {result}")
    return "\n".join(lines)


def _build(program: Program, seeded: tuple | None) -> Callable:
    namespace = {f"c{n}": v for n, v in program.batched_consts.items()}
    carried = {n for n, s in zip((program.x_node, program.theta_node), seeded or ()) if s}
    for step in program.steps:
        namespace[f"f{step.node}"] = step.impl
        if seeded is None or not any(i in carried for i in step.inputs):
            continue
        carried.add(step.node)
        along = [k for k, i in enumerate(step.inputs) if i in carried]
        if isinstance(step.prim, Smooth) and len(along) == 1:
            namespace[f"g{step.node}"] = _scaled_by_partial(step.prim, step.kwargs, along[0])
        else:
            namespace[f"g{step.node}"] = functools.partial(step.prim.default_tangent,
                                                           params=step.kwargs)
    code = source(program, seeded)
    exec(compile(code, f"<conservative program {id(program):#x}>", "exec"), namespace)
    return namespace["values" if seeded is None else "values_and_tangents"]


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
