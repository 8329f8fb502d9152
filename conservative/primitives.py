"""The primitive registry: one :class:`Primitive` per operation, every rule in one block.

A primitive is an operation the tracer records as one graph node. Its block (see
``conservative/rules/``) registers, side by side:

``impl``
    the numeric implementation on batched float64 arrays (leading axis 0 is the batch);
``shape_rule``
    the output shape from the input shapes;
``partials`` (smooth elementwise primitives)
    the elementwise partial derivative with respect to each input;
``pieces`` (nonsmooth elementwise primitives)
    the smooth pieces, their activity test at a point (with tolerance ``tol``), the partials of
    each piece, and the documented default selection (what an AD program returns at a kink);
``jvp`` (structural primitives: matmul, sum, reshape, indexing, ...)
    the tangent map, linear in the tangents;
``interval`` and ``sympy``
    the interval rule (enclosure of the value over a box) and the sympy form. Rule blocks name
    sympy through :data:`lazy_sympy`, so that ``import conservative`` does not import sympy.

Everything expressible from existing primitives without a new kink is a DSL function
(``conservative.dsl``), not a primitive.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = ["Primitive", "Pieces", "PRIMITIVES", "register", "get", "lazy_sympy"]


class Pieces(NamedTuple):
    """The smooth pieces of an elementwise nonsmooth primitive at a batch of points.

    Attributes
    ----------
    partials : tuple of tuple of array_like
        ``partials[p][i]`` is the partial derivative of piece ``p`` with respect to input ``i``,
        broadcastable to the output's batched shape.
    active : ndarray of bool, shape (P, *batched_shape)
        ``active[p]`` tells where piece ``p`` is active (its region touches the point, within
        ``tol``). At every element at least one piece is active.
    default : ndarray of int, shape batched_shape
        The documented default selection: the piece whose partials an AD program returns.
    """

    partials: tuple
    active: np.ndarray
    default: np.ndarray


@dataclass(frozen=True, eq=False)
class Primitive:
    """An operation of the DSL, with all its rules.

    Attributes
    ----------
    name : str
        Name shown in programs and errors.
    kind : {"input", "elementwise", "structural"}
        Elementwise primitives have a per-element linearisation (``partials`` or ``pieces``);
        structural ones have a ``jvp``.
    impl : callable
        ``impl(*values, **params) -> ndarray`` on batched arrays.
    shape_rule : callable
        ``shape_rule(*shapes, **params) -> tuple``.
    partials : callable or None
        ``partials(values, out, **params) -> tuple`` of elementwise partials (smooth primitives).
    pieces : callable or None
        ``pieces(values, out, tol, **params) -> Pieces`` (nonsmooth primitives).
    default_partials : callable or None
        ``default_partials(values, out, **params) -> tuple``: the partials of the default
        selection, computed directly (nonsmooth primitives; what a derivative run uses).
    jvp : callable or None
        ``jvp(values, out, tangents, **params) -> tangent``; tangents carry a trailing axis of
        directions and may be None (zero).
    transpose : callable or None
        ``transpose(values, out, cotangent, live, **params) -> tuple`` of input cotangents:
        the transpose of ``jvp``, for reverse mode. ``live[i]`` tells whether input ``i``
        depends on the inputs of the program (else its cotangent may be None and need not be
        computed). Cotangents have the batched value shapes ``(B, *shape)``.
    default_rule : str
        Plain-words statement of the default selection at a kink ("" for smooth primitives).
    interval : callable or None
        ``interval(*intervals, **params) -> Interval`` enclosure over boxes.
    interval_partials : callable or None
        ``interval_partials(intervals, out, tol, **params) -> tuple``: for elementwise
        primitives, interval enclosures of the partials over a box; for nonsmooth ones, the
        hull of the partials of every piece that may be active somewhere on the box.
    interval_jvp : callable or None
        ``interval_jvp(intervals, out, tangents, **params) -> Interval``: for structural
        primitives, the tangent map on interval tangents (trailing axis of directions).
    interval_active : callable or None
        ``interval_active(intervals, tol, **params) -> tuple`` of boolean arrays, one per piece
        (nonsmooth primitives): where the piece *may* be active somewhere on the box of the
        inputs, decided in interval arithmetic (an undecided comparison counts as possible).
        This is how a result about a point known only through an enclosure (a computed fixed
        point) counts every piece that can be active at the exact point.
    piece_partials : tuple or None
        ``piece_partials[p][i]``: the constant partial of piece ``p`` w.r.t. input ``i``
        (nonsmooth primitives; every piece of a selection function here is affine in its
        inputs). Enclosures take the hull of whole pieces with it.
    kink_default : callable or None
        ``kink_default(**params) -> int`` (nonsmooth primitives): the piece the default
        selection takes *on* a kink, where several pieces are active (relu: the zero piece).
        Used when an enclosure of the exact point straddles the kink, so that the selection
        does not depend on which side of it a rounded point fell.
    sympy : callable or None
        ``sympy(*exprs, **params) -> sympy.Expr`` (elementwise, on scalars).
    """

    name: str
    kind: str
    impl: Callable[..., np.ndarray]
    shape_rule: Callable[..., tuple]
    partials: Callable[..., tuple] | None = None
    pieces: Callable[..., Pieces] | None = None
    default_partials: Callable[..., tuple] | None = None
    jvp: Callable[..., Any] | None = None
    transpose: Callable[..., Any] | None = None
    default_rule: str = ""
    interval: Callable[..., Any] | None = None
    interval_partials: Callable[..., Any] | None = None
    interval_jvp: Callable[..., Any] | None = None
    interval_active: Callable[..., tuple] | None = None
    piece_partials: tuple | None = None
    kink_default: Callable[..., int] | None = None
    sympy: Callable[..., Any] | None = None
    doc: str = field(default="", repr=False)

    @property
    def smooth(self) -> bool:
        """True when the primitive has a single smooth piece everywhere on its domain."""
        return self.pieces is None

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"


PRIMITIVES: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    """Add ``prim`` to the registry (import-time only) and return it."""
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} registered twice")
    PRIMITIVES[prim.name] = prim
    return prim


def get(name: str) -> Primitive:
    """Return the registered primitive called ``name``."""
    return PRIMITIVES[name]


class _SympyName:
    """Stands for ``sympy.<name>`` until it is called; the call imports sympy."""

    __slots__ = ("name", "_target")

    def __init__(self, name: str):
        self.name = name
        self._target = None

    def __call__(self, *args, **kwargs):
        if self._target is None:
            self._target = getattr(importlib.import_module("sympy"), self.name)
        return self._target(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<sympy.{self.name}, imported on first call>"


class _LazySympy:
    """The ``sympy`` module for rule blocks, imported on first use.

    Importing sympy takes longer than importing the rest of the package, and only the sympy
    export (:mod:`conservative.symbolic`) needs it. A rule block writes
    ``from ..primitives import lazy_sympy as sympy`` and uses ``sympy.Abs``, ``sympy.Max``, ...
    as usual: once sympy is imported they are sympy's own objects; before that (when the block
    registers ``sympy=sympy.Abs`` at import time) a stand-in that imports sympy when called.

    Examples
    --------
    >>> from conservative.primitives import lazy_sympy
    >>> lazy_sympy.Max(1, 2)
    2
    """

    def __getattr__(self, name: str):
        module = sys.modules.get("sympy")
        if module is not None:
            return getattr(module, name)
        if name.startswith("__"):        # copy, pickle and introspection probes
            raise AttributeError(name)
        return _SympyName(name)

    def __repr__(self) -> str:
        return "<sympy, imported on first use>"


lazy_sympy = _LazySympy()
