"""Tests of contraction certificates (conservative.certify).

Every issued certificate is re-verified here *independently* of conservative._exact: sympy
rationals and Sylvester's criterion over all principal minors (quadratic norms), exact sympy
solves of LP-suggested representations (polytope norms).
"""

import itertools
import json
import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from conservative.certify import Certificate, certify_contraction
from conservative.errors import ConservativeError, InputError, NonFiniteError, ShapeError
from conservative.jsr import product, spectral_radius

GRIPENBERG = np.array([[[3, 0], [1, 3]], [[3, -3], [0, -1]]]) / 5


def heavy_ball(c, alpha=0.25, beta=0.25):
    return np.array([[1 + beta - alpha * c, -beta], [1.0, 0.0]])


# --- independent exact re-checks ---------------------------------------------------------------


def q(x):
    return sp.Rational(float(x))          # exact value of a double


def qmat(a):
    a = np.atleast_2d(a)
    return sp.Matrix(a.shape[0], a.shape[1], lambda i, j: q(a[i, j]))


def psd_by_minors(G, strict=False):
    """Sylvester: PSD iff all principal minors >= 0; PD iff leading minors > 0."""
    n = G.shape[0]
    if strict:
        return all(G[:k, :k].det() > 0 for k in range(1, n + 1))
    return all(G.extract(list(i), list(i)).det() >= 0
               for s in range(1, n + 1) for i in itertools.combinations(range(n), s))


def quadratic_certificate_holds(mats, cert):
    P = qmat(cert.P if cert.k == 1 else cert.Pk)
    if not psd_by_minors(P, strict=True):
        return False
    k = cert.k
    g = q(cert.rho) ** (2 * k)
    As = [qmat(a) for a in mats]
    for w in itertools.product(range(len(As)), repeat=k):
        M = sp.eye(P.shape[0])
        for i in w:
            M = As[i] * M
        if not psd_by_minors(g * P - M.T * P * M):
            return False
    return True


def polytope_certificate_holds(mats, cert):
    V = cert.polytope
    n, N = V.shape
    Vq = qmat(V)
    if Vq.rank() < n:
        return False                                      # not a norm
    for a in mats:
        for j in range(N):
            y = qmat(a) * Vq[:, j]
            yf = np.array(a @ V[:, j], dtype=float)
            res = linprog(np.ones(2 * N), A_eq=np.hstack([V, -V]), b_eq=yf, bounds=(0, None))
            lam = res.x[:N] - res.x[N:]
            cols = [int(i) for i in np.argsort(-np.abs(lam)) if abs(lam[i]) > 1e-9][:n]
            while len(cols) < n:                  # complete by the column farthest from span
                Q = np.linalg.qr(V[:, cols])[0] if cols else np.zeros((n, 0))
                dist = np.linalg.norm(V - Q @ (Q.T @ V), axis=0)
                dist[cols] = -1
                cols.append(int(np.argmax(dist)))
            B = Vq[:, cols]
            if B.rank() < n:
                return False
            sol = B.LUsolve(y)
            if sum(abs(v) for v in sol) > q(cert.rho):
                return False
    return True


def weighted_infinity_certificate_holds(mats, cert):
    """max_i sum_j |A_ij| w_j / w_i <= rho, in exact rationals."""
    w = [Fraction(float(v)) for v in cert.norm.w]
    rho = Fraction(float(cert.rho))
    return all(sum(abs(Fraction(float(a[i, j]))) * w[j] for j in range(len(w))) <= rho * w[i]
               for a in np.asarray(mats) for i in range(len(w)))


def independently_verified(mats, cert):
    if cert.polytope is not None:
        return polytope_certificate_holds(mats, cert)
    if cert.family == "weighted infinity":
        return weighted_infinity_certificate_holds(mats, cert)
    return quadratic_certificate_holds(mats, cert)


def max_product_rho(mats, max_len):
    return max(float(spectral_radius(product(mats, w))) ** (1 / k)
               for k in range(1, max_len + 1)
               for w in itertools.product(range(len(mats)), repeat=k))


# --- reference sets --------------------------------------------------------------------------


def test_heavy_ball_kink_pair_is_refused_with_divergent_word():
    mats = np.stack([heavy_ball(1), heavy_ball(9)])
    cert = certify_contraction(mats)
    assert not cert.certified and not cert
    assert cert.lower > 1 and cert.word == (0, 1)
    assert float(spectral_radius(product(mats, cert.word))) > 1     # a divergent product
    assert "not to converge" in cert.reason and "numerical evidence" in cert.reason


def test_huge_euclidean_norm_small_jsr_is_certified():
    mats = np.array([[[0.5, 1e6], [0.0, 0.5]]])
    cert = certify_contraction(mats)
    assert cert.certified and cert.verified == "exact" and cert.rho < 0.51
    assert independently_verified(mats, cert)


def test_gripenberg_pair_certified_near_its_jsr():
    cert = certify_contraction(GRIPENBERG, prefer="tightest")
    assert cert.certified and cert.rho < 0.6596789089552835 * (1 + 1e-9)
    assert cert.polytope is not None and independently_verified(GRIPENBERG, cert)
    quad = certify_contraction(GRIPENBERG)               # default: a one-step quadratic norm
    assert quad.certified and quad.P is not None and quad.k == 1
    assert independently_verified(GRIPENBERG, quad)


def test_polytope_certificate_when_no_quadratic_norm_contracts():
    # heavy ball at curvatures {1, 7}: JSR = 0.9659 < 1, the best quadratic norm gives > 1
    mats = np.stack([heavy_ball(1), heavy_ball(7)])
    cert = certify_contraction(mats)
    assert cert.certified and cert.P is None and cert.polytope is not None
    assert independently_verified(mats, cert)


def test_quadratic_certificate_for_heavy_ball_with_close_curvatures():
    mats = np.stack([heavy_ball(2), heavy_ball(3)])
    cert = certify_contraction(mats)
    assert cert.certified and independently_verified(mats, cert)


def test_jacobian_set_target():
    js = SimpleNamespace(A=SimpleNamespace(vertices=GRIPENBERG))
    assert certify_contraction(js).certified


def test_scaled_gripenberg_above_one_is_refused():
    mats = GRIPENBERG * 1.52                              # JSR = 1.0027
    cert = certify_contraction(mats)
    assert not cert.certified and cert.lower > 1
    assert float(spectral_radius(product(mats, cert.word))) > 1


def test_jsr_exactly_one_is_never_certified():
    cert = certify_contraction([[[0.0, -1.0], [1.0, 0.0]]])
    assert not cert.certified


def test_certificate_is_readable_and_json():
    cert = certify_contraction(np.array([[[0.5, 1e6], [0.0, 0.5]]]))
    assert isinstance(cert, Certificate)
    assert "certified contraction" in str(cert) and "quadratic" in str(cert)
    d = json.loads(json.dumps(cert.to_dict()))
    assert d["certified"] is True and d["verified"] == "exact"
    bad = certify_contraction([heavy_ball(1), heavy_ball(9)])
    assert "NOT certified" in str(bad) and "reason" in str(bad)
    assert json.loads(json.dumps(bad.to_dict()))["rho"] is None


# --- properties --------------------------------------------------------------------------------

small_sets = st.integers(1, 3).flatmap(lambda n: st.lists(
    st.lists(st.lists(st.integers(-4, 4), min_size=n, max_size=n), min_size=n, max_size=n),
    min_size=1, max_size=3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_sets, st.sampled_from([2.0, 3.0, 5.0]))
def test_certificates_are_sound_on_random_sets(entries, scale):
    mats = np.array(entries, dtype=float) / scale
    cert = certify_contraction(mats, time_limit=2.0)
    assert cert.verified in ("exact", "float")
    if cert.verified == "float":
        assert not cert.certified and cert.reason
    if cert.certified:
        assert cert.rho < 1
        assert max_product_rho(mats, 4) < 1              # no divergent product exists
        assert independently_verified(mats, cert)
    elif cert.word is not None and cert.lower > 0:
        # the lower bound is proved exactly; a float recomputation overshoots a defective
        # eigenvalue by up to eps^(1/n) relative ([[3, -1], [1, 1]] / 2: 1 + 1e-8)
        got = float(spectral_radius(product(mats, cert.word))) ** (1 / len(cert.word))
        assert cert.lower <= got * (1 + 1e-9)
        assert abs(got - cert.lower) <= 1e-5 * cert.lower


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_sets)
def test_no_certificate_when_a_product_diverges(entries):
    mats = np.array(entries, dtype=float) / 2
    if max_product_rho(mats, 3) > 1 + 1e-12:
        assert not certify_contraction(mats, time_limit=2.0).certified


# --- interval matrices and maps --------------------------------------------------------------


class Box(SimpleNamespace):
    """Duck-typed interval matrix: .lo and .hi."""


def test_interval_box_certificate_covers_sampled_matrices():
    lo = np.array([[0.3, -0.2, 7.0], [0.1, 0.2, -1.0]])
    hi = np.array([[0.4, 0.1, 8.0], [0.2, 0.3, 1.0]])      # third column: the B block
    cert = certify_contraction(Box(lo=lo, hi=hi))
    assert cert.certified and cert.verified == "exact"
    assert "16 vertices of the box" in cert.method          # 4 uncertain entries
    rng = np.random.default_rng(1)
    samples = [lo[:, :2] + rng.random((2, 2)) * (hi[:, :2] - lo[:, :2]) for _ in range(6)]
    assert independently_verified(samples, cert)
    corners = [np.where(np.reshape(c, (2, 2)), hi[:, :2], lo[:, :2])
               for c in itertools.product([0, 1], repeat=4)]
    assert independently_verified(corners, cert)


def test_wide_interval_box_uses_the_exact_enclosure():
    rng = np.random.default_rng(3)
    c = rng.integers(-2, 3, size=(3, 3)) / 10
    lo, hi = c - 0.01, c + 0.01                          # 9 uncertain entries: 512 vertices
    cert = certify_contraction(Box(lo=lo, hi=hi))
    assert cert.certified and "enclosure" in cert.method
    samples = [lo + rng.random((3, 3)) * (hi - lo) for _ in range(4)] + [lo, hi]
    assert quadratic_certificate_holds(samples, cert)


def test_interval_box_containing_a_divergent_matrix_is_refused():
    lo = np.array([[0.9, 0.0], [0.0, 0.2]])
    hi = np.array([[1.1, 0.0], [0.0, 0.3]])
    cert = certify_contraction(Box(lo=lo, hi=hi))
    assert not cert.certified and cert.lower > 1 and cert.reason


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(-3, 3), min_size=4, max_size=4), st.integers(0, 3))
def test_interval_certificates_contain_sampled_matrices(center, width):
    c = np.reshape(center, (2, 2)) / 8
    r = np.full((2, 2), width / 64)
    cert = certify_contraction(Box(lo=c - r, hi=c + r), time_limit=2.0)
    if cert.certified:
        rng = np.random.default_rng(0)
        samples = [c - r + 2 * r * rng.random((2, 2)) for _ in range(3)] + [c - r, c + r]
        assert independently_verified(samples, cert)


def _heavy_ball(curvatures):
    """Heavy-ball (alpha = beta = 1/4) on a piecewise quadratic with a kink at x = theta."""
    import conservative as cv
    lo, hi = curvatures

    def grad(x, t):
        d = x - t[0]
        return cv.where(d > 0, hi * d, lo * d)
    return cv.algorithms.heavy_ball(grad, 0.25, 0.25, 1)


def _hb_matrix(c):
    return np.array([[1 + 0.25 - 0.25 * c, -0.25], [1.0, 0.0]])


def test_map_at_a_point_uses_the_set_of_A_blocks():
    F = _heavy_ball((1.0, 3.0))
    x = np.array([0.0, 5.0])                     # on the kink, not a fixed point
    cert = certify_contraction(F, theta=[0.0], x=x)
    assert cert.certified
    assert independently_verified([_hb_matrix(1), _hb_matrix(3)], cert)
    bad = certify_contraction(_heavy_ball((1.0, 9.0)), theta=[0.0], x=x)
    assert not bad.certified and bad.lower == pytest.approx((1 + math.sqrt(2)) / 2)


def test_map_with_a_box_uses_the_enclosure_and_the_maps_own_lower_bound():
    F = _heavy_ball((1.0, 3.0))
    x_box = (np.array([-0.1, -0.1]), np.array([0.1, 0.1]))
    cert = certify_contraction(F, theta=[0.0], x=x_box)
    assert cert.verified in ("exact", "float")
    if cert.certified:
        assert cert.rho < 1
    # every sampled matrix is one of the map's own two Jacobians
    for M in cert.samples:
        assert any(np.array_equal(M, _hb_matrix(c)) for c in (1.0, 3.0))


# --- failure paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad, exc", [
    (np.ones((2, 3, 2)), ShapeError),
    ([[[np.nan, 0.0], [0.0, 0.0]]], NonFiniteError),
    ([], ConservativeError),
    (Box(lo=np.zeros((2, 2)), hi=np.zeros((3, 3))), ShapeError),
    (Box(lo=np.ones((2, 2)), hi=np.zeros((2, 2))), InputError),
    (Box(lo=np.zeros((3, 2)), hi=np.zeros((3, 2))), ShapeError),
])
def test_bad_targets_raise_named_errors(bad, exc):
    with pytest.raises(exc) as info:
        certify_contraction(bad)
    assert "cv.certify_contraction" in str(info.value)


def test_map_without_point_is_refused():
    with pytest.raises(InputError, match="cv.certify_contraction"):
        certify_contraction(_heavy_ball((1.0, 3.0)))


def test_lifted_quadratic_certificate_when_one_step_norms_fail():
    # found by search: no one-step quadratic norm < 1, the polytope start is complex
    mats = np.array([[[0.5, -0.5, -0.5], [0.5, -0.75, 0.5], [0.984375, 0.5, 0.25]],
                     [[0.0, 0.984375, -0.75], [-0.25, 0.25, 0.25], [-0.984375, -0.75, 0.5]]])
    cert = certify_contraction(mats)
    assert cert.certified and cert.k >= 2 and cert.P is None and cert.Pk is not None
    assert "lifted" in cert.norm and independently_verified(mats, cert)


def test_bad_options_are_refused():
    with pytest.raises(InputError, match="prefer"):
        certify_contraction(GRIPENBERG, prefer="fast")
    with pytest.raises(InputError, match="cv.certify_contraction"):
        certify_contraction(GRIPENBERG, tol=0)


def test_polytope_certificate_to_dict_is_json():
    cert = certify_contraction(np.stack([heavy_ball(1), heavy_ball(7)]))
    d = json.loads(json.dumps(cert.to_dict()))
    assert d["P"] is None and len(d["polytope"]) == cert.polytope.shape[1]
    assert d["verified"] == "exact" and d["rho"] == cert.rho


def test_zero_rows_reduce_the_problem_and_the_lift_is_sound():
    # rows outside N vanish in every matrix (a Lasso support): certify the N block, lift
    rng = np.random.default_rng(4)
    n, keep = 120, np.array([3, 17, 40, 77])
    mats = np.zeros((2, n, n))
    for A in mats:
        A[keep] = rng.normal(size=(len(keep), n)) * 0.3
        A[np.ix_(keep, keep)] = 0.4 * np.linalg.qr(rng.normal(size=(4, 4)))[0]
    cert = certify_contraction(mats)
    assert cert.certified and cert.verified == "exact" and cert.rho < 1
    assert "extended" in cert.method
    P = cert.P
    for A in mats:                     # independent check of ||A||_P <= rho on the whole space
        M = cert.rho ** 2 * P - A.T @ P @ A
        assert np.linalg.eigvalsh((M + M.T) / 2).min() >= -1e-9
    assert np.linalg.eigvalsh(P).min() > 0


@pytest.mark.slow
def test_large_sets_without_structure_are_certified_rigorously():
    # issue 10: no size refusal any more; 100 coordinates, none sent to zero: a cheap norm,
    # proved in rigorous floating point ("interval"), re-checked exactly with python-flint
    mats = np.eye(100)[None] * 0.5
    mats[0, 0, 1] = 0.1
    mats = mats + 0.001
    cert = certify_contraction(mats)
    assert cert.certified and cert.verified == "interval" and cert.rho < 0.65
    assert _exact_gap_check_input(mats, cert)


@pytest.mark.slow
def test_lifted_certificates_pass_the_exact_rational_check():
    from conservative import _exact
    rng = np.random.default_rng(5)
    for _ in range(3):
        n, keep = 30, np.sort(rng.choice(30, size=4, replace=False))
        mats = np.zeros((2, n, n))
        for A in mats:
            A[keep] = rng.normal(size=(4, n)) * rng.uniform(0.1, 2)
            A[np.ix_(keep, keep)] = rng.uniform(0.2, 0.9) * np.linalg.qr(rng.normal(size=(4, 4)))[0]
        cert = certify_contraction(mats)
        assert cert.certified and "extended" in cert.method
        assert _exact.check_quadratic(mats, cert.P, cert.rho)      # P ≻ 0, rho^2 P - A^T P A ⪰ 0


# --- issue 8: time limits, options, and the integer exact check ---------------------------------


def _random_40(scale, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 40, 40)) / np.sqrt(40) * scale


@pytest.mark.parametrize("limit", [2.0])
def test_time_limit_is_a_promise_on_40x40_matrices(limit):
    # issue 8 item 7: two random 40 x 40 matrices took 50 s with time_limit=20. Now no phase
    # starts after the deadline (one solver call may finish): within 20 % of the limit, plus
    # a margin for a shared machine. What comes back is either a certificate that passes the
    # independent check or a refusal that says why.
    import time
    from conservative.jsr import import_cvxpy
    import_cvxpy()
    A = _random_40(0.45)
    start = time.monotonic()
    cert = certify_contraction(A, time_limit=limit)
    elapsed = time.monotonic() - start
    assert elapsed < 1.2 * limit + 1.5, elapsed
    if cert.certified:
        assert cert.verified == "exact" and cert.rho < 1
        assert _exact_gap_check_input(A, cert)
    else:
        assert cert.reason.startswith("time limit"), cert.reason


def _exact_gap_check_input(mats, cert):
    """Independent exact check of a large quadratic certificate with python-flint's rational
    matrices: P and every rho^2 P - A^T P A have positive leading principal minors (strict
    definiteness, sufficient for the certificate)."""
    flint = pytest.importorskip("flint")
    if cert.k != 1:
        return False

    def fq(a):
        a = np.atleast_2d(a)
        return flint.fmpq_mat(a.shape[0], a.shape[1],
                              [flint.fmpq(*Fraction(float(v)).as_integer_ratio())
                               for v in a.ravel()])

    def positive_definite(M):
        n = M.nrows()
        return all(flint.fmpq_mat(k, k, [M[i, j] for i in range(k) for j in range(k)]).det() > 0
                   for k in range(1, n + 1))

    P = fq(cert.P)
    if not positive_definite(P):
        return False
    r = Fraction(float(cert.rho))
    g2 = flint.fmpq(*(r * r).as_integer_ratio())
    return all(positive_definite(P * g2 - fq(a).transpose() * P * fq(a)) for a in mats)


def test_certificate_proved_before_the_deadline_is_kept(monkeypatch):
    # the deadline passes right after the search: no further check starts, and the bound
    # proved exactly on the balanced matrices (A = s D B D^-1 exactly) is returned; it holds on
    # the input (checked independently)
    import time
    import conservative.certify.contraction as contraction_module
    real = contraction_module.analyse

    def analyse_then_expire(A, **kwargs):
        an = real(A, **kwargs)
        kwargs["deadline"].at = time.monotonic() - 1.0
        return an

    monkeypatch.setattr(contraction_module, "analyse", analyse_then_expire)
    for mats in (np.array([[[0.5, 1e6], [0.0, 0.5]]]), GRIPENBERG,
                 np.stack([heavy_ball(1), heavy_ball(3)]) * 2.0 ** -600):
        cert = certify_contraction(mats)
        assert cert.certified
        assert independently_verified(mats, cert)


def test_time_limit_and_progress_options():
    for bad in (-1, 0, float("nan"), "20", True):
        with pytest.raises(InputError, match="cv.certify_contraction: received time_limit="):
            certify_contraction(GRIPENBERG, time_limit=bad)
    with pytest.raises(InputError, match="cv.certify_contraction: received progress="):
        certify_contraction(GRIPENBERG, progress="auto")
    with pytest.raises(InputError, match="cv.certify_contraction: received tol="):
        certify_contraction(GRIPENBERG, tol=float("nan"))
    cert = certify_contraction(GRIPENBERG, time_limit=None, progress=False)
    assert cert.certified and independently_verified(GRIPENBERG, cert)


@pytest.mark.parametrize("bad", [[[[1, 2], [3]]], [[[0.5, 0.0], [0.0, 0.5]], [[0.5]]]])
def test_ragged_matrices_are_a_shape_error(bad):
    with pytest.raises(ShapeError, match="cv.certify_contraction: received target .*unequal"):
        certify_contraction(bad)


def test_integer_exact_check_agrees_with_fractions():
    # the fraction-free (Bareiss) integer path of _exact.check_quadratic against its
    # Fraction reference, at the boundary gamma = ||A||_P (1 -+ 1e-9) and with zero pivots
    from conservative import _exact
    rng = np.random.default_rng(3)
    for trial in range(60):
        n = 1 + trial % 6
        A = rng.standard_normal((2, n, n)) / np.sqrt(n) * 0.5
        M = rng.standard_normal((n, n))
        P = np.vectorize(_exact.dyadic_round)(M @ M.T / n + 0.1 * np.eye(n))
        P = (P + P.T) / 2
        if trial % 7 == 3:
            A[1] = 0.0
        if trial % 5 == 2:
            A[0, 0, :] = 0.0
            A[0, :, 0] = 0.0
        L = np.linalg.cholesky(P)
        T = np.swapaxes(np.linalg.solve(L, A.transpose(0, 2, 1) @ L), 1, 2)
        g = float(np.linalg.norm(T, 2, axis=(1, 2)).max()) * (1 + (-1) ** trial * 1e-9)
        assert _exact.check_quadratic(A, P, g) == _exact._check_quadratic_fractions(A, P, g)
