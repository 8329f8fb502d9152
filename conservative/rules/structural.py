"""Structural primitives: leaves, shape changes, indexing, reductions, matmul, concatenation.

These are linear (or bilinear, for ``matmul``) and smooth. Values carry a leading batch axis;
tangents carry that batch axis and a trailing axis of directions: a value of node shape ``s`` is
``(B, *s)`` and its tangent ``(B, *s, T)``. A tangent ``None`` means zero. ``B`` may be 1 for
values that do not depend on the batch (constants); NumPy broadcasting does the rest.

Their numeric implementations also work on NumPy object arrays of sympy expressions, which is
how programs are exported to sympy (``sympy_form = "impl"``).
"""

from __future__ import annotations

import operator

import numpy as np

from .. import interval as iv
from ..primitives import ALL, Leaf, Structural, infix, register

__all__ = ["input_p", "const_p", "broadcast_to_p", "reshape_p", "transpose_p", "getitem_p",
           "sum_p", "matmul_p", "concatenate_p"]


def _leaf_shape(*shapes, shape):
    return tuple(shape)


def _no_impl(*args, **kwargs):  # pragma: no cover - leaves are read, not computed
    raise RuntimeError("leaf nodes have no implementation")


input_p = register(Leaf(name="input", impl=_no_impl, shape_rule=_leaf_shape))
const_p = register(Leaf(name="const", impl=_no_impl, shape_rule=_leaf_shape))


def _structural(name, impl, shape_rule, jvp, transpose, interval, interval_jvp, **printing):
    """Register a structural primitive; ``printing``: pretty, call, prepare."""
    return register(Structural(name=name, impl=impl, shape_rule=shape_rule, jvp=jvp,
                               transpose=transpose, interval=interval,
                               interval_jvp=interval_jvp, sympy="impl", **printing))



def _zero_tangent(shape, ndir):
    return iv.Interval(np.zeros(tuple(shape) + (ndir,)))


# --- broadcast_to -------------------------------------------------------------------------------

def _unbroadcast_need(need, in_shape):
    """The input elements a broadcast output's demanded elements come from."""
    lead = need.ndim - len(in_shape)
    need = need.any(axis=tuple(range(lead))) if lead else need
    axes = tuple(i for i, d in enumerate(in_shape) if d == 1 and need.shape[i] != 1)
    return need.any(axis=axes, keepdims=True) if axes else need


def _broadcast_impl(v, shape):
    extra = len(shape) + 1 - v.ndim
    v = v.reshape(v.shape[:1] + (1,) * extra + v.shape[1:])
    return np.broadcast_to(v, v.shape[:1] + tuple(shape))


def _broadcast_jvp(vals, out, tangents, shape):
    (t,) = tangents
    if t is None:
        return None
    extra = len(shape) + 2 - t.ndim
    t = t.reshape(t.shape[:1] + (1,) * extra + t.shape[1:])
    return np.broadcast_to(t, t.shape[:1] + tuple(shape) + t.shape[-1:])


def _broadcast_transpose(vals, out, ct, live, shape):
    in_shape = vals[0].shape[1:]
    lead = len(shape) - len(in_shape)
    ct = ct.sum(axis=tuple(range(1, lead + 1))) if lead else ct
    axes = tuple(i + 1 for i, d in enumerate(in_shape) if d == 1 and ct.shape[i + 1] != 1)
    return (ct.sum(axis=axes, keepdims=True) if axes else ct,)


broadcast_to_p = _structural(
    "broadcast_to", _broadcast_impl, lambda s, shape: tuple(shape), _broadcast_jvp,
    _broadcast_transpose,
    lambda x, shape: x.broadcast_to(tuple(shape)),
    lambda ivs, out, tans, shape: tans[0].reshape(
        (1,) * (len(shape) - ivs[0].ndim) + tans[0].shape).broadcast_to(
        tuple(shape) + tans[0].shape[-1:]),
    pretty=lambda args, params: f"broadcast_to({args[0]}, {params['shape']})",
    needs=lambda need, vals, live, shape: (_unbroadcast_need(need, vals[0].shape[1:]),))


# --- reshape ------------------------------------------------------------------------------------

reshape_p = _structural(
    "reshape",
    lambda v, shape: v.reshape(v.shape[:1] + tuple(shape)),
    lambda s, shape: tuple(shape),
    lambda vals, out, tangents, shape: None if tangents[0] is None else
    tangents[0].reshape(tangents[0].shape[:1] + tuple(shape) + tangents[0].shape[-1:]),
    lambda vals, out, ct, live, shape: (ct.reshape(ct.shape[:1] + vals[0].shape[1:]),),
    lambda x, shape: x.reshape(tuple(shape)),
    lambda ivs, out, tans, shape: tans[0].reshape(tuple(shape) + tans[0].shape[-1:]),
    pretty=lambda args, params: f"reshape({args[0]}, {params['shape']})", call="cv.reshape",
    needs=lambda need, vals, live, shape: (need.reshape(vals[0].shape[1:]),))


# --- transpose ----------------------------------------------------------------------------------

transpose_p = _structural(
    "transpose",
    lambda v, perm: v.transpose((0,) + tuple(p + 1 for p in perm)),
    lambda s, perm: tuple(s[p] for p in perm),
    lambda vals, out, tangents, perm: None if tangents[0] is None else
    tangents[0].transpose((0,) + tuple(p + 1 for p in perm) + (len(perm) + 1,)),
    lambda vals, out, ct, live, perm: (ct.transpose((0,) + tuple(int(i) + 1 for i in
                                                           np.argsort(perm))),),
    lambda x, perm: x.transpose(*perm),
    lambda ivs, out, tans, perm: tans[0].transpose(*perm, len(perm)),
    call="cv.transpose",
    needs=lambda need, vals, live, perm: (need.transpose(np.argsort(perm)),))


# --- getitem (static indices: ints, slices, None, integer arrays) -------------------------------

def _scatter_add(ct, in_shape, index):
    """Transpose of indexing: add the cotangent into zeros at the indexed places."""
    z = np.zeros(ct.shape[:1] + tuple(in_shape))
    np.add.at(z, (slice(None),) + index, ct)
    return z


def _scatter_need(need, in_shape, index):
    """The input elements that indexing reads for the demanded output elements."""
    if any(i is None for i in index):
        return ALL                                      # new axes: not worth the bookkeeping
    z = np.zeros(in_shape, dtype=bool)
    np.logical_or.at(z, index, need)
    return z


def _batched_index(index, prepared):
    """The index with the batch axis in front (prepared once per node; rebuilt when a rule is
    called without it, as the sympy export does)."""
    return prepared if prepared is not None else (slice(None),) + index


def _getitem_shape(s, index):
    return np.empty(s, dtype=np.int8)[index].shape


def _index_repr(index: tuple) -> str:
    parts = []
    for i in index:
        if isinstance(i, slice):
            parts.append(":".join("" if v is None else str(v) for v in (i.start, i.stop)) +
                         ("" if i.step is None else f":{i.step}"))
        elif i is None:
            parts.append("None")
        elif isinstance(i, np.ndarray):
            parts.append(str(i.tolist()) if i.size <= 6 else f"array{i.shape}")
        else:
            parts.append(str(i))
    return ", ".join(parts)


getitem_p = _structural(
    "getitem",
    lambda v, index, prepared=None: v[_batched_index(index, prepared)],
    _getitem_shape,
    lambda vals, out, tangents, index, prepared=None: None if tangents[0] is None else
    tangents[0][_batched_index(index, prepared)],
    lambda vals, out, ct, live, index, prepared=None: (_scatter_add(ct, vals[0].shape[1:],
                                                                   index),),
    lambda x, index: x[index],
    lambda ivs, out, tans, index: tans[0][index],
    pretty=lambda args, params: f"{args[0]}[{_index_repr(params['index'])}]", call="indexing",
    prepare=lambda consts, index: (slice(None),) + index,       # the index with the batch axis
    compile=lambda prepared, index: operator.itemgetter(prepared), linear=True,
    needs=lambda need, vals, live, index: (_scatter_need(need, vals[0].shape[1:], index),))


# --- sum ----------------------------------------------------------------------------------------

def _sum_shape(s, axes):
    return tuple(d for i, d in enumerate(s) if i not in axes)


sum_p = _structural(
    "sum",
    lambda v, axes: np.sum(v, axis=tuple(a + 1 for a in axes)),
    _sum_shape,
    lambda vals, out, tangents, axes: None if tangents[0] is None else
    np.sum(tangents[0], axis=tuple(a + 1 for a in axes)),
    lambda vals, out, ct, live, axes: (np.broadcast_to(
        np.expand_dims(ct, tuple(a + 1 for a in axes)), ct.shape[:1] + vals[0].shape[1:]),),
    lambda x, axes: iv.sum(x, axis=tuple(axes)) if axes else x,
    lambda ivs, out, tans, axes: iv.sum(tans[0], axis=tuple(axes)) if axes else tans[0],
    call="cv.sum", linear=True,
    needs=lambda need, vals, live, axes: (np.broadcast_to(np.expand_dims(need, tuple(axes)),
                                                          vals[0].shape[1:]),))


# --- matmul (1-D and 2-D operands, NumPy semantics) ---------------------------------------------

def _matmul_out_shape(sa, sb):
    rows = sa[:-1]
    cols = sb[1:]
    return tuple(rows) + tuple(cols)


def _const_matrix_times(M: np.ndarray, t: np.ndarray, *, sparse: bool = False,
                        columns=None) -> np.ndarray:
    """``M @ t[b]`` for every batch entry of ``t`` (B, j, ...), as one 2-D BLAS product.

    Broadcasting ``np.matmul`` over a batch axis does not reach BLAS gemv/gemm efficiently;
    folding the batch into the columns does. With ``sparse`` (tangents and cotangents, which a
    soft-threshold zeroes off its support) only the nonzero rows of ``t`` are multiplied: the
    check costs one pass over ``t``, the product ``M.shape[0]`` times more. ``columns(rows)``
    gives ``M[:, rows]`` (a prepared, cached copy), or None where a fresh copy would cost more
    than it saves (:func:`_few_columns`): a support that changed since the last step is then
    multiplied whole.
    """
    B, j = t.shape[:2]
    if B == 1:
        cols = t[0].reshape(j, -1)
        if sparse and j >= 32:
            rows = (cols != 0.0).any(axis=1).nonzero()[0]      # = np.flatnonzero(np.any(...))
            if len(rows) < 0.5 * j:
                Mc = columns(rows) if columns is not None else \
                    (M[:, rows] if _few_columns(len(rows), j) else None)
                if Mc is not None:
                    return (Mc @ cols[rows]).reshape((1, M.shape[0]) + t.shape[2:])
        return (M @ cols).reshape((1, M.shape[0]) + t.shape[2:])
    cols = np.moveaxis(t, 0, -1).reshape(j, -1)
    out = (M @ cols).reshape((M.shape[0],) + t.shape[2:] + (B,))
    return np.moveaxis(out, -1, 0)


#: The largest constant matrix whose transpose forward-mode products copy once (column gathers)
_TRANSPOSE_COPY_BYTES = 64 << 20


def _few_columns(k: int, n: int) -> bool:
    """Whether ``k`` of a C-ordered matrix's ``n`` columns are few enough to gather as they
    are: a column gather reads a cache line per row and column, most of the matrix once more
    than a 32nd of its columns is taken."""
    return 32 * k <= n


class _ConstantMatrix:
    """matmul's constant left operand ``a``, prepared once per node (``prepare``).

    Kept with it: the transpose as a view (reverse mode's ``a^T @ ct`` is one BLAS product on
    it; copying it on every step was most of the time of an adjoint iteration), the contiguous
    transpose, made on first use by a gather of many columns, and the last gathered rows and
    columns (the support of a soft-threshold changes rarely between steps).
    """

    __slots__ = ("a", "a_t_view", "_t", "_taken")

    def __init__(self, a: np.ndarray):
        self.a, self.a_t_view, self._t, self._taken = a, a.T, None, {}

    @property
    def t(self) -> np.ndarray:
        if self._t is None:
            self._t = np.ascontiguousarray(self.a.T)
        return self._t

    def take(self, which: str, rows: np.ndarray) -> np.ndarray | None:
        """``a[rows]`` ("rows"), ``a[:, rows]`` ("columns") or ``a.T[:, rows]`` ("t columns").

        A row gather reads only what it takes; few columns (:func:`_few_columns`) are gathered
        as they are, more as rows of the other layout (``a.T[:, rows]`` is ``a[rows].T``;
        ``a[:, rows]`` is ``a^T[rows].T`` from the transpose made once, for matrices of at
        most 64 MB; for a larger matrix, None: the caller multiplies it whole, see
        :func:`_const_matrix_times`).
        """
        key = rows.tobytes()
        hit = self._taken.get(which)
        if hit is None or hit[0] != key:
            if which == "rows":
                M = self.a[rows]
            elif which == "t columns":
                M = self.a[rows].T
            elif _few_columns(len(rows), self.a.shape[1]):
                M = self.a[:, rows]          # a few columns: a gather that reads little
            elif self.a.nbytes <= _TRANSPOSE_COPY_BYTES:
                M = self.t[rows].T
            else:
                return None
            hit = self._taken[which] = (key, M)
        return hit[1]


def _matmul_prepare(consts):
    a = consts[0]
    return _ConstantMatrix(a) if a is not None and a.ndim == 2 else None


def _needed_rows(need, n_rows: int):
    """The output rows a demand mask asks for, or None (all of them, or too many to gain)."""
    if need is None or np.ndim(need) == 0:
        return None
    rows = need.reshape(n_rows, -1).any(axis=1).nonzero()[0]
    return rows if len(rows) < 0.5 * n_rows else None


def _constant_times_tangent(M, t, prepared, need):
    """``M @ t`` for a constant matrix and a tangent (B, j, ...): only the output rows the
    demand ``need`` asks for (the others are left zero) and only t's nonzero rows."""
    rows = _needed_rows(need, M.shape[0])
    if prepared is None:
        return _const_matrix_times(M, t, sparse=True)
    if rows is None:
        return _const_matrix_times(M, t, sparse=True,
                                   columns=lambda r: prepared.take("columns", r))
    Mr = prepared.take("rows", rows)
    part = _const_matrix_times(Mr, t, sparse=True)
    full = np.zeros((part.shape[0], M.shape[0]) + part.shape[2:])
    full[:, rows] = part
    return full


def _matmul_needs(need, vals, live, prepared=None):
    """``a @ b``: demanded output rows need the same rows of ``a``; ``b`` is needed whole."""
    a, b = vals
    need_a = ALL
    if live[0] and a.ndim == 3:                          # a matrix: keep its demanded rows
        need_a = np.broadcast_to(need.reshape(a.shape[1], -1).any(axis=1)[:, None],
                                 a.shape[1:])
    return need_a, ALL


def _matmul_impl(a, b, prepared=None):
    if a.ndim == 3 and a.shape[0] == 1:
        # a constant matrix times a batch of vectors (one product (B, j) @ (j, i)) or matrices
        if b.ndim == 2:
            return b @ a[0].T if prepared is None else _constant_times_vectors(prepared, b)
        return _const_matrix_times(a[0], b)
    a2 = a if a.ndim == 3 else a[:, None, :]
    b2 = b if b.ndim == 3 else b[:, :, None]
    out = np.matmul(a2, b2)
    if a.ndim == 2:
        out = out[:, 0]
    if b.ndim == 2:
        out = out[..., 0]
    return out


def _constant_times_vectors(prepared, b):
    """``a @ b[i]`` for the prepared constant matrix ``a`` and a batch of vectors ``b`` (B, j):
    one product ``b @ a^T``; a single vector with at most an eighth of its entries non-zero
    (a soft-threshold's output, an iterate on its support) meets only those columns of ``a``,
    gathered once per support (``take``)."""
    j = b.shape[1]
    if b.shape[0] == 1 and j >= 64:
        rows = b[0].nonzero()[0]
        cols = prepared.take("columns", rows) if 8 * len(rows) <= j else None
        if cols is not None:
            return b[:, rows] @ cols.T
    return b @ prepared.a_t_view


def _matmul_compile(prepared):
    """The value function of one matmul node: a constant matrix times vectors is one product
    ``b @ a^T`` (on the vectors' support when they are sparse); everything else goes through
    the general implementation."""
    if prepared is None:
        return _matmul_impl

    def constant_times(a, b):
        return _constant_times_vectors(prepared, b) if b.ndim == 2 else \
            _matmul_impl(a, b, prepared)
    return constant_times


def _matmul_jvp(vals, out, tangents, prepared=None, need=None):
    a, b = vals
    ta, tb = tangents
    if ta is None and b.ndim == 2 and tb.shape[0] == 1 and tb.ndim == 3 and prepared is not None \
            and tb.shape[1] < 32:
        return (prepared.a @ tb[0])[None]     # a small constant matrix times vector tangents
    result = None
    if tb is not None:
        # a @ tb: contract a's last axis with tb's axis 1, keeping tb's trailing axes
        t = tb.reshape(tb.shape[0], tb.shape[1], -1)
        if a.ndim == 3 and a.shape[0] == 1:
            r = _constant_times_tangent(a[0], t, prepared, need)
        else:
            a2 = a if a.ndim == 3 else a[:, None, :]
            r = np.matmul(a2, t)
            if a.ndim == 2:
                r = r[:, 0]
        result = r.reshape(r.shape[:a.ndim - 1] + tb.shape[2:])
    if ta is not None:
        # ta @ b: move the direction axis before the contracted axis
        b2 = b if b.ndim == 3 else b[:, :, None]
        t = ta if a.ndim == 3 else ta[:, None]          # (B, i, j, T)
        r = np.matmul(np.swapaxes(t, -1, -2), b2[:, None])  # (B, i, T, k)
        r = np.swapaxes(r, -1, -2)                      # (B, i, k, T)
        if b.ndim == 2:
            r = r[:, :, 0]
        if a.ndim == 2:
            r = r[:, 0]
        result = r if result is None else result + r
    return result


def _matmul_transpose(vals, out, ct, live, prepared=None):
    a, b = vals
    if a.ndim == 3 and a.shape[0] == 1 and not live[0]:
        # constant matrix: only b needs a cotangent, a^T @ ct as one BLAS product
        if prepared is None:
            return None, _const_matrix_times(a[0].T, ct, sparse=True)
        return None, _const_matrix_times(prepared.a_t_view, ct, sparse=True,
                                         columns=lambda r: prepared.take("t columns", r))
    sa = "ij"[2 - (a.ndim - 1):]          # "ij" for a matrix, "j" for a vector
    sb = "jk"[:b.ndim - 1]
    so = sa[:-1] + sb[1:]
    ct_a = np.einsum(f"...{so},...{sb}->...{sa}", ct, b, optimize=True) if live[0] else None
    ct_b = np.einsum(f"...{sa},...{so}->...{sb}", a, ct, optimize=True) if live[1] else None
    return ct_a, ct_b


def _as_2d(x, vector_axis):
    """View a 1-D interval as a row (axis 0) or column (axis 1) matrix."""
    return x.reshape((1, -1)) if vector_axis == 0 else x.reshape((-1, 1))


def _demanded_rows_product(a2, t, need):
    """``a2 @ t`` for a matrix ``a2`` (i, j) and an interval tangent ``t`` (j, c): only the
    rows of the result that the demand ``need`` asks for (the others are left zero: no
    demanded row reads them). The product itself skips t's zero rows (``iv.matmul``)."""
    rows = None if need is None else _needed_rows(need, a2.shape[0])
    if rows is None:
        return iv.matmul(a2, t)
    part = iv.matmul(a2[rows], t)
    lo, hi = np.zeros((a2.shape[0], t.shape[1])), np.zeros((a2.shape[0], t.shape[1]))
    lo[rows], hi[rows] = part.lo, part.hi
    return iv.Interval._new(lo, hi)         # an interval's endpoints, and zeros: valid


def _matmul_interval_jvp(ivs, out, tans, need=None):
    """Interval tangent of a @ b: a @ t_b + t_a @ b, as 2-D interval products (with a
    demand ``need`` of the output, a point matrix ``a`` contributes its demanded rows only)."""
    a, b = ivs
    ta, tb = tans
    ndir = (ta if ta is not None else tb).shape[-1]
    a2 = _as_2d(a, 0) if a.ndim == 1 else a                     # (i, j)
    b2 = _as_2d(b, 1) if b.ndim == 1 else b                     # (j, k)
    i, j, k = a2.shape[0], a2.shape[1], b2.shape[1]
    total = None
    if tb is not None:                                          # (j, [k,] T) -> (j, k T)
        t = tb.reshape((j, k * ndir))
        if a.ndim == 2 and ta is None:
            r = _demanded_rows_product(a2, t, need)
        else:
            r = iv.matmul(a2, t)
        total = r.reshape((i, k, ndir))
    if ta is not None:                                          # (i, j, T) -> (i T, j)
        t = ta.reshape((i, j, ndir)).transpose(0, 2, 1).reshape((i * ndir, j))
        r = iv.matmul(t, b2).reshape((i, ndir, k)).transpose(0, 2, 1)
        total = r if total is None else iv.add(total, r)
    return total.reshape(out.shape + (ndir,))


matmul_p = _structural("matmul", _matmul_impl, _matmul_out_shape, _matmul_jvp,
                       _matmul_transpose, iv.matmul, _matmul_interval_jvp,
                       pretty=infix("@"), call="@", prepare=_matmul_prepare,
                       compile=_matmul_compile,
                       needs=_matmul_needs, jvp_uses_need=True)


# --- concatenate --------------------------------------------------------------------------------

def _concat_shape(*shapes, axis):
    first = list(shapes[0])
    first[axis] = sum(s[axis] for s in shapes)
    return tuple(first)


def _concat_impl(*vals, axis):
    batch = vals[0].shape[0]
    for v in vals:
        if v.shape[0] != batch:                 # a batch-free value next to a batch
            batch = max(v.shape[0] for v in vals)
            vals = [np.broadcast_to(v, (batch,) + v.shape[1:]) for v in vals]
            break
    return np.concatenate(vals, axis + 1)


def _concat_jvp(vals, out, tangents, axis):
    live = [t for t in tangents if t is not None]
    if not live:
        return None
    if len(live) == len(tangents) and all(t.shape[0] == live[0].shape[0] for t in live):
        return np.concatenate(tangents, axis + 1)
    batch = max(t.shape[0] for t in live)
    ndir = live[0].shape[-1]
    parts = [np.zeros((batch,) + v.shape[1:] + (ndir,)) if t is None else
             t if t.shape[0] == batch else np.broadcast_to(t, (batch,) + t.shape[1:])
             for v, t in zip(vals, tangents)]
    return np.concatenate(parts, axis=axis + 1)


def _concat_transpose(vals, out, ct, live, axis):
    cuts = np.cumsum([v.shape[axis + 1] for v in vals])[:-1]
    return tuple(np.split(ct, cuts, axis=axis + 1))


def _concat_interval_jvp(ivs, out, tans, axis):
    ndir = next(t for t in tans if t is not None).shape[-1]
    parts = [_zero_tangent(v.shape, ndir) if t is None else t for v, t in zip(ivs, tans)]
    return iv.concatenate(parts, axis=axis)


concatenate_p = _structural("concatenate", _concat_impl, _concat_shape, _concat_jvp,
                            _concat_transpose, lambda *xs, axis: iv.concatenate(list(xs), axis=axis),
                            _concat_interval_jvp, call="cv.concatenate", linear=True,
                            needs=lambda need, vals, live, axis: tuple(np.split(
                                need, np.cumsum([v.shape[axis + 1] for v in vals])[:-1],
                                axis=axis)))
