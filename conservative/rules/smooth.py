"""Smooth elementwise primitives: value, partials and sympy form, one block each.

Inputs of an elementwise primitive all have the output's shape (the DSL inserts explicit
broadcasts), so partials are plain elementwise arrays.
"""

from __future__ import annotations

import numpy as np
from ..primitives import lazy_sympy as sympy  # imported on first use, not by `import conservative`

from .. import interval as iv
from ..primitives import Primitive, register


def _same_shape(*shapes, **_):
    return shapes[0]


def _elementwise(name, impl, partials, sympy_form, interval, interval_partials):
    return register(Primitive(name=name, kind="elementwise", impl=impl, shape_rule=_same_shape,
                              partials=partials, sympy=sympy_form, interval=interval,
                              interval_partials=interval_partials))


def _iv_pow(x, exponent):
    """x ** c over an interval: exact integer powers, else exp(c log x) for x > 0."""
    if float(exponent).is_integer() and exponent >= 0:
        return iv.power(x, int(exponent))
    if float(exponent).is_integer():
        return iv.divide(1.0, iv.power(x, int(-exponent)))
    return iv.exp(iv.multiply(exponent, iv.log(x)))


# --- arithmetic ---------------------------------------------------------------------------------

add_p = _elementwise(
    "add", lambda a, b: a + b,
    lambda vals, out: (1.0, 1.0),
    lambda a, b: a + b,
    iv.add, lambda ivs, out, tol: (1.0, 1.0))

sub_p = _elementwise(
    "sub", lambda a, b: a - b,
    lambda vals, out: (1.0, -1.0),
    lambda a, b: a - b,
    iv.subtract, lambda ivs, out, tol: (1.0, -1.0))

mul_p = _elementwise(
    "mul", lambda a, b: a * b,
    lambda vals, out: (vals[1], vals[0]),
    lambda a, b: a * b,
    iv.multiply, lambda ivs, out, tol: (ivs[1], ivs[0]))

div_p = _elementwise(
    "div", lambda a, b: a / b,
    lambda vals, out: (1.0 / vals[1], -out / vals[1]),
    lambda a, b: a / b,
    iv.divide,
    lambda ivs, out, tol: (iv.divide(1.0, ivs[1]),
                           -iv.divide(ivs[0], iv.square(ivs[1]))))

neg_p = _elementwise(
    "neg", lambda a: -a,
    lambda vals, out: (-1.0,),
    lambda a: -a,
    lambda a: -a, lambda ivs, out, tol: (-1.0,))

# x ** c for a constant real exponent c (a parameter, not an input).
pow_p = _elementwise(
    "pow", lambda a, exponent: np.power(a, exponent),
    lambda vals, out, exponent: (exponent * np.power(vals[0], exponent - 1.0),),
    lambda a, exponent: a ** sympy.nsimplify(exponent),
    _iv_pow,
    lambda ivs, out, tol, exponent: (
        0.0 if exponent == 0 else iv.multiply(exponent, _iv_pow(ivs[0], exponent - 1.0)),))

# --- transcendental -----------------------------------------------------------------------------

exp_p = _elementwise(
    "exp", np.exp,
    lambda vals, out: (out,),
    sympy.exp,
    iv.exp, lambda ivs, out, tol: (out,))

log_p = _elementwise(
    "log", np.log,
    lambda vals, out: (1.0 / vals[0],),
    sympy.log,
    iv.log, lambda ivs, out, tol: (iv.divide(1.0, ivs[0]),))

# sqrt is not Lipschitz at 0: its partial is infinite there and the Map refuses it.
sqrt_p = _elementwise(
    "sqrt", np.sqrt,
    lambda vals, out: (0.5 / out,),
    sympy.sqrt,
    iv.sqrt, lambda ivs, out, tol: (iv.divide(0.5, out),))

tanh_p = _elementwise(
    "tanh", np.tanh,
    lambda vals, out: (1.0 - out * out,),
    sympy.tanh,
    iv.tanh, lambda ivs, out, tol: (iv.subtract(1.0, iv.square(out)),))


def _sigmoid(a):
    # exp of a non-positive number only, so no overflow for large |a|
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


sigmoid_p = _elementwise(
    "sigmoid", _sigmoid,
    lambda vals, out: (out * (1.0 - out),),
    lambda a: 1 / (1 + sympy.exp(-a)),
    iv.sigmoid, lambda ivs, out, tol: (iv.multiply(out, iv.subtract(1.0, out)),))

sin_p = _elementwise(
    "sin", np.sin,
    lambda vals, out: (np.cos(vals[0]),),
    sympy.sin,
    iv.sin, lambda ivs, out, tol: (iv.cos(ivs[0]),))

cos_p = _elementwise(
    "cos", np.cos,
    lambda vals, out: (-np.sin(vals[0]),),
    sympy.cos,
    iv.cos, lambda ivs, out, tol: (-iv.sin(ivs[0]),))
