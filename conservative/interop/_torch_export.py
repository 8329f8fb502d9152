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
import math
import operator
import os
import re
import warnings
from typing import Callable

import numpy as np

from .. import dsl
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
    if _mutates_or_wraps(torch, exported):
        # in-place operations (relu_, +=, x[i] = v, nn.ReLU(inplace=True)), out= variants and
        # wrapped regions (torch.no_grad) are made functional by PyTorch itself; a mutation of
        # a buffer or of an input then shows in the output specs, refused by the reader
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)   # PyTorch's own deprecations
                exported = exported.run_decompositions({})
        except Exception as exc:  # noqa: BLE001 - as above
            raise TracingError(fail_message(
                _CALL, f"a program with in-place operations that PyTorch could not make "
                f"functional ({type(exc).__name__}: {str(exc).strip()[:300]})",
                "write the step without in-place operations (y = relu(x), not x.relu_())")
            ) from exc
    return exported


def _mutates_or_wraps(torch, exported) -> bool:
    """True when the graph has an in-place / out= operation or a higher-order wrapper."""
    higher_order = getattr(getattr(torch, "_ops", None), "HigherOrderOperator", ())
    for node in exported.graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        if higher_order and isinstance(node.target, higher_order):
            return True
        schema = getattr(node.target, "_schema", None)
        if schema is not None and schema.is_mutable:
            return True
    return False


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

# value-preserving operations (their dtype is checked against the graph's metadata)
_IDENTITY = ("alias", "clone", "contiguous", "detach", "lift_fresh_copy", "lift_fresh",
             "_to_copy", "to", "type_as", "_assert_tensor_metadata")
# pure data movement: positions of the arguments whose elements the output is made of
_MOVEMENT = {"index_select": (0,), "gather": (0,), "flip": (0,), "roll": (0,), "repeat": (0,),
             "tile": (0,), "narrow": (0,), "split": (0,), "split_with_sizes": (0,),
             "chunk": (0,), "unbind": (0,), "constant_pad_nd": (0,), "pad": (0,),
             "diagonal": (0,), "diag": (0,), "diag_embed": (0,), "triu": (0,), "tril": (0,),
             "movedim": (0,), "moveaxis": (0,), "swapaxes": (0,), "swapdims": (0,),
             "unfold": (0,), "take": (0,), "take_along_dim": (0,), "rot90": (0,),
             "repeat_interleave": (0,), "slice_scatter": (0, 1), "select_scatter": (0, 1),
             "diagonal_scatter": (0, 1), "index_put": (0, 2), "copy": (0, 1),
             "masked_fill": (0, 2), "index_copy": (0, 3), "narrow_copy": (0,),
             "select_copy": (0,), "slice_copy": (0,), "expand_copy": (0,),
             "permute_copy": (0,), "view_copy": (0,), "unsqueeze_copy": (0,),
             "squeeze_copy": (0,), "t_copy": (0,), "transpose_copy": (0,)}
# constants of the shape of a (traced) tensor
_LIKE = ("zeros_like", "ones_like", "full_like", "empty_like", "new_zeros", "new_ones",
         "new_full", "new_empty")
# torch.nn.functional.selu's constants
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_COMPARE = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}
_SMOOTH = {"tanh": "tanh", "sigmoid": "sigmoid", "exp": "exp", "log": "log", "log1p": "log1p",
           "expm1": "expm1", "sqrt": "sqrt", "rsqrt": "rsqrt", "sin": "sin", "cos": "cos",
           "square": "square", "exp2": "exp2", "tan": "tan"}
_SKIP = ("_assert_scalar", "_assert_async", "sym_constrain_range_for_size",
         "_assert_tensor_metadata")
_UNHANDLED = object()          # a translation step that does not handle the operation


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
            out = self.array(out, "the result")
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
        if name in ("sym_size", "sym_numel"):
            # a size that torch.export left symbolic (x[mask] with a constant mask): known here
            shape = shape_of(args[0])
            return int(np.prod(shape, dtype=np.int64)) if name == "sym_numel" else \
                int(shape[int(args[1])])
        if not any(is_symbolic(v) for v in _flatten((args, kwargs))):
            return self._fold(target, args, kwargs)
        source = _node_source(node, self.library_dirs) or self.default_source
        self.source = source
        try:
            with foreign_source(source):
                if name in _MOVEMENT:
                    return self._movement(target, name, args, kwargs)
                if name in _COMPARE:
                    same = len(node.args) > 1 and node.args[0] is node.args[1]
                    return self.compare(_COMPARE[name], args[0], args[1], same_operand=same)
                return self._with_dtype(self.translate(name, overload, args, kwargs), node)
        except ConservativeError as exc:
            if source in str(exc):
                raise
            raise type(exc)(f"{exc}\n  (translating the ATen operation `{name}.{overload}` at "
                            f"{quote(source)})") from None

    def _fold(self, target, args, kwargs):
        """An operation on constants: PyTorch computes it (on copies: constants stay as read)."""
        torch = self.torch
        conv = lambda v: _as_tensor(torch, v)  # noqa: E731
        args = _map_structure(conv, args)
        kwargs = {k: _map_structure(conv, v) for k, v in kwargs.items()}
        out = target(*args, **kwargs)
        return _map_structure(lambda v: _to_numpy(torch, v), out)

    def _with_dtype(self, out, node):
        """Apply the dtype PyTorch records for the node: a float value cast to an integer or
        bool tensor jumps (refused), a condition cast to a number is a 0/1 indicator."""
        val = node.meta.get("val")
        dtype = getattr(val, "dtype", None)
        if dtype is None or not isinstance(val, self.torch.Tensor):
            return out
        if dtype.is_complex:
            raise TracingError(fail_message(
                _CALL, f"a complex tensor ({dtype}) computed from traced values at "
                f"{quote(self.source)}", "write the map with real tensors (real and imaginary "
                "parts as separate entries of the state)"))
        if dtype.is_floating_point:
            return Jump("step", out, 1.0, self.source) if isinstance(out, Condition) else out
        if isinstance(out, Sym):
            raise DiscontinuityError(fail_message(
                _CALL, f"a traced value converted to {dtype} at {quote(self.source)}",
                "rounding to integers or booleans jumps; keep the computation in floating point"))
        if isinstance(out, Condition) and dtype != self.torch.bool:
            return Jump("step", out, 1.0, self.source)
        return out

    def _movement(self, target, name, args, kwargs):
        """Gather / scatter / pad / flip / split...: PyTorch computes which element goes where."""
        torch = self.torch
        # Python numbers (masked_fill's value, pad's value) stay as they are: they are
        # constants of the output, found as such by the labelling
        data = [i for i in _MOVEMENT[name] if i < len(args)
                and isinstance(args[i], (Sym, np.ndarray))]
        others = [v for i, v in enumerate(args) if i not in data] + list(kwargs.values())
        if any(is_symbolic(v) for v in _flatten(others)):
            if name == "masked_fill" and isinstance(args[1], Condition):
                return self.select(args[1], [args[0], args[2]])
            raise TracingError(fail_message(
                _CALL, f"`{name}` with traced indices or masks at {quote(self.source)}",
                "index with constants: an index computed from x selects discontinuously; "
                "select between branches with torch.where(x > 0, a, b)"))
        conv = lambda v: _as_tensor(torch, v)  # noqa: E731

        def apply(labelled):
            call = [_map_structure(conv, v) for v in args]
            for i, label in zip(data, labelled):
                call[i] = torch.as_tensor(label)
            out = target(*call, **{k: _map_structure(conv, v) for k, v in kwargs.items()})
            if isinstance(out, (list, tuple)):
                return [o.detach().to(torch.float64).numpy() for o in out]
            return out.detach().to(torch.float64).numpy()

        return self.movement([args[i] for i in data], apply, f"`{name}`")

    # --- one operation --------------------------------------------------------------------------

    def translate(self, name, overload, a, k):
        arg = _Args(a, k)
        for part in (self._elementwise, self._products_and_casts, self._shapes,
                     self._reductions_and_refusals):
            out = part(name, overload, arg, a, k)
            if out is not _UNHANDLED:
                return out
        raise self.unsupported(f"{name}.{overload} (ATen operation)")

    def _elementwise(self, name, overload, arg, a, k):
        """ATen operations: elementwise arithmetic, activations and layers (``_UNHANDLED`` for the others)."""
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
            return self._softplus(arg(0), float(arg(1, "beta", 1.0)),
                                  float(arg(2, "threshold", 20.0)))
        if name in _ACTIVATIONS:
            return _ACTIVATIONS[name](self, arg)
        if name in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
            return self._softmax(arg(0), int(arg(1, "dim")), log=name.endswith("log_softmax"))
        if name == "logsumexp":
            return self._logsumexp(arg(0), arg(1, "dim"), bool(arg(2, "keepdim", False)))
        if name in ("batch_norm", "_native_batch_norm_legit_no_training"):
            return self._batch_norm(name, arg)
        if name in ("layer_norm", "native_layer_norm"):
            out = self._layer_norm(arg(0), arg(1), arg(2, "weight", None), arg(3, "bias", None),
                                   float(arg(4, "eps", 1e-5)))
            return out if name == "layer_norm" else (out, None, None)
        if name in ("linalg_vector_norm", "norm"):
            return self._vector_norm(arg(0), arg(1, "ord", arg(1, "p", 2)), arg(2, "dim", None),
                                     bool(arg(3, "keepdim", False)))
        return _UNHANDLED

    def _products_and_casts(self, name, overload, arg, a, k):
        """ATen operations: identities, logical operations and matrix products (``_UNHANDLED`` for the others)."""
        if name in _LIKE:
            return self._like(name, a, k)
        if name in ("view_as", "reshape_as"):
            return self.reshape(arg(0), shape_of(arg(1)))
        if name == "expand_as":
            return self.broadcast_to(arg(0), shape_of(arg(1)))
        if name == "reciprocal":
            return self.div(np.float64(1.0), arg(0))
        if name in ("outer", "ger"):
            u, v = arg(0), arg(1)
            return self.mul(self.reshape(u, (shape_of(u)[0], 1)), v)
        if name == "where":
            return self.select(arg(0), [arg(2), arg(1)])
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
        return _UNHANDLED

    def _shapes(self, name, overload, arg, a, k):
        """ATen operations: reshapes, permutations, indexing and concatenation (``_UNHANDLED`` for the others)."""
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
        return _UNHANDLED

    def _reductions_and_refusals(self, name, overload, arg, a, k):
        """ATen operations: reductions, sorting, and the operations refused with a reason (``_UNHANDLED`` for the others)."""
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
        if name == "cumsum":
            return self.cumsum(arg(0), int(arg(1, "dim")))
        if name == "sort":
            x, dim = arg(0), int(k.get("dim", a[1] if len(a) > 1 and overload != "stable"
                                       else -1))
            descending = bool(k.get("descending", a[2] if len(a) > 2 and overload != "stable"
                                    else False))
            values = self.sort(x, dim)
            if descending:
                s = shape_of(values)
                d = dim % len(s)
                values = self.getitem(values, (slice(None),) * d + (slice(None, None, -1),))
            return values, Jump("index", values, 1.0, self.source)
        if name in ("cond", "while_loop", "scan", "map", "associative_scan"):
            raise TracingError(fail_message(
                _CALL, f"control flow (`torch.{name}`) at {quote(self.source)}",
                "pass the one-step map: fn(x, theta) should compute one iteration x_{k+1} of the "
                "algorithm; cv.iterate and cv.fixed_point run the loop, and a branch is written "
                "with torch.where / torch.maximum / torch.relu so that its kink is recorded"))
        if name in ("max", "min", "argmax", "argmin", "topk"):
            raise self.unsupported(f"{name}.{overload}", "indices of extrema jump: use "
                                   "torch.amax / torch.amin for the values")
        if name in ("isnan", "isinf", "isposinf", "isneginf", "isfinite"):
            # values of a Map are finite (non-finite values are refused when evaluated)
            return np.full(shape_of(arg(0)), name == "isfinite")
        if name == "nan_to_num":
            return arg(0)
        if name in ("floor", "ceil", "round", "trunc", "frac", "remainder", "fmod",
                    "floor_divide", "heaviside"):
            raise DiscontinuityError(fail_message(
                _CALL, f"the ATen operation `{name}` on traced values at {quote(self.source)}",
                "it jumps; conservative Jacobians exist only for locally Lipschitz maps"))
        return _UNHANDLED

    # --- activations and layers ---------------------------------------------------------------

    def _softplus(self, a, beta: float, threshold: float):
        """PyTorch's softplus: ``log(1 + exp(beta a)) / beta``, and ``a`` where ``beta a >
        threshold``. It jumps there by ``log1p(exp(-threshold)) / beta``: accepted (as a
        cv.where whose branches agree to the continuity tolerance) only when that gap is
        rounding-sized, as for the default threshold 20 (a gap of 2.1e-9 beside the value 20)."""
        smooth = self.softplus(a, beta)
        if math.isinf(threshold) and threshold > 0:
            return smooth
        at = threshold / beta
        gap = abs(math.log1p(math.exp(-threshold)) / beta) if threshold > -700 else math.inf
        if not gap <= 1e-12 + 1e-8 * (abs(at) + gap):
            raise DiscontinuityError(fail_message(
                _CALL, f"softplus with beta={beta:g}, threshold={threshold:g} at "
                f"{quote(self.source)}: PyTorch returns x itself where beta x > threshold, a "
                f"jump of {gap:.3g} at x = {at:g}", "use the default threshold (20), or write "
                "the smooth function torch.log1p(torch.exp(beta * x)) / beta"))
        u = a if beta == 1.0 else self.mul(a, np.float64(beta))
        return dsl.where(self.compare(">", u, np.float64(threshold)), a, smooth)

    def _elu(self, a, alpha: float, scale: float = 1.0, input_scale: float = 1.0):
        """``scale a`` for ``a > 0``, ``scale alpha (exp(input_scale a) - 1)`` below: one
        cv.where (continuous at 0), set {scale, scale alpha input_scale} at 0."""
        u = a if input_scale == 1.0 else self.mul(a, np.float64(input_scale))
        neg = self.mul(self.smooth("expm1", u), np.float64(alpha))
        out = dsl.where(self.compare(">", a, np.float64(0.0)), a, neg)
        return out if scale == 1.0 else self.mul(out, np.float64(scale))

    def _gelu(self, a, approximate: str):
        """The tanh form ``a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))) / 2`` (smooth); the
        exact form needs erf, which the DSL does not have."""
        if approximate != "tanh":
            raise self.unsupported("gelu (its exact form uses erf)", "use "
                                   "torch.nn.GELU(approximate='tanh'), or write the map with the "
                                   "DSL")
        cubic = self.add(a, self.mul(self.integer_pow(a, 3.0), np.float64(0.044715)))
        inner = self.smooth("tanh", self.mul(cubic, np.float64(math.sqrt(2.0 / math.pi))))
        return self.mul(self.mul(a, np.float64(0.5)), self.add(inner, np.float64(1.0)))

    def _hard_sigmoid(self, a):
        """``relu6(a + 3) / 6``: one clip node, set {0, 1/6} at a = -3 and at a = 3."""
        return self.div(self.clip(self.add(a, np.float64(3.0)), np.float64(0.0),
                                  np.float64(6.0)), np.float64(6.0))

    def _threshold(self, a, threshold: float, value: float):
        """``a`` where ``a > threshold``, ``value`` elsewhere: continuous only when equal."""
        if value != threshold:
            raise DiscontinuityError(fail_message(
                _CALL, f"threshold(x, {threshold:g}, {value:g}) at {quote(self.source)}, which "
                f"jumps by {abs(threshold - value):g} at x = {threshold:g}",
                "use value == threshold (then it is max(x, threshold)), or torch.relu"))
        return self.maximum(a, np.float64(threshold))

    def _hard_shrink(self, a, lambd: float):
        if lambd != 0:
            raise DiscontinuityError(fail_message(
                _CALL, f"hardshrink(x, {lambd:g}) at {quote(self.source)}, which jumps by "
                f"{abs(lambd):g} at |x| = {abs(lambd):g}", "use softshrink (the soft-threshold, "
                "continuous)"))
        return a

    def _prelu(self, a, weight):
        """Leaky ReLU with a slope per channel (axis 1; a single slope for 1-D input)."""
        if is_symbolic(weight):
            raise self.unsupported("prelu with a traced slope")
        w = np.asarray(weight, dtype=np.float64)
        if w.size == 1:
            return self.leaky_relu(a, float(w.reshape(-1)[0]))
        s = shape_of(a)
        w = w.reshape((len(w),) + (1,) * (len(s) - 2))
        if np.all((0 <= w) & (w <= 1)):
            return dsl.maximum(a, self.mul(a, w))
        return dsl.where(self.compare(">=", a, np.float64(0.0)), a, self.mul(a, w))

    def _softmax(self, a, dim: int, log: bool):
        """Smooth softmax / log-softmax, shifted by the mean along ``dim`` (no kink: the
        shift cancels, and a mean does not add the ties a max would)."""
        s = shape_of(a)
        dim %= max(len(s), 1)
        shifted = self.sub(a, self._mean(a, (dim,)))
        e = self.smooth("exp", shifted)
        total = self.sum(e, (dim,), keepdims=True)
        return self.sub(shifted, self.smooth("log", total)) if log else self.div(e, total)

    def _logsumexp(self, a, dims, keepdim: bool):
        s = shape_of(a)
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        dims = tuple(d % max(len(s), 1) for d in dims) if dims else tuple(range(len(s)))
        m = self._mean(a, dims)
        out = self.add(m, self.smooth("log", self.sum(self.smooth("exp", self.sub(a, m)), dims,
                                                      keepdims=True)))
        if keepdim:
            return out
        return self.reshape(out, tuple(d for i, d in enumerate(s) if i not in dims))

    def _mean(self, a, dims):
        """Mean over ``dims``, keeping them (size 1)."""
        count = int(np.prod([shape_of(a)[d] for d in dims], dtype=np.int64))
        return self.div(self.sum(a, dims, keepdims=True), np.float64(count))

    def _batch_norm(self, name, arg):
        """Batch norm in evaluation mode: the affine map ``(x - mean) / sqrt(var + eps) w + b``
        per channel (axis 1), with the running statistics as constants."""
        if name == "batch_norm":
            x, w, b, mean, var = (arg(i) for i in range(5))
            training, eps = bool(arg(5, "training")), float(arg(7, "eps", 1e-5))
        else:
            x, w, b, mean, var = (arg(i) for i in range(5))
            training, eps = False, float(arg(6, "eps", 1e-5))
        if training or mean is None or var is None:
            raise self.unsupported("batch_norm in training mode", "call module.eval(): batch "
                                   "statistics in training mode make the step depend on the "
                                   "batch and update the running statistics")
        if any(is_symbolic(v) for v in (w, b, mean, var)):
            raise self.unsupported("batch_norm with traced statistics or weights")
        channels = len(np.asarray(mean))
        lead = (1, channels) + (1,) * (len(shape_of(x)) - 2) if len(shape_of(x)) > 1 else \
            (channels,)
        scale = 1.0 / np.sqrt(np.asarray(var, dtype=np.float64) + eps)
        if w is not None:
            scale = scale * np.asarray(w, dtype=np.float64)
        shift = -np.asarray(mean, dtype=np.float64) * scale
        if b is not None:
            shift = shift + np.asarray(b, dtype=np.float64)
        out = self.add(self.mul(x, scale.reshape(lead[1:] if len(lead) > 1 else lead)),
                       shift.reshape(lead[1:] if len(lead) > 1 else lead))
        return out if name == "batch_norm" else (out, None, None)

    def _layer_norm(self, x, normalized_shape, w, b, eps: float):
        """``(x - mean) / sqrt(var + eps) w + b`` over the trailing ``normalized_shape`` axes
        (smooth: eps > 0)."""
        s = shape_of(x)
        dims = tuple(range(len(s) - len(normalized_shape), len(s)))
        centred = self.sub(x, self._mean(x, dims))
        var = self._mean(self.integer_pow(centred, 2.0), dims)
        out = self.mul(centred, self.integer_pow(self.add(var, np.float64(eps)), -0.5))
        if w is not None:
            out = self.mul(out, w)
        return out if b is None else self.add(out, b)

    def _vector_norm(self, x, order, dims, keepdim: bool):
        """2-, 1- and max-norms: ``sqrt(sum x^2)``, ``sum |x|``, ``max |x|``."""
        s = shape_of(x)
        dims = tuple(range(len(s))) if dims in (None, []) else \
            ((dims,) if isinstance(dims, int) else tuple(dims))
        order = float(order)
        if order == 2.0:
            out = self.smooth("sqrt", self.sum(self.integer_pow(x, 2.0), dims, keepdims=keepdim))
        elif order == 1.0:
            out = self.sum(self.abs(x), dims, keepdims=keepdim)
        elif order == math.inf:
            out = self.reduce_extremum("max", self.abs(x), dims, keepdims=keepdim)
        else:
            raise self.unsupported(f"a vector norm of order {order:g}",
                                   "use the 1-, 2- or max-norm")
        return out

    def _like(self, name, args, kwargs):
        """zeros_like(x), new_full(x, ...): constants that only take x's shape."""
        torch = self.torch
        placeholder = torch.zeros(shape_of(args[0]), dtype=torch.float64)
        rest = [_as_tensor(torch, v) for v in args[1:]]
        out = getattr(torch.ops.aten, name)(placeholder, *rest, **kwargs)
        if name in ("empty_like", "new_empty"):
            out = torch.full_like(out, float("nan"))      # never read: NaN is refused if it is
        return _to_numpy(torch, out)

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
        # NumPy reads integer and boolean index arrays as PyTorch does (a k-D mask spans k axes)
        key = tuple(slice(None) if i is None else np.asarray(i) for i in indices)
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
    # library frames, and code that torch.fx generated (<eval_with_key>.N), are not the user's
    frames = [f for f in frames if not os.path.abspath(f[0]).startswith(library_dirs)
              and not f[0].startswith("<eval_with_key>")]
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


def _as_tensor(torch, value):
    """A NumPy constant as a tensor of its own (a copy: PyTorch never writes into ours)."""
    return torch.as_tensor(np.array(value)) if isinstance(value, np.ndarray) else value


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


_ACTIVATIONS = {
    "relu6": lambda r, arg: r.clip(arg(0), np.float64(0.0), np.float64(6.0)),
    "silu": lambda r, arg: r.mul(arg(0), r.smooth("sigmoid", arg(0))),
    "elu": lambda r, arg: r._elu(arg(0), float(arg(1, "alpha", 1.0)), float(arg(2, "scale", 1.0)),
                                 float(arg(3, "input_scale", 1.0))),
    "celu": lambda r, arg: r._elu(arg(0), float(arg(1, "alpha", 1.0)), 1.0,
                                  1.0 / float(arg(1, "alpha", 1.0))),
    "selu": lambda r, arg: r._elu(arg(0), _SELU_ALPHA, _SELU_SCALE),
    "gelu": lambda r, arg: r._gelu(arg(0), arg(1, "approximate", "none")),
    "hardsigmoid": lambda r, arg: r._hard_sigmoid(arg(0)),
    "hardswish": lambda r, arg: r.mul(arg(0), r._hard_sigmoid(arg(0))),
    "mish": lambda r, arg: r.mul(arg(0), r.smooth("tanh", r.softplus(arg(0)))),
    "softshrink": lambda r, arg: dsl.soft_threshold(arg(0), np.float64(arg(1, "lambd", 0.5))),
    "hardshrink": lambda r, arg: r._hard_shrink(arg(0), float(arg(1, "lambd", 0.5))),
    "threshold": lambda r, arg: r._threshold(arg(0), float(arg(1, "threshold")),
                                             float(arg(2, "value"))),
    "log_sigmoid": lambda r, arg: r.neg(r.softplus(r.neg(arg(0)))),
    "prelu": lambda r, arg: r._prelu(arg(0), arg(1, "weight")),
}
