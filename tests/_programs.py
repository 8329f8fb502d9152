"""Random DSL programs and their JAX and NumPy twins, generated from one seeded recipe.

A *recipe* is a straight-line list of instructions over values of the state's shape. The same
interpreter (:func:`run`) executes it with three backends:

``CV``
    the ``conservative`` DSL (used inside ``cv.trace``);
``JAX``
    ``jax.numpy`` in float64 (the oracle: ``jax.jacfwd``); imported lazily so that tests which
    do not need JAX never import it;
``_NumpyOps``
    plain NumPy that also records, for every nonsmooth operation, the distance of its arguments
    to the operation's kinks (:meth:`RandomProgram.kink_margin`). Points whose margin is below a
    threshold are "near a kink"; points with margin 0 are exactly on one.

Every program is a locally Lipschitz map on the whole space: ``log`` and ``sqrt`` act on
``1 + v*v`` and ``0.5 + v*v``, divisions are by ``1.5 + cos(w)`` or ``1 + w*w``, soft-threshold
thresholds are ``>= 0`` by construction, clip bounds satisfy ``lo <= hi`` by construction, and
every ``where`` has branches that agree on its boundary.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

import conservative as cv

__all__ = ["RandomProgram", "random_program", "run", "CV", "jax_ops", "ALL_OPS", "NONSMOOTH_OPS",
           "STATE_SHAPES", "PARAM_SHAPES"]

STATE_SHAPES = ((), (3,), (2, 2))
PARAM_SHAPES = ((), (2,))

SMOOTH_UNARY = ("affine", "neg", "exp_sin", "exp_gauss", "log1p", "sqrt1p", "tanh", "sigmoid",
                "sin", "cos", "square", "cube")
BINARY = ("add", "sub", "mul", "div_cos", "div_sq")
STRUCTURAL = {
    (): ("reshape", "stack", "sum_bcast"),
    (3,): ("matmul", "reverse", "roll", "fancy", "reshape", "stack", "sum_bcast"),
    (2, 2): ("matmul", "transpose", "reverse", "roll", "reshape", "stack", "sum_bcast"),
}
NONSMOOTH_OPS = ("relu", "abs", "maximum", "minimum", "max_red", "min_red", "soft", "clip",
                 "where_sq", "where_lin", "where_and")
ALL_OPS = (SMOOTH_UNARY + BINARY + tuple(sorted({o for v in STRUCTURAL.values() for o in v}))
           + NONSMOOTH_OPS + ("tparam", "tdot"))

_N_ARGS = {"add": 2, "sub": 2, "mul": 2, "div_cos": 2, "div_sq": 2, "stack": 2, "maximum": 2,
           "minimum": 2, "max_red": 2, "min_red": 2, "soft": 2, "clip": 2, "where_lin": 3,
           "where_and": 3}


# --- backends -----------------------------------------------------------------------------------

def _cv_where(conds, invert, a, b):
    return cv.where(_condition(conds, invert), a, b)


#: The conservative DSL backend.
CV = SimpleNamespace(
    relu=cv.relu, abs=cv.abs, maximum=cv.maximum, minimum=cv.minimum, max=cv.max, min=cv.min,
    soft_threshold=cv.soft_threshold, clip=cv.clip, exp=cv.exp, log=cv.log, sqrt=cv.sqrt,
    tanh=cv.tanh, sigmoid=cv.sigmoid, sin=cv.sin, cos=cv.cos, square=cv.square, sum=cv.sum,
    stack=cv.stack, concatenate=cv.concatenate, reshape=cv.reshape, where=_cv_where)


def _condition(conds, invert):
    """``(g1 op1 0) & (g2 op2 0) ...``, inverted with ``~`` if asked (any backend)."""
    out = None
    for g, op in conds:
        c = {">": g > 0, ">=": g >= 0, "<": g < 0, "<=": g <= 0}[op]
        out = c if out is None else out & c
    return ~out if invert else out



@functools.lru_cache(maxsize=None)
def jax_ops():
    """The ``jax.numpy`` backend (float64 is switched on here)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def where(conds, invert, a, b):
        return jnp.where(_condition(conds, invert), a, b)

    return SimpleNamespace(
        relu=jax.nn.relu, abs=jnp.abs, maximum=jnp.maximum, minimum=jnp.minimum, max=jnp.max,
        min=jnp.min, exp=jnp.exp, log=jnp.log, sqrt=jnp.sqrt, tanh=jnp.tanh,
        sigmoid=jax.nn.sigmoid, sin=jnp.sin, cos=jnp.cos, square=jnp.square, sum=jnp.sum,
        stack=jnp.stack, concatenate=jnp.concatenate, reshape=jnp.reshape,
        soft_threshold=lambda z, t: jnp.sign(z) * jnp.maximum(jnp.abs(z) - t, 0.0),
        clip=lambda z, lo, hi: jnp.clip(z, lo, hi), where=where)


class _NumpyOps:
    """Plain NumPy; records the distance of every nonsmooth operation's arguments to its kinks."""

    def __init__(self):
        self.margins = []
        self.exp, self.log, self.sqrt, self.tanh = np.exp, np.log, np.sqrt, np.tanh
        self.sin, self.cos, self.square = np.sin, np.cos, np.square
        self.sum, self.stack, self.concatenate, self.reshape = np.sum, np.stack, \
            np.concatenate, np.reshape

    def _note(self, *dists):
        for d in dists:
            d = np.asarray(d, dtype=float)
            if d.size:
                self.margins.append(float(np.min(d)))

    @staticmethod
    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    def relu(self, v):
        self._note(np.abs(v))
        return np.maximum(v, 0.0)

    def abs(self, v):
        self._note(np.abs(v))
        return np.abs(v)

    def maximum(self, a, b):
        self._note(np.abs(a - b))
        return np.maximum(a, b)

    def minimum(self, a, b):
        self._note(np.abs(a - b))
        return np.minimum(a, b)

    def _reduce(self, fn, v, axis):
        v = np.asarray(v)
        w = v.reshape(-1) if axis is None else np.moveaxis(v, axis, 0)
        for i in range(w.shape[0]):         # every pair: a superset of the tree's comparisons
            for j in range(i + 1, w.shape[0]):
                self._note(np.abs(w[i] - w[j]))
        return fn(v, axis=axis)

    def max(self, v, axis=None):
        return self._reduce(np.max, v, axis)

    def min(self, v, axis=None):
        return self._reduce(np.min, v, axis)

    def soft_threshold(self, z, t):
        self._note(np.abs(z - t), np.abs(z + t))
        return np.sign(z) * np.maximum(np.abs(z) - t, 0.0)

    def clip(self, z, lo, hi):
        self._note(np.abs(z - lo), np.abs(z - hi), np.abs(hi - lo))
        return np.minimum(np.maximum(z, lo), hi)

    def where(self, conds, invert, a, b):
        gs = [g for g, _ in conds]
        self._note(*[np.abs(g) for g in gs])
        for i in range(len(gs)):            # ``&`` is a minimum of the g's: its ties too
            for j in range(i + 1, len(gs)):
                self._note(np.abs(gs[i] - gs[j]))
        return np.where(_condition(conds, invert), a, b)


# --- the recipe and its interpreter -------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Instruction:
    op: str
    args: tuple = ()
    k: dict = field(default_factory=dict)     # constants of the instruction


def _params(theta, param_shape):
    return [theta] if param_shape == () else [theta[0], theta[1]]


def _apply(ops, ins: Instruction, vals, theta, p, S):
    op, k = ins.op, ins.k
    a = [vals[i] for i in ins.args]
    # leaves
    if op == "tparam":
        return p[k["i"]] * k["C"]
    if op == "tdot":
        return (theta @ k["w"]) * k["C"]
    # smooth
    if op == "affine":
        return k["c"] * a[0] + k["d"]
    if op == "neg":
        return -a[0]
    if op == "exp_sin":
        return ops.exp(ops.sin(a[0]))
    if op == "exp_gauss":
        return ops.exp(-ops.square(a[0]))
    if op == "log1p":
        return ops.log(1.0 + a[0] * a[0])
    if op == "sqrt1p":
        return ops.sqrt(0.5 + a[0] * a[0])
    if op in ("tanh", "sigmoid", "sin", "cos", "square"):
        return getattr(ops, op)(a[0])
    if op == "cube":
        return (k["c"] * a[0]) ** 3
    if op == "add":
        return a[0] + a[1]
    if op == "sub":
        return a[0] - a[1]
    if op == "mul":
        return a[0] * a[1]
    if op == "div_cos":
        return a[0] / (1.5 + ops.cos(a[1]))
    if op == "div_sq":
        return a[0] / (1.0 + a[1] * a[1])
    # structural
    if op == "matmul":
        return k["W"] @ a[0] if k["left"] else a[0] @ k["W"]
    if op == "transpose":
        return a[0].T
    if op == "reverse":
        return a[0][::-1]
    if op == "roll":
        return ops.concatenate([a[0][1:], a[0][:1]], axis=0)
    if op == "fancy":
        return a[0][np.array([2, 0, 1])]
    if op == "reshape":
        if S == ():
            return ops.reshape(a[0], (1,))[0]
        return ops.reshape(ops.reshape(a[0], (-1,))[::-1], S)
    if op == "stack":
        if S == ():
            return ops.sum(ops.stack([a[0], k["c"] * a[1]]))
        if S == (3,):
            return ops.stack([a[0][1], ops.sum(a[1]), a[0][0] * a[1][2]])
        return ops.stack([a[0][1], k["c"] * a[1][0]], axis=k["axis"])
    if op == "sum_bcast":
        if S == ():
            return a[0] + k["c"] * ops.sum(ops.reshape(a[0], (1,)))
        if S == (3,):
            return a[0] + k["c"] * ops.sum(a[0])
        s = ops.sum(a[0], axis=k["axis"])
        return a[0] + k["c"] * (s if k["axis"] == 0 else s[:, None])
    # nonsmooth
    if op == "relu":
        return ops.relu(a[0])
    if op == "abs":
        return ops.abs(a[0])
    if op == "maximum":
        return ops.maximum(a[0], a[1] + k["c"])
    if op == "minimum":
        return ops.minimum(a[0], a[1] - k["c"])
    if op in ("max_red", "min_red"):
        red = ops.max if op == "max_red" else ops.min
        if S == ():
            return red(ops.stack([a[0], a[1] + k["c"]]))
        if S == (3,):
            return k["c"] * a[1] + red(a[0])
        r = red(a[0], axis=k["axis"])
        return a[1] + (r if k["axis"] == 0 else r[:, None])
    if op == "soft":
        kind = k["t"]
        if kind == "square":
            t = ops.square(p[k["i"]])
        elif kind == "abs":
            t = ops.abs(p[k["i"]])
        elif kind == "const":
            t = k["c"]
        else:                                   # elementwise symbolic threshold
            t = 0.5 * a[1] * a[1]
        return ops.soft_threshold(a[0], t)
    if op == "clip":
        if k["bounds"] == "const":
            return ops.clip(a[0], k["lo"], k["hi"])
        center = p[k["i"]] if k["bounds"] == "param" else a[1]
        s = ops.square(p[k["j"]]) + 0.2 if k["width"] == "square" else ops.abs(p[k["j"]])
        return ops.clip(a[0], center - s, center + s)
    if op == "where_sq":
        if k["cmp"] in (">", ">="):
            return ops.where([(a[0], k["cmp"])], False, a[0] * a[0], 0.0 * a[0])
        return ops.where([(a[0], k["cmp"])], False, 0.0 * a[0], a[0] * a[0])
    if op == "where_lin":
        g = a[0] - k["c"]
        if k["cmp"] in (">", ">="):
            return ops.where([(g, k["cmp"])], False, a[2] + g * a[1], a[2])
        return ops.where([(g, k["cmp"])], False, a[2], a[2] + g * a[1])
    if op == "where_and":
        g1, g2 = a[0] - k["c1"], a[1] - k["c2"]
        conds = [(g1, k["cmp1"]), (g2, k["cmp2"])]
        bump = a[2] + k["c"] * g1 * g2
        if k["invert"]:
            return ops.where(conds, True, a[2], bump)
        return ops.where(conds, False, bump, a[2])
    raise ValueError(f"unknown instruction {op!r}")


def run(prog: "RandomProgram", ops, x, theta):
    """Execute ``prog``'s recipe with the backend ``ops``."""
    S = prog.state_shape
    p = _params(theta, prog.param_shape)
    vals = [x]
    for ins in prog.recipe:
        vals.append(_apply(ops, ins, vals, theta, p, S))
    i, j, c = prog.output
    return vals[i] + c * vals[j]


# --- the program object -------------------------------------------------------------------------

@dataclass(eq=False)
class RandomProgram:
    seed: int
    state_shape: tuple
    param_shape: tuple
    recipe: list
    output: tuple

    @property
    def n(self) -> int:
        return int(np.prod(self.state_shape, dtype=np.int64))

    @property
    def m(self) -> int:
        return int(np.prod(self.param_shape, dtype=np.int64))

    @property
    def ops(self) -> set:
        return {ins.op for ins in self.recipe}

    @property
    def nonsmooth_ops(self) -> set:
        return self.ops & set(NONSMOOTH_OPS)

    def __repr__(self) -> str:
        lines = [f"RandomProgram(seed={self.seed}, state {self.state_shape}, "
                 f"params {self.param_shape})"]
        for i, ins in enumerate(self.recipe, start=1):
            consts = {key: (np.round(v, 3).tolist() if isinstance(v, np.ndarray) else v)
                      for key, v in ins.k.items()}
            lines.append(f"  v{i} = {ins.op}{tuple(f'v{j}' for j in ins.args)} {consts}")
        i, j, c = self.output
        lines.append(f"  out = v{i} + {c:.3g} * v{j}")
        return "\n".join(lines)

    # --- the three twins ---
    def cv_fn(self, x, theta):
        return run(self, CV, x, theta)

    @functools.cached_property
    def map(self) -> cv.Map:
        return cv.trace(self.cv_fn, self.state_shape, self.param_shape)

    def jax_fn(self, x, theta):
        return run(self, jax_ops(), x, theta)

    def numpy_value(self, x, theta):
        ops = _NumpyOps()
        with np.errstate(all="ignore"):
            return np.asarray(run(self, ops, np.asarray(x, float), np.asarray(theta, float)),
                              dtype=float), ops.margins

    def kink_margin(self, x, theta) -> float:
        """Smallest distance of a nonsmooth operation's arguments to its kinks (inf if none)."""
        _, margins = self.numpy_value(x, theta)
        return min(margins, default=np.inf)

    # --- points ---
    def random_point(self, rng, scale=1.0):
        return (scale * rng.standard_normal(self.state_shape),
                scale * rng.standard_normal(self.param_shape))

    def smooth_point(self, rng, margin=1e-3, tries=500):
        """A random point whose kink margin exceeds ``margin`` and whose value is moderate."""
        for _ in range(tries):
            x, theta = self.random_point(rng)
            value, margins = self.numpy_value(x, theta)
            if np.all(np.isfinite(value)) and np.max(np.abs(value), initial=0) < 1e4 \
                    and min(margins, default=np.inf) > margin:
                return x, theta
        return None

    def grid_point(self, rng):
        """A point on a coarse grid, where kinks of the program are often exactly active."""
        if rng.random() < 0.25:
            return np.zeros(self.state_shape), np.zeros(self.param_shape)
        x = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0], size=self.state_shape)
        theta = rng.choice([-1.0, 0.0, 0.0, 0.5, 1.0], size=self.param_shape)
        return np.asarray(x, float), np.asarray(theta, float)


class _Draw:
    """Random constants; with ``grid=True`` they are dyadic (multiples of 1/2 or 1/4), so that
    grid points hit kinks exactly (ties and zeros are computed without rounding)."""

    def __init__(self, rng, grid: bool):
        self.rng, self.grid = rng, grid

    def uniform(self, lo, hi):
        if self.grid:
            return float(self.rng.choice(np.arange(np.ceil(lo * 4), np.floor(hi * 4) + 1) / 4))
        return float(self.rng.uniform(lo, hi))

    def array(self, S):
        """Constants of shape S, bounded away from zero."""
        mag = self.rng.choice([0.5, 1.0], size=S) if self.grid else \
            self.rng.uniform(0.2, 1.0, size=S)
        return np.asarray(mag * self.rng.choice([-1.0, 1.0], size=S), dtype=float)

    def offset(self):
        """A non-zero offset (keeps ``maximum(a, b + c)`` from tying identically)."""
        mag = self.rng.choice([0.5, 1.0]) if self.grid else self.rng.uniform(0.1, 0.8)
        return float(mag * self.rng.choice([-1.0, 1.0]))

    def matrix(self, k):
        if self.grid:
            return self.rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=(k, k))
        return self.rng.standard_normal((k, k)) / np.sqrt(k)


def random_program(seed: int, *, state_shape=None, param_shape=None, n_ops=None,
                   nonsmooth: bool = True, grid: bool = False) -> RandomProgram:
    """A seeded random program (the same arguments always give the same recipe).

    With ``nonsmooth=True`` at least one nonsmooth instruction is included. With ``grid=True``
    the constants are dyadic, so that :meth:`RandomProgram.grid_point` often lands exactly on
    kinks (ties of maximum, zeros of relu, z == t of soft-threshold, ...).
    """
    rng = np.random.default_rng(seed)
    draw = _Draw(rng, grid)
    S = tuple(state_shape) if state_shape is not None else \
        STATE_SHAPES[rng.integers(len(STATE_SHAPES))]
    P = tuple(param_shape) if param_shape is not None else \
        PARAM_SHAPES[rng.integers(len(PARAM_SHAPES))]
    m = int(np.prod(P, dtype=np.int64))
    n_ops = int(rng.integers(3, 8)) if n_ops is None else int(n_ops)

    recipe: list[Instruction] = []
    # leaves depending on theta (index 0 is x)
    recipe.append(Instruction("tparam", (), {"i": int(rng.integers(m)), "C": draw.array(S)}))
    if P == (2,) and rng.random() < 0.5:
        recipe.append(Instruction("tdot", (), {"w": draw.array((2,)),
                                               "C": draw.array(S)}))

    structural = STRUCTURAL[S]
    categories = ["smooth", "binary", "structural", "nonsmooth"]
    forced = int(rng.integers(n_ops)) if nonsmooth else -1
    for step in range(n_ops):
        n_vals = len(recipe) + 1
        cat = "nonsmooth" if step == forced else \
            categories[rng.choice(4, p=[0.3, 0.2, 0.2, 0.3])]
        op = {"smooth": SMOOTH_UNARY, "binary": BINARY, "structural": structural,
              "nonsmooth": NONSMOOTH_OPS}[cat]
        op = op[rng.integers(len(op))]

        def pick():
            # favour recent values so that programs are deep, not only wide
            back = int(min(rng.geometric(0.45) - 1, n_vals - 1))
            return n_vals - 1 - back

        args = tuple(pick() for _ in range(_N_ARGS.get(op, 1)))
        k: dict = {}
        if op == "affine":
            k = {"c": draw.offset() * 2.0, "d": draw.array(S)}
        elif op == "cube":
            k = {"c": draw.uniform(0.4, 0.9)}
        elif op == "matmul":
            if S == (3,):
                k = {"W": draw.matrix(3), "left": True}
            else:
                k = {"W": draw.matrix(2),
                     "left": bool(rng.random() < 0.5)}
        elif op in ("stack", "sum_bcast"):
            k = {"c": draw.offset(), "axis": int(rng.integers(2))}
        elif op in ("maximum", "minimum"):
            k = {"c": draw.offset()}
        elif op in ("max_red", "min_red"):
            k = {"c": draw.offset(), "axis": int(rng.integers(2))}
        elif op == "soft":
            kinds = ["square", "abs", "const", "value"]
            k = {"t": kinds[rng.integers(4)], "i": int(rng.integers(m)),
                 "c": draw.uniform(0.0, 0.7)}
        elif op == "clip":
            lo = draw.uniform(-1.0, 0.3)
            k = {"bounds": ["const", "param", "value"][rng.integers(3)], "lo": lo,
                 "hi": lo + draw.uniform(0.2, 1.5), "i": int(rng.integers(m)),
                 "j": int(rng.integers(m)), "width": ["square", "abs"][rng.integers(2)]}
        elif op == "where_sq":
            k = {"cmp": [">", ">=", "<", "<="][rng.integers(4)]}
        elif op == "where_lin":
            k = {"c": draw.uniform(-0.5, 0.5), "cmp": [">", ">=", "<", "<="][rng.integers(4)]}
        elif op == "where_and":
            k = {"c1": draw.uniform(-0.5, 0.5), "c2": draw.uniform(-0.5, 0.5),
                 "cmp1": [">", ">="][rng.integers(2)], "cmp2": [">", ">="][rng.integers(2)],
                 "c": draw.offset(), "invert": bool(rng.random() < 0.5)}
            k["cmp2"] = k["cmp1"]   # cv.where refuses mixing strict and non-strict comparisons
        recipe.append(Instruction(op, args, k))

    n_vals = len(recipe) + 1
    other = int(rng.integers(n_vals - 1))       # any earlier value, x included
    return RandomProgram(seed, S, P, recipe, (n_vals - 1, other, draw.offset()))
