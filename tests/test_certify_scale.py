"""Certificates that use structure (issue 10): kink slopes kept as intervals, rows that vanish
removed, rigorous floating-point proofs. Every certificate is re-checked independently
(python-flint rationals, vertex enumeration on small layers, the map's own Jacobians)."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

import conservative as cv
from conservative._deadline import Deadline
from conservative.certify import StructuredQuadraticNorm, StructuredSet
from conservative.certify.maps import box_target, structured_jacobian
from conservative.certify.norms import Context

from _certify_checks import certificate_holds, quadratic_bound_holds


def relu_layer(n, seed=0, norm=0.9):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n, n))
    W *= norm / np.linalg.norm(W, 2)
    U = rng.normal(size=(n, 3)) / np.sqrt(3)
    b = rng.normal(size=n) * 0.5
    F = cv.trace(lambda x, t: cv.relu(W @ x + U @ t + b), (n,), (3,))
    theta = rng.normal(size=3)
    x = cv.fixed_point(F, np.zeros(n), theta, tol=1e-14).x
    return F, theta, x, W


def layer_at_kinks(n=5, kinks=2, seed=0):
    """A ReLU layer whose fixed point has ``kinks`` units exactly on the kink."""
    rng = np.random.default_rng(seed)
    W = np.round(rng.uniform(-0.3, 0.3, (n, n)) * 64) / 64
    x = np.zeros(n)
    x[kinks:] = np.round(rng.uniform(0.5, 1.5, n - kinks) * 64) / 64
    b = x - W @ x
    b[:kinks] = -(W @ x)[:kinks]
    F = cv.trace(lambda z, t: cv.relu(W @ z + b + 0.0 * t), (n,), ())
    return F, x, W


# --- the structured LMI against vertex enumeration -------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_structured_lmi_holds_at_every_vertex(seed):
    rng = np.random.default_rng(seed)
    n, S = 5, 8                                       # 2^8 = 256 vertices, above VERTEX_LIMIT
    C = rng.normal(size=(n, n)) * 0.15
    U = rng.normal(size=(n, S)) * 0.3
    R = rng.normal(size=(S, n)) * 0.3
    target = StructuredSet(C, U, R, np.zeros(S), np.ones(S))
    verts = target.vertices(limit=1024)
    assert len(verts) == 256 and target.vertices() is None
    worst = max(np.max(np.abs(np.linalg.eigvals(v))) for v in verts)
    assert worst < 1
    ctx = Context(float(worst), (0,), Deadline(60.0))
    assert StructuredQuadraticNorm.applies(target, ctx)
    norm = StructuredQuadraticNorm.find(target, ctx)
    assert norm is not None
    got = norm.certify(target)
    assert got is not None and got[1] == "interval"
    rho = got[0]
    # independent: rho^2 P - A^T P A ≻ 0 at all 256 vertices, exactly (python-flint)
    assert quadratic_bound_holds(verts, norm.P, rho)


def test_structured_lmi_refuses_when_a_vertex_diverges():
    C = np.zeros((2, 2))
    U = np.eye(2)
    R = np.array([[0.0, 1.6], [-1.6, 0.0]])           # delta = (1, 1): rotation by 1.6
    target = StructuredSet(C, U, R, np.zeros(2), np.ones(2))
    norm = StructuredQuadraticNorm(np.eye(2), np.ones(2))
    assert norm.prove(target, 0.99) is None
    cert = cv.certify_contraction(SimpleJS(target))
    assert not cert.certified and cert.lower > 1


class SimpleJS:
    """A duck-typed Jacobian set holding a structured target (through its vertices)."""

    def __init__(self, target):
        self.vertices = target.vertices()


# --- structured sets of maps --------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_structured_jacobian_of_a_layer_equals_its_jacobian_set(seed):
    F, x, _ = layer_at_kinks(seed=seed)
    S = structured_jacobian(F, x, 0.0, rows=np.arange(F.n), call="test")
    mine = S.vertices() if isinstance(S, StructuredSet) else S.mats
    ref = F.jacobian(x, 0.0, hull=False).A.vertices
    assert len(mine) == len(ref) == 4
    for A in ref:
        assert min(np.max(np.abs(A - B)) for B in mine) <= 1e-15


def test_relu_box_is_certified_through_its_slopes_not_an_entrywise_box():
    # issue 10: width 10, a box of radius 0.2 meeting 8 kinks: the entrywise enclosure
    # refuses (rho 1.28) although every element is D W with D diagonal in [0, 1] and
    # ||W||_2 = 0.9
    F, theta, x, W = relu_layer(10, seed=2)
    r = 0.2
    cert = cv.certify_contraction(F, (theta - r, theta + r), (x - r, x + r))
    assert cert.certified and cert.rho <= 0.9 * (1 + 1e-6)
    rng = np.random.default_rng(0)
    own = [A for _ in range(40) for A in F.jacobian(
        x + rng.uniform(-r, r, 10), theta + rng.uniform(-r, r, 3), hull=False).A.vertices]
    assert certificate_holds(own, cert)
    old = cv.certify_contraction(F.enclose((x - r, x + r), (theta - r, theta + r)))
    assert not old.certified                          # the entrywise box is too wide


def test_box_target_contains_the_maps_own_jacobians():
    F, theta, x, _ = relu_layer(30, seed=4)
    r = 0.1
    mt = box_target(F, (x - r, x + r), (theta - r, theta + r), call="test")
    S = mt.target
    assert isinstance(S, StructuredSet)
    rows = mt.coupling.keep if mt.coupling is not None else np.arange(F.n)
    rng = np.random.default_rng(1)
    for _ in range(20):
        A = F.jacobian(x + rng.uniform(-r, r, 30), theta, hull=False).A.vertices[0]
        assert not np.any(np.delete(A, rows, axis=0))          # removed rows are zero
        sub = A[np.ix_(rows, rows)]
        # sub = C + U diag(delta) R with delta in {0, 1} on each slot row: solve row by row
        for s, row in enumerate(S.rows):
            delta = 0.0 if not np.any(sub[row]) else 1.0
            assert np.allclose(sub[row], S.C[row] + delta * S.R[s], atol=1e-14)


# --- large maps, rigorous floating point -------------------------------------------------------


def test_a_relu_layer_at_its_fixed_point_is_certified_rigorously():
    F, theta, x, _ = relu_layer(60, seed=5)
    cert = cv.certify_contraction(F, theta, x)
    assert cert.certified and cert.verified == "interval"
    assert any("sent to zero" in note for note in cert.notes)
    A = F.jacobian(x, theta).A.vertices
    assert certificate_holds(A, cert)                 # on all 60 coordinates, exactly
    spectral = np.max(np.abs(np.linalg.eigvals(A[0])))
    assert spectral <= cert.rho <= spectral * 1.05    # near the spectral radius (Lyapunov)


def test_certify_fixed_point_of_a_relu_layer_locates_and_certifies():
    F, theta, x, _ = relu_layer(50, seed=6)
    res = cv.certify_fixed_point(F, theta, x)
    assert res.certified and res.radius < 1e-9
    lo, hi = res.x_box
    assert np.all(lo <= x) and np.all(x <= hi)
    x_exact = cv.fixed_point(F, x, theta, tol=1e-15).x
    assert np.all(lo <= x_exact) and np.all(x_exact <= hi)
    assert certificate_holds(F.jacobian(x, theta).A.vertices, res.certificate)


def test_lasso_is_certified_on_its_support_and_extended():
    from sklearn.linear_model import Lasso
    rng = np.random.default_rng(7)
    n, p = 40, 60
    X = rng.normal(size=(n, p)) / np.sqrt(n)
    y = X[:, :5] @ rng.normal(size=5) + 0.01 * rng.normal(size=n)
    lam = 0.1 * float(np.max(np.abs(X.T @ y)))
    F = cv.algorithms.forward_backward_lasso(X, y)
    w = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(X, y).coef_
    for _ in range(500):
        w = F(w, lam)
    cert = cv.certify_contraction(F, lam, w)
    assert cert.certified and cert.rho < 1
    assert any(f"of {p} coordinates are sent to zero" in note for note in cert.notes)
    assert certificate_holds(F.jacobian(w, lam).A.vertices, cert)
    res = cv.certify_fixed_point(F, lam, w)
    assert res.certified and certificate_holds(F.jacobian(w, lam).A.vertices, res.certificate)


def test_a_divergent_layer_is_refused_with_its_own_word():
    n = 6
    rng = np.random.default_rng(3)
    W = rng.normal(size=(n, n)) * 0.2
    W[np.ix_([0, 1], [0, 1])] = [[0.0, 1.6], [-1.6, 0.0]]
    W[0, 2:] = W[1, 2:] = 0.0
    x = np.zeros(n)
    x[2:] = 1.0 + rng.random(n - 2)
    b = x - W @ x
    b[[0, 1]] = -(W @ x)[[0, 1]]
    F = cv.trace(lambda z, t: cv.relu(W @ z + b + 0.0 * t), (n,), ())
    cert = cv.certify_contraction(F, 0.0, x)
    assert not cert.certified and cert.lower > 1
    # the word indexes the map's own Jacobians; its value, from the exact characteristic
    # polynomial of the product
    enc = cv.fixed_point_enclosure(F, 0.0, x)
    hull = F.jacobian(x, 0.0, hull=True, box=((enc.lo, enc.hi), 0.0)).A
    prod = sp.eye(n)
    for i in cert.word:
        assert hull.contains(cert.samples[i])
        prod = sp.Matrix(n, n, lambda a, c: sp.Rational(Fraction(float(
            cert.samples[i][a, c])))) * prod
    lam = sp.symbols("lam")
    radius = max(abs(complex(r)) for r in sp.Poly(prod.charpoly(lam).as_expr(), lam).nroots())
    assert radius ** (1 / len(cert.word)) == pytest.approx(cert.lower, rel=1e-9)
