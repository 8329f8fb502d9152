"""Adversarial checks (session 24) of the affine test of the fixed-point enclosure
(``fixed_point_set._affine_test``, ``affine_enclosure``; commits 4a15e65, 805ca0e).

Maps ``P(W x + c)``, P elementwise piecewise affine, W and c the exact rationals of the float
data (``I - s X^T X`` for forward-backward). A proved box must hold an exact fixed point
(solved on a piece pattern in Fractions, then verified: ``x == P(W x + c)`` exactly); its rows
and row-l1 bounds must hold the exact Jacobian's there; derivatives match exact ones.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

import conservative as cv
import conservative.fixed_point_set as fps
from _where_helpers import holds
from test_affine_enclosure import Q, Qmat, exact_lasso_point, fresh, lasso, solve

Fr = Fraction


def qa(W, b):
    return Qmat(W), Q(b)


def matvec(W, x):
    return [sum(w * v for w, v in zip(row, x)) for row in W]


def fq(t):
    return t if isinstance(t, Fraction) else Fr(float(t))


# exact elementwise primitives: ([(slope, offset(i)) per piece], value(i, u))
def _at(v, i):
    return v[i % len(v)]


P_RELU = ([(0, lambda i: Fr(0)), (1, lambda i: Fr(0))], lambda i, u: max(u, Fr(0)))
P_ABS = ([(-1, lambda i: Fr(0)), (1, lambda i: Fr(0))], lambda i, u: abs(u))


def P_soft(t):
    t = fq(t)
    return ([(1, lambda i: -t), (0, lambda i: Fr(0)), (1, lambda i: t)],
            lambda i, u: (u - t) if u > t else ((u + t) if u < -t else Fr(0)))


def P_clip(lo, hi):
    lo, hi = Q(lo), Q(hi)
    return ([(0, lambda i: _at(lo, i)), (1, lambda i: Fr(0)), (0, lambda i: _at(hi, i))],
            lambda i, u: min(max(u, _at(lo, i)), _at(hi, i)))


def P_pick(c, op):                                  # op = max or min
    c = Q(c)
    return [(1, lambda i: Fr(0)), (0, lambda i: _at(c, i))], lambda i, u: op(u, _at(c, i))


def exact_points(W, c, P, patterns):
    """Exact fixed points of ``x = P(W x + c)`` on the given piece patterns (verified)."""
    pieces, value = P
    n, out = len(c), []
    for pat in patterns:
        s = [pieces[p][0] for p in pat]
        A = [[(1 if i == j else 0) - s[i] * W[i][j] for j in range(n)] for i in range(n)]
        x = solve(A, [s[i] * c[i] + pieces[pat[i]][1](i) for i in range(n)])
        if x is None:
            continue
        u = [a + b for a, b in zip(matvec(W, x), c)]
        if all(x[i] == value(i, u[i]) for i in range(n)) and x not in out:
            out.append(x)
    return out


def every(P, n):
    return itertools.product(range(len(P[0])), repeat=n)


def on_piece(P, i, u, pc):
    return pc[0] * u + pc[1](i) == P[1](i, u)


def check_proof(enc, W, c, P, patterns):
    """A proved box holds an exact fixed point; its rows hold every row of A non-zero at such a
    point, whose l1 norm the bound holds. Returns the points held."""
    pts = [x for x in exact_points(W, c, P, patterns) if holds(enc, x)]
    assert pts, "proven=True but no exact fixed point in the box"
    rows = set(np.asarray(enc.rows).tolist()) if enc.rows is not None else None
    for x in pts:
        u = [a + b for a, b in zip(matvec(W, x), c)]
        for i in range(len(c)):
            slopes = {pc[0] for pc in P[0] if on_piece(P, i, u[i], pc)}   # all, on a kink
            if rows is not None and any(slopes) and any(W[i]):
                assert i in rows, f"row {i} missing"
            if enc.row_l1 is not None and rows is not None and i in rows:
                bound = Fr(float(enc.row_l1[i]))
                assert all(bound >= abs(s) * sum(abs(w) for w in W[i]) for s in slopes)
    return pts


def float_pattern(P, W, c, x):
    u = [a + b for a, b in zip(matvec(W, Q(x)), c)]
    return [[next(k for k, pc in enumerate(P[0]) if on_piece(P, i, u[i], pc))
             for i in range(len(c))]]


def lasso_map(X, y, s, gram=False):
    XT = np.ascontiguousarray(X.T)
    G, b = XT @ X, XT @ y
    if gram:
        f = lambda w, t: cv.soft_threshold(w - s * (G @ w - b), s * t)       # noqa: E731
        Wq = [[(1 if i == j else 0) - Fr(s) * g for j, g in enumerate(row)]
              for i, row in enumerate(Qmat(G))]
        return cv.trace(f, (X.shape[1],), ()), Wq, [Fr(s) * v for v in Q(b)]
    F = cv.trace(lambda w, t: cv.soft_threshold(w - s * (XT @ (X @ w - y)), s * t),
                 (X.shape[1],), ())
    Xq, sq = Qmat(X), Fr(float(s))
    p = len(Xq[0])
    Wq = [[(1 if i == j else 0) - sq * sum(r[i] * r[j] for r in Xq) for j in range(p)]
          for i in range(p)]
    return F, Wq, [sq * v for v in matvec(Qmat(XT), Q(y))]


def lasso_derivative(X, w):
    """d w / d lam on the support: -(X_S^T X_S)^-1 sign(w_S), exactly."""
    S, Xq = list(np.flatnonzero(w)), Qmat(X)
    G = [[sum(r[i] * r[j] for r in Xq) for j in S] for i in S]
    out = np.zeros(len(w))
    out[S] = [float(v) for v in solve(G, [Fr(1 if w[i] < 0 else -1) for i in S])]
    return out


def proved(F, theta, x0s, W, c, P, patterns=None):
    """Enclosures from each start; every proof checked. Returns how many the affine test made."""
    made = 0
    for x0 in x0s:
        enc = fresh(F, theta, x0)
        if enc.proven:
            check_proof(enc, W, c, P, every(P, len(c)) if patterns is None else patterns)
            made += enc.block is not None
    return made


def floats(pts):
    return [np.array([float(v) for v in x]) for x in pts]


# --- 1. bounds outside the domain -------------------------------------------------------------

def test_clip_with_lo_above_hi_is_not_proved():
    # found by this attack: the affine test proved [1, 1] on the 'lo' piece (clip's interval
    # rule now refuses lo > hi, as cv.clip itself does)
    F = cv.trace(lambda x, t: cv.clip(0.5 * x - 10.0, t[0], t[1]), (2,), (2,))
    th = np.array([1.0, -1.0])
    with pytest.raises(cv.InputError):
        F(np.ones(2), th)
    assert not fresh(F, th, np.ones(2)).proven


def test_clip_with_lo_above_hi_somewhere_in_a_parameter_box_is_not_proved():
    # found by this attack: X = [0.5, 1] was proved although at theta = (1, -1) F = -1
    G = cv.trace(lambda x, t: cv.clip(0.5 * x - 10.0, t[0], t[1]), (1,), (2,))
    enc = fps.parametric_enclosure(G, (np.array([0.5, -1.0]), np.array([1.0, 0.75])),
                                   np.array([0.75]))
    assert not enc.proven or enc.lo[0] <= -1.0


def test_soft_threshold_with_negative_threshold_is_not_proved(monkeypatch):
    # at 4a15e65 the affine test proved [2.2, 2.2] (its piece formulas skipped t >= 0)
    F = cv.trace(lambda x, t: cv.soft_threshold(0.5 * x + 1.0, t), (2,), ())
    with pytest.raises(cv.InputError):
        F(np.ones(2), -0.1)
    with monkeypatch.context() as m:                 # the general test refuses
        m.setattr(fps, "_affine_test", lambda *a: None)
        assert not fresh(F, -0.1, np.full(2, 2.2)).proven
    assert not fresh(F, -0.1, np.full(2, 2.2)).proven
    G = cv.trace(lambda x, t: cv.soft_threshold(0.5 * x + 1.0, t), (1,), ())
    assert not fps.parametric_enclosure(G, (-0.1, 0.1), np.array([2.0])).proven


# --- 2. degenerate pieces: clip lo == hi, threshold 0, u = x, duplicated operands -----------

def test_clip_with_equal_bounds_far_and_near():
    W = np.array([[0.1, 0.0], [0.0, 0.1]])
    F = cv.trace(lambda x, t: cv.clip(W @ x - 50.0, t, t), (2,), ())
    G = cv.trace(lambda x, t: (lambda a: cv.clip(W @ x + 0.05, a, a))(t * 1.0), (2,), ())
    P = P_clip([0.5], [0.5])
    x0s = [np.full(2, v) for v in (0.5, 0.5 + 1e-15, 100.0, -3.0)]
    assert proved(F, 0.5, x0s, *qa(W, [-50.0] * 2), P) == 4       # F(X) = {1/2}: rows empty
    proved(G, 0.5, x0s, *qa(W, [0.05] * 2), P)                   # one bound node twice


@pytest.mark.parametrize("seed", range(3))
def test_soft_threshold_with_zero_threshold(seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((4, 4))
    W *= 0.7 / np.linalg.norm(W, 2)
    b = rng.standard_normal(4)
    b[0], W[0] = 0.0, 0.0                      # element 0: u = 0, the kink of all three pieces
    F = cv.trace(lambda x, t: cv.soft_threshold(W @ x + b, t), (4,), ())
    x = cv.fixed_point(F, np.zeros(4), 0.0, tol=1e-15).x
    assert proved(F, 0.0, [x, x + 1e-13], *qa(W, b), P_soft(0.0)) == 0


def test_maps_whose_affine_part_is_x_itself():
    cases = [(cv.trace(lambda x, t: cv.relu(-x + 0.0 * t), (1,), ()), 1.0, 0,
              (1e-300, -1e-300, 5e-324, 0.0)),                          # only x = 0
             (cv.trace(lambda x, t: cv.soft_threshold(x, t), (1,), ()), 0.25, 0,
              (0.125, -0.2, 1e-300, 0.0, 0.3)),                         # only x = 0
             (cv.trace(lambda x, t: cv.clip(x, t, t), (1,), ()), 0.25, Fr(1, 4),
              (0.25, 0.3, -7.0))]                                       # only x = t
    for F, theta, exact, x0s in cases:
        for x0 in x0s:
            enc = fresh(F, theta, [x0])
            assert not enc.proven or holds(enc, [exact]), (F, x0)


# --- 3. kinks within rounding of the point ----------------------------------------------------

@pytest.mark.parametrize("sign", [1, -1, 0])
def test_kink_within_one_ulp_of_the_exact_fixed_point(sign):
    # x0 = relu(x0 / 2 + 1) = 2; x1 = relu(x0 / 4 + c): pre-activation sign * 2**-54 exactly
    W, b = np.array([[0.5, 0.0], [0.25, 0.0]]), np.array([1.0, -(0.5 - sign * 2.0 ** -54)])
    F = cv.trace(lambda x, t: cv.relu(W @ x + b * t), (2,), ())
    for x0 in ([2.0, 0.0], [2.0, 2.0 ** -54], [2.0 + 4e-16, 1e-16], [2.0 - 4e-16, 0.0]):
        enc = fresh(F, 1.0, x0)
        if enc.proven:
            assert check_proof(enc, *qa(W, b), P_RELU, every(P_RELU, 2))[0][0] == 2
            assert sign <= 0 or 1 in enc.rows.tolist()


@pytest.mark.parametrize("ulps", [0, 1, -1, 3])
def test_lasso_threshold_within_ulps_of_the_gradient(ulps):
    # integer data: X^T y exact; lam = |X^T y|_max moved by ulps: the zero point near the kink
    X = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, 0.0, 1.0]])
    y = np.array([1.0, 1.0, 2.0])
    lam = float(np.max(np.abs(X.T @ y)))
    for _ in range(abs(ulps)):
        lam = np.nextafter(lam, np.inf if ulps > 0 else -np.inf)
    for gram in (False, True):
        F, Wq, cq = lasso_map(X, y, 0.0625, gram)
        x0s = (np.zeros(3), np.array([1e-17, 0.0, 0.0]), np.array([0.0, 1e-300, 0.0]))
        proved(F, lam, x0s, Wq, cq, P_soft(Fr(0.0625) * Fr(lam)))


# --- 4. extreme scales ------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1e300, 2.0 ** 1000, 1e-300, 2.0 ** -1060, 5e-324, 1e-310])
def test_relu_layer_at_extreme_scales(scale):
    rng = np.random.default_rng(3)
    W = rng.standard_normal((4, 4))
    W *= 0.6 / np.linalg.norm(W, 2)
    b = np.abs(rng.standard_normal(4)) * scale
    b[1] = -b[1]
    F = cv.trace(lambda x, t: cv.relu(W @ x + b * t), (4,), ())
    pts = floats(exact_points(*qa(W, b), P_RELU, every(P_RELU, 4)))
    x0s = [v for x in pts for v in (x, np.nextafter(x, np.inf), x * (1 - 1e-14))]
    made = proved(F, 1.0, x0s, *qa(W, b), P_RELU)
    assert made or scale < 1e-300


@pytest.mark.parametrize("scale", [2.0 ** 900, 2.0 ** -900, 2.0 ** -1070])
def test_scaled_operator_with_divisions(scale):
    # u = (W x) * t / t + b, t = scale: huge / tiny intermediate values
    W = np.array([[0.5, 0.25, 0.0], [0.0, -0.5, 0.125], [0.25, 0.0, 0.5]])
    b = np.array([1.0, -2.0, 0.5]) * min(scale, 1.0)
    F = cv.trace(lambda x, t: cv.abs((W @ x) * t / t + b), (3,), ())
    proved(F, scale, floats(exact_points(*qa(W, b), P_ABS, every(P_ABS, 3))), *qa(W, b), P_ABS)


def test_large_design_at_tiny_scale_uses_cauchy_schwarz_soundly():
    rng, X, y, s, lam = random_lasso(5, 230, 300, 0.5)   # 69000 entries: Cauchy-Schwarz bounds
    scale = 2.0 ** -500
    F = lasso(X * scale, y, s / scale ** 2)
    w = cv.fixed_point(F, np.zeros(300), lam * scale, tol=1e-15, max_steps=100_000).x
    enc = fresh(F, lam * scale, w)
    assert enc.proven and enc.block is not None
    exact = exact_lasso_point(X * scale, y, lam * scale, w)
    assert exact is not None and holds(enc, exact)


# --- 5. singular I - A, no fixed point, far points -------------------------------------------

@pytest.mark.parametrize("k", [30, 45, 52, 53])
def test_nearly_singular_identity_minus_A(k):
    a, t = 1.0 - 2.0 ** -k, 2.0 ** -20                  # x = relu(a x + t): x = t 2**k
    F = cv.trace(lambda x, t: cv.relu(a * x + t), (1,), ())
    x0s = [[t * 2.0 ** k], [t * 2.0 ** k * (1 + 1e-12)], [1.0]]
    proved(F, t, x0s, [[Fr(a)]], [Fr(t)], P_RELU)


@pytest.mark.parametrize("x0", [0.0, 1.0, -1.0, -1e-3, 1e300, -0.5])
def test_maps_without_a_fixed_point(x0):
    for f in (lambda x, t: cv.maximum(x + t, 0.0), lambda x, t: cv.relu(2.0 * x + t),
              lambda x, t: cv.abs(x + t), lambda x, t: cv.soft_threshold(x + 2 * t, t),
              lambda x, t: cv.minimum(-x - t, x - t)):
        assert not fresh(cv.trace(f, (1,), ()), 1e-3, [x0]).proven
    F = cv.trace(lambda x, t: cv.relu(x + 0.0 * t), (1,), ())   # every x > 0 is fixed
    enc = fresh(F, 1.0, [abs(x0) + 1.0])
    assert not enc.proven or enc.lo[0] <= abs(x0) + 1.0 <= enc.hi[0]


def random_lasso(seed, n, p, frac):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) / np.sqrt(n)
    y = X[:, :3] @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(n)
    return rng, X, y, 1.0 / np.linalg.norm(X, 2) ** 2, frac * float(np.max(np.abs(X.T @ y)))


@pytest.mark.parametrize("seed", range(3))
def test_lasso_far_from_the_solution_and_off_the_zero_rows(seed):
    rng, X, y, s, lam = random_lasso(40 + seed, 10, 6, 0.3)
    for gram in (False, True):
        F, Wq, cq = lasso_map(X, y, s, gram)
        w = cv.fixed_point(F, np.zeros(6), lam, tol=1e-15, max_steps=100_000).x
        P, zero = P_soft(Fr(s) * Fr(lam)), w == 0
        x0s = [w, w + 10.0 * rng.standard_normal(6), w + 1e-3 * zero, w - 1e-9 * zero,
               w + 1e-12 * rng.standard_normal(6), np.where(zero, 1e-300, w)]
        assert proved(F, lam, x0s, Wq, cq, P, float_pattern(P, Wq, cq, w)) >= 2


# --- 6. abs, maximum / minimum with constants, clip, relu: contracting and expanding --------

@pytest.mark.parametrize("seed", range(4))
def test_abs_max_min_clip_relu_layers_at_every_fixed_point(seed):
    rng = np.random.default_rng(70 + seed)
    W = rng.standard_normal((3, 3)) * (0.5 + seed)          # contracting, then expanding
    b, c = rng.standard_normal(3), rng.standard_normal(3)
    lo, hi = -np.abs(rng.standard_normal(3)), np.abs(rng.standard_normal(3))
    for f, P in ((cv.abs, P_ABS), (lambda u: cv.maximum(u, c), P_pick(c, max)),
                 (lambda u: cv.minimum(u, c), P_pick(c, min)),
                 (lambda u: cv.clip(u, lo, hi), P_clip(lo, hi)), (cv.relu, P_RELU)):
        F = cv.trace(lambda x, t: f(W @ x + b * t), (3,), ())
        pts = floats(exact_points(*qa(W, b), P, every(P, 3)))    # from each, and nudged
        proved(F, 1.0, [v for x in pts for v in (x, x * (1 + 1e-15) + 1e-300, x + 1e-9)],
               *qa(W, b), P)


# --- 7. parametric boxes ----------------------------------------------------------------------

def test_parametric_box_where_the_piece_switches():
    F = cv.trace(lambda x, t: cv.soft_threshold(0.5 * x + 1.0, t), (1,), ())
    for box in ((0.999, 1.001), (0.5, 0.9999999), (1.0, 1.5), (1.0 - 2.0 ** -52, 1.0)):
        for x0 in (0.0, 2 * (1 - box[0]), 2 * (1 - 0.5 * (box[0] + box[1]))):
            enc = fps.parametric_enclosure(F, box, np.array([max(x0, 0.0)]))
            for t in (Fr(box[0]), Fr(box[1]), (Fr(box[0]) + Fr(box[1])) / 2):
                assert not enc.proven or holds(enc, [max(2 * (1 - t), Fr(0))])   # x(t)


def test_parametric_division_by_a_box_holding_zero():
    W = np.array([[0.25, 0.0], [0.1, 0.25]])
    F = cv.trace(lambda x, t: cv.relu(W @ x / t[0] + t[1]), (2,), (2,))
    for lo, hi in (([-0.5, 1.0], [1.0, 1.0]), ([0.0, 1.0], [1.0, 1.0]),
                   ([-1e-300, 1.0], [4.0, 1.0])):
        assert not fps.parametric_enclosure(F, (np.array(lo), np.array(hi)), np.ones(2)).proven
    x = cv.fixed_point(F, np.zeros(2), np.array([1.0, 1.1]), tol=1e-15).x
    for r, affine in ((0.1, False), (1e-9, True)):          # the affine test: narrow boxes
        box = (np.array([1.0 - r, 1.1 - r]), np.array([1.0 + r, 1.1 + 2 * r]))
        enc = fps.parametric_enclosure(F, box, x)
        assert enc.proven and (enc.block is not None) == affine
        for t0, t1 in itertools.product(*zip(*box)):
            check_proof(enc, [[w / Fr(t0) for w in row] for row in Qmat(W)], [Fr(t1)] * 2,
                        P_RELU, [[1, 1]])


def test_parametric_lasso_support_change_inside_the_box():
    X, y = np.array([[1.0, 0.5], [0.0, 1.0], [0.5, 0.0]]), np.array([1.0, 0.25, 0.5])
    F, Wq, cq = lasso_map(X, y, 0.5, gram=True)
    for lam_c, rad in ((0.3, 1e-9), (0.3, 0.2), (0.05, 0.04), (1.0, 0.5)):
        box = (lam_c - rad, lam_c + rad)
        x = cv.fixed_point(F, np.zeros(2), lam_c, tol=1e-15).x
        enc = fps.parametric_enclosure(F, box, x)
        for t in np.linspace(box[0], box[1], 7) if enc.proven else ():
            P = P_soft(Fr(0.5) * Fr(float(t)))
            assert any(holds(enc, p) for p in exact_points(Wq, cq, P, every(P, 2))), t


def test_parametric_clip_with_theta_dependent_constant_rows():
    # x = clip(W x + b, t, t + 1): clipped rows equal t (or t + 1) over the whole box
    W = np.array([[0.25, 0.125, 0.0], [0.125, -0.25, 0.0], [0.0, 0.5, 0.25]])
    b = np.array([5.0, 0.5, -4.0])
    F = cv.trace(lambda x, t: cv.clip(W @ x + b, t, t + 1.0), (3,), ())
    box = (0.25 - 1e-9, 0.25 + 1e-9)
    enc = fps.parametric_enclosure(F, box, cv.fixed_point(F, np.zeros(3), 0.25, tol=1e-15).x)
    assert enc.proven
    for t in box:
        P = P_clip([t], [Fr(t) + 1])
        assert any(holds(enc, p) for p in exact_points(*qa(W, b), P, every(P, 3)))


# --- 8. derivatives against exact implicit derivatives --------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_fpad_vjp_and_implicit_jacobian_of_lasso_are_exact(seed):
    rng, X, y, s, lam = random_lasso(90 + seed, 12, 8, 0.2)
    for gram in (False, True):
        F = lasso_map(X, y, s, gram)[0]
        w = cv.fixed_point(F, np.zeros(8), lam, tol=1e-15, max_steps=100_000).x
        exact, g = lasso_derivative(X, w), rng.standard_normal(8)
        for x0 in (w, w + 1e-10 * (w != 0), np.where(w == 0, 1e-12, w)):
            fps._RECENT.clear()
            np.testing.assert_allclose(cv.fpad_vjp(F, lam, x0, g), g @ exact, rtol=1e-9,
                                       atol=1e-12)
        fps._RECENT.clear()
        J = cv.implicit_jacobian(F, lam, w)
        assert J.vertices.shape[0] == 1
        np.testing.assert_allclose(J.vertices[0].reshape(-1), exact, rtol=1e-9, atol=1e-12)


def test_fpad_vjp_with_division_and_theta_dependent_constant_rows():
    # x = maximum(W x / t0 + b, t1): the rows on the constant piece equal t1 (B_Z = 1 there)
    W = np.array([[0.25, -0.125, 0.0], [0.0, 0.25, 0.125], [0.125, 0.0, -0.25]])
    b, theta = np.array([2.0, -3.0, 1.0]), np.array([1.5, 0.25])
    F = cv.trace(lambda x, t: cv.maximum(W @ x / t[0] + b, t[1]), (3,), (2,))
    x = cv.fixed_point(F, np.zeros(3), theta, tol=1e-15).x
    t0 = Fr(theta[0])
    Wq, P = [[w / t0 for w in row] for row in Qmat(W)], P_pick([theta[1]], max)
    pat = float_pattern(P, Wq, Q(b), x)[0]
    xe = exact_points(Wq, Q(b), P, [pat])[0]
    # (I - S W / t0) dx = S (-W x / t0^2) dt0 + (1 - S) dt1 on the pattern
    S = [1 - k for k in pat]
    assert 0 < sum(S) < 3
    A = [[(1 if i == j else 0) - S[i] * Wq[i][j] for j in range(3)] for i in range(3)]
    Wx = matvec(Qmat(W), xe)
    J = np.array([[float(v) for v in solve(A, rhs)] for rhs in
                  ([-S[i] * Wx[i] / t0 ** 2 for i in range(3)], [Fr(1 - v) for v in S])]).T
    enc = fresh(F, theta, x)
    assert enc.proven and enc.block is not None and holds(enc, xe)
    g = np.array([0.3, -1.0, 2.0])
    fps._RECENT.clear()
    np.testing.assert_allclose(cv.fpad_vjp(F, theta, x, g), g @ J, rtol=1e-10, atol=1e-13)
    fps._RECENT.clear()
    np.testing.assert_allclose(cv.implicit_jacobian(F, theta, x).vertices[0], J, rtol=1e-10,
                               atol=1e-13)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_derivatives_of_an_expanding_relu_layer_are_exact_or_refused():
    W, U = np.array([[1.5, 0.5], [-0.5, 2.0]]), np.array([[1.0], [0.5]])   # rho(W) > 1
    F = cv.trace(lambda x, t: cv.relu(W @ x + U @ t - 1.0), (2,), (1,))
    theta = np.array([0.25])
    pts = exact_points(Qmat(W), [Fr(U[i, 0]) / 4 - 1 for i in range(2)], P_RELU, [[1, 1]])
    x = floats(pts)[0]
    enc = fresh(F, theta, x)
    assert enc.proven and enc.block is not None and holds(enc, pts[0])
    M = [[(1 if i == j else 0) - Fr(float(W[i, j])) for j in range(2)] for i in range(2)]
    J = np.array([float(v) for v in solve(M, Q(U[:, 0]))])
    fps._RECENT.clear()
    np.testing.assert_allclose(cv.implicit_jacobian(F, theta, x).vertices[0][:, 0], J,
                               rtol=1e-12)
    g = np.array([1.0, -0.5])
    fps._RECENT.clear()
    try:
        v = cv.fpad_vjp(F, theta, x, g, max_steps=200)
    except cv.ConservativeError:
        return                                 # fixed-point AD diverges here: a refusal
    np.testing.assert_allclose(v, [g @ J], rtol=1e-10)
