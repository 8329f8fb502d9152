"""Smooth elementwise primitives: value, partials and sympy form, one block each.

Inputs of an elementwise primitive all have the output's shape (the DSL inserts explicit
broadcasts), so partials are plain elementwise arrays.
"""

from __future__ import annotations

import operator

import numpy as np
from ..primitives import lazy_sympy as sympy  # imported on first use, not by `import conservative`

from .. import interval as iv
from ..errors import InputError, UndecidedError, fail_message
from ..primitives import Smooth, infix, register

__all__ = ["add_p", "sub_p", "mul_p", "div_p", "neg_p", "pow_p", "exp_p", "log_p", "sqrt_p",
           "tanh_p", "sigmoid_p", "sin_p", "cos_p", "huber_p"]


def _same_shape(*shapes, **_):
    return shapes[0]


def _elementwise(name, impl, partials, sympy_form, interval, interval_partials, **printing):
    """Register a smooth elementwise primitive; ``printing``: pretty, ufuncs, call."""
    printing.setdefault("ufuncs", (name,))
    return register(Smooth(name=name, impl=impl, shape_rule=_same_shape, partials=partials,
                           sympy=sympy_form, interval=interval,
                           interval_partials=interval_partials, **printing))


def _iv_pow(x, exponent):
    """x ** c over an interval: exact integer powers, else exp(c log x) for x > 0."""
    if float(exponent).is_integer() and exponent >= 0:
        return iv.power(x, int(exponent))
    if float(exponent).is_integer():
        return iv.divide(1.0, iv.power(x, int(-exponent)))
    return iv.exp(iv.multiply(exponent, iv.log(x)))


# --- arithmetic ---------------------------------------------------------------------------------

add_p = _elementwise(
    "add", operator.add,
    lambda vals, out: (1.0, 1.0),
    lambda a, b: a + b,
    iv.add, lambda ivs, out, tol: (1.0, 1.0),
    pretty=infix("+"), ufuncs=("add",), call="+", linear=True)

sub_p = _elementwise(
    "sub", operator.sub,
    lambda vals, out: (1.0, -1.0),
    lambda a, b: a - b,
    iv.subtract, lambda ivs, out, tol: (1.0, -1.0),
    pretty=infix("-"), ufuncs=("subtract",), call="-", linear=True)

mul_p = _elementwise(
    "mul", operator.mul,
    lambda vals, out: (vals[1], vals[0]),
    lambda a, b: a * b,
    iv.multiply, lambda ivs, out, tol: (ivs[1], ivs[0]),
    pretty=infix("*"), ufuncs=("multiply",), call="*")

div_p = _elementwise(
    "div", operator.truediv,
    lambda vals, out: (1.0 / vals[1], -out / vals[1]),
    lambda a, b: a / b,
    iv.divide,
    lambda ivs, out, tol: (iv.divide(1.0, ivs[1]),
                           -iv.divide(ivs[0], iv.square(ivs[1]))),
    pretty=infix("/"), ufuncs=("true_divide", "divide"), call="/")

neg_p = _elementwise(
    "neg", operator.neg,
    lambda vals, out: (-1.0,),
    lambda a: -a,
    lambda a: -a, lambda ivs, out, tol: (-1.0,),
    pretty=lambda args, params: f"-{args[0]}", ufuncs=("negative",), call="unary -",
    linear=True)

# x ** c for a constant real exponent c (a parameter, not an input).
pow_p = _elementwise(
    "pow", lambda a, exponent: np.power(a, exponent),
    lambda vals, out, exponent: (exponent * np.power(vals[0], exponent - 1.0),),
    lambda a, exponent: a ** sympy.nsimplify(exponent),
    _iv_pow,
    lambda ivs, out, tol, exponent: (
        0.0 if exponent == 0 else iv.multiply(exponent, _iv_pow(ivs[0], exponent - 1.0)),),
    pretty=lambda args, params: f"{args[0]} ** {params['exponent']:g}", ufuncs=(), call="**")

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
    iv.sigmoid, lambda ivs, out, tol: (iv.multiply(out, iv.subtract(1.0, out)),), ufuncs=())

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


# --- huber --------------------------------------------------------------------------------------
# C^1 (its derivative clip(z, -delta, delta) is continuous), so one smooth block: no kink node,
# hence no choice at |z| = delta, with or without a tolerance. Written with clip, the
# composition c (z - c / 2) has the same derivative but records the clip's kink choices.

def _huber(z, delta):
    if np.any(delta < 0):
        raise InputError(f"cv.huber: received a negative delta (min {float(np.min(delta)):.3g});"
                         " pass delta >= 0")
    c = np.clip(z, -delta, delta)
    return c * (z - 0.5 * c)


def _huber_at(a, d, upper: bool):
    """Outward bound of huber at |z| = a >= 0 and delta = d (point endpoints)."""
    A, D = iv.Interval(a), iv.Interval(d)
    inside = iv.multiply(0.5, iv.square(A))
    outside = iv.multiply(D, iv.subtract(A, iv.multiply(0.5, D)))
    return np.where(a <= d, inside.hi if upper else inside.lo, outside.hi if upper else outside.lo)


def _huber_interval(z, delta):
    """Huber over boxes: nondecreasing in |z| and in delta >= 0, so its range is
    ``[h(mig |z|, delta.lo), h(mag |z|, delta.hi)]``, each end rounded outward."""
    call = "cv.huber (interval rule)"
    for bad, error in ((delta.hi < 0, InputError), (delta.lo < 0, UndecidedError)):
        if np.any(bad):
            raise error(fail_message(call, "a delta box reaching below 0",
                                     "pass delta >= 0 (tighten the box of delta)"))
    return iv.Interval(_huber_at(z.mig, delta.lo, False), _huber_at(z.mag, delta.hi, True))


huber_p = _elementwise(
    "huber", _huber,
    lambda vals, out: (np.clip(vals[0], -vals[1], vals[1]),
                       np.maximum(np.abs(vals[0]) - vals[1], 0.0)),
    lambda z, d: sympy.Piecewise((z ** 2 / 2, sympy.Abs(z) <= d),
                                 (d * (sympy.Abs(z) - d / 2), True)),
    _huber_interval,
    lambda ivs, out, tol: (iv.minimum(iv.maximum(ivs[0], -ivs[1]), ivs[1]),
                           iv.maximum(iv.subtract(iv.absolute(ivs[0]), ivs[1]), 0.0)),
    ufuncs=())
