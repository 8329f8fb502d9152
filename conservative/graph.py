"""Traced programs: a frozen networkx graph of primitive applications.

Nodes are integers in creation order (a topological order). Each node carries:

``prim``    the :class:`~conservative.primitives.Primitive`;
``params``  its static parameters (dict);
``shape``   its output shape (without batch axes);
``inputs``  the ordered tuple of input node ids;
``source``  the user's ``file:line`` that created it;
``name``    for the two inputs, ``"x"`` and ``"theta"``;
``value``   for constants, the float64 array.

Edges run from each input to its consumer and carry ``argnum``.
"""

from __future__ import annotations

import contextlib
import contextvars
import linecache
import os
import sys
import functools
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from .primitives import Leaf, Primitive

__all__ = ["Builder", "Program", "user_source", "foreign_source"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


# Frames in these files are the tracer's own; the first frame outside them is the code that
# wrote the expression (the user's, or a zoo algorithm's).
_TRACER_FILES = {os.path.join(_PACKAGE_DIR, name) for name in
                 ("dsl.py", "graph.py", "map.py", "primitives.py", "linalg.py")}
_RULES_DIR = os.path.join(_PACKAGE_DIR, "rules") + os.sep


def _is_tracer_frame(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path in _TRACER_FILES or path.startswith(_RULES_DIR)


# Set by importers of foreign programs (JAX, PyTorch) while they build the nodes of one foreign
# operation: the source of those nodes is the foreign program's line, not the importer's.
_FOREIGN_SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conservative_foreign_source", default=None)


@contextlib.contextmanager
def foreign_source(source: str):
    """Attribute the nodes built inside the block to ``source`` (a ``file:line``).

    Used by ``cv.from_jax`` and ``cv.from_torch``: each node of an imported program names the
    line of the JAX or PyTorch code that created the operation it translates.
    """
    token = _FOREIGN_SOURCE.set(source)
    try:
        yield
    finally:
        _FOREIGN_SOURCE.reset(token)


def user_source() -> str:
    """``file:line`` of the innermost frame outside the tracer (the code being traced)."""
    foreign = _FOREIGN_SOURCE.get()
    if foreign is not None:
        return foreign
    frame = sys._getframe(1)
    while frame is not None and _is_tracer_frame(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def source_line(source: str) -> str:
    """The text of the user's line named by ``file:line`` ("" if unavailable)."""
    path, _, line = source.rpartition(":")
    try:
        return linecache.getline(path, int(line)).strip()
    except ValueError:
        return ""


class Builder:
    """Mutable graph under construction during one trace."""

    def __init__(self):
        import networkx as nx  # imported at the first trace, not by `import conservative`
        self.graph = nx.DiGraph()

    def add(self, prim: Primitive, inputs: tuple[int, ...], params: dict, shape: tuple,
            source: str, **extra) -> int:
        node = self.graph.number_of_nodes()
        self.graph.add_node(node, prim=prim, params=params, shape=tuple(shape),
                            inputs=tuple(inputs), source=source, **extra)
        for argnum, src in enumerate(inputs):
            # a node may use the same input twice (x * x); keep the first argnum on the edge
            if not self.graph.has_edge(src, node):
                self.graph.add_edge(src, node, argnum=argnum)
        return node


@dataclass(frozen=True)
class Step:
    """One node to compute: its primitive, inputs and parameters.

    Prepared once when the program is frozen: ``kwargs``, what the numeric rules receive (the
    parameters, and ``prepared`` for primitives with a ``prepare`` rule: constants made ready
    once, never per step), and ``impl``, the implementation with them bound.
    """

    node: int
    prim: Primitive
    inputs: tuple[int, ...]
    params: dict
    impl: Callable = field(repr=False, compare=False, default=None)
    kwargs: dict = field(repr=False, compare=False, default=None)


class Program:
    """A frozen traced program with inputs ``x``, ``theta`` and one output.

    Attributes
    ----------
    graph : networkx.DiGraph
        Frozen; only nodes the output depends on (plus the two inputs) are kept.
    x_node, theta_node, out_node : int
    steps : list of Step
        The non-leaf nodes in topological order.
    """

    def __init__(self, builder: Builder, x_node: int, theta_node: int, out_node: int):
        import networkx as nx
        g = builder.graph
        keep = nx.ancestors(g, out_node) | {out_node, x_node, theta_node}
        self._build(nx.freeze(g.subgraph(sorted(keep)).copy()), x_node, theta_node, out_node)

    def _build(self, graph, x_node: int, theta_node: int, out_node: int):
        """Everything derived from the frozen graph, prepared once (and again on unpickling)."""
        self.graph = graph
        self.x_node, self.theta_node, self.out_node = x_node, theta_node, out_node
        self._cache: dict = {}
        self.order = sorted(self.graph.nodes)
        self.consts = {n: self.graph.nodes[n]["value"] for n in self.order
                       if "value" in self.graph.nodes[n]}
        for value in self.consts.values():
            if value.base is None:         # the trace's own copy: read-only from now on, so
                value.flags.writeable = False   # interval forms may share it without a copy
        self.steps = [_step(n, d, self.consts) for n, d in
                      ((n, self.graph.nodes[n]) for n in self.order)
                      if not isinstance(d["prim"], Leaf)]
        # prepared once: the constants with their batch axis of one, and per step the inputs
        # whose last use it is (a forward pass may drop them afterwards)
        self.batched_consts = {n: v[None] for n, v in self.consts.items()}
        last = {}
        for k, step in enumerate(self.steps):
            for i in step.inputs:
                last[i] = k
        self.dying = [tuple(i for i in dict.fromkeys(step.inputs) if last[i] == k)
                      for k, step in enumerate(self.steps)]
        self.kink_nodes = [s.node for s in self.steps if not s.prim.smooth]
        self.largest = max((int(np.prod(d["shape"], dtype=np.int64))
                            for _, d in self.graph.nodes(data=True)), default=1)
        # nodes that depend on x or theta (constants need no tangent or cotangent)
        self.live = {x_node, theta_node}
        for step in self.steps:
            if any(i in self.live for i in step.inputs):
                self.live.add(step.node)

    # --- pickling: the frozen graph with primitives by name and constants as arrays -----------

    def __getstate__(self) -> dict:
        nodes = [(n, {k: (_compact(v) if k == "value" else v) for k, v in d.items()})
                 for n, d in self.graph.nodes(data=True)]
        return {"nodes": nodes, "edges": list(self.graph.edges(data=True)),
                "inputs_output": (self.x_node, self.theta_node, self.out_node)}

    def __setstate__(self, state: dict):
        import networkx as nx
        graph = nx.DiGraph()
        graph.add_nodes_from((n, {k: (_expand(v) if k == "value" else v) for k, v in d.items()})
                             for n, d in state["nodes"])
        graph.add_edges_from(state["edges"])
        self._build(nx.freeze(graph), *state["inputs_output"])

    def shape(self, node: int) -> tuple:
        return self.graph.nodes[node]["shape"]

    def cached(self, key, build: Callable):
        """A derived object built once per program (programs are frozen, so it stays valid)."""
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = build()
        return hit

    # --- readable forms -------------------------------------------------------------------------

    def expression(self, node: int, depth: int = 4) -> str:
        """A readable expression for ``node``, abbreviated below ``depth``."""
        d = self.graph.nodes[node]
        if isinstance(d["prim"], Leaf):       # an input (named) or a constant (a value)
            return d["name"] if "value" not in d else _const_repr(d["value"])
        if depth <= 0:
            return "…"
        args = [self.expression(i, depth - 1) for i in d["inputs"]]
        return d["prim"].show(args, d["params"])

    def __str__(self) -> str:
        g = self.graph
        lines = [f"program  x: {self.shape(self.x_node)}  theta: {self.shape(self.theta_node)}"]
        label = {self.x_node: "x", self.theta_node: "theta"}
        for step in self.steps:
            label[step.node] = f"%{step.node}"
        for n, v in self.consts.items():
            label[n] = _const_repr(v)
        for step in self.steps:
            args = [label[i] for i in step.inputs]
            d = g.nodes[step.node]
            rhs = step.prim.show(args, step.params)
            loc = os.path.basename(d["source"])
            mark = "" if step.prim.smooth else "  [nonsmooth]"
            lines.append(f"  %{step.node:<4} = {rhs:<48} {str(d['shape']):<10} # {loc}{mark}")
        lines.append(f"  return %{self.out_node}")
        return "\n".join(lines)


class _Broadcast(NamedTuple):
    """A constant stored as the array it was broadcast from (a scalar step size stays one
    number in a pickle, not ``p`` copies)."""

    base: np.ndarray
    shape: tuple


def _compact(value: np.ndarray):
    repeated = [i for i, (n, st) in enumerate(zip(value.shape, value.strides)) if n > 1 and not st]
    if not repeated:
        return value
    index = tuple(slice(0, 1) if i in repeated else slice(None) for i in range(value.ndim))
    return _Broadcast(np.ascontiguousarray(value[index]), value.shape)


def _expand(value):
    return np.broadcast_to(value.base, value.shape) if isinstance(value, _Broadcast) else value


def _step(node: int, d: dict, consts: dict) -> Step:
    prim, params = d["prim"], d["params"]
    kwargs = params
    prepared = None
    if prim.prepare is not None:
        prepared = prim.prepare(tuple(consts.get(i) for i in d["inputs"]), **params)
        kwargs = {**params, "prepared": prepared}
    if prim.compile is not None:
        impl = prim.compile(prepared, **params)
    else:
        impl = functools.partial(prim.impl, **kwargs) if kwargs else prim.impl
    return Step(node, prim, d["inputs"], params, impl, kwargs)


def _const_repr(value: np.ndarray) -> str:
    if value.size == 1 or (value.size and not any(value.strides)):  # a broadcast scalar
        return f"{float(value.reshape(-1)[0]):.6g}"
    return f"const{value.shape}"
