"""Vectorised NumPy evaluation of traced programs over a batch of points.

Every value carries one leading batch axis: ``(B, *node_shape)``, with ``B == 1`` for values that
do not depend on the inputs (NumPy broadcasting does the rest). Evaluation is the value rule of
the interpreter walk (:mod:`conservative.interpreter`): results go into fresh dicts keyed by
node; the graph is never mutated.
"""

from __future__ import annotations

import numpy as np

from .graph import Program
from .interpreter import located, raise_non_finite, seed, walk  # noqa: F401 (located: old path)

__all__ = ["evaluate", "value_rule"]


def value_rule(step, ins):
    """The value of one node: its primitive's implementation on the input values."""
    return step.impl(*ins)


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
        Return the dict of all node values instead of the output only (otherwise each value
        is dropped after its last use).

    Raises
    ------
    NonFiniteError
        When a node produces NaN or infinity (the message names the node).

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.trace(lambda x, t: cv.relu(x - t), (2,), ())
    >>> evaluate(F.program, np.array([[1.0, -1.0]]), np.array([0.5]), call="demo")
    array([[0.5, 0. ]])
    """
    values = walk(program, seed(program, x, theta), value_rule, call=call, free=not keep)
    out = values[program.out_node]
    if not np.all(np.isfinite(out)):
        if not keep:        # the values that name the node were dropped: compute them again
            values = walk(program, seed(program, x, theta), value_rule, call=call)
        raise_non_finite(program, values, call)
    return values if keep else out
