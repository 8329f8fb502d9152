"""Adversarial checks (session 20) of commit dabf72a:

1. ``fixed_point_set._enclose``: the first radius floor is now ``4 ulp(|x|)`` (relative) instead
   of ``4 ulp(x) + 2**-1000``: boxes of subnormal width. Proved boxes must still hold the exact
   fixed point (Fractions), and the calls must return (proved or refused) quickly.
2. ``_jumping_where``: a ``cv.where`` is refused as a jump only on elements whose condition may
   switch on the box. A truly discontinuous where must still never give a proved box without a
   fixed point.
3. ``cv.fpad_vjp`` refuses at a kink (UndecidedError / SingularJacobianError): no false refusals
   where ``I - A`` is invertible on the hull, no missed refusals where it is not.

References are exact (fractions / python-flint) or closed forms; every map is piecewise affine
on dyadic data. Helpers follow tests/test_enclosure_attack_s19.py.
"""

import time
from fractions import Fraction

import flint
import numpy as np
import pytest

import conservative as cv
import conservative.fixed_point_set as fps
import conservative.interval as iv
from conservative.enclose import enclose_values

from _where_helpers import enclose

ETA = 5e-324                                            # 2**-1074


# --- exact helpers (as in test_enclosure_attack_s19) --------------------------------------------

def fq(v) -> flint.fmpq:
    f = Fraction(float(v)) if not isinstance(v, Fraction) else v
    return flint.fmpq(f.numerator, f.denominator)


def to_fr(q) -> Fraction:
    return Fraction(int(q.p), int(q.q))


def qmat(M):
    M = np.atleast_2d(np.asarray(M, dtype=object))
    return flint.fmpq_mat(M.shape[0], M.shape[1], [fq(v) for v in M.ravel()])


def qsolve(M, b):
    """Exact solution of ``M y = b`` (b a vector or a matrix) as Fractions."""
    B = qmat(np.asarray(b, dtype=object).reshape(len(b), -1))
    Y = qmat(M).solve(B)
    out = [[to_fr(Y[i, j]) for j in range(Y.ncols())] for i in range(Y.nrows())]
    return out if np.ndim(b) == 2 else [r[0] for r in out]


def matvec(W, v):
    return [sum((Fraction(float(w)) * Fraction(x) for w, x in zip(row, v)), Fraction(0))
            for row in W]


def holds(enc, point) -> bool:
    return all(Fraction(float(lo)) <= Fraction(p) <= Fraction(float(hi))
               for lo, p, hi in zip(np.ravel(enc.lo), point, np.ravel(enc.hi)))


def affine_range(W, c, lo, hi):
    out = []
    for i, row in enumerate(W):
        mn = mx = Fraction(c[i])
        for w, a, b in zip(row, lo, hi):
            w = Fraction(float(w))
            ta, tb = w * Fraction(float(a)), w * Fraction(float(b))
            mn, mx = mn + min(ta, tb), mx + max(ta, tb)
        out.append((mn, mx))
    return out


def kink_elements(possible) -> set:
    out = set()
    for masks in (possible or {}).values():
        flat = masks.reshape(masks.shape[0], -1)
        out |= set(np.flatnonzero(flat.sum(0) >= 2).tolist())
    return out


def fresh(fn, *args, **kw):
    fps._RECENT.clear()
    try:
        return fn(*args, **kw)
    finally:
        fps._RECENT.clear()


def close(a, exact, rel=1e-12):
    ex = np.array([[float(v) for v in r] for r in exact]) if np.ndim(exact) == 2 else \
        np.array([float(v) for v in exact])
    return np.allclose(np.asarray(a, dtype=float), ex, rtol=rel,
                       atol=rel * max(1.0, float(np.max(np.abs(ex)))))


def relu_jacobian(W, d):
    """``(I - D W)^{-1} D`` exactly."""
    n = len(d)
    D = np.diag([Fraction(int(v)) for v in d]).astype(object)
    M = np.eye(n, dtype=object) - D.dot(np.array([[Fraction(float(w)) for w in r] for r in W],
                                                  dtype=object))
    return np.array(qsolve(M, D), dtype=object)


def vjp(J, g):
    """``g^T J`` exactly."""
    return [sum(Fraction(float(gi)) * J[i][j] for i, gi in enumerate(g)) for j in range(len(J[0]))]


def dyadic(rng, shape, k, den):
    return rng.integers(-k, k + 1, size=shape) / den


def relu_layer(rng, n, n_kink, n_dead, *, scale=1.0, k=3):
    """As in s19: ``||W||_inf < 1/2`` dyadic, an exact fixed point of ``relu(W x + b)`` with
    ``n_kink`` pre-activations exactly 0, ``n_dead`` strictly negative, all scaled by ``scale``
    (a power of two); asserts that the scaled data are still exact."""
    den = 2.0 ** int(np.ceil(np.log2(4.0 * k * n)))
    W = dyadic(rng, (n, n), k, den)
    xs = np.abs(dyadic(rng, n, 64, 64.0)) + 0.25
    xs[:n_kink + n_dead] = 0.0
    z = np.array([float(v) for v in matvec(W, xs)])
    b = xs - z
    b[n_kink:n_kink + n_dead] -= 0.125
    xs, b = xs * scale, b * scale
    exact = [Fraction(v) for v in xs]
    pre = [p + Fraction(bi) for p, bi in zip(matvec(W, exact), b)]
    assert all(p == 0 for p in pre[:n_kink])
    assert all(p < 0 for p in pre[n_kink:n_kink + n_dead])
    assert all(p == x > 0 for p, x in zip(pre[n_kink + n_dead:], exact[n_kink + n_dead:]))
    return W, b, xs, exact


def check_relu_enclosure(enc, W, b, exact, n_kink):
    assert enc.proven, enc.reason
    assert holds(enc, exact)
    rows, kinks = set(enc.rows.tolist()), kink_elements(enc.possible)
    ranges = affine_range(W, [Fraction(float(v)) for v in b], np.ravel(enc.lo), np.ravel(enc.hi))
    for i, (mn, mx) in enumerate(ranges):
        l1 = sum(abs(Fraction(float(w))) for w in W[i])
        if mx >= 0 and l1 > 0:
            assert i in rows, (i, mn, mx)
            assert Fraction(float(enc.row_l1[i])) >= l1
        if mn <= 0 <= mx:
            assert i in kinks, (i, mn, mx)
    assert set(range(n_kink)) <= kinks


def timed(fn, *args, limit=5.0, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    assert time.perf_counter() - t0 < limit
    return out


# === 1. the relative radius floor: subnormal and tiny states =====================================

@pytest.mark.parametrize("t", [ETA, 2 * ETA, 3 * ETA, -ETA, 0.0, 2.0 ** -1060, -2.0 ** -1060,
                               2.0 ** -1000])
def test_scalar_relu_with_subnormal_fixed_points(t):
    """``x = relu(x/2 + t)``: x̄ = max(0, 2t) exactly (2 ETA, 6 ETA, 0, ...)."""
    F = cv.trace(lambda x, th: cv.relu(0.5 * x + th), (), ())
    xbar = max(Fraction(0), 2 * Fraction(t))
    xb = float(xbar)
    proved = 0
    for x0 in (0.0, ETA, 2 * ETA, -ETA, 4 * ETA, xb, np.nextafter(xb, 1), np.nextafter(xb, -1),
               1e-310):
        for centred in (True, False):
            enc = timed(enclose, F, t, x0, centred=centred)
            if enc.proven:
                proved += 1
                assert holds(enc, [xbar]), (x0, centred, enc.lo, enc.hi)
            else:
                assert enc.reason
    assert proved > 0


@pytest.mark.parametrize("t", [ETA, -ETA, 3 * ETA, 2.0 ** -1060, -2.0 ** -1060, 0.0])
def test_scalar_abs_with_subnormal_fixed_points(t):
    """``x = t + |x|/2``: x̄ = 2t (t >= 0), 2t/3 (t < 0): exact, possibly not a float."""
    F = cv.trace(lambda x, th: th + 0.5 * cv.abs(x), (), ())
    xbar = 2 * Fraction(t) if t >= 0 else 2 * Fraction(t) / 3
    xb = float(xbar)
    proved = 0
    for x0 in (0.0, ETA, -ETA, xb, np.nextafter(xb, 1), np.nextafter(xb, -1)):
        for centred in (True, False):
            enc = timed(enclose, F, t, x0, centred=centred)
            if enc.proven:
                proved += 1
                assert holds(enc, [xbar]), (x0, centred, enc.lo, enc.hi)
    assert proved > 0


@pytest.mark.parametrize("scale", [2.0 ** -1022, 2.0 ** -1050, 2.0 ** -1060, 2.0 ** -1062])
def test_relu_layers_at_subnormal_scales(scale):
    rng = np.random.default_rng(2000)
    n, n_kink = 5, 2
    W, b, xs, exact = relu_layer(rng, n, n_kink, 1, scale=scale)
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (n,), (n,))
    starts = [xs, np.nextafter(xs, np.inf), np.nextafter(xs, -np.inf), xs * (1 + 1e-13),
              np.zeros(n), xs + ETA, 2 * xs]
    for k in (1, -1):
        x = xs.copy()
        x[:n_kink] = k * ETA
        starts.append(x)
    proved = 0
    for x0 in starts:
        for centred in (True, False):
            enc = timed(enclose, F, b, x0, centred=centred)
            if enc.proven:
                proved += 1
                check_relu_enclosure(enc, W, b, exact, n_kink)
            else:
                assert enc.reason
    assert proved > 0


XL = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1]], dtype=float)


def lasso_data(w, v, lam):
    r = qsolve(XL.T, [Fraction(vi) * Fraction(lam) for vi in v])
    y = [a + rr for a, rr in zip(matvec(XL, w), r)]
    yf = np.array([float(q) for q in y])
    assert all(Fraction(a) == q for a, q in zip(yf, y))
    return yf


def lasso_closed_form(S, signs):
    Xs = XL[:, S]
    d = qsolve(Xs.T @ Xs, [-Fraction(s) for s in signs])
    out = [Fraction(0)] * XL.shape[1]
    for k, i in enumerate(S):
        out[i] = d[k]
    return out


@pytest.mark.parametrize("scale", [2.0 ** -1040, 2.0 ** -1060, 2.0 ** -1066, 2.0 ** -1070])
@pytest.mark.parametrize("v2", [1.0, 0.5])
def test_lasso_at_subnormal_scales(scale, v2):
    """w̄ = (3/4, 0, 0, -1/2) s for (s y, s lam) exactly (homogeneity); v2 = 1: coordinate 2 at
    the threshold, v2 = 1/2: strictly inside."""
    w, v, lam = [0.75, 0.0, 0.0, -0.5], [1, -0.5, v2, -1], 1.0
    y = lasso_data(w, v, lam)
    ys = y * scale
    assert all(Fraction(a) * Fraction(scale) == Fraction(c) for a, c in zip(y, ys))
    xs, lam = np.array(w) * scale, lam * scale
    exact = [Fraction(a) * Fraction(scale) for a in w]
    F = cv.algorithms.forward_backward_lasso(XL, ys)
    for x0 in (xs, xs + [0, 0, ETA, 0], xs - [0, 0, ETA, 0], np.nextafter(xs, 1),
               np.nextafter(xs, -1), np.zeros(4)):
        for centred in (True, False):
            enc = timed(enclose, F, lam, x0, centred=centred)
            assert enc.proven, enc.reason
            assert holds(enc, exact), (x0, enc.lo, enc.hi)


@pytest.mark.parametrize("scale", [2.0 ** -1000, 2.0 ** -1040, 2.0 ** -1060, 2.0 ** 1000])
def test_lasso_hypergradient_at_tiny_scales(scale):
    """dw/dlam on S = {0, 3} (both with strict complementarity and at the threshold): the box is
    relative, so the support coordinates' kinks are not met down to 2**-1060."""
    ref = lasso_closed_form([0, 3], [1, -1])
    for v2 in (1.0, 0.5):
        w, v, lam = [0.75, 0.0, 0.0, -0.5], [1, -0.5, v2, -1], 1.0
        ys = lasso_data(w, v, lam) * scale
        xs, lam = np.array(w) * scale, lam * scale
        F = cv.algorithms.forward_backward_lasso(XL, ys)
        for x0 in (xs, xs + [0, 0, ETA, 0], np.nextafter(xs, 1)):
            grads = [float(fresh(cv.fpad_vjp, F, lam, x0, np.eye(4)[i])[()]) for i in range(4)]
            assert close(grads, ref), (scale, v2, grads)


def test_zero_states():
    """x̄ = 0: all pre-activations exactly 0 (t = 0) or strictly negative (t = -ETA)."""
    W = np.array([[0.0, 3.0], [0.3, 0.0]])       # ||W||_inf = 3, I - D W invertible on the hull
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (2,), (2,))
    for t in (np.zeros(2), np.full(2, -ETA), np.array([0.0, -ETA])):
        for x0 in (np.zeros(2), np.array([ETA, 0.0]), np.array([0.0, -ETA]),
                   np.array([1e-300, 1e-301])):
            for centred in (True, False):
                enc = timed(enclose, F, t, x0, centred=centred)
                if enc.proven:
                    assert holds(enc, [0, 0])
                else:
                    assert enc.reason
    assert enclose(F, np.zeros(2), np.zeros(2)).proven
    assert enclose(F, np.full(2, -ETA), np.zeros(2)).proven


@pytest.mark.parametrize("big, small", [(2.0 ** 1000, 2.0 ** -1000), (1.0, 2.0 ** -1060),
                                        (2.0 ** 500, 2.0 ** -500)])
def test_mixed_scales_boxes_hold_the_exact_point(big, small):
    """A big block (~big) and a small block (~small), the big rows reading the small coordinates
    (one-way coupling): x̄ from the exact solve of the all-active pattern (checked consistent)."""
    Wb = np.array([[0.25, -0.125], [0.125, 0.25]])
    W = np.zeros((4, 4))
    W[:2, :2] = Wb
    W[2:, 2:] = Wb
    W[0, 2] = 0.25
    xs_small = np.array([0.5, 0.75]) * small
    b = np.zeros(4)
    b[2:] = xs_small - Wb @ xs_small
    b[:2] = np.array([0.5, 0.75]) * big
    bq = [Fraction(v) for v in b]
    M = np.eye(4, dtype=object) - np.array([[Fraction(float(w)) for w in r] for r in W],
                                           dtype=object)
    exact = qsolve(M, bq)
    pre = [p + c for p, c in zip(matvec(W, exact), bq)]
    assert all(p > 0 and p == x for p, x in zip(pre, exact))       # all active, consistent
    xs = np.array([float(v) for v in exact])
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (4,), (4,))
    proved = 0
    for x0 in (xs, np.nextafter(xs, np.inf), xs * (1 - 1e-13), np.zeros(4)):
        for centred in (True, False):
            enc = timed(enclose, F, b, x0, centred=centred)
            if enc.proven:
                proved += 1
                assert holds(enc, exact), (x0, enc.lo, enc.hi)
    assert proved > 0


def test_mixed_scales_derivative_off_kinks():
    Wb = np.array([[0.25, -0.125], [0.125, 0.25]])
    W = np.zeros((4, 4))
    W[:2, :2] = Wb
    W[2:, 2:] = Wb
    small = 2.0 ** -60
    xs = np.array([0.5, 0.75, 0.5 * small, 0.75 * small])
    b = xs - W @ xs
    assert all(Fraction(bi) == Fraction(x) - p for bi, x, p in zip(b, xs, matvec(W, xs)))
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (4,), (4,))
    J = relu_jacobian(W, [1, 1, 1, 1])
    enc = enclose(F, b, xs)
    assert enc.proven and holds(enc, [Fraction(v) for v in xs])
    assert close(fresh(cv.fpad_vjp, F, b, xs, np.ones(4)), vjp(J, np.ones(4)))
    assert len(fresh(cv.implicit_jacobian, F, b, xs).vertices) == 1


# === 2. cv.where: only elements whose condition may switch are tested for a jump =================

def refused(F, theta, x0, centred=True) -> bool:
    try:
        enc = enclose(F, theta, x0, centred=centred)
    except cv.DiscontinuityError:
        return True
    return not enc.proven


@pytest.mark.parametrize("eps", [1e-14, 2.0 ** -1000, 1e-200])
def test_vector_where_jump_on_a_switching_element_is_refused(eps):
    """Element 0 continuous (x0/2 on both sides, x̄0 = 0 on the boundary), element 1 jumps by
    2 eps at 0: x > 0 gives x = -2 eps, x <= 0 gives x = 2 eps: no fixed point at all."""
    a, b = np.array([0.0, -eps]), np.array([0.0, eps])
    F = cv.trace(lambda x, t: cv.where(x > 0, 0.5 * x + a, 0.5 * x + b) + 0.0 * t, (2,), (2,))
    for x0 in ([0, 0], [0, eps * 1e-6], [eps * 1e-6, -eps * 1e-6], [0, 2 * eps], [0, -2 * eps]):
        for centred in (True, False):
            assert refused(F, np.zeros(2), x0, centred), (eps, x0)


@pytest.mark.parametrize("d", [1e-3, 0.25])
def test_vector_where_large_jump_away_from_the_origin_is_refused(d):
    """Boundaries at 0 and 100 (out of the trace-time sampling's reach): element 1 jumps by 2d
    at x1 = 100 (no fixed point there); element 0 on its continuous boundary."""
    c = np.array([0.0, 100.0])
    a, b = np.array([0.0, 50 - d]), np.array([0.0, 50 + d])
    F = cv.trace(lambda x, t: cv.where(x - c > 0, 0.5 * x + a, 0.5 * x + b) + 0.0 * t,
                 (2,), (2,))
    for x0 in ([0, 100 + 1e-9], [1e-17, 100 - 1e-9]):
        for centred in (True, False):
            assert refused(F, np.zeros(2), x0, centred)
    # a scalar condition broadcast to the vector branches: the jump is on element 1
    G = cv.trace(lambda x, t: cv.where(x[1] > 100.0, 0.5 * x + a, 0.5 * x + b) + 0.0 * t,
                 (2,), (2,))
    for x0 in ([0, 100 + 1e-9], [0, 100 - 1e-9]):
        for centred in (True, False):
            assert refused(G, np.zeros(2), x0, centred)


def test_scalar_condition_on_one_coordinate_jumping_on_the_other():
    """``where(x0 > 100, x/2 + (50, 1), x/2 + (50, 3))``: x̄0 = 100 on the boundary (both
    branches give 100), so x̄1 is 2 or 6 depending on the side: F jumps at x0 = 100 in
    coordinate 1 (the condition is scalar: every element may switch)."""
    a, b = np.array([50.0, 1.0]), np.array([50.0, 3.0])
    F = cv.trace(lambda x, t: cv.where(x[0] - 100 > 0, 0.5 * x + a, 0.5 * x + b) + 0.0 * t,
                 (2,), (2,))
    # the exact fixed points: x0 <= 100 branch: (100, 6) holds (x0 = 100 is not > 100)
    for x0 in ([100 + 1e-9, 2], [100 - 1e-9, 6], [100, 4]):
        for centred in (True, False):
            try:
                enc = enclose(F, np.zeros(2), x0, centred=centred)
            except cv.DiscontinuityError:
                continue
            if enc.proven:
                assert holds(enc, [100, 6])


def test_vector_where_jump_far_from_its_boundary_is_proved():
    """Element 1's branches are 2 apart but its boundary (x1 = 100) is far from x̄1 = 6; element
    0 sits on its continuous boundary: proved (the fix of dabf72a), exact point held."""
    c = np.array([0.0, 100.0])
    a, b = np.array([0.0, 1.0]), np.array([0.0, 3.0])
    F = cv.trace(lambda x, t: cv.where(x - c > 0, 0.5 * x + a, 0.5 * x + b) + 0.0 * t,
                 (2,), (2,))
    for x0 in ([0, 6], [1e-17, 6], [-1e-17, 6], [0, np.nextafter(6, 7)]):
        for centred in (True, False):
            enc = enclose(F, np.zeros(2), x0, centred=centred)
            assert enc.proven, enc.reason
            assert enc.caveat
            assert holds(enc, [0, 6])


def test_where_with_a_constant_branch_and_vector_threshold():
    F = cv.trace(lambda x, t: cv.where(x - 1.0 > 0, 0.5 * x + 0.5, 1.0) + 0.0 * t, (), ())
    for x0 in (1.0, 1 + 1e-15, 1 - 1e-15):
        enc = enclose(F, 0.0, x0)
        assert enc.proven and holds(enc, [1])
    G = cv.trace(lambda x, t: cv.where(x - t > 0, 0.5 * x + 0.5 * t, t), (2,), (2,))
    for x0 in ([1.0, 2.0], [1 + 1e-15, 2 - 1e-15]):
        enc = enclose(G, np.array([1.0, 2.0]), x0)
        assert enc.proven and holds(enc, [1, 2])


def test_where_condition_on_theta():
    """``where(t > 0, x/2 + 1, x/2 + 5/4)``: x̄ = 2 for t > 0, 5/2 for t <= 0."""
    F = cv.trace(lambda x, t: cv.where(t > 0, 0.5 * x + 1.0, 0.5 * x + 1.25), (), ())
    enc = enclose(F, 1e-300, 2.0)
    assert enc.proven and holds(enc, [2])
    for x0 in (2.0, 2.5):                      # t = 0: on the boundary of a jump in theta
        try:
            enc = enclose(F, 0.0, x0)
        except cv.DiscontinuityError:
            continue
        if enc.proven:
            assert holds(enc, [Fraction(5, 2)])
    for x0 in (2.0, 2.25, 2.5):                # parametric: a box for every t in [-1e-9, 1e-9]
        fps._RECENT.clear()
        enc = fps.parametric_enclosure(F, (-1e-9, 1e-9), x0)
        if enc.proven:
            assert holds(enc, [2]) and holds(enc, [Fraction(5, 2)])


@pytest.mark.parametrize("vector", [False, True])
def test_where_jump_with_branches_crossing_inside_the_box_is_refused(vector):
    d = 0.25
    if vector:                                  # element 0 continuous on its boundary
        c = np.array([0.0, 100.0])
        a, b = np.array([0.0, 50 - d]), np.array([0.0, 150 + 3 * d])
        sa, sb = np.array([0.5, 0.5]), np.array([0.5, -0.5])
        F = cv.trace(lambda x, t: cv.where(x - c > 0, sa * x + a, sb * x + b) + 0.0 * t,
                     (2,), (2,))
        theta, starts = np.zeros(2), ([0, 100 + 1e-9], [1e-17, 100 - 1e-9], [0, 100.25])
    else:
        F = cv.trace(lambda x, t: cv.where(x > 100.0, 0.5 * x + (50 - d),
                                           -0.5 * x + (150 + 3 * d)) + 0.0 * t, (), ())
        theta, starts = 0.0, (100 + 1e-9, 100 - 1e-9, 100.5)
    # no fixed point (exact): x > 100 -> x = 100 - 2d; x <= 100 -> x = 100 + 2d/3
    assert 100 - 2 * Fraction(d) <= 100 and 100 + 2 * Fraction(d) / 3 > 100
    for x0 in starts:
        for centred in (True, False):
            assert refused(F, theta, x0, centred), (x0, centred)


@pytest.mark.parametrize("k", [1, 8])
def test_where_subnormal_constant_jump_is_refused(k):
    eps = k * ETA
    F = cv.trace(lambda x, t: cv.where(x > 0, 0.5 * x - eps, 0.5 * x + eps) + 0.0 * t, (), ())
    for x0 in (0.0, ETA, -ETA):
        for centred in (True, False):
            assert refused(F, 0.0, x0, centred), (k, x0)


def test_where_constant_jump_above_rounding_is_refused_at_tiny_scale():
    for eps in (16 * ETA, 2.0 ** -1060, 2.0 ** -1000):
        F = cv.trace(lambda x, t: cv.where(x > 0, 0.5 * x - eps, 0.5 * x + eps) + 0.0 * t,
                     (), ())
        for x0 in (0.0, ETA, -ETA, eps, -eps):
            for centred in (True, False):
                assert refused(F, 0.0, x0, centred), (eps, x0)


# === 3. fpad_vjp at a kink ======================================================================

def test_fpad_vjp_accepts_kinks_with_an_invertible_hull():
    """Kinks at x̄ with ||A||_inf >= 1 (the hull test, not the row-norm shortcut) but I - A
    invertible on the hull: the kink-default adjoint, against the exact solve."""
    # strictly upper triangular W with entries up to 4: I - D W unit upper triangular
    rng = np.random.default_rng(5)
    n, nk = 5, 3
    W = np.triu(rng.integers(-4, 5, size=(n, n)).astype(float), 1)
    xs = np.zeros(n)
    xs[nk:] = 1.0
    b = xs - W @ xs
    pre = [p + Fraction(c) for p, c in zip(matvec(W, xs), b)]
    assert all(p == 0 for p in pre[:nk])
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (n,), (n,))
    g = np.linspace(1.0, 2.0, n)
    ref = vjp(relu_jacobian(W, [0] * nk + [1] * (n - nk)), g)
    for x0 in (xs, xs + 1e-15, xs - 1e-15):
        assert close(timed(fresh, cv.fpad_vjp, F, b, x0, g, limit=20.0), ref)
    # 2 x 2, det(I - D W) = 1 - 0.9 d1 d2 >= 0.1 on [0, 1]^2
    W3 = np.array([[0.0, 3.0], [0.3, 0.0]])
    F3 = cv.trace(lambda x, t: cv.relu(W3 @ x + t), (2,), (2,))
    for x0 in (np.zeros(2), np.array([1e-12, 1e-13]), np.array([1e-300, 0.0])):
        assert close(fresh(cv.fpad_vjp, F3, np.zeros(2), x0, np.ones(2)), [0, 0])
    # x = t - 3 relu(x): A in {0, -3}; x̄(t) = t (t <= 0), t/4 (t > 0); default relu'(0) = 0
    F1 = cv.trace(lambda x, t: t - 3.0 * cv.relu(x), (), ())
    for x0 in (0.0, 1e-13, -1e-13, 1e-300):
        assert close([float(fresh(cv.fpad_vjp, F1, 0.0, x0, 1.0))], [1])
    # x = t + |x|/2: A in {-1/2, 1/2}; default abs'(0) = 1 -> 2
    F2 = cv.trace(lambda x, t: t + 0.5 * cv.abs(x), (), ())
    for x0 in (0.0, 1e-300, -1e-300):
        assert close([float(fresh(cv.fpad_vjp, F2, 0.0, x0, 1.0))], [2])
    # x = |W3 x| + t at x̄ = 0: det(I - S W3) = 1 - 0.9 s1 s2 > 0 on [-1, 1]^2; default S = I
    F4 = cv.trace(lambda x, t: cv.abs(W3 @ x) + t, (2,), (2,))
    M = np.eye(2, dtype=object) - np.array([[Fraction(float(w)) for w in r] for r in W3],
                                           dtype=object)
    ref4 = qsolve(M.T, [Fraction(1), Fraction(1)])              # (I - W3)^{-T} 1 = (13, 40)
    assert close(fresh(cv.fpad_vjp, F4, np.zeros(2), np.zeros(2), np.ones(2)), ref4)


@pytest.mark.parametrize("step_factor", [1.5, 1.9, 1.99])
def test_fpad_vjp_lasso_at_the_threshold_with_a_long_step(step_factor):
    """Coordinate 2 exactly at the threshold, step up to 1.99 / L: rows of I - s X^T X have l1
    norm > 1 (the hull test decides), I - A invertible on the hull: no refusal."""
    w, v, lam = [0.75, 0.0, 0.0, -0.5], [1, -0.5, 1, -1], 1.0
    y = lasso_data(w, v, lam)
    L = float(np.linalg.norm(XL, 2) ** 2)
    F = cv.algorithms.forward_backward_lasso(XL, y, step=step_factor / L)
    xs = np.array(w)
    enc = enclose(F, lam, xs)
    assert enc.proven and holds(enc, [Fraction(a) for a in w])
    assert float(np.max(enc.row_l1)) >= 1.0
    ref = lasso_closed_form([0, 3], [1, -1])
    for x0 in (xs, xs + [0, 0, 1e-14, 0], xs - [0, 0, 1e-14, 0]):
        grads = [float(fresh(cv.fpad_vjp, F, lam, x0, np.eye(4)[i])[()]) for i in range(4)]
        assert close(grads, ref), grads


W_SING = np.array([[0.0, 1.5], [1.0, 0.0]])     # det(I - D W) = 1 - 1.5 d1 d2: 0 at d1 d2 = 2/3

MISSING = {
    "x = t + x/2 + relu(x)": ((), lambda x, t: t + 0.5 * x + cv.relu(x)),
    "x = t + 2|x|": ((), lambda x, t: t + 2.0 * cv.abs(x)),
    "x = t - 2|x|": ((), lambda x, t: t - 2.0 * cv.abs(x)),
    "x = t + 2 where(x > 0, x, -x)": ((), lambda x, t: t + 2.0 * cv.where(x > 0, x, -x)),
    "x = t + x/2 + where(x > 0, x, 0)": ((), lambda x, t: t + 0.5 * x + cv.where(x > 0, x, 0 * x)),
    "x = relu(W x + t), hull singular": ((2,), lambda x, t: cv.relu(W_SING @ x + t)),
    "x = |W x| + t, hull singular": ((2,), lambda x, t: cv.abs(W_SING @ x) + t),
    "x = where(z > 0, z, 0), z = W x + t": ((2,), lambda x, t: cv.where(W_SING @ x + t > 0,
                                                                        W_SING @ x + t, 0 * x)),
}


@pytest.mark.parametrize("name", list(MISSING))
def test_fpad_vjp_refuses_where_no_lipschitz_solution_map_exists(name):
    """At t = 0, x̄ = 0 on every kink and I - A is singular somewhere on the hull (the solution
    map has none, or several, or no fixed point nearby for some t)."""
    shape, fn = MISSING[name]
    F = cv.trace(fn, shape, shape)
    n = int(np.prod(shape, dtype=int))
    t, g = np.zeros(shape), np.ones(shape)
    starts = [np.zeros(shape), np.full(shape, 1e-300), np.full(shape, -1e-300),
              np.full(shape, ETA)]
    for x0 in starts:
        with pytest.raises((cv.SingularJacobianError, cv.UndecidedError)):
            fresh(cv.fpad_vjp, F, t, x0, g)
    if n:
        with pytest.raises(cv.SingularJacobianError):
            fresh(cv.fpad_vjp, F, t, np.zeros(shape), g)


def test_fpad_vjp_continuum_of_fixed_points_is_refused():
    """``x = t + x/2 + relu(x)/2``: at t = 0 every x >= 0 is fixed (A = 1 for x > 0)."""
    F = cv.trace(lambda x, t: t + 0.5 * x + 0.5 * cv.relu(x), (), ())
    for x0 in (0.0, 1e-300, 1.0):
        with np.errstate(all="ignore"):
            with pytest.raises(cv.ConservativeError):
                fresh(cv.fpad_vjp, F, 0.0, x0, 1.0)


def abs_period_two():
    W3 = np.array([[0.0, 3.0], [0.3, 0.0]])
    return cv.trace(lambda x, t: cv.abs(W3 @ x) + t, (2,), (2,))


def test_a_krawczyk_box_exists_for_the_period_two_abs_map():
    """``x = |W x| + t``, W = [[0, 3], [0.3, 0]], t = 0, x = (1e-12, 0): the box x ± r, r along
    the Perron vector (3, 0.9487) of |W|, passes Krawczyk's test (so an enclosure exists: the test
    below finds it)."""
    F = abs_period_two()
    th = np.zeros(2)
    for x in (np.array([1e-12, 0.0]), np.array([1e-300, 0.0])):
        fx = enclose_values(F.program, iv.Interval(x), iv.Interval(th), call="t")
        res = iv.subtract(iv.Interval(x), fx[F.program.out_node])
        lo, hi = fps.outward_box(x, 1e2 * float(x[0]) * np.array([3.0, 0.9487]))
        out = fps._krawczyk_step(F, x, th, lo, hi, res)
        assert out[0]
        assert all(Fraction(float(a)) <= 0 <= Fraction(float(b)) for a, b in zip(lo, hi))


def test_fpad_vjp_period_two_abs_map_near_its_kink():
    """fpad_vjp answers near the kink (since 037ed00 by the fixed-point certificate, when
    Krawczyk's loop did not close there; since 2026-12-03 by the enclosure itself)."""
    F = abs_period_two()
    ref = [13, 40]
    assert close(fresh(cv.fpad_vjp, F, np.zeros(2), np.zeros(2), np.ones(2)), ref)
    for x0 in (np.array([1e-12, 0.0]), np.array([1e-300, 0.0])):
        assert close(fresh(cv.fpad_vjp, F, np.zeros(2), x0, np.ones(2)), ref)


def test_enclosure_period_two_abs_map_near_its_kink():
    """The epsilon-inflation grows the box along its own Krawczyk image and never aligns it
    with the Perron vector of |I - C(I - M)| = [[0, 3], [0.3, 0]] (eigenvalues +-0.949, period
    two); the box ``2 (I - |E|)^-1 |C g|`` proposed after the loop fails is proved."""
    F = abs_period_two()
    for x0 in (np.array([1e-12, 0.0]), np.array([1e-300, 0.0]), np.array([0.0, 1e-12]),
               np.array([-1e-12, 3e-13])):
        enc = enclose(F, np.zeros(2), x0)
        assert enc.proven and holds(enc, [0, 0]), (x0, enc.reason)
        assert enc.radius <= 200 * float(np.max(np.abs(x0)))


@pytest.mark.parametrize("k", [3, 5])
def test_enclosure_of_a_cyclic_abs_map_near_its_kink(k):
    """``x = |W x| + t``, W a weighted k-cycle (entries 4 and 0.25: cycle product 4^(2-k) < 1,
    a row of l1 norm 4): period-k |E|, exact fixed point 0 at t = 0, and at a dyadic t >= 0
    the exact fixed point ``(I - W)^-1 t`` (rational solve). The inflation loop closes these
    itself; they guard the aligned boxes' neighbours."""
    W = np.zeros((k, k))
    for i in range(k):
        W[i, (i + 1) % k] = 4.0 if i == 0 else 0.25
    F = cv.trace(lambda x, t: cv.abs(W @ x) + t, (k,), (k,))
    x0 = np.zeros(k)
    x0[0] = 1e-12
    enc = enclose(F, np.zeros(k), x0)
    assert enc.proven and holds(enc, [0] * k), enc.reason
    # t = e_0 / 2**10: x̄ = |W x̄| + t, x̄ >= 0 so x̄ = (I - W)^-1 t, exactly (Fractions)
    t = np.zeros(k)
    t[0] = 2.0 ** -10
    Wq = np.array([[Fraction(float(v)) for v in r] for r in W], dtype=object)
    exact = qsolve(np.eye(k, dtype=int).astype(object) - Wq, [Fraction(v) for v in t])
    assert all(v >= 0 for v in exact)            # so |W x̄| = W x̄: x̄ is the fixed point
    xs = np.array([float(v) for v in exact])
    enc = enclose(F, t, xs)
    assert enc.proven and holds(enc, exact), enc.reason
