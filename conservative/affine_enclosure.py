"""Rigorous error bounds through the affine part of ``F(x) = P(L x + c, tau)``.

Many iteration maps are a piecewise-affine elementwise primitive ``P`` (soft-threshold, relu,
clip, ...) applied to a map affine in ``x``: forward-backward for the Lasso, projected
gradient, a ReLU fixed-point layer ``relu(W x + U theta + b)``. Wherever every element of P
stays on one piece, F is affine on a box and its Jacobian there is ``diag(s) L`` with the
pieces' constant slopes ``s``. The fixed-point enclosure (:mod:`conservative.fixed_point_set`)
then needs three things, each far cheaper than a sweep of interval arithmetic through the
program (for the Lasso with p = 2000 features and 16 active: one product with the design
matrix instead of about ten):

* the value ``u(x) = L x + c`` at the computed point, as floats with a rigorous elementwise
  bound on their error (:meth:`AffinePlan.value`);
* a bound on ``|L| d`` for a box ``x + [-d, d]`` (:meth:`AffinePlan.spread`; u is affine, so
  ``u(X) = u(x) + L (X - x)`` exactly);
* the entries ``L[rows, cols]`` with rigorous error bounds, computed on the demanded rows only
  (:meth:`AffinePlan.columns`), and a bound on the rows' l1 norms (:meth:`AffinePlan.row_l1`).

Every bound follows from the standard a-priori rounding model (round to nearest; Higham,
*Accuracy and Stability of Numerical Algorithms*, 2002, section 3.1): a float operation's
result is within ``u |result| + eta/2`` of the exact one (``u = 2**-53``, ``eta = 2**-1074``),
a product of ``k`` terms computed in any order within ``gamma_k |C| |a|`` (plus ``k eta``
where products underflow); bound arithmetic on non-negative numbers is rounded up
(``next_up`` after each operation, or the factors of :func:`conservative.interval.matmul`).
Large products bound ``|C| w`` by Cauchy-Schwarz, ``||C_i||_2 ||w||_2``, with the rows' norms
bounded once per constant: loose by up to ``sqrt(k)`` on a rounding error, and O(m + k)
instead of a second product.

An :class:`AffinePlan` recognises the structure once per program (:func:`affine_plan`);
nodes that do not depend on ``x`` are evaluated with their primitives' own interval rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import interval as iv
from .interval._rounding import ETA, sum_bound

__all__ = ["AffinePlan", "Approx", "affine_plan"]

#: Rules of the nodes that may lie between x and the input of the elementwise primitive.
_LINEAR = ("matmul", "add", "sub", "neg", "mul", "div")
#: Constant matrices at least this large bound ``|C| w`` by Cauchy-Schwarz (one product less).
CAUCHY_SCHWARZ_SIZE = 1 << 16
_U = 2.0 ** -53


@dataclass(frozen=True)
class Approx:
    """Floats ``v`` and non-negative bounds ``e`` with ``|exact - v| <= e`` elementwise."""

    v: np.ndarray
    e: np.ndarray

    def interval(self) -> iv.Interval:
        """``[v - e, v + e]``, rounded outward."""
        return iv.Interval._new(*outward(self.v - self.e, self.v + self.e))

    @classmethod
    def of(cls, x: iv.Interval) -> "Approx":
        """Midpoint and radius of an interval: ``[v - e, v + e]`` holds it (a point:
        ``e = 0``)."""
        lo, hi = x.lo, x.hi
        if lo is hi:
            return cls(lo, 0.0)
        if lo.ndim == 0:                      # in Python floats: the same operations
            lo, hi = float(lo), float(hi)
            v = 0.5 * lo + 0.5 * hi
            return cls(v, up(max(hi - v, v - lo)))
        v = 0.5 * lo + 0.5 * hi               # in [lo, hi]: both differences are >= 0
        return cls(v, up(np.maximum(hi - v, v - lo)))


#: ``up(t) = t (1 + 2**-51) + eta`` is at least the exact result of the correctly rounded
#: operation that returned ``t >= 0`` (within ``t 2**-53``, or eta/2 below the normal range):
#: the product adds at least ``t 2**-52`` after its own rounding. Two multiplications and an
#: addition, where ``np.nextafter`` costs ten times as much per element.
_UP = 1.0 + 2.0 ** -51


def up(t):
    """An upper bound on the exact value of a non-negative float result ``t`` (above)."""
    return t * _UP + ETA


def up_add(a, b):
    return up(a + b)


def _plus(a, b):
    """``a + b`` rounded up, exact (no operation) where either is the scalar bound 0.0."""
    if np.ndim(a) == 0 and a == 0.0:
        return b
    if np.ndim(b) == 0 and b == 0.0:
        return a
    return up_add(a, b)


def up_mul(a, b):
    return up(a * b)


def outward(lo, hi):
    """``lo - c, hi + c`` with ``c = |.| 2**-51 + eta``, rounded to nearest: a lower bound on
    every real within half an ulp of ``lo`` and an upper one for ``hi`` (the floats computed
    for exact values), without ``np.nextafter``."""
    return lo - (np.abs(lo) * 2.0 ** -51 + ETA), hi + (np.abs(hi) * 2.0 ** -51 + ETA)


def norm_up(w: np.ndarray, axis: int = 0) -> np.ndarray:
    """An upper bound on the 2-norm of the non-negative ``w`` along ``axis`` (scaled by a power
    of two first, so that no square overflows and tiny ones only add ``k eta``)."""
    if w.ndim == 1:
        return _vector_norm_up(w)
    top = np.max(w, axis=axis, keepdims=True, initial=0.0)
    if not np.all(np.isfinite(top)):
        return np.full(np.squeeze(top, axis).shape, np.inf)
    _, expo = np.frexp(top)
    if np.all(expo >= -1000):
        scaled = w * np.ldexp(1.0, -expo)     # a power of two: the scaled entries in [0, 1)
    else:                                     # 2**1070 overflows: scale each entry instead
        scaled = np.ldexp(w, -expo)
    k = w.shape[axis]
    squares = np.sum(scaled * scaled, axis=axis)
    # each scaled entry lost at most eta/2 (underflow), each square at most 2 eta more, the
    # sum of k non-negative terms at most gamma_k / (1 - gamma_k) of itself, and the largest
    # square is at least 1/4
    bound = up(up((1.0 + sum_bound(k)) * squares) + 4.0 * (k + 1) * ETA)
    out = up(up(np.sqrt(bound)) * np.ldexp(1.0, np.squeeze(expo, axis)))    # may be subnormal
    return np.where(np.squeeze(top, axis) == 0, 0.0, out)


def midrad_product(am, ar, bm, br):
    """``(c, r)`` with ``|A b - c| <= r`` for every ``A`` within ``ar`` of ``am`` and ``b``
    within ``br`` of ``bm`` (``ar``, ``br`` None for exact operands): ``c = am @ bm`` and
    ``r = |am| (gamma_k |bm| + br) + ar (|bm| + br)`` (Rump's midpoint-radius product), each
    product of non-negative terms bounded by :func:`_product_bound`."""
    k = am.shape[-1]
    c = am @ bm
    abs_bm = np.abs(bm)
    w = up(sum_bound(k) * abs_bm)                   # |am| (gamma_k |bm| + br): one product
    if br is not None:
        w = up_add(w, br)
    r = _product_bound(np.abs(am), w, k)
    if ar is not None:
        r = up_add(r, _product_bound(ar, abs_bm if br is None else up_add(abs_bm, br), k))
    return c, r


def rounding(v):
    """A bound on the rounding error of the float operation that returned ``v``
    (``u |v| + eta/2``)."""
    return up(_U * np.abs(v))


def _vector_norm_up(w: np.ndarray) -> float:
    """:func:`norm_up` of a vector: without scaling when its largest entry is within
    ``2**+-400`` (no square overflows; each one that underflows loses at most eta, against a
    sum of at least ``2**-800``), in scalars."""
    k = w.shape[0]
    top = float(np.max(w, initial=0.0))
    if top == 0.0:
        return 0.0
    if not 2.0 ** -400 <= top <= 2.0 ** 400:
        return float(norm_up(w[:, None], axis=0)[0])
    squares = float(w @ w)
    bound = up(up((1.0 + sum_bound(k)) * squares) + 4.0 * (k + 1) * ETA)
    return up(math.sqrt(bound))


def _product_bound(abs_c: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """An upper bound on ``|C| w`` (``w >= 0``) from the float product ``abs_c @ w``: the exact
    sum of ``k`` non-negative products is at most ``(fl + k eta) / (1 - gamma_k)``."""
    c2 = 1.0 + float(k + 2) * 2.0 ** -51
    return up(up(c2 * (abs_c @ w)) + 8.0 * (k + 1) * ETA)


@dataclass(eq=False)
class _Matrix:
    """A constant matrix of a product and the data its bounds use (made on first use)."""

    C: np.ndarray
    _abs: np.ndarray | None = field(default=None, repr=False)
    _norms: np.ndarray | None = field(default=None, repr=False)
    _sums: np.ndarray | None = field(default=None, repr=False)

    def abs_rows(self, rows=None) -> np.ndarray:
        """``|C|`` (kept, for the small matrices whose products use it), or its rows ``rows``."""
        if rows is not None:
            return np.abs(self.C[rows])
        if self._abs is None:
            self._abs = np.abs(self.C)
        return self._abs

    @property
    def norms(self) -> np.ndarray:
        """Upper bounds on the rows' 2-norms."""
        if self._norms is None:
            C, k = self.C, self.C.shape[1]
            squares = np.einsum("ij,ij->i", C, C)
            if np.isfinite(squares).all() and float(squares.max(initial=1.0)) >= 2.0 ** -800:
                # nothing overflowed (a finite sum of non-negative terms); each square that
                # underflows loses at most eta/2, covered by the k eta added (any order)
                bound = up(up((1.0 + sum_bound(k)) * squares) + 4.0 * (k + 1) * ETA)
                self._norms = up(np.sqrt(bound))
            else:                   # huge, tiny or non-finite entries: scaled per row
                self._norms = norm_up(np.abs(C), axis=1)
        return self._norms

    @property
    def sums(self) -> np.ndarray:
        """Upper bounds on the rows' l1 norms, ``|C| 1``."""
        if self._sums is None:
            k = self.C.shape[1]
            self._sums = _product_bound(self.abs_rows() if not self.large else np.abs(self.C),
                                        np.ones(k), k)
        return self._sums

    @property
    def large(self) -> bool:
        return self.C.size >= CAUCHY_SCHWARZ_SIZE

    def bound(self, w: np.ndarray, rows=None) -> np.ndarray:
        """An upper bound on ``(|C| w)[rows]`` for a non-negative vector ``w``."""
        k = self.C.shape[1]
        if self.large:
            norms = self.norms if rows is None else self.norms[rows]
            return up_mul(norms, norm_up(w))
        return _product_bound(self.abs_rows(rows), w, k)


@dataclass(frozen=True, eq=False)
class AffinePlan:
    """``F(x) = P(u, *rest)`` with ``u`` affine in ``x`` (see the module docstring).

    Attributes
    ----------
    prim, params
        The elementwise piecewise-affine primitive at the output and its parameters.
    u_node : int
        Its first input, affine in x; its other inputs do not depend on x.
    linear : list of Step
        The steps from x to ``u_node`` (each linear in its x-dependent inputs), in order.
    free : list of Step
        The steps that do not depend on x, in order (evaluated in interval arithmetic).
    partials : ndarray
        ``partials[p, i]``: the partial of piece p with respect to input i.
    unit_partials : bool
        Whether every partial is 0 or +-1 (products with them are exact).
    constant_values : ndarray
        ``constant_values[p]``: the value of piece p where it is constant in every input (all
        partials 0 and its offset declared, :attr:`~conservative.primitives.Nonsmooth.
        piece_offsets`), NaN otherwise.
    """

    program: object = field(repr=False)
    prim: object
    params: dict
    out_inputs: tuple
    linear: list = field(repr=False)
    free: list = field(repr=False)
    matrices: dict = field(repr=False)
    xdep: frozenset = field(repr=False)
    need_all: dict = field(repr=False)
    constant_values: np.ndarray
    partials: np.ndarray = field(repr=False)
    unit_partials: bool = False
    #: the most recent result derived from :meth:`columns` (one entry, by :meth:`columns_key`)
    recent: dict = field(default_factory=dict, repr=False)

    @property
    def u_node(self) -> int:
        return self.out_inputs[0]

    @property
    def slopes(self) -> np.ndarray:
        """``slopes[p]``: the constant partial of piece p with respect to u."""
        return self.partials[:, 0]

    def columns_key(self, free: dict, rows: np.ndarray, wide: np.ndarray) -> tuple:
        """Everything :meth:`columns` ``(free, wide, rows)`` depends on: the rows, the
        columns and the free factors of the products and quotients (a constant's interval by
        identity: it is built once per program; any other by its endpoints)."""
        from .enclose import interval_consts
        consts = interval_consts(self.program)
        key = [rows.tobytes(), wide.tobytes()]
        for step in self.linear:
            name, ins = step.prim.name, step.inputs
            if name not in ("mul", "div"):
                continue
            node = ins[1] if name == "div" else (ins[0] if ins[1] == self._live(step) else ins[1])
            f = free[node]
            key.append(("const", id(f)) if consts.get(node) is f else
                       (f.lo.tobytes(), f.hi.tobytes(), f.lo.shape))
        return tuple(key)

    # --- nodes that do not depend on x ---------------------------------------------------------

    def free_values(self, theta_box: iv.Interval) -> dict:
        """Interval values of every node that does not depend on x (theta a point or a box)."""
        from .enclose import interval_consts
        env = dict(interval_consts(self.program))
        env[self.program.theta_node] = theta_box
        for step in self.free:
            env[step.node] = step.prim.interval(*(env[i] for i in step.inputs), **step.params)
        return env

    def out_args(self, free: dict, u: iv.Interval) -> list:
        return [u] + [free[i] for i in self.out_inputs[1:]]

    # --- the three computations -----------------------------------------------------------------

    def value(self, free: dict, x: np.ndarray, floats: dict | None = None) -> Approx:
        """``u(x)`` at the point x with its error bound.

        ``floats``: node values of a float evaluation at (x, theta) (batched, as
        :func:`conservative.evaluate.evaluate` keeps them). A product whose input there equals
        this computation's, bit for bit, takes its value from it: any float computation of
        ``C a`` is within the same bound (a sum of at most k products in any order)."""
        vals = {self.program.x_node: Approx(x, 0.0)}
        for step in self.linear:
            vals[step.node] = self._value_rule(step, vals, free, floats)
        out = vals[self.u_node]
        return out if np.ndim(out.e) else Approx(out.v, np.full(np.shape(out.v), out.e))

    @staticmethod
    def _evaluated(floats, node, a_node, a_v, shape):
        """The float value of ``node`` in ``floats`` if its input ``a_node`` there is ``a_v``."""
        if floats is None or node not in floats or a_node not in floats:
            return None
        got, given_a = np.asarray(floats[node]), np.asarray(floats[a_node])
        if got.shape != (1,) + shape or given_a.shape != (1,) + a_v.shape or \
                got.dtype != np.float64 or not np.array_equal(given_a[0], a_v):
            return None
        return got[0]

    def _operand(self, node, vals, free) -> Approx:
        return vals[node] if node in vals else Approx.of(free[node])

    def _value_rule(self, step, vals, free, floats=None) -> Approx:
        name, ins = step.prim.name, step.inputs
        if name == "matmul":
            a = vals[ins[1]]
            mat = self.matrices[step.node]
            k = mat.C.shape[1]
            v = self._evaluated(floats, step.node, ins[1], a.v, (mat.C.shape[0],))
            if v is None:
                nz = np.flatnonzero(a.v)
                # a sparse vector (the Lasso's iterate): the product over its non-zero entries
                # is a sum of fewer terms, within gamma_k as well
                v = mat.C[:, nz] @ a.v[nz] if 4 * len(nz) < k else mat.C @ a.v
            w = up(sum_bound(k) * np.abs(a.v))                            # gamma_k |a|
            if np.ndim(a.e) or a.e != 0.0:
                w = up_add(a.e, w)
            return Approx(v, up_add(mat.bound(w), 8.0 * (k + 1) * ETA))
        if name == "neg":
            a = vals[ins[0]]
            return Approx(-a.v, a.e)
        if name in ("add", "sub"):
            a, b = (self._operand(i, vals, free) for i in ins)
            v = a.v + b.v if name == "add" else a.v - b.v
            return Approx(v, up_add(_plus(a.e, b.e), rounding(v)))
        a, f = vals[self._live(step)], Approx.of(self._free_factor(step, free))
        v = a.v * f.v
        # |a f - a~ f~| <= e_a (|f~| + e_f) + |a~| e_f, plus the product's rounding
        if np.ndim(f.e) == 0 and f.e == 0.0:                          # an exact factor
            e = up_mul(a.e, np.abs(f.v))
        else:
            e = up_add(up_mul(a.e, up_add(np.abs(f.v), f.e)), up_mul(np.abs(a.v), f.e))
        return Approx(v, up_add(e, rounding(v)))

    def _live(self, step) -> int:
        """The x-dependent input of a ``mul`` or ``div``."""
        ins = step.inputs
        return ins[1] if step.prim.name == "mul" and ins[0] not in self.xdep else ins[0]

    def _free_factor(self, step, free) -> iv.Interval:
        """The other operand of a ``mul``; for ``div``, ``1 / divisor`` (UndecidedError where
        the divisor may be 0)."""
        ins = step.inputs
        if step.prim.name == "div":
            return iv.divide(1.0, free[ins[1]])
        return free[ins[0] if ins[1] == self._live(step) else ins[1]]

    def spread(self, free: dict, d: np.ndarray) -> np.ndarray:
        """A bound on ``|L (X - x)|`` for every ``X - x`` in ``[-d, d]`` (d >= 0, x's shape)."""
        mags = {self.program.x_node: d}
        for step in self.linear:
            name, ins = step.prim.name, step.inputs
            if name == "matmul":
                mags[step.node] = self.matrices[step.node].bound(mags[ins[1]])
            elif name == "neg":
                mags[step.node] = mags[ins[0]]
            elif name in ("add", "sub"):
                parts = [mags[i] for i in ins if i in self.xdep]
                mags[step.node] = parts[0] if len(parts) == 1 else up_add(*parts)
            else:
                mags[step.node] = up_mul(mags[self._live(step)],
                                         self._free_factor(step, free).mag)
        return mags[self.u_node]

    def row_l1(self, free: dict, rows: np.ndarray) -> np.ndarray:
        """Upper bounds on the l1 norms of the rows ``rows`` of L (``|L| 1``)."""
        x = self.program.x_node
        mags = {x: np.ones(self.program.shape(x)[0] if self.need_all[x] else len(rows))}
        for step in self.linear:
            name, ins = step.prim.name, step.inputs
            sub = None if self.need_all[step.node] else rows
            if name == "matmul":
                mat, b = self.matrices[step.node], ins[1]
                if b == self.program.x_node:
                    got = mat.sums if sub is None else mat.sums[sub]
                else:
                    got = _product_bound(mat.abs_rows(sub), mags[b], mat.C.shape[1])
                mags[step.node] = got
                continue
            # elementwise: the inputs' magnitudes on this node's rows
            pick = [self._rows_of(mags[i], i, sub) for i in ins if i in self.xdep]
            if name == "neg":
                mags[step.node] = pick[0]
            elif name in ("add", "sub"):
                mags[step.node] = pick[0] if len(pick) == 1 else up_add(*pick)
            else:
                f = self._free_factor(step, free).mag
                f = f if np.ndim(f) == 0 or sub is None else np.broadcast_to(
                    f, self.program.shape(step.node))[sub]
                mags[step.node] = up_mul(pick[0], f)
        return mags[self.u_node]

    def _rows_of(self, arr, node, sub):
        """The entries ``sub`` of a node's array stored whole (or already on ``sub``)."""
        if sub is None or not self.need_all[node]:
            return arr
        return arr[sub]

    def columns(self, free: dict, cols: np.ndarray, rows: np.ndarray) -> Approx:
        """``L[rows][:, cols]`` with its error bound: tangents along the unit vectors ``cols``,
        on the rows that ``rows`` of u need only (an exact tangent has the bound 0.0)."""
        n = self.program.shape(self.program.x_node)[0]
        w = len(cols)
        x = self.program.x_node
        unit = np.zeros((n, w))
        unit[cols, np.arange(w)] = 1.0
        tans = {x: Approx(unit if self.need_all[x] else unit[rows], 0.0)}
        for step in self.linear:
            if step.prim.name == "matmul" and step.inputs[1] == x:
                # C times unit vectors: the columns of C, exactly (one product with 1 each)
                C = self.matrices[step.node].C
                v = C[:, cols] if self.need_all[step.node] else C[np.ix_(rows, cols)]
                tans[step.node] = Approx(v, 0.0)
                continue
            tans[step.node] = self._tangent_rule(step, tans, free, rows)
        out = tans[self.u_node]
        return out if np.ndim(out.e) else Approx(out.v, np.zeros(out.v.shape))

    def _tangent_rule(self, step, tans, free, rows) -> Approx:
        name, ins = step.prim.name, step.inputs
        sub = None if self.need_all[step.node] else rows
        if name == "matmul":
            t = tans[ins[1]]                        # needed whole
            mat = self.matrices[step.node]
            exact = np.ndim(t.e) == 0
            live = t.v.any(axis=1) if exact else t.v.any(axis=1) | t.e.any(axis=1)
            k = int(np.count_nonzero(live))
            if k == 0:
                v = np.zeros((mat.C.shape[0] if sub is None else len(sub), t.v.shape[1]))
                return Approx(v, 0.0)
            if k == len(live):                      # a full tangent: no gather of columns
                C = mat.C if sub is None else mat.C[sub]
                tv, te = t.v, t.e
            else:
                nz = np.flatnonzero(live)
                C = mat.C[:, nz] if sub is None else mat.C[np.ix_(sub, nz)]
                tv, te = t.v[nz], (t.e if exact else t.e[nz])
            v = C @ tv
            w = up(sum_bound(k) * np.abs(tv))
            if not exact:
                w = up_add(te, w)
            return Approx(v, up_add(_product_bound(np.abs(C), w, k), 8.0 * (k + 1) * ETA))
        picked = {i: self._tangent_rows(tans[i], i, sub) for i in ins if i in self.xdep}
        if name == "neg":
            a = picked[ins[0]]
            return Approx(-a.v, a.e)
        if name in ("add", "sub"):
            if len(picked) == 1:
                (i, a), = picked.items()
                return a if name == "add" or i == ins[0] else Approx(-a.v, a.e)
            a, b = picked[ins[0]], picked[ins[1]]
            v = a.v + b.v if name == "add" else a.v - b.v
            return Approx(v, up_add(_plus(a.e, b.e), rounding(v)))
        a = picked[self._live(step)]
        f = Approx.of(self._free_factor(step, free))
        if np.ndim(f.v):
            shape = self.program.shape(step.node)
            fv, fe = f.v, f.e
            if np.shape(fv) != shape:
                fv = np.broadcast_to(fv, shape)
            if np.ndim(fe) and np.shape(fe) != shape:
                fe = np.broadcast_to(fe, shape)
            if sub is not None:
                fv, fe = fv[sub], (fe[sub] if np.ndim(fe) else fe)
            f = Approx(fv[:, None], fe[:, None] if np.ndim(fe) else fe)
        v = a.v * f.v
        if np.ndim(f.e) == 0 and f.e == 0.0:        # an exact factor
            e = up_mul(a.e, np.abs(f.v)) if np.ndim(a.e) or a.e != 0.0 else 0.0
        else:
            e = up_add(up_mul(a.e, up_add(np.abs(f.v), f.e)), up_mul(np.abs(a.v), f.e))
        return Approx(v, up_add(e, rounding(v)))

    def _tangent_rows(self, t: Approx, node, sub) -> Approx:
        if sub is None or not self.need_all[node]:
            return t
        return Approx(t.v[sub], t.e[sub] if np.ndim(t.e) else t.e)


def affine_plan(program) -> AffinePlan | None:
    """The plan of a program of the form ``P(u(x), ...)`` (module docstring), or None."""
    return program.cached("affine_plan", lambda: _recognise(program) or False) or None


def _recognise(program) -> AffinePlan | None:
    from .primitives import Nonsmooth
    g = program.graph
    x = program.x_node
    shape = program.shape(x)
    if len(shape) != 1:
        return None
    out = next((s for s in program.steps if s.node == program.out_node), None)
    if out is None or not isinstance(out.prim, Nonsmooth) or out.prim.branches is not None:
        return None
    if program.shape(out.node) != shape or any(np.ndim(v) for v in out.params.values()):
        return None
    xdep = {x}
    for step in program.steps:
        if any(i in xdep for i in step.inputs):
            xdep.add(step.node)
    u = out.inputs[0]
    if u not in xdep or any(i in xdep for i in out.inputs[1:]) or program.shape(u) != shape:
        return None
    linear, free, matrices = [], [], {}
    for step in program.steps:
        if step.node == out.node:
            continue
        if step.node not in xdep:
            if not step.prim.smooth or step.prim.interval is None:
                return None                 # a kink in theta alone: the general test
            free.append(step)
            continue
        if not _is_linear(step, xdep, program):
            return None
        if step.prim.name == "matmul":
            # (a NaN or infinite entry makes every bound through C non-finite: the test
            # refuses then, without a pass over C here)
            matrices[step.node] = _Matrix(np.asarray(program.consts[step.inputs[0]],
                                                     dtype=float))
        linear.append(step)
    if not all(len(g.nodes[n]["shape"]) == 1 for n in xdep):
        return None
    need_all = _row_demand(program, linear, u, xdep)
    partials = np.array(out.prim.piece_partials, dtype=float)
    offsets = out.prim.piece_offsets
    constant = np.array([float(offsets[i]) if offsets is not None and not any(map(float, p))
                         else np.nan for i, p in enumerate(out.prim.piece_partials)])
    return AffinePlan(program, out.prim, dict(out.params), tuple(out.inputs), linear, free,
                      matrices, frozenset(xdep), need_all, constant, partials,
                      bool(np.all(np.isin(partials, (-1.0, 0.0, 1.0)))))


def _is_linear(step, xdep, program) -> bool:
    name, ins = step.prim.name, step.inputs
    if name not in _LINEAR or step.params or len(set(ins)) != len(ins):
        return False                    # (x + x: one tangent per input, below)
    shape = program.shape(step.node)
    live = [i in xdep for i in ins]
    if name == "matmul":
        return (len(ins) == 2 and not live[0] and live[1] and ins[0] in program.consts
                and np.ndim(program.consts[ins[0]]) == 2)
    if name == "neg":
        return True
    if name in ("add", "sub"):
        # an x-dependent operand has the node's shape (no broadcasting of tangents)
        return all(program.shape(i) == shape for i, a in zip(ins, live) if a)
    if name == "mul":
        return sum(live) == 1 and program.shape(ins[live.index(True)]) == shape
    return live == [True, False] and program.shape(ins[0]) == shape          # div


def _row_demand(program, linear, u, xdep) -> dict:
    """node -> True when every row of the node's tangent is needed for some rows of u, False
    when only the rows demanded of u (elementwise nodes pass rows through; a product needs
    its vector operand whole)."""
    need = {u: False}
    for step in reversed(linear):
        mine = need.get(step.node, False)
        for i in step.inputs:
            if i in xdep:
                need[i] = need.get(i, False) or mine or step.prim.name == "matmul"
    need.setdefault(program.x_node, False)
    for step in linear:
        need.setdefault(step.node, False)
    return need
