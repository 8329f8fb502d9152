"""Vectorised NumPy evaluation of traced programs over a batch of points.

Every value carries one leading batch axis: ``(B, *node_shape)``, with ``B == 1`` for values that
do not depend on the inputs (NumPy broadcasting does the rest). Results are stored in fresh
dicts keyed by node; the graph is never mutated.
"""

from __future__ import annotations

import numpy as np

from .errors import ConservativeError, NonFiniteError
from .graph import Program

__all__ = ["evaluate", "located", "raise_non_finite"]


def located(program: Program, node: int, message: str) -> str:
    """Append the node's expression and the user's source location to ``message``."""
    d = program.graph.nodes[node]
    return f"{message}\n  in `{program.expression(node)}` (defined at {d['source']})"


def evaluate(program: Program, x: np.ndarray, theta: np.ndarray, *, call: str,
             keep: bool = False):
    """Evaluate ``program`` at batched inputs.

    Parameters
    ----------
    x, theta : ndarray
        Shapes ``(B, *state_shape)`` and ``(B or 1, *param_shape)``, float64.
    call : str
        Public call name for error messages.
    keep : bool
        Return the dict of all node values instead of the output only.

    Raises
    ------
    NonFiniteError
        When a node produces NaN or infinity (the message names the node).
    """
    values: dict[int, np.ndarray] = {program.x_node: x, program.theta_node: theta}
    for node, value in program.consts.items():
        values[node] = value[None]
    with np.errstate(all="ignore"):
        for step in program.steps:
            args = [values[i] for i in step.inputs]
            try:
                values[step.node] = step.prim.impl(*args, **step.params)
            except ConservativeError as exc:
                raise type(exc)(located(program, step.node, f"{call}: {exc}")) from None
    out = values[program.out_node]
    if not np.all(np.isfinite(out)):
        raise_non_finite(program, values, call)
    return values if keep else out


def raise_non_finite(program: Program, values, call: str):
    for step in program.steps:
        if not np.all(np.isfinite(values[step.node])):
            raise NonFiniteError(located(
                program, step.node,
                f"{call}: the program produced NaN or infinite values at `{step.prim.name}`; "
                "check the inputs lie in the domain of every operation (log and sqrt need "
                "positive arguments, division a non-zero denominator)"))
    raise NonFiniteError(f"{call}: the program produced NaN or infinite values")
