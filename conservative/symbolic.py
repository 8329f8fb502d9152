"""Export traced programs to sympy: closed forms of the update map and of its pieces.

Elementwise primitives use their ``sympy`` rule (``Max``, ``Piecewise``, ``Abs``, ...);
structural ones run their NumPy implementation on object arrays of sympy expressions.
"""

from __future__ import annotations

import numpy as np

from ._types import check_bool
from .errors import InputError, fail_message
from .interpreter import seed, walk
from .map import Map

__all__ = ["to_sympy", "symbols_for"]


def symbols_for(name: str, shape: tuple) -> np.ndarray:
    """An object array of real sympy symbols ``name_i_j`` of the given shape."""
    import sympy  # here, not at module level: ``import conservative`` does not import sympy
    if not shape:
        return np.array(sympy.Symbol(name, real=True), dtype=object)
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = sympy.Symbol(f"{name}_{'_'.join(map(str, idx))}", real=True)
    return out


def _sympy_rule(step, args):
    """The sympy expressions of one node, on batched object arrays."""
    return step.prim.sympy_rule(args, step.params)


def to_sympy(F: Map, *, rational: bool = False):
    """The update map as sympy expressions.

    Parameters
    ----------
    F : Map
    rational : bool
        Convert floating constants to exact rationals (``sympy.nsimplify``) first.

    Returns
    -------
    expr : sympy.Array of F's state shape
    x, theta : ndarray of sympy.Symbol
        The symbols used for the state and the parameters.

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: cv.soft_threshold(x - 0.5 * (x - 1.0), t), (), ())
    >>> expr, x, t = cv.symbolic.to_sympy(F, rational=True)
    >>> expr[()].subs({x[()]: 3, t[()]: 1})
    1
    """
    import sympy
    if not isinstance(F, Map):
        raise InputError(fail_message("cv.symbolic.to_sympy", f"{type(F).__name__}",
                                      "pass a cv.Map (from cv.trace)"))
    rational = check_bool(rational, name="rational", call="cv.symbolic.to_sympy")
    program = F.program
    x = symbols_for("x", F.state_shape)
    theta = symbols_for("theta", F.param_shape)
    consts = {}
    for node, value in program.consts.items():
        arr = np.array(value, dtype=object)
        if rational:
            arr = np.vectorize(lambda v: sympy.nsimplify(float(v), rational=True),
                               otypes=[object])(np.array(value))
        consts[node] = arr[None]
    env = seed(program, x[None], theta[None], consts)
    values = walk(program, env, _sympy_rule, call="cv.symbolic.to_sympy")
    out = np.broadcast_to(values[program.out_node], (1,) + F.state_shape).reshape(F.state_shape)
    expr = sympy.Array(out.tolist()) if out.ndim else sympy.Array(out.item())
    return expr, x, theta
