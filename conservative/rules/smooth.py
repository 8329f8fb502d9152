"""Smooth elementwise primitives: value, partials and sympy form, one block each.

Inputs of an elementwise primitive all have the output's shape (the DSL inserts explicit
broadcasts), so partials are plain elementwise arrays.
"""

from __future__ import annotations

import numpy as np
import sympy

from ..primitives import Primitive, register


def _same_shape(*shapes, **_):
    return shapes[0]


def _elementwise(name, impl, partials, sympy_form, doc=""):
    return register(Primitive(name=name, kind="elementwise", impl=impl, shape_rule=_same_shape,
                              partials=partials, sympy=sympy_form, doc=doc))


# --- arithmetic ---------------------------------------------------------------------------------

add_p = _elementwise(
    "add", lambda a, b: a + b,
    lambda vals, out: (1.0, 1.0),
    lambda a, b: a + b)

sub_p = _elementwise(
    "sub", lambda a, b: a - b,
    lambda vals, out: (1.0, -1.0),
    lambda a, b: a - b)

mul_p = _elementwise(
    "mul", lambda a, b: a * b,
    lambda vals, out: (vals[1], vals[0]),
    lambda a, b: a * b)

div_p = _elementwise(
    "div", lambda a, b: a / b,
    lambda vals, out: (1.0 / vals[1], -out / vals[1]),
    lambda a, b: a / b)

neg_p = _elementwise(
    "neg", lambda a: -a,
    lambda vals, out: (-1.0,),
    lambda a: -a)

# x ** c for a constant real exponent c (a parameter, not an input).
pow_p = _elementwise(
    "pow", lambda a, exponent: np.power(a, exponent),
    lambda vals, out, exponent: (exponent * np.power(vals[0], exponent - 1.0),),
    lambda a, exponent: a ** sympy.nsimplify(exponent))

# --- transcendental -----------------------------------------------------------------------------

exp_p = _elementwise(
    "exp", np.exp,
    lambda vals, out: (out,),
    sympy.exp)

log_p = _elementwise(
    "log", np.log,
    lambda vals, out: (1.0 / vals[0],),
    sympy.log)

# sqrt is not Lipschitz at 0: its partial is infinite there and the Map refuses it.
sqrt_p = _elementwise(
    "sqrt", np.sqrt,
    lambda vals, out: (0.5 / out,),
    sympy.sqrt)

tanh_p = _elementwise(
    "tanh", np.tanh,
    lambda vals, out: (1.0 - out * out,),
    sympy.tanh)


def _sigmoid(a):
    # exp of a non-positive number only, so no overflow for large |a|
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


sigmoid_p = _elementwise(
    "sigmoid", _sigmoid,
    lambda vals, out: (out * (1.0 - out),),
    lambda a: 1 / (1 + sympy.exp(-a)))

sin_p = _elementwise(
    "sin", np.sin,
    lambda vals, out: (np.cos(vals[0]),),
    sympy.sin)

cos_p = _elementwise(
    "cos", np.cos,
    lambda vals, out: (-np.sin(vals[0]),),
    sympy.cos)
