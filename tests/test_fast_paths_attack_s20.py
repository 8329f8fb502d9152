"""Compiled calls and demanded rows against the interpreter walks, exact rational references
and dense NumPy derivative recursions (session 20 of the fast-path attack).

What is compared
----------------
* compiled values (``compiled.values_function``, ``values_run_function``) against the generic
  interpreter walk (``interpreter.walk`` with a plain rule, not ``value_rule``, so that the
  pre-compiled list is not used either): the same bound implementations in the same order,
  so bit-identical results are asserted;
* compiled tangents (``tangents_function`` for small programs, ``demand_tangents_function``
  for programs with a large product) against the walks the callers fall back to
  (``_values_and_tangents``; ``_values_and_partials`` + ``jvp`` with demanded rows):
  bit-identical; and against the full tangent walk (``F.jacobian(...).default``) and NumPy:
  rtol 1e-12 of ``sum |a_ij| |t_j|`` (BLAS orders sums differently on row subsets);
* reverse mode (``Map.vjp``, only ever walked) against the transpose of the dense default
  Jacobian: the same scaled tolerance;
* dyadic points where every float operation is exact: bit-identical to ``fractions`` with the
  documented defaults (relu'(0) = 0, soft-threshold at |z| = t: 0, abs'(0) = +1 (JAX, as
  rules/nonsmooth.py documents; not 0), maximum/minimum ties: the first argument, clip at a
  bound: the identity, strict where at g = 0: the second branch);
* piggyback / piggyback_vjp / fpad / fpad_vjp on forward-backward Lasso problems against the
  dense recursion ``J <- D (I - s X^T X) J - s sign(z) D`` (D = diag(|z| > s lam)).
"""
from fractions import Fraction as Q

import numpy as np
import pytest

import conservative as cv
from conservative.compiled import values_function, values_run_function
from conservative.interpreter import seed, walk
from conservative.jacobian import (_demand_pays, _values_and_partials, _values_and_tangents,
                                   jvp, jvp_run, value_and_jvp)

RTOL = 1e-12


def _close(got, want, scale, rtol=RTOL):
    """|got - want| <= rtol * scale elementwise (scale: sum of |terms| of each entry)."""
    got, want, scale = (np.asarray(a, dtype=float) for a in (got, want, scale))
    bad = np.abs(got - want) > rtol * scale + 1e-300
    assert not bad.any(), (np.max(np.abs(got - want)), np.argwhere(bad)[:5])


def _generic_walk(F, xb, tb):
    """The interpreter walk with a plain rule (not `value_rule`: no pre-compiled list)."""
    return walk(F.program, seed(F.program, xb, tb), lambda s, ins: s.impl(*ins), call="walk")


def _flat(t, F, T):
    return np.zeros((F.n, T)) if t is None else \
        np.broadcast_to(t, (1,) + F.state_shape + (T,)).reshape(F.n, T)


# --- programs -------------------------------------------------------------------------------

def _lasso(n, p, seed_):
    r = np.random.default_rng(seed_)
    X, y = r.standard_normal((n, p)), r.standard_normal(n)
    return cv.algorithms.forward_backward_lasso(X, y), X, y


def _programs():
    """(name, Map, make_point(rng) -> (x, theta)): small and large (demanded-rows) programs."""
    r = np.random.default_rng(100)
    out = []
    F, _, _ = _lasso(5, 12, 1)                       # n < p: Xt @ (X @ w - y)
    out.append(("lasso_wide_small", F, lambda g: (0.3 * g.standard_normal(12), 0.5)))
    F, _, _ = _lasso(20, 8, 2)                       # n >= p: gram @ w - Xty
    out.append(("lasso_tall_small", F, lambda g: (0.3 * g.standard_normal(8), 0.5)))
    F, _, _ = _lasso(30, 200, 3)
    out.append(("lasso_large", F, lambda g: (g.standard_normal(200) * (g.random(200) < 0.1),
                                             0.3)))
    F, _, _ = _lasso(120, 70, 4)
    out.append(("lasso_large_tall", F, lambda g: (0.1 * g.standard_normal(70), 2.0)))
    W5, W100 = r.standard_normal((5, 5)), r.standard_normal((100, 100)) / 10
    out.append(("relu5", cv.trace(lambda x, t: cv.relu(W5 @ x + t), (5,), (5,)),
                lambda g: (g.standard_normal(5), g.standard_normal(5))))
    out.append(("relu100", cv.trace(lambda x, t: cv.relu(W100 @ x + t), (100,), (100,)),
                lambda g: (g.standard_normal(100), g.standard_normal(100))))
    A3 = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]])
    out.append(("heavy_ball3", cv.algorithms.heavy_ball(
        lambda x, t: A3 @ x - t[0] + cv.relu(x), 0.2, 0.5, 3),
        lambda g: (g.standard_normal(6), g.standard_normal(1))))
    A40 = r.standard_normal((40, 80))
    A40 = A40 @ A40.T / 80
    out.append(("heavy_ball40", cv.algorithms.heavy_ball(
        lambda x, t: A40 @ x - t + cv.abs(x), 0.1, 0.5, 40, param_shape=(40,)),
        lambda g: (g.standard_normal(80), g.standard_normal(40))))
    out.append(("where_abs", cv.trace(lambda x, t: cv.where(x > t, x * x, 2.0 * t * x - t * t)
                                      + cv.abs(x), (4,), ()),
                lambda g: (g.standard_normal(4), 0.3)))
    out.append(("max_min", cv.trace(lambda x, t: cv.maximum(x, t) - cv.minimum(x, -t)
                                    + cv.max(x) - cv.min(x * t), (5,), ()),
                lambda g: (g.standard_normal(5), 0.2)))
    out.append(("clip", cv.trace(lambda x, t: cv.clip(x, -t, t) + cv.clip(2.0 * x, t - 1.0,
                                                                          t + 1.0), (6,), ()),
                lambda g: (g.standard_normal(6), 0.5)))
    M4, N3 = r.standard_normal((4, 4)), r.standard_normal((3, 3))
    out.append(("state_2d", cv.trace(lambda x, t: cv.relu(M4 @ x @ N3 + t)
                                     + cv.sum(x, axis=0) * 0.1 - x.T.T * t[0], (4, 3), (3,)),
                lambda g: (g.standard_normal((4, 3)), g.standard_normal(3))))
    M70 = r.standard_normal((70, 70)) / 9
    out.append(("state_2d_large", cv.trace(lambda x, t: cv.soft_threshold(M70 @ x - t, 0.05),
                                           (70, 2), (2,)),
                lambda g: (g.standard_normal((70, 2)), 0.1 * g.standard_normal(2))))
    C = r.standard_normal(6)
    out.append(("const_twice_x_twice", cv.trace(
        lambda x, t: cv.soft_threshold(C * x + C, t) * C + x * x + x - x * 0.5
        + cv.where(x > t, C * x, C * t), (6,), ()),
        lambda g: (g.standard_normal(6), 0.4)))
    out.append(("out_is_x", cv.trace(lambda x, t: x, (3,), ()),
                lambda g: (g.standard_normal(3), 0.4)))
    out.append(("indexing", cv.trace(lambda x, t: cv.concatenate([x[::-1][1:],
                                                                  x[np.array([0])] * t])
                                     + x[:, None][:, 0] + x[..., -1], (5,), ()),
                lambda g: (g.standard_normal(5), 0.7)))
    out.append(("scalar", cv.trace(lambda x, t: cv.relu(x * t - 1.0) + cv.abs(x) * 0.5
                                   + x ** 3.0, (), ()),
                lambda g: (g.standard_normal(), 0.7)))
    return out


PROGRAMS = _programs()
IDS = [p[0] for p in PROGRAMS]


@pytest.mark.parametrize("name,F,make", PROGRAMS, ids=IDS)
def test_compiled_values_equal_the_generic_walk(name, F, make):
    rng = np.random.default_rng(hash(name) % 2**32)
    prologue, values = values_run_function(F.program)
    for _ in range(3):
        x, t = make(rng)
        xb, tb = F.point(x, t, call="test")
        ref = _generic_walk(F, xb, tb)[F.program.out_node]
        np.testing.assert_array_equal(values_function(F.program)(xb, tb), ref)
        np.testing.assert_array_equal(F(x, t), ref[0])
        np.testing.assert_array_equal(values(xb, prologue(tb)), ref)
        # a batch of three states (the compiled batch is one product, the walk the same one)
        xs = np.stack([make(rng)[0] for _ in range(3)])
        xsb = xs.reshape((3,) + F.state_shape)
        ref_b = np.broadcast_to(_generic_walk(F, xsb, tb)[F.program.out_node],
                                (3,) + F.state_shape)
        np.testing.assert_array_equal(F(xs, t), ref_b)
        for i in range(3):                       # batch against single points: rounding only
            one = F(xs[i], t)
            _close(ref_b[i], one, 1e-3 + np.abs(one))   # (cheap scale: values are O(1))


@pytest.mark.parametrize("name,F,make", PROGRAMS, ids=IDS)
def test_compiled_tangents_equal_the_walks_and_the_dense_jacobian(name, F, make,
                                                                 monkeypatch):
    from conservative import jacobian

    def compiled_only(*args):
        with monkeypatch.context() as m:         # no walk behind the compiled call
            m.setattr(jacobian, "_values_and_partials", None)
            m.setattr(jacobian, "_values_and_tangents", None)
            return value_and_jvp(*args, call="test")
    rng = np.random.default_rng(hash(name) % 2**32 + 1)
    p, n, m = F.program, F.n, F.m
    for trial in range(2):
        x, t = make(rng)
        xb, tb = F.point(x, t, call="test")
        D = F.jacobian(x, t).default                     # the full tangent walk
        for T in ((3, 20) if trial == 0 else (1,)):      # 20: the elementwise demand rule
            for which in ("x", "theta", "both"):
                dx = rng.standard_normal(F.state_shape + (T,)) if which != "theta" else None
                dt = rng.standard_normal(F.param_shape + (T,)) if which != "x" else None
                seeds = {k: v[None] for k, v in ((p.x_node, dx), (p.theta_node, dt))
                         if v is not None}
                value, tangent = compiled_only(p, xb, tb, seeds)
                if _demand_pays(p):
                    vals, partials = _values_and_partials(p, xb, tb, call="test")
                    ref_value, ref = vals[p.out_node], jvp(p, vals, partials, seeds, call="t")
                else:
                    vals, ref = _values_and_tangents(p, xb, tb, seeds, call="test")
                    ref_value = vals[p.out_node]
                np.testing.assert_array_equal(value, ref_value)
                np.testing.assert_array_equal(_flat(tangent, F, T), _flat(ref, F, T))
                want, scale = np.zeros((n, T)), np.zeros((n, T))
                if dx is not None:
                    want += D[:, :n] @ dx.reshape(n, T)
                    scale += np.abs(D[:, :n]) @ np.abs(dx.reshape(n, T))
                if dt is not None:
                    want += D[:, n:] @ dt.reshape(m, T)
                    scale += np.abs(D[:, n:]) @ np.abs(dt.reshape(m, T))
                _close(_flat(tangent, F, T), want, scale)
                # the public call: same numbers, fresh arrays, inputs untouched
                keep = [a.copy() for a in (np.asarray(x), dx, dt) if a is not None]
                v2, t2 = F.jvp(x, t, dx=dx, dtheta=dt)
                np.testing.assert_array_equal(t2.reshape(n, T), _flat(tangent, F, T))
                for a, b in zip(keep, [a for a in (np.asarray(x), dx, dt) if a is not None]):
                    np.testing.assert_array_equal(a, b)
        c = rng.standard_normal(F.state_shape)
        _, cx, ct = F.vjp(x, t, c)
        _close(np.ravel(cx), D[:, :n].T @ c.ravel(), np.abs(D[:, :n]).T @ np.abs(c.ravel()))
        _close(np.ravel(ct), D[:, n:].T @ c.ravel(), np.abs(D[:, n:]).T @ np.abs(c.ravel()))


def test_independent_numpy_values_and_derivatives_of_three_algorithms():
    """Lasso (both gradient orders), a relu layer and heavy ball against formulas in NumPy."""
    rng = np.random.default_rng(7)
    for n, p in ((5, 12), (20, 8), (30, 200)):
        F, X, y = _lasso(n, p, 10 + p)
        s = F.info["step"]
        for lam in (0.0, 0.3, 5.0):
            w = rng.standard_normal(p) * (rng.random(p) < 0.3)
            z = w - s * (X.T @ (X @ w - y))
            mask = (np.abs(z) > s * lam).astype(float)
            _close(F(w, lam), np.sign(z) * np.maximum(np.abs(z) - s * lam, 0.0),
                   1.0 + np.abs(w) + s * np.abs(X.T) @ (np.abs(X) @ np.abs(w) + np.abs(y)))
            A = mask[:, None] * (np.eye(p) - s * X.T @ X)
            scaleA = mask[:, None] * (np.eye(p) + s * np.abs(X.T) @ np.abs(X))
            dx = rng.standard_normal((p, 4))
            _close(F.jvp(w, lam, dx=dx)[1], A @ dx, scaleA @ np.abs(dx))
            _close(F.jvp(w, lam, dtheta=np.ones(3))[1], (-s * np.sign(z) * mask)[:, None]
                   * np.ones(3), s * np.ones((p, 3)))
            c = rng.standard_normal(p)
            _, cx, ct = F.vjp(w, lam, c)
            _close(cx, A.T @ c, scaleA.T @ np.abs(c))
            _close(ct, -s * np.sign(z) * mask @ c, s * np.abs(c).sum())
    W = rng.standard_normal((100, 100))
    R = cv.trace(lambda x, t: cv.relu(W @ x + t), (100,), (100,))
    x, t = rng.standard_normal(100), rng.standard_normal(100)
    u = W @ x + t
    d = (u > 0).astype(float)
    _close(R(x, t), np.maximum(u, 0), np.abs(W) @ np.abs(x) + np.abs(t))
    dx, dt = rng.standard_normal((100, 20)), rng.standard_normal((100, 20))
    _close(R.jvp(x, t, dx=dx, dtheta=dt)[1], d[:, None] * (W @ dx + dt),
           d[:, None] * (np.abs(W) @ np.abs(dx) + np.abs(dt)))
    A = rng.standard_normal((6, 6))
    A = A @ A.T / 6
    H = cv.algorithms.heavy_ball(lambda x, t: A @ x - t, 0.25, 0.5, 6, param_shape=(6,))
    st, th = rng.standard_normal(12), rng.standard_normal(6)
    xk, xp = st[:6], st[6:]
    want = np.concatenate([xk - 0.25 * (A @ xk - th) + 0.5 * (xk - xp), xk])
    _close(H(st, th), want, 1.0 + np.abs(want) + np.concatenate([np.abs(A) @ np.abs(xk),
                                                                   np.zeros(6)]))
    J = np.block([[(1.5 * np.eye(6) - 0.25 * A), -0.5 * np.eye(6), 0.25 * np.eye(6)],
                  [np.eye(6), np.zeros((6, 6)), np.zeros((6, 6))]])
    _close(H.jacobian(st, th).default, J, 1.0 + np.abs(J))
    dx = rng.standard_normal((12, 5))
    _close(H.jvp(st, th, dx=dx)[1], J[:, :12] @ dx, np.abs(J[:, :12]) @ np.abs(dx) + 1e-300)


def test_fixed_point_and_iterate_run_the_same_steps():
    """values_run_function (fixed_point's stepper: prologue once, then the step) against
    values_function (cv.iterate's calls): the same operations, so bit-equal iterates."""
    rng = np.random.default_rng(3)
    W = rng.standard_normal((5, 5))
    W *= 0.5 / np.linalg.norm(W, 2)
    A3 = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]])
    cases = [(_lasso(5, 12, 1)[0], np.zeros(12), 0.5), (_lasso(30, 200, 3)[0], np.zeros(200), 2.0),
             (_lasso(120, 70, 4)[0], np.zeros(70), 2.0),
             (cv.trace(lambda x, t: cv.relu(W @ x + t), (5,), (5,)), np.ones(5),
              rng.standard_normal(5)),
             (cv.algorithms.heavy_ball(lambda x, t: A3 @ x - t[0] + cv.relu(x), 0.2, 0.5, 3),
              np.ones(6), np.array([0.5]))]
    for F, x0, t in cases:
        r = cv.fixed_point(F, x0, t, tol=1e-11, max_steps=20_000)
        xs = cv.iterate(F, x0, t, r.steps)
        np.testing.assert_array_equal(r.x, xs[-1])


# --- exact references at dyadic points ------------------------------------------------------

def _q(a):
    return np.vectorize(Q, otypes=[object])(np.asarray(a, dtype=float))


def _qmat(A, B):
    return [[sum((A[i][k] * B[k][j] for k in range(len(B))), Q(0)) for j in range(len(B[0]))]
            for i in range(len(A))]


def _fl(a):
    return np.array(a, dtype=object).astype(float)


def _sign(q):
    return (q > 0) - (q < 0)


@pytest.mark.parametrize("shape", [(3, 4), (5, 3)])     # Xt @ (X w - y), and the Gram order
def test_lasso_exact_at_dyadic_points_with_kinks(shape):
    n, p = shape
    rng = np.random.default_rng(sum(shape))
    X = rng.integers(-2, 3, size=shape) / 2.0            # entries in {-1, -1/2, 0, 1/2, 1}
    y = rng.integers(-4, 5, size=n) / 4.0
    s = 1.0 / 16                                         # < 2 / ||X||^2 (||X||_F^2 <= 15)
    F = cv.algorithms.forward_backward_lasso(X, y, step=s)
    Xq, yq, sq = _q(X), _q(y), Q(1, 16)
    w = rng.integers(-8, 9, size=p) / 8.0
    w[1] = 0.0
    wq = _q(w)
    r = [sum((Xq[i, j] * wq[j] for j in range(p)), Q(0)) - yq[i] for i in range(n)]
    z = [wq[j] - sq * sum((Xq[i, j] * r[i] for i in range(n)), Q(0)) for j in range(p)]
    G = _qmat(Xq.T.tolist(), Xq.tolist())
    # three thresholds: on the kink of coordinate 0 (|z_0| = s lam), zero, and a generic one
    for lam_q in (abs(z[0]) / sq, Q(0), Q(3, 2)):
        thr = sq * lam_q
        lam = float(lam_q)
        assert Q(lam) == lam_q                            # dyadic: exact in float
        out = [_sign(zj) * max(abs(zj) - thr, Q(0)) for zj in z]
        np.testing.assert_array_equal(F(w, lam), _fl(out))
        D = [Q(1) if abs(zj) > thr else Q(0) for zj in z]   # |z| == thr: the zero piece
        A = [[D[i] * ((Q(1) if i == j else Q(0)) - sq * G[i][j]) for j in range(p)]
             for i in range(p)]
        B = [[-sq * _sign(z[i]) * D[i]] for i in range(p)]
        full = np.hstack([_fl(A), _fl(B)])
        np.testing.assert_array_equal(F.jacobian(w, lam).default, full)
        dx = rng.integers(-4, 5, size=(p, 2)) / 4.0
        np.testing.assert_array_equal(F.jvp(w, lam, dx=dx)[1], _fl(_qmat(A, _q(dx).tolist())))
        c = rng.integers(-4, 5, size=p) / 4.0
        _, cx, ct = F.vjp(w, lam, c)
        At = [list(col) for col in zip(*A)]
        np.testing.assert_array_equal(cx, _fl(_qmat(At, [[v] for v in _q(c)]))[:, 0])
        assert float(ct) == float(sum((B[i][0] * Q(c[i]) for i in range(p)), Q(0)))
        if lam_q == abs(z[0]) / sq and z[0] != 0:
            assert not full[0].any()                     # at the threshold: zero derivative


def test_relu_layer_and_heavy_ball_exact_at_kinks():
    W = np.array([[1.0, -1.0, 0.5], [0.5, 0.5, 0.0], [0.0, 1.0, -1.0]])
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (3,), (3,))
    x, t = np.array([1.0, 1.0, 0.5]), np.array([-0.25, -1.0, 0.25])  # u = (0, 0, 0.75)
    Wq, xq, tq = _q(W), _q(x), _q(t)
    u = [sum((Wq[i, j] * xq[j] for j in range(3)), Q(0)) + tq[i] for i in range(3)]
    assert u[:2] == [0, 0] and u[2] > 0
    d = [Q(1) if ui > 0 else Q(0) for ui in u]                       # relu'(0) = 0
    np.testing.assert_array_equal(F(x, t), _fl([max(ui, Q(0)) for ui in u]))
    J = np.hstack([_fl([[d[i] * Wq[i, j] for j in range(3)] for i in range(3)]),
                   np.diag(_fl(d))])
    np.testing.assert_array_equal(F.jacobian(x, t).default, J)
    dx, dt = np.array([[1.0], [-0.5], [2.0]]), np.array([[0.25], [1.0], [-1.0]])
    np.testing.assert_array_equal(F.jvp(x, t, dx=dx, dtheta=dt)[1], J @ np.vstack([dx, dt]))
    _, cx, ct = F.vjp(x, t, np.array([1.0, 2.0, -0.5]))
    np.testing.assert_array_equal(np.concatenate([cx, ct]), J.T @ np.array([1.0, 2.0, -0.5]))
    # heavy ball with a relu in the gradient, x on the kink of two coordinates
    A = np.array([[1.0, 0.5], [0.5, 2.0]])
    H = cv.algorithms.heavy_ball(lambda x, t: A @ x - t[0] + cv.relu(x), 0.25, 0.5, 2)
    st, th = np.array([0.0, 0.0, 1.0, -1.0]), np.array([0.5])
    g = [Q(-1, 2), Q(-1, 2)]
    new = [Q(0) - Q(1, 4) * g[i] + Q(1, 2) * (Q(0) - Q(st[2 + i])) for i in range(2)]
    np.testing.assert_array_equal(H(st, th), _fl(new + [Q(0), Q(0)]))
    Jq = np.array([[1.5 - 0.25 * A[0, 0], -0.25 * A[0, 1], -0.5, 0.0, 0.25],
                   [-0.25 * A[1, 0], 1.5 - 0.25 * A[1, 1], 0.0, -0.5, 0.25],
                   [1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0]])   # relu'(0) = 0
    np.testing.assert_array_equal(H.jacobian(st, th).default, Jq)
    np.testing.assert_array_equal(H.jvp(st, th, dx=np.eye(4))[1], Jq[:, :4])


def test_documented_defaults_of_every_kink_exactly():
    """soft-threshold at |z| = t, abs at 0, maximum tie, clip at both bounds, strict where at
    g = 0 and max/min ties, each at exact dyadic points (defaults from rules/nonsmooth.py)."""
    G = cv.trace(lambda x, t: cv.soft_threshold(x, t) + cv.abs(x - 0.5)
                 + cv.maximum(x, 0.25) + cv.clip(x, -0.5, t)
                 + cv.where(x > t, x * x, 2.0 * t * x - t * t), (4,), ())
    x, t = np.array([0.5, -0.5, 0.25, 0.0]), 0.5
    tq = Q(1, 2)
    val, dxs, dts = [], [], []
    for xi in map(Q, x):
        st = _sign(xi) * max(abs(xi) - tq, Q(0))
        dst = (Q(1) if abs(xi) > tq else Q(0), -_sign(xi) if abs(xi) > tq else Q(0))
        ab, dab = abs(xi - tq), (Q(1) if xi - tq >= 0 else Q(-1))      # abs'(0) = +1
        mx, dmx = max(xi, Q(1, 4)), (Q(1) if xi >= Q(1, 4) else Q(0))  # tie: first argument
        cl = min(max(xi, Q(-1, 2)), tq)
        dcl = (Q(1), Q(0)) if Q(-1, 2) <= xi <= tq else \
            ((Q(0), Q(1)) if xi > tq else (Q(0), Q(0)))                # at a bound: identity
        if xi > tq:
            wh, dwh = xi * xi, (2 * xi, Q(0))
        else:                                                          # g = 0 (strict): b
            wh, dwh = 2 * tq * xi - tq * tq, (2 * tq, 2 * xi - 2 * tq)
        val.append(st + ab + mx + cl + wh)
        dxs.append(dst[0] + dab + dmx + dcl[0] + dwh[0])
        dts.append(dst[1] + dcl[1] + dwh[1])
    np.testing.assert_array_equal(G(x, t), _fl(val))
    J = G.jacobian(x, t).default
    np.testing.assert_array_equal(J, np.hstack([np.diag(_fl(dxs)), _fl(dts)[:, None]]))
    np.testing.assert_array_equal(G.jvp(x, t, dx=np.eye(4), dtheta=np.zeros(4))[1],
                                  np.diag(_fl(dxs)))
    np.testing.assert_array_equal(G.jvp(x, t, dtheta=np.ones(1))[1][:, 0], _fl(dts))
    _, cx, ct = G.vjp(x, t, np.ones(4))
    np.testing.assert_array_equal(cx, _fl(dxs))
    assert float(ct) == float(sum(dts))
    # soft-threshold at z = t = 0 (all three pieces active): the zero piece, (0, 0)
    S = cv.trace(lambda x, t: cv.soft_threshold(x, t), (3,), ())
    np.testing.assert_array_equal(S.jacobian(np.array([0.0, 0.5, -0.25]), 0.0).default,
                                  [[0, 0, 0, 0], [0, 1, 0, -1], [0, 0, 1, 1]])
    # max / min reductions at ties: the first tied entry
    R = cv.trace(lambda x, t: cv.max(x) * np.array([1.0, 0.0, 0.0, 0.0])
                 + cv.min(x) * np.array([0.0, 1.0, 0.0, 0.0]) + 0.0 * t, (4,), ())
    J = R.jacobian(np.array([0.0, 1.0, 1.0, 0.0]), 0.0).default
    np.testing.assert_array_equal(J[0, :4], [0, 1, 0, 0])
    np.testing.assert_array_equal(J[1, :4], [1, 0, 0, 0])


# --- demanded rows ----------------------------------------------------------------------------

def _dense_fb(X, y, s, w, lam):
    """(value, A, B) of forward-backward Lasso at (w, lam), in NumPy; lam scalar or per-feature
    (then B is p x p diagonal)."""
    z = w - s * (X.T @ (X @ w - y))
    thr = s * np.asarray(lam, dtype=float)
    D = (np.abs(z) > thr).astype(float)
    value = np.sign(z) * np.maximum(np.abs(z) - thr, 0.0)
    A = D[:, None] * (np.eye(len(w)) - s * X.T @ X)
    b = -s * np.sign(z) * D
    return value, A, (b[:, None] if np.ndim(lam) == 0 else np.diag(b)), z, thr


def test_demand_path_keeps_finite_rows_next_to_overflowing_masked_rows():
    """Rows of N @ (M dx) overflow where the soft-threshold is off (rows 0..4); the demanded
    rows (15 of 80) are computed only: the tangent is finite and right, and so is the full
    Jacobian (its elementwise rule skips the masked elements too)."""
    p = 80
    rng = np.random.default_rng(0)
    M = rng.standard_normal((p, p)) * 0.1
    M[0, :] = 0.0
    M[0, 0], M[0, 1] = 1e200, -1e200                     # (M x)_0 = 0 exactly at the point
    N = rng.standard_normal((p, p)) * 0.1
    N[:5, 0] = 1e200
    c = np.zeros(p)
    c[5:20] = 5.0
    F = cv.trace(lambda x, t: cv.soft_threshold(N @ (M @ x) + c, t), (p,), ())
    x = np.zeros(p)
    x[0] = x[1] = 1.0
    x[2:] = 0.01 * rng.standard_normal(p - 2)
    act = np.abs(N @ (M @ x) + c) > 1.0
    assert np.array_equal(np.flatnonzero(act), np.arange(5, 20))
    NM = N[act] @ M                                      # finite: rows 5..19 only
    for T in (2, 20, 81):
        dx = rng.standard_normal((p, T))
        _, tan = F.jvp(x, 1.0, dx=dx)
        assert np.all(tan[~act] == 0.0)
        _close(tan[act], NM @ dx, (np.abs(N[act]) @ np.abs(M)) @ np.abs(dx))
    D = F.jacobian(x, 1.0).default
    assert np.all(np.isfinite(D)) and not D[~act].any()
    _close(D[act, :p], NM, np.abs(N[act]) @ np.abs(M))
    xs, Js = cv.piggyback(F, x, 1.0, 2)
    assert np.all(np.isfinite(Js))


def test_huge_constant_on_the_demanded_rows():
    """A design with a column of 1e100 entries (step ~ 1e-200): the demanded rows of
    s X^T (X J) combine 1e200-sized products; agreement to rounding of sum |terms|."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((30, 150))
    X[:, 3] *= 1e100
    y = rng.standard_normal(30)
    F = cv.algorithms.forward_backward_lasso(X, y)
    s = F.info["step"]
    for lam, k in ((0.0, 4), (1e-3, 20), (1e3, 150)):
        w = rng.standard_normal(150) * (rng.random(150) < k / 150)
        w[3] = 1e-100
        value, A, B, z, thr = _dense_fb(X, y, s, w, lam)
        D = (np.abs(z) > thr)
        scaleA = D[:, None] * (np.eye(150) + s * np.abs(X.T) @ np.abs(X))
        dx = rng.standard_normal((150, 20))
        v, tan = F.jvp(w, lam, dx=dx)
        _close(tan, A @ dx, scaleA @ np.abs(dx), rtol=1e-11)   # (X^T X dense: 2 roundings)
        assert np.all(tan[~D] == 0.0)


def test_masks_change_between_calls_on_one_map():
    """Support growth, shrink, all zero, all active, same support new values, in one Map and
    one jvp_run (one prologue, many steps): each against the dense NumPy derivative."""
    F, X, y = _lasso(30, 200, 21)
    s = F.info["step"]
    rng = np.random.default_rng(22)
    p = F.program
    lam = 0.3
    tb = np.array([lam])
    run = jvp_run(p, tb, np.ones((1, 1, 1)), call="test")       # theta seed: one direction
    order = [3, 3, 40, 120, 200, 0, 7, 7, 200, 1]
    for j, k in enumerate(order):
        w = np.zeros(200)
        w[rng.choice(200, k, replace=False)] = rng.standard_normal(k) * 3.0
        if j == 4:
            w *= 100.0                                          # every coordinate active
        value, A, B, z, thr = _dense_fb(X, y, s, w, lam)
        D = np.abs(z) > thr
        scaleA = D[:, None] * (np.eye(200) + s * np.abs(X.T) @ np.abs(X))
        for T in (1, 5, 30):
            dx = rng.standard_normal((200, T))
            dx[rng.random(200) < 0.7] = 0.0
            v, tan = F.jvp(w, lam, dx=dx)
            _close(tan, A @ dx, scaleA @ np.abs(dx))
        J = rng.standard_normal((200, 1)) * (rng.random((200, 1)) < 0.3)
        v, tan = run(w[None], J[None])
        _close(tan[0], A @ J + B, scaleA @ np.abs(J) + np.abs(B))
        _close(v[0], value, 1.0 + np.abs(w) + s * np.abs(X.T) @ (np.abs(X) @ np.abs(w)
                                                                   + np.abs(y)))
        if j == 4:
            assert D.all()                                      # every coordinate active
    # lam so large that nothing is active: zero tangent; lam = 0: everything
    w = rng.standard_normal(200)
    assert not F.jvp(w, 1e6, dx=np.ones((200, 3)))[1].any()
    value, A, B, z, thr = _dense_fb(X, y, s, w, 0.0)
    _close(F.jvp(w, 0.0, dx=np.eye(200)[:, :40])[1], A[:, :40],
           (np.eye(200) + s * np.abs(X.T) @ np.abs(X))[:, :40])


def test_batch_of_states_through_the_demand_step():
    """value_and_jvp on a batch of four states of different supports (the union of their
    demands is computed): each row agrees with its own single-point call and with NumPy."""
    F, X, y = _lasso(30, 200, 31)
    s = F.info["step"]
    rng = np.random.default_rng(32)
    p = F.program
    W = rng.standard_normal((4, 200)) * (rng.random((4, 200)) < np.array([[0.02], [0.1],
                                                                          [0.5], [1.0]]))
    for T in (3, 20):
        tx = rng.standard_normal((4, 200, T))
        v, tan = value_and_jvp(p, W, np.array([0.3]), {p.x_node: tx}, call="test")
        for i in range(4):
            value, A, B, z, thr = _dense_fb(X, y, s, W[i], 0.3)
            D = np.abs(z) > thr
            scaleA = D[:, None] * (np.eye(200) + s * np.abs(X.T) @ np.abs(X))
            _close(tan[i], A @ tx[i], scaleA @ np.abs(tx[i]))
            vi, ti = value_and_jvp(p, W[i:i + 1], np.array([0.3]), {p.x_node: tx[i:i + 1]},
                                   call="test")
            _close(tan[i], ti[0], scaleA @ np.abs(tx[i]))
            _close(v[i], vi[0], 1.0 + np.abs(W[i]) + s * np.abs(X.T) @ (
                np.abs(X) @ np.abs(W[i]) + np.abs(y)))


def _dense_piggyback(F, X, y, s, xs, lam):
    m = 1 if np.ndim(lam) == 0 else len(lam)
    J = np.zeros((F.n, m))
    scale = np.zeros((F.n, m))
    for k in range(len(xs) - 1):
        _, A, B, _, _ = _dense_fb(X, y, s, xs[k], lam)
        absA = (A != 0) * (np.eye(F.n) + s * np.abs(X.T) @ np.abs(X))
        J, scale = A @ J + B, absA @ scale + np.abs(B)
    return J, scale


@pytest.mark.parametrize("weighted", [False, True])
def test_piggyback_and_piggyback_vjp_against_the_dense_recursion(weighted):
    """Along a trajectory from 0 the support grows and shrinks; m = 1 (narrow tangents) and
    m = p = 100 penalties (wide tangents: the elementwise demand rule)."""
    rng = np.random.default_rng(41)
    X, y = rng.standard_normal((30, 100)), rng.standard_normal(30)
    if weighted:
        F = cv.algorithms.weighted_lasso_forward_backward(X, y)
        lam = np.abs(rng.standard_normal(100)) * 2.0
    else:
        F = cv.algorithms.forward_backward_lasso(X, y)
        lam = 1.0
    s = F.info["step"]
    xs, Js = cv.piggyback(F, np.zeros(100), lam, 40)
    supports = [int(np.count_nonzero(x)) for x in xs]
    assert len(set(supports)) > 3                       # the mask changed along the run
    for k in range(40):                                 # the iterates: NumPy's formula
        value = _dense_fb(X, y, s, xs[k], lam)[0]
        _close(xs[k + 1], value, 1.0 + np.abs(xs[k]) + s * np.abs(X.T) @ (
            np.abs(X) @ np.abs(xs[k]) + np.abs(y)))
    for K in (1, 7, 40):
        J, scale = _dense_piggyback(F, X, y, s, xs[:K + 1], lam)
        _close(Js[K], J, scale, rtol=1e-10)            # (error grows ~ K * rounding)
    g = rng.standard_normal(100)
    J, scale = _dense_piggyback(F, X, y, s, xs, lam)
    _close(cv.piggyback_vjp(F, np.zeros(100), lam, 40, g), g @ J, np.abs(g) @ scale,
           rtol=1e-10)
    _close(g @ Js[-1], g @ J, np.abs(g) @ scale, rtol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_fpad_and_fpad_vjp_against_a_dense_solve(weighted):
    rng = np.random.default_rng(51)
    X, y = rng.standard_normal((40, 60)), rng.standard_normal(40)
    if weighted:
        F = cv.algorithms.weighted_lasso_forward_backward(X, y)
        lam = 3.0 + np.abs(rng.standard_normal(60))
    else:
        F = cv.algorithms.forward_backward_lasso(X, y)
        lam = 3.0
    s = F.info["step"]
    w = cv.fixed_point(F, np.zeros(60), lam, tol=1e-14, accelerate="anderson").x
    _, A, B, z, thr = _dense_fb(X, y, s, w, lam)
    assert np.min(np.abs(np.abs(z) - thr)) > 1e-8         # strict complementarity
    J = np.linalg.solve(np.eye(60) - A, B)
    g = rng.standard_normal(60)
    # conditioning of I - A on the support bounds the forward error
    kappa = np.linalg.cond(np.eye(60) - A)
    tol = max(1e-12, 1e-14 * kappa)
    scale = np.abs(g) @ np.abs(J)
    got = cv.fpad_vjp(F, lam, w, g, tol=1e-15)
    _close(got, g @ J, scale, rtol=tol)
    Js = cv.fpad(F, lam, w, 3000)
    _close(Js[-1], J, np.abs(J) + np.max(np.abs(J)), rtol=tol)


# --- bugs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("accelerate", [None, "anderson"])
@pytest.mark.parametrize("which", ["2 theta", "theta"])
def test_fixed_point_of_a_map_that_ignores_x(which, accelerate):
    """The output computed in the prologue (it does not depend on x) is returned by the step
    (was a NameError from the generated code)."""
    if which == "theta":
        F = cv.trace(lambda x, t: t, (3,), (3,))
        t, want = np.array([1.0, -2.0, 0.5]), np.array([1.0, -2.0, 0.5])
    else:
        F = cv.trace(lambda x, t: 2.0 * t, (), ())
        t, want = 2.0, 4.0
    r = cv.fixed_point(F, np.zeros(F.state_shape), t, accelerate=accelerate)
    np.testing.assert_array_equal(r.x, want)


@pytest.mark.parametrize("call", ["jvp dtheta", "jvp dx", "piggyback"])
def test_large_map_that_ignores_x_derivatives(call):
    M = np.random.default_rng(0).standard_normal((80, 80))
    F = cv.trace(lambda x, t: M @ t, (80,), (80,))
    x, t = np.zeros(80), np.ones(80)
    if call == "jvp dtheta":
        dt = np.eye(80)[:, :2]
        np.testing.assert_allclose(F.jvp(x, t, dtheta=dt)[1], M @ dt, rtol=RTOL)
    elif call == "jvp dx":
        assert not F.jvp(x, t, dx=np.ones((80, 2)))[1].any()
    else:
        np.testing.assert_allclose(cv.piggyback(F, x, t, 2)[1][-1], M, rtol=RTOL)


def test_jacobian_is_never_silently_nan():
    F = cv.trace(lambda x, t: cv.relu(1e200 * (1e200 * x) - 1.0) + t, (), ())
    _, cx, _ = F.vjp(0.0, 0.0, 1.0)
    assert cx == 0.0                                     # relu inactive: derivative 0
    try:
        D = F.jacobian(0.0, 0.0).default
    except cv.NonFiniteError as e:                       # refusing is acceptable, named
        assert "1e+200 * x" in str(e) and "rescale" in str(e)
        return
    np.testing.assert_array_equal(D, [[0.0, 1.0]])


@pytest.mark.parametrize("kind", ["linear next", "scaled next"])
def test_small_compiled_tangent_after_a_zero_tangent_node(kind):
    if kind == "linear next":           # add(where(...), x): both inputs carried along dx
        G = cv.trace(lambda x, t: x * 0.5 + cv.where(x > 0.0, t, t), (3,), ())
        _, tan = G.jvp(np.ones(3), 1.0, dx=np.eye(3))
        np.testing.assert_array_equal(tan, 0.5 * np.eye(3))
    else:                               # where(x > t, C, C) + x along dtheta only
        C = np.array([1.0, 2.0])
        G = cv.trace(lambda x, t: cv.where(x > t, C, C) + x, (2,), ())
        _, tan = G.jvp(np.array([1.0, -1.0]), 0.0, dtheta=np.ones(1))
        np.testing.assert_array_equal(tan, np.zeros((2, 1)))


@pytest.mark.parametrize("call", ["jvp", "piggyback"])
def test_demand_prologue_after_a_zero_tangent_node(call):
    rng = np.random.default_rng(0)
    M, C = rng.standard_normal((80, 80)) / 9, rng.standard_normal(80)
    F = cv.trace(lambda x, t: cv.soft_threshold(M @ x + M @ cv.where(t > 0.0, C, C), 0.1),
                 (80,), (80,))
    x, t = rng.standard_normal(80), rng.standard_normal(80)
    D = F.jacobian(x, t).default                     # the walk: B = 0
    assert not D[:, 80:].any()
    if call == "jvp":
        _, tan = F.jvp(x, t, dx=np.ones((80, 3)), dtheta=np.eye(80)[:, :3])
        _close(tan, D[:, :80] @ np.ones((80, 3)), np.abs(D[:, :80]) @ np.ones((80, 3)))
    else:
        assert not cv.piggyback(F, x, t, 2)[1].any()
