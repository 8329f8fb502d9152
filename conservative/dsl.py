"""The expression DSL: symbolic arrays with operator overloading, and its functions.

Inside a traced function, ``x`` and ``theta`` are :class:`Sym` objects. Arithmetic, ``@``,
indexing and the functions of this module record primitive applications in a graph. NumPy
arrays mix freely on either side (``X @ x`` works: NumPy defers to :class:`Sym`), and the NumPy
ufuncs ``np.exp``, ``np.maximum``, ... dispatch to the matching ``cv`` function.

Python control flow cannot see symbolic values: ``if x > 0:`` raises
:class:`~conservative.errors.SymbolicBoolError`. Write the branch with :func:`where`,
:func:`maximum`, :func:`relu`, ... so that the kink is recorded and differentiated correctly.

Called on plain numbers or arrays, every function computes the value with NumPy.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._types import as_float_array
from .errors import InputError, ShapeError, SymbolicBoolError, TracingError, fail_message
from .graph import Builder, Program, source_line, user_source
from .primitives import Primitive, ufunc_primitive, use_binder
from .rules import (abs_p, add_p, broadcast_to_p, clip_p, concatenate_p, const_p, cos_p, div_p,
                    exp_p, getitem_p, huber_p, log_p, matmul_p, maximum_p, minimum_p, mul_p,
                    neg_p, pow_p, relu_p, reshape_p, select_p, sigmoid_p, sin_p,
                    soft_threshold_p, sqrt_p, sub_p, sum_p, tanh_p, transpose_p)

__all__ = [
    "Sym", "Condition",
    "exp", "log", "sqrt", "tanh", "sigmoid", "sin", "cos", "square",
    "relu", "abs", "maximum", "minimum", "max", "min", "soft_threshold", "clip", "where",
    "group_soft_threshold", "huber",
    "sum", "mean", "dot", "matmul", "stack", "concatenate", "reshape", "transpose",
]

# --- binding ------------------------------------------------------------------------------------

def _builder_of(args) -> Builder | None:
    found = None
    for a in args:
        if isinstance(a, Sym):
            if found is not None and a.builder is not found:
                raise TracingError("cannot combine symbolic values from two different traces")
            found = a.builder
    return found


def _as_const(value, call: str) -> np.ndarray:
    if isinstance(value, Condition):
        raise TracingError(fail_message(call, "a condition (a comparison of symbolic values)",
                                        "use conditions only as the first argument of cv.where"))
    return as_float_array(value, name="a constant operand", call=call)


def _numeric(prim: Primitive, args, params, call):
    consts = [_as_const(a, call) for a in args]
    in_shapes, _ = prim.bind_shapes([c.shape for c in consts], params, call)  # same errors
    vals = [np.broadcast_to(c, sh)[None] for c, sh in zip(consts, in_shapes)]
    return prim.impl(*vals, **params)[0]


def bind(prim: Primitive, *args, call: str, **params):
    """Apply ``prim`` to symbolic or constant ``args``; constants only: compute the value.

    The inputs are broadcast to the shapes the primitive's kind asks for (elementwise: the
    common shape), constants become constant nodes, and one node is recorded.
    """
    builder = _builder_of(args)
    if builder is None:
        return _numeric(prim, args, params, call)
    source = user_source()
    args = [a if isinstance(a, Sym) else _as_const(a, call) for a in args]
    in_shapes, shape = prim.bind_shapes([a.shape for a in args], params, call)
    nodes = []
    for a, in_shape in zip(args, in_shapes):
        a = _broadcast(a, in_shape, call)
        nodes.append((a if isinstance(a, Sym) else _const(builder, a, source))._node)
    node = builder.add(prim, tuple(nodes), params, shape, source)
    return Sym(builder, node, shape)


def _const(builder: Builder, value: np.ndarray, source: str) -> "Sym":
    node = builder.add(const_p, (), {"shape": value.shape}, value.shape, source,
                       value=value)
    return Sym(builder, node, value.shape)


def _broadcast(a, shape, call):
    if isinstance(a, Sym):
        if a.shape == tuple(shape):
            return a
        return bind(broadcast_to_p, a, call=call, shape=tuple(shape))
    if a.shape == tuple(shape):
        return a                      # the trace's own copy (frozen with the program)
    return np.broadcast_to(a, shape)  # a read-only view: a scalar stays one number in memory


# --- symbolic arrays ----------------------------------------------------------------------------

class Sym:
    """A symbolic float64 array inside a trace.

    Do not construct directly: ``cv.trace`` passes them to your function. Supports
    ``+ - * / ** @``, unary minus, ``abs()``, comparisons (which build a :class:`Condition` for
    :func:`where`), indexing and slicing, ``.T``, ``.reshape``, ``.sum``, and NumPy ufuncs.
    """

    __array_priority__ = 1000

    def __init__(self, builder: Builder, node: int, shape: tuple):
        self._builder = builder
        self._node = node
        self.shape = tuple(shape)

    # --- array facts ---
    @property
    def builder(self) -> Builder:
        """The trace this value belongs to (read-only)."""
        return self._builder

    @property
    def node(self) -> int:
        """Its node in the traced program (read-only)."""
        return self._node

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def dtype(self):
        return np.dtype(np.float64)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d symbolic value")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def _expression(self) -> str:
        return _BuilderView(self._builder).expression(self._node)

    def __repr__(self) -> str:
        return f"Sym({self._expression()}, shape={self.shape})"

    # --- refusing Python control flow ---
    def _refuse(self, what: str):
        node = self._builder.graph.nodes[self._node]
        here = user_source()
        raise SymbolicBoolError(
            f"{what} of a symbolic value: `{self._expression()}` (created at {node['source']}"
            f"{_quote(node['source'])}; used at {here}{_quote(here)}). Python control flow cannot "
            "branch on traced values; write the branch with cv.where(cond, a, b), cv.maximum / "
            "cv.minimum, cv.relu, cv.abs or cv.clip so the kink is recorded")

    def __bool__(self):
        self._refuse("bool()")

    def __float__(self):
        self._refuse("float()")

    def __int__(self):
        self._refuse("int()")

    def __index__(self):
        self._refuse("using as an index")

    def __array__(self, dtype=None, copy=None):
        self._refuse("converting to a NumPy array (np.asarray)")

    def __setitem__(self, key, value):
        raise TracingError(fail_message(
            "Sym.__setitem__", "an item assignment", "symbolic arrays are immutable: build the "
            "new array with cv.concatenate / cv.stack or cv.where"))

    # --- arithmetic ---
    def __add__(self, o): return bind(add_p, self, o, call="+")
    def __radd__(self, o): return bind(add_p, o, self, call="+")
    def __sub__(self, o): return bind(sub_p, self, o, call="-")
    def __rsub__(self, o): return bind(sub_p, o, self, call="-")
    def __mul__(self, o): return bind(mul_p, self, o, call="*")
    def __rmul__(self, o): return bind(mul_p, o, self, call="*")
    def __truediv__(self, o): return bind(div_p, self, o, call="/")
    def __rtruediv__(self, o): return bind(div_p, o, self, call="/")
    def __neg__(self): return bind(neg_p, self, call="unary -")
    def __pos__(self): return self
    def __abs__(self): return abs(self)
    def __matmul__(self, o): return matmul(self, o)
    def __rmatmul__(self, o): return matmul(o, self)

    def __pow__(self, o):
        if isinstance(o, Sym):
            return exp(o * log(self))
        e = _as_const(o, "**")
        if e.shape != ():
            return exp(o * log(self))
        return bind(pow_p, self, call="**", exponent=float(e))

    def __rpow__(self, o):
        return exp(self * log(_as_const(o, "**")))

    # --- comparisons build conditions ---
    def __gt__(self, o): return Condition(self - o, strict=True)
    def __ge__(self, o): return Condition(self - o, strict=False)
    def __lt__(self, o): return Condition(o - self, strict=True)
    def __le__(self, o): return Condition(o - self, strict=False)

    def __eq__(self, o):
        raise TracingError(fail_message(
            "==", f"a comparison for equality of `{self._expression()}`",
            "equality holds on a set of measure zero and makes a discontinuous branch; compare "
            "with >, >=, <, <= inside cv.where"))

    __ne__ = __eq__
    __hash__ = object.__hash__

    # --- shape methods ---
    @property
    def T(self):
        return transpose(self)

    def reshape(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def sum(self, axis=None):
        return sum(self, axis=axis)

    def mean(self, axis=None):
        return mean(self, axis=axis)

    def __getitem__(self, index):
        return bind(getitem_p, self, call="indexing", index=_normalise_index(index,
                                                                                 self.shape))

    # --- NumPy interop ---
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs.get("out") is not None:
            return NotImplemented
        fn = _UFUNCS.get(ufunc.__name__)
        prim = ufunc_primitive(ufunc.__name__) if fn is None else None
        if prim is not None:
            return bind(prim, *inputs, call=prim.call)
        if fn is None:
            raise TracingError(fail_message(
                f"np.{ufunc.__name__}", "symbolic operands",
                "use the cv functions (cv.exp, cv.log, cv.maximum, cv.where, ...); "
                f"np.{ufunc.__name__} has no conservative rule"))
        return fn(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        fn = _ARRAY_FUNCTIONS.get(func.__name__)
        if fn is None:
            raise TracingError(fail_message(
                f"np.{func.__name__}", "symbolic operands",
                "use the matching cv function (cv.sum, cv.stack, cv.concatenate, cv.where, ...)"))
        return fn(*args, **kwargs)


class _BuilderView:
    """Lets ``Program.expression`` print nodes of a graph still under construction."""

    def __init__(self, builder):
        self.graph = builder.graph

    def expression(self, node, depth=4):
        return Program.expression(self, node, depth)


def _quote(source: str) -> str:
    text = source_line(source)
    return f": `{text}`" if text else ""


class Condition:
    """A comparison of symbolic values, usable only as the condition of :func:`where`.

    Stored as ``g > 0`` (``strict``) or ``g >= 0`` with ``g = lhs - rhs``. ``&`` and ``|``
    combine conditions through ``minimum`` / ``maximum`` of the ``g`` (so continuity is checked
    on the boundary of the combined condition), ``~`` negates. Combining a strict and a
    non-strict comparison is refused: on the boundary both branches are active anyway, and a
    single comparison could not reproduce the mixed default there.
    """

    def __init__(self, g, strict: bool):
        self.g = g
        self.strict = strict

    def __bool__(self):
        if isinstance(self.g, Sym):
            self.g._refuse("bool() of a condition")
        raise SymbolicBoolError("bool() of a symbolic condition; use cv.where")

    def _combine(self, other, fn, op: str) -> "Condition":
        other = _as_condition(other, op)
        if self.strict != other.strict:
            raise TracingError(fail_message(
                op, f"a strict and a non-strict comparison ({self!r} {op} {other!r})",
                "use > on both sides or >= on both sides: the branches agree on the boundary, "
                "so the choice only sets which branch is the default there"))
        return Condition(fn(self.g, other.g), self.strict)

    def __and__(self, other: "Condition") -> "Condition":
        return self._combine(other, minimum, "&")

    def __or__(self, other: "Condition") -> "Condition":
        return self._combine(other, maximum, "|")

    def __invert__(self) -> "Condition":
        return Condition(-self.g, not self.strict)

    def __repr__(self) -> str:
        g = self.g._expression() if isinstance(self.g, Sym) else repr(self.g)
        return f"({g} {'>' if self.strict else '>='} 0)"


def _as_condition(value, call) -> Condition:
    if not isinstance(value, Condition):
        raise TracingError(fail_message(call, f"a {type(value).__name__}",
                                        "combine conditions built from comparisons of "
                                        "symbolic values"))
    return value


def _normalise_index(index, shape) -> tuple:
    """Static index tuple without Ellipsis and bool masks; symbolic indices are refused."""
    if not isinstance(index, tuple):
        index = (index,)
    if any(isinstance(i, Sym) for i in index):
        raise TracingError(fail_message("indexing", "a symbolic index",
                                        "index with Python ints, slices or integer arrays"))
    n_real = len([i for i in index if i is not None and i is not Ellipsis])
    out = []
    for i in index:
        if i is Ellipsis:
            out.extend([slice(None)] * (len(shape) - n_real))
        elif isinstance(i, (list, np.ndarray)):
            arr = np.asarray(i)
            if arr.dtype == bool:
                if arr.ndim != 1:
                    raise TracingError("indexing: boolean masks must be 1-D")
                arr = np.nonzero(arr)[0]
            if arr.dtype.kind not in "iu":
                raise TracingError(fail_message("indexing", f"an index array of dtype {arr.dtype}",
                                                "use integer or boolean index arrays"))
            out.append(arr.astype(np.intp))
        elif isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            out.append(int(i))
        elif isinstance(i, slice) or i is None:
            out.append(i)
        else:
            raise TracingError(fail_message("indexing", f"an index {i!r}",
                                            "use ints, slices, None, Ellipsis or integer arrays"))
    adv = [k for k, i in enumerate(out) if isinstance(i, np.ndarray)]
    if adv and adv != list(range(adv[0], adv[0] + len(adv))):
        raise TracingError("indexing: integer-array indices must be adjacent")
    try:
        np.empty(shape, dtype=np.int8)[tuple(out)]
    except IndexError as exc:
        raise ShapeError(fail_message("indexing", f"index {index!r} for shape {shape}",
                                      f"use an index valid for the shape ({exc})")) from None
    return tuple(out)


# --- smooth functions ---------------------------------------------------------------------------

def exp(x):
    """Elementwise exponential."""
    return bind(exp_p, x, call="cv.exp")


def log(x):
    """Elementwise natural logarithm (positive arguments)."""
    return bind(log_p, x, call="cv.log")


def sqrt(x):
    """Elementwise square root (positive arguments: sqrt is not Lipschitz at 0)."""
    return bind(sqrt_p, x, call="cv.sqrt")


def tanh(x):
    """Elementwise hyperbolic tangent."""
    return bind(tanh_p, x, call="cv.tanh")


def sigmoid(x):
    """Elementwise logistic function 1 / (1 + exp(-x)), evaluated without overflow."""
    return bind(sigmoid_p, x, call="cv.sigmoid")


def sin(x):
    """Elementwise sine."""
    return bind(sin_p, x, call="cv.sin")


def cos(x):
    """Elementwise cosine."""
    return bind(cos_p, x, call="cv.cos")


def square(x):
    """Elementwise square ``x ** 2``."""
    return bind(pow_p, x, call="cv.square", exponent=2.0)


# --- nonsmooth primitives -----------------------------------------------------------------------

def relu(x):
    """Rectified linear unit ``max(x, 0)``.

    Pieces: ``0`` (active for x <= 0) and ``x`` (active for x >= 0). At 0 the set of derivatives
    is {0, 1} (hull [0, 1]); the default selection is 0, as JAX and PyTorch.

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> F = cv.trace(lambda x, t: cv.relu(x) - cv.relu(-x), (), ())
    >>> F.jacobian(0.0, 0.0).A.vertices[:, 0, 0]          # relu(x) - relu(-x) == x, yet:
    array([0., 1., 2.])
    """
    return bind(relu_p, x, call="cv.relu")


def abs(x):  # noqa: A001  (NumPy-style name)
    """Absolute value. Pieces ``-x`` and ``x``; at 0 the set is {-1, 1}, default 1 (as JAX).

    PyTorch's ``abs'(0) = 0`` lies in the hull [-1, 1], not in the finite set.
    """
    return bind(abs_p, x, call="cv.abs")


def maximum(a, b):
    """Elementwise maximum. At a tie the set is {(1, 0), (0, 1)}; default: first argument."""
    return bind(maximum_p, a, b, call="cv.maximum")


def minimum(a, b):
    """Elementwise minimum. At a tie the set is {(1, 0), (0, 1)}; default: first argument."""
    return bind(minimum_p, a, b, call="cv.minimum")


def soft_threshold(z, t):
    """Soft thresholding ``sign(z) max(|z| - t, 0)``, the prox of ``t |.|`` (t >= 0).

    Equivalently ``argmin_u 1/2 (u - z)^2 + t |u|``. Pieces ``z - t`` (z >= t), ``0``
    (|z| <= t) and ``z + t`` (z <= -t); the partials in (z, t) are (1, -1), (0, 0), (1, 1).
    At |z| == t the default is the zero piece. ``t`` may be symbolic.

    Examples
    --------
    >>> import conservative as cv
    >>> cv.soft_threshold([3.0, -0.5, -2.0], 1.0)
    array([ 2., -0., -1.])
    """
    return bind(soft_threshold_p, z, t, call="cv.soft_threshold")


def clip(z, lo, hi):
    """Clip ``z`` to ``[lo, hi]`` (lo <= hi). At a bound the default is the identity piece."""
    return bind(clip_p, z, lo, hi, call="cv.clip")


def group_soft_threshold(z, t):
    """Block soft-thresholding ``z max(1 - t / ||z||, 0)``, the prox of ``t ||.||_2`` (t >= 0).

    Equivalently ``argmin_u 1/2 ||u - z||^2 + t ||u||_2``, with the Euclidean norm over all of
    ``z`` (one group; for several groups apply it to each and concatenate, as
    ``cv.algorithms.group_lasso_forward_backward`` does). For one element it is
    :func:`soft_threshold`.

    Written ``z / ||z|| * soft_threshold(||z||, t)``: one kink node, the soft-threshold of the
    norm, and no new primitive. Its pieces in ``(z, t)``:

    * ``||z|| >= t``: ``z (1 - t / ||z||)``, Jacobian ``((1 - t/||z||) I + t z z^T / ||z||^3,
      -z / ||z||)``;
    * ``||z|| <= t``: ``0``, Jacobian ``(0, 0)``.

    On the sphere ``||z|| = t > 0`` both are active: the set is ``{(z z^T / t^2, -z / t),
    (0, 0)}`` (hull: the segment between them) and the default is the zero piece, as for
    :func:`soft_threshold`. Off the sphere the Jacobian is the classical one, with exact zeros
    inside the ball. The norm is computed as ``sqrt(||z||^2 + 1e-300)``, equal to ``||z||``
    whenever ``||z|| > 1e-142``, so that no derivative of the norm is infinite at ``z = 0``
    (there, with ``t = 0``, the value is ``z`` and the derivative the identity).

    Raises
    ------
    InputError
        At evaluation, for a negative threshold ``t`` (the map is discontinuous there).

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> cv.group_soft_threshold(np.array([3.0, 4.0]), 2.5)           # ||z|| = 5
    array([1.5, 2. ])
    >>> F = cv.trace(lambda z, t: cv.group_soft_threshold(z, t), (2,), ())
    >>> js = F.jacobian(np.array([3.0, 4.0]), 5.0, hull=False)        # on the sphere
    >>> js.vertices.round(2)                      # (z z^T / t^2, -z / t) and (0, 0)
    array([[[ 0.36,  0.48, -0.6 ],
            [ 0.48,  0.64, -0.8 ]],
    <BLANKLINE>
           [[ 0.  ,  0.  ,  0.  ],
            [ 0.  ,  0.  ,  0.  ]]])
    >>> bool(np.all(js.default == 0))             # the default: the zero piece
    True
    """
    norm = sqrt(sum(z * z) + 1e-300)
    return z * (soft_threshold(norm, t) / norm)


def huber(z, delta):
    """The Huber function: ``z^2 / 2`` for ``|z| <= delta``, ``delta (|z| - delta / 2)`` beyond.

    Elementwise, ``delta >= 0``. It is C^1: its partials are ``clip(z, -delta, delta)`` in ``z``
    and ``max(|z| - delta, 0)`` in ``delta``, continuous everywhere, so its conservative
    Jacobian is a single matrix everywhere, on ``|z| = delta`` too and with any tolerance. It is
    one smooth primitive for that reason: the composition ``c (z - c / 2)`` with ``c = clip(z,
    -delta, delta)`` (or ``where(abs(z) <= delta, ...)``) has the same values and derivative
    but records the clip's (or the where's) two choices at each ``|z| = delta``, and with a
    tolerance near there two slightly different matrices.

    Raises
    ------
    InputError
        For ``delta < 0`` (a constant at once; a traced one at evaluation).

    Examples
    --------
    >>> import numpy as np, conservative as cv
    >>> cv.huber(np.array([0.5, 2.0, -3.0]), 1.0)
    array([0.125, 1.5  , 2.5  ])
    >>> F = cv.trace(lambda z, d: cv.huber(z, d), (), ())
    >>> js = F.jacobian(1.0, 1.0, tol=1e-9)              # on the kink of its derivative
    >>> js.is_singleton, js.n_selections, js.default
    (True, 1, array([[1., 0.]]))
    """
    if not isinstance(delta, Sym):
        d = _as_const(delta, "cv.huber")
        if np.any(d < 0):
            raise InputError(fail_message("cv.huber", f"delta with minimum {float(np.min(d)):g}",
                                          "pass delta >= 0"))
    return bind(huber_p, z, delta, call="cv.huber")


def where(cond: Condition, a, b):
    """Piecewise map: ``a`` where ``cond`` holds, ``b`` elsewhere.

    ``cond`` is a comparison of symbolic values (``x > t``, ``x <= 0``, combined with ``&``,
    ``|``, ``~``). The branches must agree on the boundary ``lhs == rhs`` so that the map is
    continuous; this is checked whenever a point on the boundary is evaluated and sampled when
    the map is traced, and a jump raises :class:`~conservative.errors.DiscontinuityError`.

    Examples
    --------
    >>> import conservative as cv
    >>> F = cv.trace(lambda x, t: cv.where(x > 1.0, 2.0 * x - 1.0, x * x), (), ())
    >>> F(3.0, 0.0), F(0.5, 0.0)
    (array(5.), array(0.25))
    """
    if not isinstance(cond, Condition):
        raise TracingError(fail_message(
            "cv.where", f"a condition of type {type(cond).__name__}",
            "pass a comparison of symbolic values such as x > 0 (a boolean array would make a "
            "fixed branch: index or multiply instead)"))
    return bind(select_p, cond.g, a, b, call="cv.where", strict=cond.strict)


# --- reductions and shapes ----------------------------------------------------------------------

def _axes(axis, ndim, call) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(fail_message(call, f"axis={axis} for {ndim} dimensions",
                                          "pass an axis within the array's dimensions"))
        out.append(a % ndim)
    return tuple(sorted(out))


def sum(x, axis=None):  # noqa: A001
    """Sum over ``axis`` (all axes by default)."""
    if not isinstance(x, Sym):
        return np.sum(_as_const(x, "cv.sum"), axis=axis)
    return bind(sum_p, x, call="cv.sum", axes=_axes(axis, x.ndim, "cv.sum"))


def mean(x, axis=None):
    """Mean over ``axis`` (all axes by default)."""
    shape = x.shape if isinstance(x, Sym) else np.shape(x)
    axes = _axes(axis, len(shape), "cv.mean")
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    return sum(x, axis=axes) / float(count)


def _tree_reduce(fn, x, axis, call):
    if not isinstance(x, Sym):
        return (np.max if fn is maximum else np.min)(_as_const(x, call), axis=axis)
    if axis is None:
        x, axis = reshape(x, (x.size,)), 0
    axis = _axes(axis, x.ndim, call)
    if len(axis) != 1:
        raise ShapeError(fail_message(call, f"axis={axis}", "reduce over one axis at a time"))
    axis = axis[0]
    if x.shape[axis] == 0:
        raise ShapeError(fail_message(call, "an empty axis", "reduce over a non-empty axis"))
    parts = [x[(slice(None),) * axis + (i,)] for i in range(x.shape[axis])]
    # pairwise tree: each tie between two entries is a kink node choosing independently, which
    # yields exactly the unit vectors of the tied entries as vertices
    while len(parts) > 1:
        nxt = [fn(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        if len(parts) % 2:
            nxt.append(parts[-1])
        parts = nxt
    return parts[0]


def max(x, axis=None):  # noqa: A001
    """Maximum over one axis (all entries by default), as a tree of :func:`maximum`.

    At ties the set is the unit vectors of the tied entries (hull: the simplex); the default
    picks the first tied entry.
    """
    return _tree_reduce(maximum, x, axis, "cv.max")


def min(x, axis=None):  # noqa: A001
    """Minimum over one axis (all entries by default), as a tree of :func:`minimum`."""
    return _tree_reduce(minimum, x, axis, "cv.min")


def matmul(a, b):
    """Matrix product with NumPy semantics for 1-D and 2-D operands."""
    sa = a.shape if isinstance(a, Sym) else np.shape(a)
    sb = b.shape if isinstance(b, Sym) else np.shape(b)
    if not (1 <= len(sa) <= 2 and 1 <= len(sb) <= 2) or sa[-1] != sb[0]:
        raise ShapeError(fail_message("@ (matmul)", f"operands of shapes {sa} and {sb}",
                                      "pass 1-D or 2-D operands with matching inner dimension"))
    return bind(matmul_p, a, b, call="@")


def dot(a, b):
    """Alias of :func:`matmul` for 1-D and 2-D operands."""
    return matmul(a, b)


def reshape(x, shape):
    """Reshape (C order); one entry of ``shape`` may be -1."""
    if not isinstance(x, Sym):
        return np.reshape(_as_const(x, "cv.reshape"), shape)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    try:
        shape = np.empty(x.shape, dtype=np.int8).reshape(shape).shape
    except ValueError:
        raise ShapeError(fail_message("cv.reshape", f"shape {shape} for an array of shape "
                                      f"{x.shape}", "keep the number of elements")) from None
    return bind(reshape_p, x, call="cv.reshape", shape=shape)


def transpose(x, axes: Sequence[int] | None = None):
    """Permute axes (reverse them by default)."""
    if not isinstance(x, Sym):
        return np.transpose(_as_const(x, "cv.transpose"), axes)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(int(a) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(fail_message("cv.transpose", f"axes={axes}", "pass a permutation"))
    return bind(transpose_p, x, call="cv.transpose", perm=perm)


def concatenate(arrays: Sequence[Any], axis: int = 0):
    """Join arrays along an existing axis."""
    arrays = list(arrays)
    if not arrays:
        raise ShapeError("cv.concatenate: received no arrays; pass at least one")
    shapes = [a.shape if isinstance(a, Sym) else np.shape(a) for a in arrays]
    nd = len(shapes[0])
    if nd == 0 or any(len(s) != nd for s in shapes):
        raise ShapeError(fail_message("cv.concatenate", f"shapes {shapes}",
                                      "pass arrays of equal, non-zero dimension"))
    axis = _axes(axis, nd, "cv.concatenate")[0]
    if any(s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes):
        raise ShapeError(fail_message("cv.concatenate", f"shapes {shapes}",
                                      "make all shapes agree except along the axis"))
    return bind(concatenate_p, *arrays, call="cv.concatenate", axis=axis)


def stack(arrays: Sequence[Any], axis: int = 0):
    """Join arrays of equal shape along a new axis."""
    arrays = list(arrays)
    if not arrays:
        raise ShapeError("cv.stack: received no arrays; pass at least one")
    shapes = [a.shape if isinstance(a, Sym) else np.shape(a) for a in arrays]
    if any(s != shapes[0] for s in shapes):
        raise ShapeError(fail_message("cv.stack", f"shapes {shapes}", "pass equal shapes"))
    nd = len(shapes[0]) + 1
    axis = _axes(axis, nd, "cv.stack")[0]
    new = shapes[0][:axis] + (1,) + shapes[0][axis:]
    return concatenate([reshape(a, new) for a in arrays], axis=axis)


# --- NumPy dispatch tables ----------------------------------------------------------------------

def _greater(a, b): return _cmp(a, b, ">")
def _greater_equal(a, b): return _cmp(a, b, ">=")
def _less(a, b): return _cmp(a, b, "<")
def _less_equal(a, b): return _cmp(a, b, "<=")


def _cmp(a, b, op):
    if not isinstance(a, Sym):
        flipped = {">": "<", ">=": "<=", "<": ">", "<=": ">="}[op]
        return _cmp(b, a, flipped)
    return {">": a.__gt__, ">=": a.__ge__, "<": a.__lt__, "<=": a.__le__}[op](b)


# NumPy ufuncs that are DSL functions rather than one primitive; the others dispatch to the
# primitive whose block names them (``ufuncs=...``), see ``Sym.__array_ufunc__``
_UFUNCS = {
    "positive": lambda a: a,
    "power": lambda a, b: a ** b if isinstance(a, Sym) else Sym.__rpow__(b, a),
    "matmul": matmul, "square": square,
    "greater": _greater, "greater_equal": _greater_equal, "less": _less,
    "less_equal": _less_equal,
}

_ARRAY_FUNCTIONS = {
    "sum": sum, "mean": mean, "stack": stack, "concatenate": concatenate, "reshape": reshape,
    "transpose": transpose, "dot": dot, "matmul": matmul, "clip": clip, "max": max, "min": min,
    "amax": max, "amin": min, "where": where,
}

use_binder(bind)        # Primitive.bind records nodes through this module
