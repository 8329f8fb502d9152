"""``cv.from_torch``: a PyTorch function or module, exported by ``torch.export``, as a cv.Map.

``torch.export`` records the ATen operations of one call on float64 example inputs; each
operation of that graph is rebuilt with the DSL. Parameters, buffers and closed-over tensors
become constants; operations on constants only are computed by PyTorch itself. The operations
of MLP and deep-equilibrium layers are covered (``linear``, ``matmul``/``addmm``, ``relu``,
``clamp``, ``abs``, ``maximum``, ``where``, ``tanh``, ``sigmoid``, ``softplus``,
``leaky_relu``, elementwise arithmetic, views and reshapes, indexing, reductions); each kink
stays one kink node.
"""

from __future__ import annotations

import contextlib
import copy
import operator
import os
import re
from typing import Callable

import numpy as np

from .._types import as_shape
from ..dsl import Condition, Sym
from ..errors import ConservativeError, DiscontinuityError, InputError, TracingError, fail_message
from ..graph import foreign_source
from ..map import Map, trace
from ._translate import Jump, Translator, definition_source, is_symbolic, quote, shape_of

__all__ = ["from_torch"]

_CALL = "cv.from_torch"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def from_torch(fn: Callable, state_shape, param_shape=()) -> Map:
    """Import a PyTorch function or ``nn.Module`` ``fn(x, theta)`` as a :class:`~conservative.Map`.

    ``fn`` is exported with ``torch.export.export`` on float64 zeros of the given shapes (a
    module is deep-copied and converted to float64 first; the original is not touched), and each
    ATen operation of the exported graph is translated into the primitives of ``conservative``,
    keeping every kink a kink: ``relu``, ``clamp``/``hardtanh``, ``abs``, ``maximum``/``minimum``,
    ``where`` on a comparison (checked for continuity), ``leaky_relu`` (one node whose set at 0 is
    {1, slope}), ``amax``/``amin``. ``softplus`` is translated as the smooth function
    ``log(1 + exp(beta x)) / beta`` (PyTorch switches to ``x`` above ``threshold``, a jump of
    at most 2.1e-9 for the default threshold 20; the smooth function has no kink there).

    Parameters
    ----------
    fn : callable or torch.nn.Module
        ``fn(x, theta) -> x_next`` written with torch operations on tensors.
    state_shape, param_shape : int or tuple of int
        Shapes of the state and of the parameters (``()`` for a scalar).

    Returns
    -------
    Map
        Printing it shows, for every node, the line of ``fn`` (or of the module's ``forward``)
        that created the operation.

    Raises
    ------
    TracingError
        When ``torch.export`` cannot trace ``fn`` (Python control flow on tensor values), or for
        an operation without a conservative translation (the message names the ATen operation,
        its source line and what to do).
    DiscontinuityError
        For a genuinely discontinuous program (``sign`` not multiplied by a factor vanishing at
        0, a ``where`` whose branches disagree on the boundary, rounding).
    InputError
        When PyTorch is not installed (``pip install "conservative[torch]"``).

    Examples
    --------
    >>> import numpy as np, torch, conservative as cv
    >>> layer = torch.nn.Linear(2, 2).double()
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.tensor([[0.5, -0.2], [0.1, 0.4]]))
    ...     _ = layer.bias.zero_()
    >>> F = cv.from_torch(lambda x, t: torch.relu(layer(x) + t), (2,), (2,))
    >>> F(np.array([1.0, -1.0]), np.zeros(2))
    array([0.7, 0. ])
    """
    torch = _require_torch()
    if not callable(fn):
        raise InputError(fail_message(_CALL, f"fn of type {type(fn).__name__}",
                                      "pass a function fn(x, theta) or a torch.nn.Module"))
    state_shape = as_shape(state_shape, name="state_shape", call=_CALL)
    param_shape = as_shape(param_shape, name="param_shape", call=_CALL)
    exported = _export(torch, fn, state_shape, param_shape)
    reader = _GraphReader(torch, exported, definition_source(fn) or "<PyTorch function>")
    with foreign_source(reader.default_source):
        return trace(reader.run, state_shape, param_shape)


# --- PyTorch itself -----------------------------------------------------------------------------

def _require_torch():
    try:
        import torch
    except ImportError:
        raise InputError(fail_message(_CALL, "a call without PyTorch installed",
                                      'install it: pip install "conservative[torch]"')) from None
    return torch


def _export(torch, fn, state_shape, param_shape):
    if isinstance(fn, torch.nn.Module):
        module = copy.deepcopy(fn)
        if any(t.is_floating_point() and t.dtype != torch.float64
               for t in list(module.parameters()) + list(module.buffers())):
            module = module.double()
        anchor = None
    else:
        module = _Function(torch, fn)
        anchor = fn
    example = (torch.zeros(state_shape, dtype=torch.float64),
               torch.zeros(param_shape, dtype=torch.float64))
    with _stack_trace_anchor(torch, anchor):
        try:
            exported = torch.export.export(module, example)
        except Exception as exc:  # noqa: BLE001 - torch raises many types; all mean "cannot trace"
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise TracingError(fail_message(
                _CALL, f"a function that torch.export could not trace ({type(exc).__name__}: "
                f"{first})", "write fn(x, theta) with tensor operations: a branch on tensor "
                "values (if x > 0) must be torch.where / torch.maximum / torch.relu, loops belong "
                "outside (pass the one-step map), and closed-over tensors must be float64 "
                "(tensor.double())")) from exc
    return exported


@contextlib.contextmanager
def _stack_trace_anchor(torch, fn):
    """Keep ``fn``'s frames in the recorded stack traces (non-strict export keeps only
    ``forward`` frames otherwise); the registration is removed afterwards."""
    anchors = getattr(getattr(torch.fx, "proxy", None), "_STACK_TRACE_ANCHORS", None)
    code = getattr(fn, "__code__", None)
    key = (code.co_filename, code.co_name) if code is not None else None
    added = isinstance(anchors, set) and key is not None and key not in anchors
    if added:
        anchors.add(key)
    try:
        yield
    finally:
        if added:
            anchors.discard(key)


def _Function(torch, fn):
    """A plain function as a module, for torch.export."""

    class Function(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fn = fn

        def forward(self, x, theta):
            return self.fn(x, theta)

    return Function()


# --- the reader ---------------------------------------------------------------------------------

_IDENTITY = ("alias", "clone", "contiguous", "detach", "lift_fresh_copy", "lift_fresh",
             "_to_copy", "to", "type_as", "view_as", "_assert_tensor_metadata", "copy")
_COMPARE = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}
_SMOOTH = {"tanh": "tanh", "sigmoid": "sigmoid", "exp": "exp", "log": "log", "log1p": "log1p",
           "expm1": "expm1", "sqrt": "sqrt", "rsqrt": "rsqrt", "sin": "sin", "cos": "cos",
           "square": "square", "exp2": "exp2", "tan": "tan"}
_SKIP = ("_assert_scalar", "_assert_async", "sym_constrain_range_for_size", "_assert_tensor_metadata")


class _GraphReader(Translator):
    """Interprets the ATen graph of an ExportedProgram over DSL values."""

    def __init__(self, torch, exported, default_source: str):
        super().__init__(_CALL)
        self.torch = torch
        self.exported = exported
        self.default_source = default_source
        # frames in these directories are library code, not the user's
        self.library_dirs = (_PACKAGE_DIR, os.path.dirname(os.path.abspath(torch.__file__)) +
                             os.sep)
        sig = exported.graph_signature
        for spec in sig.output_specs:
            if spec.kind.name != "USER_OUTPUT":
                raise TracingError(fail_message(
                    _CALL, f"a program that mutates its state ({spec.kind.name} of "
                    f"{spec.target})", "an update map must be a function of (x, theta): call "
                    "module.eval() (batch norm in training mode updates running statistics)"))
        if len(sig.output_specs) != 1:
            raise TracingError(fail_message(_CALL, f"fn returning {len(sig.output_specs)} "
                                            "tensors", "return one tensor, the next state"))

    def _constant(self, spec):
        ep = self.exported
        if spec.target in ep.state_dict:
            value = ep.state_dict[spec.target]
        elif spec.target in ep.constants:
            value = ep.constants[spec.target]
        else:
            raise TracingError(fail_message(_CALL, f"an input {spec.arg.name} of kind "
                                            f"{spec.kind.name}", "pass a plain function or "
                                            "module of tensors"))
        return _to_numpy(self.torch, value)

    def run(self, x, theta):
        torch = self.torch
        graph = self.exported.graph_module.graph
        specs = list(self.exported.graph_signature.input_specs)
        users = iter((x, theta))
        env = {}
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        for node, spec in zip(placeholders, specs):
            env[node] = next(users) if spec.kind.name == "USER_INPUT" else self._constant(spec)
        out = None
        for node in graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "get_attr":
                env[node] = _to_numpy(torch, getattr(self.exported.graph_module, node.target))
            elif node.op == "call_function":
                env[node] = self.operation(node, env)
            elif node.op == "output":
                out = torch.fx.node.map_arg(node.args[0], lambda n: env[n])[0]
        return self.result(out)

    def result(self, out):
        if isinstance(out, (Jump, Condition)):
            self.array(out, "the result")
        if not isinstance(out, Sym):
            raise TracingError(fail_message(_CALL, "a function whose result does not depend on "
                                            "x and theta", "return the next state computed from "
                                            "x and theta"))
        return out

    def operation(self, node, env):
        torch = self.torch
        args = torch.fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
        target = node.target
        if target is operator.getitem:
            return args[0][args[1]]
        name, overload = _op_name(target)
        if name in _SKIP:
            return None
        if not any(is_symbolic(v) for v in _flatten((args, kwargs))):
            return self._fold(target, args, kwargs)
        source = _node_source(node, self.library_dirs) or self.default_source
        self.source = source
        try:
            with foreign_source(source):
                return self.translate(name, overload, args, kwargs)
        except ConservativeError as exc:
            if source in str(exc):
                raise
            raise type(exc)(f"{exc}\n  (translating the ATen operation `{name}.{overload}` at "
                            f"{quote(source)})") from None

    def _fold(self, target, args, kwargs):
        """An operation on constants: PyTorch computes it."""
        torch = self.torch
        conv = lambda v: torch.as_tensor(v) if isinstance(v, np.ndarray) else v  # noqa: E731
        args = _map_structure(conv, args)
        kwargs = {k: _map_structure(conv, v) for k, v in kwargs.items()}
        out = target(*args, **kwargs)
        return _map_structure(lambda v: _to_numpy(torch, v), out)

    # --- one operation --------------------------------------------------------------------------

    def translate(self, name, overload, a, k):
        arg = _Args(a, k)
        if name in ("add", "sub"):
            x, y, alpha = arg(0), arg(1), arg(2, "alpha", 1)
            if alpha != 1:
                y = self.mul(y, np.float64(alpha))
            return self.add(x, y) if name == "add" else self.sub(x, y)
        if name == "rsub":
            x, y, alpha = arg(0), arg(1), arg(2, "alpha", 1)
            return self.sub(y, x if alpha == 1 else self.mul(x, np.float64(alpha)))
        if name == "mul":
            return self.mul(arg(0), arg(1))
        if name in ("div", "true_divide"):
            if arg(2, "rounding_mode", None) is not None:
                raise self.unsupported(f"div with rounding_mode={arg(2, 'rounding_mode')!r}",
                                       "rounding jumps; use true division")
            return self.div(arg(0), arg(1))
        if name == "neg":
            return self.neg(arg(0))
        if name in ("pow",):
            base, e = arg(0), arg(1)
            if not is_symbolic(e) and np.ndim(e) == 0:
                return self.integer_pow(base, float(e))
            return self.pow(base, e)
        if name in _SMOOTH:
            return self.smooth(_SMOOTH[name], arg(0))
        if name == "relu":
            return self.relu(arg(0))
        if name in ("abs", "absolute"):
            return self.abs(arg(0))
        if name in ("sign", "sgn"):
            return self.sign(arg(0))
        if name in ("maximum", "fmax") or (name == "max" and overload == "other"):
            return self.maximum(arg(0), arg(1))
        if name in ("minimum", "fmin") or (name == "min" and overload == "other"):
            return self.minimum(arg(0), arg(1))
        if name == "clamp":
            return self.clip(arg(0), arg(1, "min", None), arg(2, "max", None))
        if name == "clamp_min":
            return self.maximum(arg(0), arg(1))
        if name == "clamp_max":
            return self.minimum(arg(0), arg(1))
        if name == "hardtanh":
            return self.clip(arg(0), arg(1, "min_val", -1.0), arg(2, "max_val", 1.0))
        if name == "leaky_relu":
            return self.leaky_relu(arg(0), float(arg(1, "negative_slope", 0.01)))
        if name == "softplus":
            return self.softplus(arg(0), float(arg(1, "beta", 1.0)))
        if name == "where":
            return self.select(arg(0), [arg(2), arg(1)])
        if name in _COMPARE:
            return self.compare(_COMPARE[name], arg(0), arg(1))
        if name in ("logical_and", "bitwise_and", "__and__"):
            return self.logical("and", arg(0), arg(1))
        if name in ("logical_or", "bitwise_or", "__or__"):
            return self.logical("or", arg(0), arg(1))
        if name in ("logical_not", "bitwise_not"):
            return self.logical("not", arg(0))
        if name in _IDENTITY:
            return self._identity(arg(0), k)
        if name == "dropout":
            if arg(2, "train", False) and arg(1, "p", 0.5) > 0:
                raise self.unsupported("dropout in training mode", "call module.eval(): an "
                                       "update map is deterministic")
            return arg(0)
        # products
        if name == "linear":
            x, w, b = arg(0), arg(1), arg(2, "bias", None)
            out = self.matmul(x, self.transpose(w, (1, 0)) if len(shape_of(w)) == 2 else w)
            return out if b is None else self.add(out, b)
        if name in ("matmul", "mm", "mv", "dot", "bmm"):
            return self.matmul(arg(0), arg(1))
        if name in ("addmm", "addmv"):
            bias, m1, m2 = arg(0), arg(1), arg(2)
            beta, alpha = arg(3, "beta", 1), arg(4, "alpha", 1)
            prod = self.matmul(m1, m2)
            prod = prod if alpha == 1 else self.mul(prod, np.float64(alpha))
            bias = bias if beta == 1 else self.mul(bias, np.float64(beta))
            return self.add(bias, prod)
        # shapes
        if name in ("view", "reshape", "_unsafe_view"):
            return self.reshape(arg(0), _resolve(shape_of(arg(0)), arg(1)))
        if name == "flatten":
            s = shape_of(arg(0))
            if not s:
                return self.reshape(arg(0), (1,))
            lo, hi = arg(1, "start_dim", 0) % len(s), arg(2, "end_dim", -1) % len(s)
            return self.reshape(arg(0), s[:lo] + (int(np.prod(s[lo:hi + 1])),) + s[hi + 1:])
        if name == "unsqueeze":
            s = shape_of(arg(0))
            d = arg(1) % (len(s) + 1)
            return self.reshape(arg(0), s[:d] + (1,) + s[d:])
        if name == "squeeze":
            s = shape_of(arg(0))
            dims = arg(1, "dim", None)
            dims = range(len(s)) if dims is None else ([dims] if isinstance(dims, int) else dims)
            drop = {d % len(s) for d in dims if s[d % len(s)] == 1} if s else set()
            return self.reshape(arg(0), tuple(v for i, v in enumerate(s) if i not in drop))
        if name in ("expand", "broadcast_to"):
            s = shape_of(arg(0))
            sizes = list(arg(1))
            lead = len(sizes) - len(s)
            full = [s[i - lead] if (v == -1 and i >= lead) else v for i, v in enumerate(sizes)]
            return self.broadcast_to(arg(0), full)
        if name in ("permute",):
            return self.transpose(arg(0), [d % len(shape_of(arg(0))) for d in arg(1)])
        if name in ("t", "numpy_T"):
            nd = len(shape_of(arg(0)))
            return self.transpose(arg(0), tuple(reversed(range(nd))))
        if name == "transpose":
            nd = len(shape_of(arg(0)))
            perm = list(range(nd))
            i, j = arg(1) % nd, arg(2) % nd
            perm[i], perm[j] = perm[j], perm[i]
            return self.transpose(arg(0), perm)
        if name == "select":
            s = shape_of(arg(0))
            d = arg(1) % len(s)
            return self.getitem(arg(0), (slice(None),) * d + (int(arg(2)) % s[d],))
        if name == "slice":
            s = shape_of(arg(0))
            d = arg(1, "dim", 0) % len(s)
            start, end, step = arg(2, "start", None), arg(3, "end", None), arg(4, "step", 1)
            sl = slice(*slice(start, end, step).indices(s[d]))
            return self.getitem(arg(0), (slice(None),) * d + (sl,))
        if name == "index":
            return self._index(arg(0), arg(1))
        if name in ("cat", "concat", "concatenate"):
            parts = list(arg(0))
            return self.concatenate(parts, arg(1, "dim", 0) % len(shape_of(parts[0])))
        if name == "stack":
            parts = list(arg(0))
            d = arg(1, "dim", 0) % (len(shape_of(parts[0])) + 1)
            s = shape_of(parts[0])
            return self.concatenate([self.reshape(p, s[:d] + (1,) + s[d:]) for p in parts], d)
        # reductions
        if name in ("sum", "mean"):
            x = arg(0)
            s = shape_of(x)
            dims = arg(1, "dim", None)
            dims = tuple(range(len(s))) if dims is None or dims == [] else \
                ((dims,) if isinstance(dims, int) else tuple(dims))
            out = self.sum(x, dims, keepdims=bool(arg(2, "keepdim", False)))
            if name == "mean":
                count = int(np.prod([s[d % len(s)] for d in dims], dtype=np.int64)) if s else 1
                out = self.div(out, np.float64(count))
            return out
        if name in ("amax", "amin") or (name in ("max", "min") and overload == "default"):
            x = arg(0)
            s = shape_of(x)
            dims = arg(1, "dim", []) if name in ("amax", "amin") else []
            dims = tuple(range(len(s))) if dims in (None, []) else \
                ((dims,) if isinstance(dims, int) else tuple(dims))
            kind = "max" if name in ("amax", "max") else "min"
            return self.reduce_extremum(kind, x, dims, keepdims=bool(arg(2, "keepdim", False)))
        if name in ("max", "min", "argmax", "argmin", "sort", "topk"):
            raise self.unsupported(f"{name}.{overload}", "indices of extrema jump: use "
                                   "torch.amax / torch.amin for the values")
        if name in ("floor", "ceil", "round", "trunc", "frac", "remainder", "fmod"):
            raise DiscontinuityError(fail_message(
                _CALL, f"the ATen operation `{name}` on traced values at {quote(self.source)}",
                "it jumps; conservative Jacobians exist only for locally Lipschitz maps"))
        raise self.unsupported(f"{name}.{overload} (ATen operation)")

    def _identity(self, value, kwargs):
        dtype = kwargs.get("dtype")
        if dtype is not None and not dtype.is_floating_point:
            if isinstance(value, Condition):
                return value
            raise DiscontinuityError(fail_message(
                _CALL, f"a conversion of a traced value to {dtype} at {quote(self.source)}",
                "rounding to integers or booleans jumps; keep the computation in floating point"))
        if isinstance(value, Condition) and dtype is not None:
            return Jump("step", value, 1.0, self.source)
        return value

    def _index(self, x, indices):
        """Advanced indexing with constant index tensors (None keeps an axis)."""
        if any(is_symbolic(i) for i in indices if i is not None):
            raise TracingError(fail_message(_CALL, f"indexing with traced indices at "
                                            f"{quote(self.source)}", "index with constants"))
        s = shape_of(x)
        key = tuple(slice(None) if i is None else (np.asarray(i) if np.asarray(i).dtype != bool
                                                   else np.nonzero(np.asarray(i))[0])
                    for i in indices)
        labels = np.arange(int(np.prod(s, dtype=np.int64))).reshape(s)
        return self.take_flat(x, labels[key])


class _Args:
    """Positional-or-keyword access to an ATen call's arguments."""

    def __init__(self, args, kwargs):
        self.args, self.kwargs = args, kwargs

    def __call__(self, i, name=None, default=None):
        if i < len(self.args):
            return self.args[i]
        if name is not None and name in self.kwargs:
            return self.kwargs[name]
        return default


def _op_name(target) -> tuple[str, str]:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return packet.__name__, getattr(target, "_overloadname", "default")
    return getattr(target, "__name__", str(target)), "default"


def _resolve(old_shape, new_shape) -> tuple:
    new = [int(v) for v in new_shape]
    if -1 in new:
        known = int(np.prod([v for v in new if v != -1], dtype=np.int64))
        new[new.index(-1)] = int(np.prod(old_shape, dtype=np.int64)) // max(known, 1)
    return tuple(new)


def _node_source(node, library_dirs: tuple) -> str | None:
    """``file:line`` of the innermost user frame of the node's recorded stack trace."""
    trace_text = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "(.*?)", line (\d+)', trace_text)
    frames = [f for f in frames if not os.path.abspath(f[0]).startswith(library_dirs)]
    return f"{frames[-1][0]}:{frames[-1][1]}" if frames else None


def _to_numpy(torch, value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.to(torch.float64)
        return value.numpy().copy()
    if isinstance(value, (int, float, bool)):
        return np.asarray(value)
    return value


def _flatten(tree):
    if isinstance(tree, (list, tuple)):
        for t in tree:
            yield from _flatten(t)
    elif isinstance(tree, dict):
        for t in tree.values():
            yield from _flatten(t)
    else:
        yield tree


def _map_structure(fn, tree):
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map_structure(fn, t) for t in tree)
    return fn(tree)
