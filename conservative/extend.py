"""Everything an author of a new primitive needs, in one import.

A primitive is one block of rules (``docs/adding_a_primitive.md`` walks through one):
``defsmooth`` for a smooth elementwise function, ``defpieces`` for a nonsmooth selection
function with affine pieces, ``defstructural`` for a linear or smooth non-elementwise
operation. Each returns the registered primitive; its ``bind`` method records a node inside
``cv.trace`` (or computes the value on plain arrays), so the user-facing function is one line::

    def leaky_relu(x, slope=0.01):
        return leaky_relu_p.bind(x, slope=slope)

:func:`missing_rules` is the check ``tests/test_structure.py`` runs on every registered
primitive: an empty list means the block is complete. The interval functions a rule needs
(outward-rounded arithmetic on :class:`Interval` boxes) and the error types with
:func:`fail_message` are re-exported here.

Examples
--------
>>> import numpy as np
>>> import conservative as cv
>>> from conservative import extend
>>> cube_p = extend.defsmooth(
...     "doc_cube", lambda x: x ** 3, lambda vals, out: (3.0 * vals[0] ** 2,),
...     interval=lambda x: extend.multiply(x, extend.square(x)),
...     interval_partials=lambda ivs, out, tol: (extend.multiply(3.0, extend.square(ivs[0])),),
...     sympy=lambda x: x ** 3)
>>> extend.missing_rules(cube_p)
[]
>>> F = cv.trace(lambda x, t: cube_p.bind(x) * t, (), ())
>>> F(2.0, 1.0), F.jacobian(2.0, 1.0).default
(array(8.), array([[12.,  8.]]))
"""

from __future__ import annotations

import pickle
from typing import Callable

import numpy as np

from .errors import (ConservativeError, DiscontinuityError, InputError, ShapeError,
                     UndecidedError, fail_message)
from .interval import (Interval, absolute, add, divide, exp, ge, gt, le, log, lt, matmul,
                       maximum, minimum, multiply, sigmoid, sqrt, square, subtract, tanh, where)
from .primitives import (PRIMITIVES, Elementwise, Leaf, Nonsmooth, Pieces, Primitive, Smooth,
                         Structural, get, infix, lazy_sympy, register)

__all__ = [
    "defsmooth", "defpieces", "defstructural", "same_shape", "missing_rules",
    "Primitive", "Leaf", "Elementwise", "Smooth", "Nonsmooth", "Structural", "Pieces",
    "PRIMITIVES", "register", "get", "infix", "lazy_sympy",
    "Interval", "add", "subtract", "multiply", "divide", "square", "sqrt", "absolute", "maximum",
    "minimum", "exp", "log", "tanh", "sigmoid", "matmul", "where", "lt", "le", "gt", "ge",
    "InputError", "ShapeError", "UndecidedError", "DiscontinuityError", "fail_message",
]


def same_shape(*shapes, **params):
    """The shape rule of elementwise primitives: the (common) shape of the inputs."""
    return shapes[0]


def defsmooth(name: str, impl: Callable, partials: Callable, *, interval: Callable,
              interval_partials: Callable, sympy: Callable, **rules) -> Smooth:
    """Register a smooth elementwise primitive.

    Parameters
    ----------
    name : str
        Unique name (programs pickle by it).
    impl : callable
        ``impl(*values, **params)`` on batched float64 arrays.
    partials : callable
        ``partials(values, out, **params) -> tuple``: the partial w.r.t. each input.
    interval, interval_partials : callable
        Enclosures over boxes of the value and of the partials (``interval_partials(intervals,
        out, tol, **params)``), outward rounded: use the interval functions of this module.
    sympy : callable
        The scalar sympy form.
    **rules
        Optional: ``shape_rule`` (default :func:`same_shape`), ``pretty``, ``ufuncs``,
        ``call``, ``doc``.
    """
    rules.setdefault("shape_rule", same_shape)
    return register(Smooth(name=name, impl=impl, partials=partials, interval=interval,
                           interval_partials=interval_partials, sympy=sympy, **rules))


def defpieces(name: str, impl: Callable, *, piece_partials: tuple, active: Callable,
              default: Callable, interval: Callable, interval_active: Callable,
              kink_default, default_rule: str, sympy: Callable, **rules) -> Nonsmooth:
    """Register a nonsmooth elementwise primitive: a selection of affine pieces.

    Parameters
    ----------
    piece_partials : tuple of tuple of float
        ``piece_partials[p][i]``: the partial of piece ``p`` w.r.t. input ``i`` (constants).
    active : callable
        ``active(values, tol, **params) -> tuple`` of boolean arrays: where each piece is active
        (its region within ``tol`` of the point). At least one piece everywhere.
    default : callable
        ``default(values, **params) -> int array``: the piece an AD program returns.
    interval_active : callable
        ``interval_active(intervals, tol, **params) -> tuple``: where each piece *may* be active
        on a box; an undecided comparison counts as possible.
    kink_default : int or callable
        The piece the default takes on a kink (``kink_default(**params)`` when it depends on
        the parameters).
    default_rule : str
        The default at a kink and the set there, in words (shown in the docs and errors).
    **rules
        Optional: ``default_partials`` (the default's partials directly, for speed),
        ``branches`` (user-expression pieces only), ``piece_offsets`` (the constants ``c_p``
        with piece ``p`` equal to ``sum_i piece_partials[p][i] * input_i + c_p`` exactly, for
        the fast fixed-point enclosure of maps ``P(L x + c)``; wrong offsets make its proofs
        wrong), ``shape_rule``, ``pretty``, ``ufuncs``, ``call``, ``doc``.
    """
    rules.setdefault("shape_rule", same_shape)
    if not callable(kink_default):
        kink_default = _Constant(int(kink_default))
    if rules.get("piece_offsets") is not None:
        _check_offsets(name, impl, piece_partials, tuple(rules["piece_offsets"]), active)
    return register(Nonsmooth(name=name, impl=impl, piece_partials=piece_partials,
                              active=active, default=default, interval=interval,
                              interval_active=interval_active, kink_default=kink_default,
                              default_rule=default_rule, sympy=sympy, **rules))


def _check_offsets(name, impl, piece_partials, offsets, active, samples: int = 400):
    """Refuse ``piece_offsets`` that disagree with ``impl`` where one piece alone is active,
    at dyadic sample points (a check for typos, not a proof: the declaration is trusted)."""
    call = f"extend.defpieces({name!r})"
    if len(offsets) != len(piece_partials):
        raise InputError(f"{call}: received {len(offsets)} piece_offsets for "
                         f"{len(piece_partials)} pieces; pass one constant per piece")
    table = np.array(piece_partials, dtype=float)
    vals = list(np.random.default_rng(0).integers(-40, 41, size=(table.shape[1], samples))
                / 8.0)
    try:
        with np.errstate(all="ignore"):
            one = np.stack(np.broadcast_arrays(*active(vals, 0.0)))
            out = np.asarray(impl(*vals), dtype=float)
    except (TypeError, ValueError, ConservativeError):   # parameters needed, or a domain
        return
    for k in np.flatnonzero(one.sum(axis=0) == 1):
        piece = int(np.argmax(one[:, k]))
        formula = sum(d * v[k] for d, v in zip(table[piece], vals)) + float(offsets[piece])
        if not abs(formula - out[k]) <= 1e-9 * (1.0 + abs(out[k])):
            raise InputError(
                f"{call}: piece_offsets[{piece}] = {offsets[piece]!r} does not match impl at "
                f"{[float(v[k]) for v in vals]} (the piece gives {formula!r}, impl "
                f"{float(out[k])!r}); pass the constants c_p with piece p equal to "
                "sum_i piece_partials[p][i] * input_i + c_p, or leave piece_offsets out")


def defstructural(name: str, impl: Callable, *, shape_rule: Callable, jvp: Callable,
                  transpose: Callable, interval: Callable, interval_jvp: Callable,
                  sympy="impl", **rules) -> Structural:
    """Register a linear or smooth non-elementwise primitive (see :class:`Structural`)."""
    return register(Structural(name=name, impl=impl, shape_rule=shape_rule, jvp=jvp,
                               transpose=transpose, interval=interval,
                               interval_jvp=interval_jvp, sympy=sympy, **rules))


class _Constant:
    """``kink_default`` for a piece that does not depend on the parameters."""

    def __init__(self, piece: int):
        self.piece = piece

    def __call__(self, **params) -> int:
        return self.piece


def missing_rules(prim: Primitive, **params) -> list[str]:
    """What a primitive's block lacks or gets inconsistent (an empty list: complete).

    Checks the rules its kind requires, that the primitive pickles as itself (by its
    registered name), and for nonsmooth primitives that every rule agrees on the number of
    pieces. ``params`` are example parameters for primitives that take some.

    Examples
    --------
    >>> from conservative.primitives import get
    >>> missing_rules(get("relu")), missing_rules(get("select"), strict=True)
    ([], [])
    """
    missing = []
    for rule in prim.required:
        value = getattr(prim, rule, None)
        if not (callable(value) or (rule == "sympy" and value == "impl"
                                    and isinstance(prim, Structural))):
            missing.append(rule)
    if PRIMITIVES.get(prim.name) is not prim or pickle.loads(pickle.dumps(prim)) is not prim:
        missing.append("registered (pickles by name)")
    if isinstance(prim, Nonsmooth):
        missing.extend(_piece_problems(prim, params))
    return missing


def _piece_problems(prim: Nonsmooth, params: dict) -> list[str]:
    problems = []
    pieces = prim.piece_partials
    if not prim.default_rule:
        problems.append("default_rule")
    if not pieces or len({len(p) for p in pieces}) != 1:
        return problems + ["piece_partials (one tuple of partials per piece, equal lengths)"]
    n_pieces, n_inputs = len(pieces), len(pieces[0])
    points = [np.zeros((1,))] * n_inputs
    if len(prim.active(points, 0.0, **params)) != n_pieces:
        problems.append("active (one mask per piece)")
    if len(prim.interval_active([Interval(-1.0, 1.0)] * n_inputs, 0.0, **params)) != n_pieces:
        problems.append("interval_active (one mask per piece)")
    if not 0 <= prim.kink_default(**params) < n_pieces:
        problems.append("kink_default (a piece index)")
    return problems
