"""The one interpreter walk over a traced program; every transformation is a per-node rule.

A *transformation* (values, partials, tangents, cotangents, interval values and tangents, sympy
expressions) is a function ``rule(step, ins)`` applied to the steps of a program in order (or in
reverse order for cotangents). :func:`walk` is the only loop over ``program.steps``; it holds
what every transformation needs once:

* **seeding** (:func:`seed`): the inputs ``x``, ``theta`` and the constants (batched once, when
  the program is frozen) placed in a fresh dict keyed by node;
* **floating-point state**: NumPy warnings are silenced inside the walk; non-finite results are
  errors that the callers check and name (:func:`raise_non_finite`), not warnings;
* **error relabelling**: a :class:`~conservative.errors.ConservativeError` raised by a node's
  rule gets the node's expression and the user's source line appended to its message. The
  exception object itself is re-raised, so its type and attributes (``steps``, ``residual``,
  ...) are kept;
* **freeing**: with ``free=True`` a node's entry is dropped after its last use, so a forward
  pass holds only the values (or tangents) still needed.

Results always go into dicts keyed by node; the program is never mutated.

Examples
--------
>>> import numpy as np, conservative as cv
>>> from conservative.interpreter import seed, walk
>>> F = cv.trace(lambda x, t: cv.relu(x) * t, (2,), ())
>>> env = seed(F.program, np.array([[-1.0, 2.0]]), np.array([3.0]))
>>> out = walk(F.program, env, lambda step, ins: step.impl(*ins), call="demo")
>>> out[F.program.out_node]
array([[0., 6.]])
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ConservativeError, NonFiniteError
from .graph import Program

__all__ = ["walk", "seed", "value_rule", "located", "relabelled", "raise_non_finite",
           "all_finite"]


def located(program: Program, node: int, message: str) -> str:
    """Append the node's expression and the user's source location to ``message``."""
    d = program.graph.nodes[node]
    return f"{message}\n  in `{program.expression(node)}` (defined at {d['source']})"


def relabelled(exc: ConservativeError, program: Program, node: int, call: str):
    """``exc`` with the public call in front of its message and the node's location after it.

    The same exception object is returned (its type and attributes are kept); only the message,
    ``exc.args[0]``, changes.
    """
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    exc.args = (located(program, node, f"{call}: {message}"),) + tuple(exc.args[1:])
    return exc


def seed(program: Program, x, theta, consts: dict | None = None) -> dict:
    """A fresh environment with ``x``, ``theta`` and the constants at their nodes.

    ``consts`` defaults to the program's constants with a batch axis of one (prepared once);
    interval transformations pass their own (``conservative.enclose``).
    """
    env = dict(program.batched_consts if consts is None else consts)
    env[program.x_node] = x
    env[program.theta_node] = theta
    return env


def walk(program: Program, env: dict, rule, *, call: str, reverse: bool = False,
         free: bool = False) -> dict:
    """Apply ``rule`` to every step of ``program``; return ``env``.

    Forward (default): ``env[step.node] = rule(step, ins)`` in topological order, with ``ins``
    the entries of the step's inputs (``None`` where absent).

    Reverse: in reverse order, ``rule(step, ct)`` receives the entry of the step's node (popped
    from ``env``; steps without one are skipped) and returns one entry per input (or None);
    entries reaching the same input are added.

    The value rule (:func:`value_rule`) runs over the program compiled once to a flat list of
    bound NumPy calls (:func:`_compiled`): the same computation without a rule call per node.

    Parameters
    ----------
    program : Program
    env : dict node -> entry
        Seeded by the caller (:func:`seed`); filled in place.
    rule : callable
    call : str
        The public call, named in relabelled errors.
    reverse : bool
    free : bool
        Forward only: drop each entry after its last use (the output's entry stays).

    Raises
    ------
    ConservativeError
        Whatever a rule raises, relabelled with the node (:func:`relabelled`).
    """
    step = None
    with np.errstate(all="ignore"):
        try:
            if rule is value_rule:             # compiled: bound NumPy calls, no rule call
                for node, impl, ins, arity, dying, step in _compiled(program):
                    if arity == 2:
                        env[node] = impl(env[ins[0]], env[ins[1]])
                    elif arity == 1:
                        env[node] = impl(env[ins[0]])
                    else:
                        env[node] = impl(*[env[i] for i in ins])
                    if free:
                        for i in dying:
                            del env[i]
            elif reverse:
                for step in reversed(program.steps):
                    ct = env.pop(step.node, None)
                    if ct is not None:
                        for src, c in zip(step.inputs, rule(step, ct)):
                            if c is not None:
                                env[src] = c if src not in env else env[src] + c
            elif free:
                for step, dying in zip(program.steps, program.dying):
                    env[step.node] = rule(step, [env.get(i) for i in step.inputs])
                    for i in dying:
                        env.pop(i, None)
            else:
                for step in program.steps:
                    env[step.node] = rule(step, [env.get(i) for i in step.inputs])
        except ConservativeError as exc:
            raise relabelled(exc, program, step.node, call) from None
    return env


def value_rule(step, ins):
    """The value of one node: its primitive's implementation on the input values."""
    return step.impl(*ins)


def _compiled(program: Program) -> list:
    """The value rule compiled once per program: a flat list of bound NumPy calls with their
    input nodes (what a small call spends its time in is this loop)."""
    return program.cached("values", lambda: [
        (step.node, step.impl, step.inputs, len(step.inputs), dying, step)
        for step, dying in zip(program.steps, program.dying)])


def all_finite(a: np.ndarray) -> bool:
    """No NaN or infinity in ``a`` (small arrays in Python floats: cheaper than a ufunc)."""
    if a.size <= 16:
        return all(map(math.isfinite, a.ravel().tolist()))
    return bool(np.isfinite(a).all())


def raise_non_finite(program: Program, values: dict, call: str):
    """Raise NonFiniteError naming the first node whose value is NaN or infinite."""
    for step in program.steps:
        value = values.get(step.node)
        if value is not None and not np.all(np.isfinite(value)):
            raise NonFiniteError(located(
                program, step.node,
                f"{call}: the program produced NaN or infinite values at `{step.prim.name}`; "
                "check the inputs lie in the domain of every operation (log and sqrt need "
                "positive arguments, division a non-zero denominator)"))
    raise NonFiniteError(f"{call}: the program produced NaN or infinite values")
