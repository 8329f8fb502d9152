"""Vectorised NumPy evaluation of traced programs over a batch of points.

Every value carries one leading batch axis: ``(B, *node_shape)``, with ``B == 1`` for values that
do not depend on the inputs (NumPy broadcasting does the rest). Evaluation is the value rule of
the interpreter walk (:mod:`conservative.interpreter`): results go into fresh dicts keyed by
node; the graph is never mutated.
"""

from __future__ import annotations

import numpy as np

from .compiled import values_function
from .errors import ConservativeError
from .graph import Program
from .interpreter import located  # noqa: F401  (the old path of the name)
from .interpreter import all_finite, raise_non_finite, seed, value_rule, walk

__all__ = ["evaluate"]


def _compiled_value(program, x, theta):
    """The output from the compiled program (small calls), or None after an error or a
    non-finite result (the walk then runs and says what happened where)."""
    try:
        with np.errstate(all="ignore"):
            out = values_function(program)(x, theta)
    except ConservativeError:
        return None
    return out if all_finite(out) else None


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
    small = x.shape[0] * program.largest < 1 << 14
    if small and not keep:
        out = _compiled_value(program, x, theta)
        if out is not None:
            return out
    # the walk: it drops dead values on large batches, names a failing node, and checks
    values = walk(program, seed(program, x, theta), value_rule, call=call, free=not keep and
                  not small)
    out = values[program.out_node]
    if not all_finite(out):
        if not keep and not small:      # the values that name the node were dropped
            values = walk(program, seed(program, x, theta), value_rule, call=call)
        raise_non_finite(program, values, call)
    return values if keep else out
