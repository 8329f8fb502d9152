"""Adversarial checks (session 24) of the block the affine test keeps between calls
(``affine_krawczyk._recent_block``, ``AffinePlan.columns_key``; commit ee128cb): calls on ONE
Map (``plan.recent`` kept; only ``fixed_point_set._RECENT`` cleared) where the rows stay and a
factor, a parameter box, the columns, the slopes or the constant rows change. Each result is
compared bit for bit with the call on an emptied cache, and with exact references (fixed
points on their piece pattern in Fractions, mpmath for exp; exact implicit derivatives)."""

from __future__ import annotations

from fractions import Fraction as Fr

import mpmath
import numpy as np
import pytest

import conservative as cv
import conservative.fixed_point_set as fps
from conservative.affine_enclosure import affine_plan
from _where_helpers import holds
from test_affine_enclosure import Q, Qmat, exact_lasso_point, fresh, lasso, problem
from test_affine_attack_s24 import (P_ABS, P_RELU, P_clip, P_pick, every, exact_points,
                                    lasso_derivative, matvec, solve)


def run(F, theta, x, box=None):
    """The enclosure with the Map's kept block as it is, then again with it emptied (the kept
    one restored after): both must agree bit for bit. Returns (enc, whether it reused)."""
    plan = affine_plan(F.program)
    go = (lambda: fresh(F, theta, x)) if box is None else \
        (lambda: fps.parametric_enclosure(F, box, x))
    before = [b.A_NN for b in plan.recent.values()]
    got = go()
    kept = dict(plan.recent)
    plan.recent.clear()
    ref = go()
    plan.recent.clear()
    plan.recent.update(kept)
    assert got.proven == ref.proven and (got.block is None) == (ref.block is None)
    assert not got.proven or (np.array_equal(got.lo, ref.lo) and np.array_equal(got.hi, ref.hi))
    assert got.block is None or np.array_equal(got.block, ref.block)
    return got, got.block is not None and any(got.block is b for b in before)


def hypergradient(F, theta, x):
    """``(g, cv.fpad_vjp(F, theta, x, g))`` on the Map's kept block (no enclosure cached)."""
    fps._RECENT.clear()
    g = np.linspace(-1.0, 1.5, F.n)
    v = cv.fpad_vjp(F, theta, x, g)
    fps._RECENT.clear()
    return g, v


def check_derivs(F, theta, x, J_exact):
    """``cv.fpad_vjp`` and ``cv.implicit_jacobian`` against the exact implicit Jacobian."""
    g, v = hypergradient(F, theta, x)
    np.testing.assert_allclose(v, g @ J_exact, rtol=1e-10, atol=1e-13)
    J = cv.implicit_jacobian(F, theta, x)
    fps._RECENT.clear()
    assert J.vertices.shape[0] == 1
    np.testing.assert_allclose(J.vertices[0], J_exact, rtol=1e-10, atol=1e-13)


def exact_jacobian(Wf, S, rhs):
    """``J`` with ``(I - diag(S) Wf) J = rhs`` (Fractions; rhs a list of columns)."""
    n = len(S)
    M = [[(1 if i == j else 0) - S[i] * Wf[i][j] for j in range(n)] for i in range(n)]
    return np.array([[float(v) for v in solve(M, col)] for col in rhs]).T


def pattern_point(Wf, c, P, x):
    """The exact fixed point of ``P(Wf x + c)`` on the pattern of pieces of the float x."""
    pts = [p for p in exact_points(Wf, c, P, every(P, len(c)))
           if all(abs(float(a) - b) <= 1e-9 * (1 + abs(b)) for a, b in zip(p, x))]
    assert len(pts) == 1
    return pts[0]


def small_layer(seed, n=5, m=2, norm=0.4):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n))
    return rng, W * norm / np.linalg.norm(W, 2), rng.standard_normal((n, m)), \
        0.5 * rng.standard_normal(n)


# --- 1. theta-dependent factors of the products -------------------------------------------

def test_lasso_step_alternating_by_one_ulp_is_never_reused_across():
    X, y, s, lam = problem(8)
    XT = np.ascontiguousarray(X.T)
    F = cv.trace(lambda w, t: cv.soft_threshold(w - t[1] * (XT @ (X @ w - y)), t[1] * t[0]),
                 (X.shape[1],), (2,))
    w = cv.fixed_point(F, np.zeros(X.shape[1]), np.array([lam, s]), tol=1e-15,
                       max_steps=100_000).x
    exact, dw = exact_lasso_point(X, y, lam, w), lasso_derivative(X, w)
    s_up = float(np.nextafter(s, np.inf))
    seen, blocks = [], {}
    for step in (s, s, s_up, s_up, s, s_up, s):
        enc, reused = run(F, np.array([lam, step]), w)
        assert enc.proven and enc.block is not None and holds(enc, exact)
        seen.append(reused)
        assert np.array_equal(enc.block, blocks.setdefault(step, enc.block))
        g, v = hypergradient(F, np.array([lam, step]), w)      # the step cancels at w
        np.testing.assert_allclose(v, [g @ dw, 0.0], rtol=1e-10, atol=1e-9)
    assert seen == [False, True, False, True, False, False, False]
    assert not np.array_equal(blocks[s], blocks[s_up])   # a stale block would be seen


@pytest.mark.parametrize("form", ["mul_after", "div_after", "mul_before", "twice"])
def test_factor_alternating_by_one_ulp(form):
    rng, W, U, b = small_layer(3, m=1)
    b = np.abs(b) + 0.2
    b[1] = -abs(b[1]) - 1.0                               # one dead unit
    fn = {"mul_after": lambda x, t: cv.relu((W @ x) * t[0] + b),
          "div_after": lambda x, t: cv.relu((W @ x) / t[0] + b),
          "mul_before": lambda x, t: cv.relu(W @ (x * t) + b),        # theta of shape (n,)
          "twice": lambda x, t: cv.relu(((W @ x) * t[0]) * t[0] + 0.5 * x + b)}[form]
    n = len(b)
    a = np.full(n if form == "mul_before" else 1, 0.9)
    a_up = a.copy()
    a_up[-1] = np.nextafter(a[-1], np.inf)
    F = cv.trace(fn, (n,), a.shape)
    Wq, A_half = Qmat(W), Fr(1, 2) if form == "twice" else Fr(0)
    blocks, seen = [], []
    for t in (a, a_up, a, a, a_up):
        tq = [Fr(float(v)) for v in t]
        Wf = [[(tq[0] ** 2 * w if form == "twice" else w / tq[0] if form == "div_after" else
                w * tq[j if form == "mul_before" else 0]) + (A_half if i == j else 0)
               for j, w in enumerate(row)] for i, row in enumerate(Wq)]
        x = cv.fixed_point(F, np.zeros(n), t, tol=1e-15).x
        enc, reused = run(F, t, x)
        xe = pattern_point(Wf, Q(b), P_RELU, x)
        assert enc.proven and enc.block is not None and holds(enc, xe)
        seen.append(reused)
        blocks.append(enc.block)
    assert seen == [False, False, False, True, False]
    assert np.array_equal(blocks[0], blocks[2])
    if form != "div_after":               # (the midpoint of 1 / t may be the same float)
        assert not np.array_equal(blocks[0], blocks[1])      # a stale block would be seen


def test_product_of_thetas_with_the_same_interval_but_other_reals():
    # t0 t1 rounds to [0.5, 0.5+] for (0.1, 5) and (1/22, 11) (different reals above 1/2),
    # to [0.5-, 0.5] for (1/6, 3), exactly 1/2 for (2, 1/4) and (1/2, 1)
    _, W, U, b = small_layer(5)
    U, b = 0.01 * U, np.abs(b) + 0.5
    b[0] = -2.0
    F = cv.trace(lambda x, t: cv.relu((W @ x) * (t[0] * t[1]) + U @ t + b), (5,), (2,))
    seen = []
    for t1 in (5.0, 11.0, 3.0, 0.25, 1.0):
        theta = np.array([0.5 / t1, t1])
        t0q, t1q = Fr(theta[0]), Fr(theta[1])
        f = t0q * t1q
        x = cv.fixed_point(F, np.zeros(5), theta, tol=1e-15).x
        enc, reused = run(F, theta, x)
        seen.append(reused)
        Wf = [[f * w for w in row] for row in Qmat(W)]
        c = [a + sum(u * v for u, v in zip(row, (t0q, t1q))) for a, row in zip(Q(b), Qmat(U))]
        xe = pattern_point(Wf, c, P_RELU, x)
        assert enc.proven and enc.block is not None and holds(enc, xe)
        S = [1 if v > 0 else 0 for v in xe]
        Wx = matvec(Qmat(W), xe)                 # d/dt_k: S (W x d(t0 t1)/dt_k + U[:, k])
        rhs = [[S[i] * (Wx[i] * d + Qmat(U)[i][k]) for i in range(5)]
               for k, d in enumerate((t1q, t0q))]
        check_derivs(F, theta, x, exact_jacobian(Wf, S, rhs))
    assert seen == [False, True, False, False, True]


@mpmath.workprec(200)
def test_exp_of_theta_as_the_factor():
    mp, (_, W, U, b) = mpmath.mp, small_layer(6, norm=0.3)
    b = np.abs(b) + 0.1
    b[2] = -3.0
    F = cv.trace(lambda x, t: cv.relu((W @ x) * cv.exp(t[0]) + U @ t + b), (5,), (2,))
    Wm, Um = mp.matrix(W.tolist()), mp.matrix(U.tolist())
    seen, t0 = [], 0.3
    # exp's interval at the next float is the same (a few ulps wide, holding both): reused
    for a in (t0, float(np.nextafter(t0, 1.0)), t0 + 1e-13, t0, t0, -0.2, t0):
        theta = np.array([a, 0.7])
        x = cv.fixed_point(F, np.zeros(5), theta, tol=1e-15).x
        enc, reused = run(F, theta, x)
        seen.append(reused)
        e, S = mp.exp(mp.mpf(a)), mp.diag([1 if v > 0 else 0 for v in x])
        M = mp.eye(5) - e * S * Wm                          # (I - S e W) x = S c on the pattern
        xe = mp.lu_solve(M, S * (Um * mp.matrix(theta.tolist()) + mp.matrix(b.tolist())))
        pre = e * Wm * xe + Um * mp.matrix(theta.tolist()) + mp.matrix(b.tolist())
        assert all((pre[i] > 0) == (x[i] > 0) and (x[i] > 0 or xe[i] == 0) for i in range(5))
        assert enc.proven and enc.block is not None
        assert all(mp.mpf(lo) <= v <= mp.mpf(hi) for lo, v, hi in zip(enc.lo, xe, enc.hi))
        rhs = S * (Um + (e * Wm * xe) * mp.matrix([[1, 0]]))  # d/dt0 of e W x is e W x
        check_derivs(F, theta, x, np.array((mp.inverse(M) * rhs).tolist(), dtype=float))
    assert seen == [False, True, False, False, True, False, False]


# --- 2. parametric boxes, then points -------------------------------------------------------

def test_parametric_boxes_of_other_widths_then_points():
    W = np.array([[0.25, 0.0, 0.125], [0.1, 0.25, 0.0], [0.0, -0.125, 0.3]])
    F = cv.trace(lambda x, t: cv.relu(W @ x / t[0] + t[1]), (3,), (2,))
    c = np.array([1.0, 1.1])
    x = cv.fixed_point(F, np.zeros(3), c, tol=1e-15).x
    seen = []
    # (below, above) the point c; one-sided boxes share an endpoint with the point
    for r in ((1e-9,) * 2, (1e-10,) * 2, (0, 0), (1e-9,) * 2, None, (0, 0), (0, 1e-9),
              (0, 1e-10), None, (1e-9, 0), (1e-10, 0), None, (1e-12, 1e-12)):
        box = None if r is None else (c - np.array([r[0], r[0]]), c + np.array([r[1], 2 * r[1]]))
        enc, reused = run(F, c, x, box)
        seen.append(reused)
        assert enc.proven and enc.block is not None
        corners = [c] if box is None else [np.array([u, v]) for u in (box[0][0], box[1][0])
                                            for v in (box[0][1], box[1][1])]
        for t0, t1 in corners:
            Wf = [[w / Fr(t0) for w in row] for row in Qmat(W)]
            assert holds(enc, exact_points(Wf, [Fr(t1)] * 3, P_RELU, [[1, 1, 1]])[0])
    # the point box (c, c) has the endpoints of the point c: the same block, soundly
    assert seen == [False] * 5 + [True] + [False] * 7


# --- 3. the same rows with other columns, the same columns with other rows ----------------

def test_same_rows_other_columns_and_same_columns_other_rows():
    # theta switches units 3 and 4 (one active); x moved off 0 on dead units: the columns
    # change with the rows kept, and the rows with the columns kept (as many, of slope 1)
    rng, W, _, b = small_layer(19, n=6, norm=0.2)
    b = np.array([1.0, -1.0, 0.5, 0.0, 0.0, 2.0])
    U = np.eye(6)[:, 3:5]
    F = cv.trace(lambda x, t: cv.relu(W @ x + U @ t + b), (6,), (2,))
    seen = []
    for t, moved, off in ((1, [4], 1e-13), (1, [], 0), (1, [1, 4], 1e-13), (1, [1], -1e-13),
                          (1, [1], 1e-13), (1, [4], 1e-13), (-1, [3], 1e-13), (1, [4], 1e-13),
                          (-1, [3], 1e-13), (-1, [3], 1e-13)):
        theta = np.array([t, -t], dtype=float)
        x = cv.fixed_point(F, np.zeros(6), theta, tol=1e-15).x
        c = [a + sum(Fr(v) * u for v, u in zip(theta, row)) for a, row in zip(Q(b), Qmat(U))]
        xe = pattern_point(Qmat(W), c, P_RELU, x)
        assert list(np.flatnonzero(x == 0)) == [1, 4 if t > 0 else 3]
        x[moved] = off
        enc, reused = run(F, theta, x)
        seen.append(reused)
        assert enc.proven and enc.block is not None and holds(enc, xe)
        assert list(enc.rows) == [0, 2, 3 if t > 0 else 4, 5]
        S = [1 if v > 0 else 0 for v in xe]
        check_derivs(F, theta, x, exact_jacobian(Qmat(W), S, [[S[i] * U[i, k] for i in range(6)]
                                                              for k in (0, 1)]))
    assert seen == [False] * 4 + [True] + [False] * 4 + [True]


# --- 4. pieces of other slopes on the same rows ---------------------------------------------

def test_abs_slopes_flipping_on_the_same_rows():
    rng, W, _, b = small_layer(11, n=4, norm=0.3)
    b = np.array([1.0, -1.0, 0.5, 0.0])
    U = np.array([[0.0], [0.0], [0.0], [1.0]])            # theta flips the sign of row 3 only
    F = cv.trace(lambda x, t: cv.abs(W @ x + U @ t + b), (4,), (1,))
    seen = []
    for t in (1.0, -1.0, 1.0, 1.0, -1.0, -1.0):
        theta = np.array([t])
        x = cv.fixed_point(F, np.full(4, 1.0), theta, tol=1e-15).x
        c = [a + u[0] * Fr(t) for a, u in zip(Q(b), Qmat(U))]
        xe = pattern_point(Qmat(W), c, P_ABS, x)
        enc, reused = run(F, theta, x)
        seen.append(reused)
        assert enc.proven and enc.block is not None and holds(enc, xe)
        assert list(enc.rows) == [0, 1, 2, 3]
        S = [1 if u > 0 else -1 for u in (a + b_ for a, b_ in zip(matvec(Qmat(W), xe), c))]
        assert S[3] == (1 if t > 0 else -1)
        np.testing.assert_array_equal(enc.block, np.array(S)[:, None] * W)
        check_derivs(F, theta, x, exact_jacobian(Qmat(W), S,
                                                 [[S[i] * Fr(U[i, 0]) for i in range(4)]]))
    assert seen == [False, False, False, True, False, True]


def test_leaky_maximum_is_outside_the_plan_and_sound():
    rng, W, _, b = small_layer(13, n=3, norm=0.4)
    b = np.array([1.0, -1.0, 0.25])
    F = cv.trace(lambda x, t: cv.maximum(W @ x + b * t, 0.5 * (W @ x + b * t)), (3,), ())
    assert affine_plan(F.program) is None
    P = ([(1, lambda i: Fr(0)), (Fr(1, 2), lambda i: Fr(0))], lambda i, u: max(u, u / 2))
    for t in (1.0, -1.0, 1.0):
        x = cv.fixed_point(F, np.zeros(3), t, tol=1e-15).x
        enc = fresh(F, t, x)
        assert enc.proven and holds(enc, pattern_point(Qmat(W), [v * Fr(t) for v in Q(b)], P, x))


# --- 5. identity pieces, constant rows with theta bounds ------------------------------------

@pytest.mark.parametrize("kind", ["floor", "clip"])
def test_constant_rows_with_theta_bounds(kind):
    # maximum(u, t): identity everywhere at t = -100, clamped rows at t = 0 (other rows, other
    # block); clip(u, -t, t): the clamped rows move with t, L does not (the block is kept)
    rng, W, _, b = small_layer(12, n=6, norm=0.4)
    b = np.array([3.0, -2.5, 0.1, -0.2, 2.0, 0.05])
    if kind == "floor":
        F = cv.trace(lambda x, t: cv.maximum(W @ x + b, t[0]), (6,), (1,))
        ts, P = (-100.0, 0.0, -100.0, -50.0, 0.0, 0.125), lambda t: P_pick([t], max)
    else:
        F = cv.trace(lambda x, t: cv.clip(W @ x + b, -t[0], t[0]), (6,), (1,))
        ts, P = (0.8, 0.8 + 1e-9, 0.8, 0.75, float(np.nextafter(0.75, 1))), \
            lambda t: P_clip([-t], [t])
    seen = []
    for t in ts:
        theta = np.array([t])
        x = cv.fixed_point(F, np.zeros(6), theta, tol=1e-15).x
        enc, reused = run(F, theta, x)
        seen.append(reused)
        xe = pattern_point(Qmat(W), Q(b), P(t), x)
        assert enc.proven and enc.block is not None and holds(enc, xe)
        S = [0 if v == Fr(t) or (kind == "clip" and v == -Fr(t)) else 1 for v in xe]
        assert 0 < sum(S) and (sum(S) == 6) == (t <= -50.0)      # identity: all rows
        rhs = [[0 if s_ else (1 if v >= 0 or kind == "floor" else -1) for s_, v in zip(S, xe)]]
        check_derivs(F, theta, x, exact_jacobian(Qmat(W), S, rhs))
    assert seen[1:] == ([False, False, True, False, True] if kind == "floor" else [True] * 4)


# --- 6. two Maps of one function; equal constants in other objects ---------------------------

def test_two_maps_of_one_function_interleaved():
    X, y, s, lam = problem(9)
    X2 = X.copy()
    w = cv.fixed_point(lasso(X, y, s), np.zeros(X.shape[1]), lam, tol=1e-15,
                       max_steps=100_000).x
    j = int(np.flatnonzero(w)[0])
    X2[0, j] *= 1.0 + 1e-10                               # an entry of an active column
    F1, F1b, F2 = lasso(X, y, s), lasso(X.copy(), y.copy(), s), lasso(X2, y, s)
    F1c = cv.Map(F1.program)                              # the same program: the same plan
    p1, p1b, p2, p1c = (affine_plan(F.program) for F in (F1, F1b, F2, F1c))
    assert p1 is not p1b and p1 is not p2 and p1 is p1c
    w2 = cv.fixed_point(F2, w, lam, tol=1e-15, max_steps=100_000).x
    pts = {id(F1): w, id(F1b): w, id(F1c): w, id(F2): w2}
    blocks, seen = {}, []
    for F, Xf in ((F1, X), (F2, X2), (F1b, X), (F1, X), (F2, X2), (F1c, X), (F2, X2)):
        wf = pts[id(F)]
        enc, reused = run(F, lam, wf)
        seen.append(reused)
        assert enc.proven and enc.block is not None
        assert holds(enc, exact_lasso_point(Xf, y, lam, wf))
        blocks.setdefault(id(Xf), enc.block)
        assert np.array_equal(enc.block, blocks[id(Xf)])
        g, v = hypergradient(F, lam, wf)
        np.testing.assert_allclose(v, [g @ lasso_derivative(Xf, wf)], rtol=1e-10)
    assert not np.array_equal(blocks[id(X)], blocks[id(X2)])
    assert seen == [False, False, False, True, True, True, True]      # one block per program


# --- 7. the hypergradient along a lambda path on one Map --------------------------------------

@pytest.mark.parametrize("with_step", [False, True])
def test_fpad_vjp_along_a_lambda_path_is_the_exact_hypergradient(with_step):
    X, y, s, lam_max = problem(4, n=15, p=25, frac=1.0)
    XT = np.ascontiguousarray(X.T)
    F = cv.trace(lambda w, t: cv.soft_threshold(w - t[1] * (XT @ (X @ w - y)), t[1] * t[0]),
                 (25,), (2,)) if with_step else lasso(X, y, s)
    plan, g = affine_plan(F.program), np.random.default_rng(0).standard_normal(25)
    w, hits, supports = np.zeros(25), 0, set()
    lams = lam_max * np.geomspace(0.6, 0.08, 14)
    for k, lam in enumerate(np.repeat(lams, 2)):
        step = s if not with_step or k % 3 else 0.8 * s
        theta = np.array([lam, step]) if with_step else lam
        w = cv.fixed_point(F, w, theta, tol=1e-15, max_steps=200_000).x
        before = list(plan.recent.values())
        fps._RECENT.clear()
        got = cv.fpad_vjp(F, theta, w, g)
        hits += bool(before) and any(b is v for b in before for v in plan.recent.values())
        exact = g @ lasso_derivative(X, w)
        np.testing.assert_allclose(got[0] if with_step else got, exact, rtol=1e-10)
        if with_step:
            assert abs(got[1]) <= 1e-9 * (1 + abs(exact)) / s
        assert exact_lasso_point(X, y, lam, w) is not None
        supports.add(tuple(np.flatnonzero(w)))
    fps._RECENT.clear()
    assert hits >= 5 and len(supports) >= 3              # reuse happened, supports changed


# --- 8. random sequences on one Map -----------------------------------------------------------

def test_random_sequences_of_factors_boxes_and_moved_rows():
    rng, W, _, b = small_layer(2, n=4, norm=0.3)
    b = np.abs(b) + 1.0
    b[0] = -3.0                                          # unit 0 dead: x may move off it
    F = cv.trace(lambda x, t: cv.relu((W @ (x * t[2])) * t[0] / t[1] + b), (4,), (3,))
    vals, hits = [0.9, float(np.nextafter(0.9, 1.0))], 0
    th, x0, r = np.full(3, 0.9), 0.0, -1.0
    for _ in range(40):                    # each of the five keeps its value with p = 0.7
        keep = rng.random(5) < 0.7
        th = np.where(keep[:3], th, rng.choice(vals, size=3))
        x0 = x0 if keep[3] else rng.choice([0.0, 1e-13, -1e-12])
        r = r if keep[4] else rng.choice([-1.0, 0.0, 1e-12, 1e-10])   # a point, or a box
        x = cv.fixed_point(F, np.ones(4), th, tol=1e-15).x
        x[0] = x0
        enc, reused = run(F, th, x, None if r < 0 else (th - r, th + r))
        hits += reused
        f = Fr(th[2]) * Fr(th[0]) / Fr(th[1])
        xe = pattern_point([[f * w for w in row] for row in Qmat(W)], Q(b), P_RELU, x)
        assert enc.proven and enc.block is not None and holds(enc, xe)     # th is in the box
    assert hits >= 3
