"""The affine test of the fixed-point enclosure (``conservative/affine_enclosure.py`` and
``fixed_point_set._affine_test``): maps ``P(L x + c, ...)`` with P piecewise affine elementwise.

Every proved box is checked against the exact fixed point, solved in rational arithmetic on
its active pattern (the pattern itself verified exactly); the error bounds of the affine part
against exact evaluation with Fractions; the shortcut of the restricted adjoint against the
general pull-back and an exact implicit derivative.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import conservative as cv
import conservative.fixed_point_set as fps
from conservative import interval as iv
from conservative.affine_enclosure import affine_plan, norm_up
from conservative.jacobian import vjp

from _where_helpers import holds


def fresh(F, theta, x):
    fps._RECENT.clear()
    try:
        return cv.fixed_point_enclosure(F, theta, np.asarray(x, dtype=float))
    finally:
        fps._RECENT.clear()


def general(F, theta, x, monkeypatch):
    """The enclosure without the affine test (the general Krawczyk tests decide)."""
    with monkeypatch.context() as m:
        m.setattr(fps, "_affine_test", lambda *a: None)
        return fresh(F, theta, x)


# --- exact references ---------------------------------------------------------------------------

def Q(a):
    return [Fraction(float(v)) for v in np.ravel(a)]


def Qmat(a):
    a = np.atleast_2d(np.asarray(a, dtype=float))
    return [[Fraction(float(v)) for v in row] for row in a]


def solve(A, b):
    """Exact Gaussian elimination (A square); None when A is singular."""
    n = len(b)
    M = [row[:] + [b[i]] for i, row in enumerate(A)]
    for c in range(n):
        piv = next((r for r in range(c, n) if M[r][c] != 0), None)
        if piv is None:
            return None
        M[c], M[piv] = M[piv], M[c]
        for r in range(n):
            if r != c and M[r][c] != 0:
                f = M[r][c] / M[c][c]
                M[r] = [a - f * bb for a, bb in zip(M[r], M[c])]
    return [M[i][n] / M[i][i] for i in range(n)]


def lasso(X, y, s):
    """``soft_threshold(w - s X^T (X w - y), s t)`` written directly (the exact map is the one
    of these float constants)."""
    XT = np.ascontiguousarray(X.T)
    return cv.trace(lambda w, t: cv.soft_threshold(w - s * (XT @ (X @ w - y)), s * t),
                    (X.shape[1],), ())


def exact_lasso_point(X, y, t, w):
    """The exact fixed point with the support and signs of ``w``: ``X_S^T X_S w_S = X_S^T y -
    sign t`` (the step cancels), checked to keep that pattern exactly; or None."""
    Xq, yq, tq = Qmat(X), Q(y), Fraction(float(t))
    n, p = len(Xq), len(Xq[0])
    S = list(np.flatnonzero(w))
    sign = [1 if w[i] > 0 else -1 for i in S]
    A = [[sum(Xq[r][i] * Xq[r][j] for r in range(n)) for j in S] for i in S]
    b = [sum(Xq[r][i] * yq[r] for r in range(n)) - sg * tq for i, sg in zip(S, sign)]
    wS = solve(A, b) if S else []
    full = [Fraction(0)] * p
    for i, v in zip(S, wS):
        full[i] = v
    res = [sum(Xq[r][j] * full[j] for j in S) - yq[r] for r in range(n)]
    grad = [sum(Xq[r][i] * res[r] for r in range(n)) for i in range(p)]
    for i in range(p):
        if i in S:
            if full[i] * sign[S.index(i)] <= 0:
                return None
        elif abs(grad[i]) > tq:
            return None
    return full


def relu_layer(W, U, b):
    n = W.shape[0]
    return cv.trace(lambda x, t: cv.relu(W @ x + U @ t + b), (n,), (U.shape[1],))


def exact_relu_point(W, U, b, theta, x):
    """Exact fixed point of ``relu(W x + U theta + b)`` with the active set of x."""
    Wq, Uq, bq, tq = Qmat(W), Qmat(U), Q(b), Q(theta)
    n = len(bq)
    c = [sum(Uq[i][j] * tq[j] for j in range(len(tq))) + bq[i] for i in range(n)]
    A = list(np.flatnonzero(x > 0))
    M = [[(1 if i == j else 0) - Wq[i][j] for j in A] for i in A]
    xa = solve(M, [c[i] for i in A]) if A else []
    full = [Fraction(0)] * n
    for i, v in zip(A, xa):
        full[i] = v
    pre = [sum(Wq[i][j] * full[j] for j in range(n)) + c[i] for i in range(n)]
    if any((pre[i] <= 0) if i in A else (pre[i] > 0) for i in range(n)):
        return None
    return full


def problem(seed, n=15, p=30, frac=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) / np.sqrt(n)
    y = X[:, :3] @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(n)
    s = 1.0 / np.linalg.norm(X, 2) ** 2
    lam = frac * float(np.max(np.abs(X.T @ y)))
    return X, y, s, lam


# --- proofs hold the exact fixed point ------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_lasso_box_holds_the_exact_fixed_point(seed, monkeypatch):
    X, y, s, lam = problem(seed)
    F = lasso(X, y, s)
    w = cv.fixed_point(F, np.zeros(X.shape[1]), lam, tol=1e-15, max_steps=100_000).x
    exact = exact_lasso_point(X, y, lam, w)
    assert exact is not None
    enc = fresh(F, lam, w)
    assert enc.proven and enc.block is not None and enc.kinks == ()
    assert holds(enc, exact)
    assert list(enc.rows) == list(np.flatnonzero(w))
    # the general test agrees on the rows, and its box meets the affine one
    ref = general(F, lam, w, monkeypatch)
    assert ref.proven and list(ref.rows) == list(enc.rows)
    assert np.all(np.maximum(enc.lo, ref.lo) <= np.minimum(enc.hi, ref.hi))
    # row l1 bounds are upper bounds of the exact l1 norms of A's rows (A = I - s X^T X there)
    Xq, sq = Qmat(X), Fraction(float(s))
    n, p = len(Xq), len(Xq[0])
    for i in enc.rows:
        row = [(1 if i == j else 0) - sq * sum(Xq[r][i] * Xq[r][j] for r in range(n))
               for j in range(p)]
        assert Fraction(float(enc.row_l1[i])) >= sum(abs(v) for v in row)


@pytest.mark.parametrize("offset", [1e-13, -3e-12, 1e-9])
def test_lasso_box_from_a_perturbed_point(offset):
    X, y, s, lam = problem(11)
    F = lasso(X, y, s)
    w = cv.fixed_point(F, np.zeros(X.shape[1]), lam, tol=1e-15, max_steps=100_000).x
    exact = exact_lasso_point(X, y, lam, w)
    x0 = w + offset * (np.abs(w) > 0)
    enc = fresh(F, lam, x0)
    assert enc.proven and holds(enc, exact)


@pytest.mark.parametrize("seed", range(4))
def test_relu_layer_box_holds_the_exact_fixed_point(seed):
    rng = np.random.default_rng(100 + seed)
    n, m = 12, 3
    W = rng.standard_normal((n, n))
    W *= 0.6 / np.linalg.norm(W, 2)
    U, b = rng.standard_normal((n, m)), 0.3 * rng.standard_normal(n)
    theta = rng.standard_normal(m)
    F = relu_layer(W, U, b)
    x = cv.fixed_point(F, np.zeros(n), theta, tol=1e-15).x
    exact = exact_relu_point(W, U, b, theta, x)
    assert exact is not None
    enc = fresh(F, theta, x)
    assert enc.proven and enc.block is not None and holds(enc, exact)


@pytest.mark.parametrize("offset", [1e-13, -1e-13, 3e-300])
def test_relu_box_where_x_is_off_the_constant_rows(offset):
    # x moved off 0 on the dead units (F is 0 there): the box there is hull(x, 0), and the
    # Krawczyk test sees those columns of A
    rng = np.random.default_rng(7)
    n, m = 10, 2
    W = rng.standard_normal((n, n))
    W *= 0.5 / np.linalg.norm(W, 2)
    U, b = rng.standard_normal((n, m)), rng.standard_normal(n)
    theta = rng.standard_normal(m)
    F = relu_layer(W, U, b)
    x = cv.fixed_point(F, np.zeros(n), theta, tol=1e-15).x
    dead = np.flatnonzero(x == 0)
    assert 0 < len(dead) < n
    exact = exact_relu_point(W, U, b, theta, x)
    x0 = x.copy()
    x0[dead] = offset
    enc = fresh(F, theta, x0)
    assert enc.proven and enc.block is not None and holds(enc, exact)      # the affine test
    assert np.all(enc.lo[dead] <= min(offset, 0.0)) and np.all(enc.hi[dead] >= max(offset, 0.0))


def test_parametric_box_holds_the_fixed_point_at_every_corner():
    X, y, s, lam = problem(3)
    F = lasso(X, y, s)
    w = cv.fixed_point(F, np.zeros(X.shape[1]), lam, tol=1e-15, max_steps=100_000).x
    box = (lam * (1 - 1e-7), lam * (1 + 1e-7))
    enc = fps.parametric_enclosure(F, box, w)
    assert enc.proven and enc.block is not None
    for t in (box[0], lam, box[1]):
        wt = cv.fixed_point(F, w, t, tol=1e-15, max_steps=100_000).x
        exact = exact_lasso_point(X, y, t, wt)
        assert exact is not None and holds(enc, exact)


# --- where the affine test must not decide ---------------------------------------------------

def test_a_fixed_point_on_a_kink_goes_to_the_general_test():
    # integer data: X^T y is exact, lam = max |X^T y| puts the zero solution on the kink
    X = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, 0.0, 1.0]])
    y = np.array([1.0, 1.0, 2.0])
    lam = float(np.max(np.abs(X.T @ y)))
    F = lasso(X, y, 0.0625)
    enc = fresh(F, lam, np.zeros(3))
    assert enc.block is None and enc.kinks          # the kink is reported, not stepped over


def test_no_proof_for_a_map_without_a_fixed_point():
    F = cv.trace(lambda x, t: cv.relu(x) + t, (3,), ())
    enc = fresh(F, 1e-3, np.ones(3))        # x = x + 1e-3 on the active piece: none
    assert not enc.proven


def test_expanding_piece_is_proved_where_a_fixed_point_is():
    F = cv.trace(lambda x, t: cv.relu(2.0 * x - t), (2,), ())   # x = 2x - 1: x = 1
    enc = fresh(F, 1.0, np.array([1.0 + 1e-12, 1.0 - 1e-12]))
    assert enc.proven and holds(enc, [Fraction(1), Fraction(1)])


@pytest.mark.parametrize("scale", [2.0 ** -500, 2.0 ** -508, 2.0 ** 500])
def test_extreme_scales_are_proved_soundly_or_refused(scale):
    X, y, s, lam = problem(5, n=8, p=12)
    Xs, ys = X * scale, y
    s2 = s / scale ** 2
    F = lasso(Xs, ys, s2)
    w = cv.fixed_point(F, np.zeros(12), lam * scale, tol=1e-15, max_steps=100_000).x
    exact = exact_lasso_point(Xs, ys, lam * scale, w)
    enc = fresh(F, lam * scale, w)
    if enc.proven and exact is not None:
        assert holds(enc, exact)


def test_structures_outside_the_class_have_no_plan():
    n = 4
    W = 0.3 * np.eye(n)
    cases = [
        cv.trace(lambda x, t: cv.where(x > 0, 0.5 * x, 0.25 * x) + t, (n,), ()),  # where
        cv.trace(lambda x, t: cv.relu(W @ x + cv.relu(t)), (n,), ()),   # kink in theta alone
        cv.trace(lambda x, t: cv.relu(x @ W + t), (n,), ()),            # x @ C
        cv.trace(lambda x, t: cv.relu(W @ cv.tanh(x) + t), (n,), ()),   # not affine in x
        cv.trace(lambda x, t: 0.5 * cv.relu(W @ x + t), (n,), ()),      # not P at the output
        cv.trace(lambda x, t: cv.relu(x * x + t), (n,), ()),            # x times x
    ]
    for F in cases:
        assert affine_plan(F.program) is None
    assert affine_plan(relu_layer(W, np.ones((n, 1)), np.zeros(n)).program) is not None


# --- the error bounds of the affine part against exact evaluation ---------------------------

def _exact_u(X, D, a, b, x, t0, t1):
    """u = (a x - X (x / t0)) + t1 (D x) - b, exactly."""
    Xq, Dq, aq, bq, xq = Qmat(X), Qmat(D), Q(a), Q(b), Q(x)
    t0, t1 = Fraction(float(t0)), Fraction(float(t1))
    n = len(xq)
    return [aq[i] * xq[i] - sum(Xq[i][j] * xq[j] / t0 for j in range(n))
            + t1 * sum(Dq[i][j] * xq[j] for j in range(n)) - bq[i] for i in range(n)]


@pytest.mark.parametrize("scale", [1.0, 1e-150, 1e150, 2.0 ** -1040])
def test_value_columns_spread_and_l1_bounds_hold_exactly(scale):
    rng = np.random.default_rng(7)
    n = 9
    X, D = rng.standard_normal((n, n)) * scale, rng.standard_normal((n, n))
    a, b = rng.standard_normal(n), rng.standard_normal(n) * scale
    F = cv.trace(lambda x, t: cv.relu((a * x - X @ (x / t[0])) + t[1] * (D @ x) - b),
                 (n,), (2,))
    plan = affine_plan(F.program)
    assert plan is not None
    theta = np.array([3.0, -0.7])
    x = rng.standard_normal(n)
    free = plan.free_values(iv.Interval(theta))
    u = plan.value(free, x)
    exact = _exact_u(X, D, a, b, x, *theta)
    lo, hi = u.interval().lo, u.interval().hi
    assert all(Fraction(float(l)) <= e <= Fraction(float(h)) for l, e, h in zip(lo, exact, hi))
    # L's entries: u(e_j) - u(0), exactly
    zero = _exact_u(X, D, a, b, np.zeros(n), *theta)
    L = [[None] * n for _ in range(n)]
    for j in range(n):
        col = _exact_u(X, D, a, b, np.eye(n)[j], *theta)
        for i in range(n):
            L[i][j] = col[i] - zero[i]
    rows, cols = np.array([0, 3, 8]), np.array([1, 3, 5, 6])
    got = plan.columns(free, cols, rows).interval()
    for r, i in enumerate(rows):
        for c, j in enumerate(cols):
            assert Fraction(float(got.lo[r, c])) <= L[i][j] <= Fraction(float(got.hi[r, c]))
    d = np.abs(rng.standard_normal(n)) * 1e-3
    spread = plan.spread(free, d)
    for i in range(n):
        assert Fraction(float(spread[i])) >= sum(abs(L[i][j]) * Fraction(float(d[j]))
                                                 for j in range(n))
    l1 = plan.row_l1(free, rows)
    for r, i in enumerate(rows):
        assert Fraction(float(l1[r])) >= sum(abs(v) for v in L[i])


@pytest.mark.parametrize("scale", [1.0, 2.0 ** -1070, 2.0 ** 1000, 2.0 ** -600])
def test_norm_up_is_an_upper_bound(scale):
    rng = np.random.default_rng(2)
    w = np.abs(rng.standard_normal((5, 300))) * scale
    w[0, :290] = 0.0
    w[1] *= 2.0 ** -(np.arange(300) % 60)               # mixed magnitudes in one row
    got = norm_up(w, axis=1)
    for row, g in zip(w, got):
        exact = sum(Fraction(float(v)) ** 2 for v in row)
        assert Fraction(float(g)) ** 2 >= exact
    assert norm_up(np.zeros(4)) == 0.0


# --- the restricted adjoint ------------------------------------------------------------------

def test_theta_only_pullback_matches_the_full_one():
    rng = np.random.default_rng(4)
    n, m = 10, 3
    W = rng.standard_normal((n, n)) * 0.1
    U = rng.standard_normal((n, m))
    F = cv.trace(lambda x, t: cv.relu(W @ x + U @ t + t[0] * x), (n,), (m,))
    x, theta = rng.standard_normal(n), rng.standard_normal(m)
    from conservative.evaluate import evaluate
    from conservative.jacobian import linearise
    xb, tb = F.point(x, theta, call="test")
    values = evaluate(F.program, xb, tb, call="test", keep=True)
    lin = linearise(F.program, values, tol=0.0, call="test", with_pieces=False)
    ct = rng.standard_normal((1, n))
    full = vjp(F.program, values, lin.partials, ct, call="test")
    part = vjp(F.program, values, lin.partials, ct, call="test", theta_only=True)
    np.testing.assert_allclose(part[F.program.theta_node], full[F.program.theta_node],
                               rtol=1e-13, atol=1e-15)


def test_fpad_vjp_of_a_relu_layer_matches_the_exact_implicit_derivative():
    rng = np.random.default_rng(9)
    n, m = 10, 2
    W = rng.standard_normal((n, n))
    W *= 0.5 / np.linalg.norm(W, 2)
    U, b = rng.standard_normal((n, m)), 0.2 * rng.standard_normal(n)
    theta = rng.standard_normal(m)
    F = relu_layer(W, U, b)
    x = cv.fixed_point(F, np.zeros(n), theta, tol=1e-15).x
    g = rng.standard_normal(n)
    got = cv.fpad_vjp(F, theta, x, g)
    A = np.flatnonzero(x > 0)
    J = np.zeros((n, m))
    J[A] = np.linalg.solve(np.eye(len(A)) - W[np.ix_(A, A)], U[A])
    np.testing.assert_allclose(got, g @ J, rtol=1e-10, atol=1e-12)


def test_fpad_vjp_where_the_constant_rows_depend_on_theta():
    # clipped rows are constant in x but equal theta[0]: B_Z is not zero there, so the
    # cotangent on them must reach theta (the shortcut does not apply)
    rng = np.random.default_rng(12)
    n = 8
    W = rng.standard_normal((n, n))
    W *= 0.4 / np.linalg.norm(W, 2)
    b = 2.0 * rng.standard_normal(n)
    F = cv.trace(lambda x, t: cv.clip(W @ x + b, -t[0], t[0]), (n,), (1,))
    theta = np.array([0.8])
    x = cv.fixed_point(F, np.zeros(n), theta, tol=1e-15).x
    clipped = np.abs(np.abs(x) - 0.8) < 1e-12
    assert clipped.any() and (~clipped).any()
    g = rng.standard_normal(n)
    got = cv.fpad_vjp(F, theta, x, g)
    h = 1e-6
    xp = cv.fixed_point(F, x, theta + h, tol=1e-15).x
    xm = cv.fixed_point(F, x, theta - h, tol=1e-15).x
    np.testing.assert_allclose(got, [g @ (xp - xm) / (2 * h)], rtol=1e-6)


def test_implicit_jacobian_of_a_relu_layer_is_the_exact_one_on_the_block():
    rng = np.random.default_rng(21)
    n, m = 9, 2
    W = rng.standard_normal((n, n))
    W *= 0.5 / np.linalg.norm(W, 2)
    U, b = rng.standard_normal((n, m)), 0.2 * rng.standard_normal(n)
    theta = rng.standard_normal(m)
    F = relu_layer(W, U, b)
    x = cv.fixed_point(F, np.zeros(n), theta, tol=1e-15).x
    A = list(np.flatnonzero(x > 0))
    Wq, Uq = Qmat(W), Qmat(U)
    M = [[(1 if i == j else 0) - Wq[i][j] for j in A] for i in A]
    exact = np.zeros((n, m))
    for c in range(m):
        col = solve(M, [Uq[i][c] for i in A])
        for i, v in zip(A, col):
            exact[i, c] = float(v)
    got = cv.implicit_jacobian(F, theta, x)
    assert got.vertices.shape[0] == 1                   # one element: no kink on the box
    np.testing.assert_allclose(got.vertices[0], exact, rtol=1e-12, atol=1e-14)


def test_implicit_jacobian_where_the_constant_rows_depend_on_theta():
    rng = np.random.default_rng(12)
    n = 8
    W = rng.standard_normal((n, n))
    W *= 0.4 / np.linalg.norm(W, 2)
    b = 2.0 * rng.standard_normal(n)
    F = cv.trace(lambda x, t: cv.clip(W @ x + b, -t[0], t[0]), (n,), (1,))
    theta = np.array([0.8])
    x = cv.fixed_point(F, np.zeros(n), theta, tol=1e-15).x
    h = 1e-6
    xp = cv.fixed_point(F, x, theta + h, tol=1e-15).x
    xm = cv.fixed_point(F, x, theta - h, tol=1e-15).x
    got = cv.implicit_jacobian(F, theta, x)
    np.testing.assert_allclose(got.vertices[0][:, 0], (xp - xm) / (2 * h), rtol=1e-6, atol=1e-9)


# --- the declared offsets of the pieces ------------------------------------------------------

@pytest.mark.parametrize("name", ["relu", "abs", "maximum", "minimum", "soft_threshold", "clip",
                                  "select"])
def test_declared_piece_offsets_give_the_exact_values(name):
    # each piece p equals sum_i d_pi input_i + c_p exactly, where it is the only active one:
    # checked against the primitive's sympy form at rational points
    import sympy
    from conservative.primitives import PRIMITIVES
    prim = PRIMITIVES[name]
    assert prim.piece_offsets is not None and len(prim.piece_offsets) == len(prim.piece_partials)
    params = {"strict": True} if name == "select" else {}
    rng = np.random.default_rng(0)
    arity = len(prim.piece_partials[0])
    seen = set()
    for _ in range(400):
        vals = [float(v) for v in rng.integers(-40, 41, size=arity) / 8]
        if name == "soft_threshold":
            vals[1] = abs(vals[1])
        if name == "clip":
            vals[1], vals[2] = sorted(vals[1:])
        if name == "select":
            vals[1] = vals[2] + 1.0 if vals[0] == 0 else vals[1]
        active = [bool(a) for a in prim.active([np.array(v) for v in vals], 0.0, **params)]
        if sum(active) != 1:
            continue
        piece = active.index(True)
        seen.add(piece)
        exact = prim.sympy(*[sympy.Rational(Fraction(v).numerator, Fraction(v).denominator)
                             for v in vals], **params)
        formula = sum(Fraction(d) * Fraction(v) for d, v in zip(prim.piece_partials[piece], vals))
        assert sympy.Rational(formula.numerator, formula.denominator) + \
            sympy.nsimplify(prim.piece_offsets[piece]) == sympy.simplify(exact)
    assert seen == set(range(len(prim.piece_partials)))


def test_a_negative_threshold_is_not_proved():
    # the pieces' formulas do not check t >= 0: the primitive's own rule still refuses it.
    # Here z = 0.5 x + 2 = 5 > |t| at x = 6 keeps one piece, z - t, whose fixed point is 6
    F = cv.trace(lambda x, t: cv.soft_threshold(0.5 * x + 2.0, t), (1,), ())
    enc = fresh(F, -1.0, [6.0])
    assert not enc.proven and "t >= 0" in enc.reason
    assert fresh(F, 1.0, [2.0]).proven                      # t = 1: the fixed point 2


def test_a_diverging_adjoint_is_refused_at_once_without_warnings():
    # rho(W) > 1 on the active block: the adjoint iteration diverges; NotConvergedError says
    # after how many steps it overflowed (not max_steps), and no RuntimeWarning leaks
    import warnings
    W, U = np.array([[1.5, 0.5], [-0.5, 2.0]]), np.array([[1.0], [0.5]])
    F = cv.trace(lambda x, t: cv.relu(W @ x + U @ t - 1.0), (2,), (1,))
    theta = np.array([0.25])
    x = np.linalg.solve(np.eye(2) - W, U[:, 0] * 0.25 - 1.0)       # both units active
    assert np.all(W @ x + U[:, 0] * 0.25 - 1.0 > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(cv.NotConvergedError, match="diverged") as info:
            cv.fpad_vjp(F, theta, x, np.array([1.0, -0.5]))
    assert info.value.steps < 10_000


def test_the_block_reused_along_a_path_gives_the_fresh_results():
    # a hypergradient loop keeps the support: the block of A (its columns, C, E) is reused
    # from the previous call when the rows, columns and the products' factors are the same;
    # a factor that depends on theta (the step here) makes a new one
    X, y, s, lam = problem(5)
    XT = np.ascontiguousarray(X.T)
    F = cv.trace(lambda w, t: cv.soft_threshold(w - t[1] * (XT @ (X @ w - y)), t[1] * t[0]),
                 (X.shape[1],), (2,))
    plan = affine_plan(F.program)
    w = np.zeros(X.shape[1])
    last, shared = None, []
    for step in (s, 0.9 * s):
        for t in (lam, lam * (1 + 1e-6), lam * (1 + 2e-6)):       # the same support
            theta = np.array([t, step])
            w = cv.fixed_point(F, w, theta, tol=1e-15, max_steps=100_000).x
            reused = fresh(F, theta, w)
            shared.append(last is not None and reused.block is last)
            last = reused.block
            kept = dict(plan.recent)
            plan.recent.clear()
            new = fresh(F, theta, w)
            plan.recent.update(kept)
            assert reused.proven and new.proven and reused.block is not None
            assert np.array_equal(reused.lo, new.lo) and np.array_equal(reused.hi, new.hi)
            assert np.array_equal(reused.block, new.block)
            exact = exact_lasso_point(X, y, t, w)     # the step cancels at the fixed point
            assert exact is not None and holds(reused, exact)
    assert shared == [False, True, True, False, True, True]


def test_parametric_box_where_the_constant_rows_move_with_theta():
    # x = clip(W x + b, t, t + 1) over a box of t: the clipped rows equal t or t + 1 there, and
    # move the free row through W; the first box accounts for that, so the affine test decides
    W = np.array([[0.25, 0.125, 0.0], [0.125, -0.25, 0.0], [0.0, 0.5, 0.25]])
    b = np.array([5.0, 0.5, -4.0])
    F = cv.trace(lambda x, t: cv.clip(W @ x + b, t, t + 1.0), (3,), ())
    x = cv.fixed_point(F, np.zeros(3), 0.25, tol=1e-15).x
    Wq, bq = Qmat(W), Q(b)
    for width in (1e-9, 1e-6, 1e-3):
        box = (0.25 - width, 0.25 + width)
        fps._RECENT.clear()
        enc = fps.parametric_enclosure(F, box, x)
        assert enc.proven and enc.block is not None and enc.radius < 2 * width
        for t in box:                      # row 0 at t + 1, row 2 at t, row 1 free
            tq = Fraction(t)
            x0, x2 = tq + 1, tq
            x1 = (Wq[1][0] * x0 + Wq[1][2] * x2 + bq[1]) / (1 - Wq[1][1])
            point = [x0, x1, x2]
            pre = [sum(Wq[i][j] * point[j] for j in range(3)) + bq[i] for i in range(3)]
            assert pre[0] > tq + 1 and tq < pre[1] < tq + 1 and pre[2] < tq
            assert holds(enc, point)


def test_an_enclosure_of_the_affine_test_pickles_with_its_row_bounds():
    # its row l1 bounds are computed on first use; pickling (process pools) sends their value
    import pickle
    X, y, s, lam = problem(1)
    F = lasso(X, y, s)
    w = cv.fixed_point(F, np.zeros(X.shape[1]), lam, tol=1e-15, max_steps=100_000).x
    enc = fresh(F, lam, w)
    assert enc.block is not None and callable(enc.l1_source)
    back = pickle.loads(pickle.dumps(enc))
    assert np.array_equal(back.row_l1, enc.row_l1) and np.array_equal(back.lo, enc.lo)
    assert np.array_equal(back.rows, enc.rows) and np.array_equal(back.block, enc.block)
    assert back.proven and back.radius == enc.radius
