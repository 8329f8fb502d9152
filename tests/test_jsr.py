"""Tests of the joint spectral radius bounds (conservative.jsr) against published values."""

import itertools
import json
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conservative.errors import ConservativeError, InputError, NonFiniteError, ShapeError
from conservative import _exact
from conservative.jsr import JSRResult, jsr, product, quadratic_norm, spectral_radius
from conservative.certify.matrices import least_rotations, norm2, one_per_necklace

GOLDEN = [[[1, 1], [0, 1]], [[1, 0], [1, 1]]]
GRIPENBERG = np.array([[[3, 0], [1, 3]], [[3, -3], [0, -1]]]) / 5
GRIPENBERG_JSR = 0.6596789089552835


def heavy_ball(c, alpha=0.25, beta=0.25):
    return np.array([[1 + beta - alpha * c, -beta], [1.0, 0.0]])


def brute_lower(mats, max_len):
    """max rho(A_w)^(1/|w|) over all words up to max_len (reference, no pruning)."""
    best = 0.0
    for k in range(1, max_len + 1):
        for w in itertools.product(range(len(mats)), repeat=k):
            best = max(best, float(spectral_radius(product(mats, w))) ** (1 / k))
    return best


# --- published values ------------------------------------------------------------------------


def test_golden_pair():
    r = jsr(GOLDEN)
    phi = (1 + math.sqrt(5)) / 2
    assert abs(r.lower - phi) < 1e-12
    assert r.upper >= phi - 1e-12 and r.upper - phi < 1e-6
    assert r.word == (0, 1)
    assert r.upper_verified == "exact"


def test_gripenberg_pair_tight_bracket_and_length_13_word():
    r = jsr(GRIPENBERG)
    assert r.lower <= GRIPENBERG_JSR + 1e-15 <= r.upper + 2e-15
    assert r.upper - r.lower < 1e-9                       # published bracket width is 1.4e-5
    assert len(r.word) == 13 and sorted(r.word) == [0] * 12 + [1]   # A1 A0^12
    assert r.upper_verified == "exact" and "polytope" in r.upper_method


def test_gripenberg_branch_and_bound_alone_finds_the_long_word():
    r = jsr(GRIPENBERG, use_polytope=False)
    assert len(r.word) == 13 and abs(r.lower - GRIPENBERG_JSR) < 1e-14
    assert r.upper >= GRIPENBERG_JSR


def test_heavy_ball_pair_schur_stable_but_jsr_above_one():
    mats = np.stack([heavy_ball(1), heavy_ball(9)])
    assert np.allclose(spectral_radius(mats), 0.5)
    r = jsr(mats)
    target = (1 + math.sqrt(2)) / 2
    assert abs(r.lower - target) < 1e-12 and target - 1e-12 <= r.upper < target + 1e-6
    assert r.lower > 1 and r.word == (0, 1)


def test_heavy_ball_reference_norm_is_extremal_exactly():
    # P = diag(4, 1): max_i ||M_i||_P^2 = ((1 + sqrt 2)/2)^2, computed symbolically
    P = sp.diag(4, 1)
    gamma2 = ((1 + sp.sqrt(2)) / 2) ** 2
    worst = 0
    for c in (1, 9):
        M = sp.Matrix([[sp.Rational(5, 4) - sp.Rational(c, 4), -sp.Rational(1, 4)], [1, 0]])
        lam = sp.symbols("lam")
        poly = (M.T * P * M - lam * P).det()
        worst = max([worst] + [sp.nsimplify(r) for r in sp.solve(poly, lam)],
                    key=lambda v: float(v))
    assert sp.simplify(worst - gamma2) == 0
    # and the SDP finds it (up to scale)
    g, P = quadratic_norm(np.stack([heavy_ball(1), heavy_ball(9)]), 1.0, 3.0, rtol=1e-7)
    assert abs(g - (1 + math.sqrt(2)) / 2) < 1e-6
    assert np.allclose(P / P[1, 1], np.diag([4.0, 1.0]), atol=1e-2)   # not unique above JSR


def test_huge_norm_small_jsr():
    r = jsr([[[0.5, 1e6], [0.0, 0.5]], [[0.25, 0.0], [0.0, 0.5]]])
    assert abs(r.lower - 0.5) < 1e-12 and r.upper < 0.5 * (1 + 1e-5)


def test_reducible_set_equals_max_of_diagonal_blocks():
    a = np.array([[[0.5, 3.0, 1.0], [0.0, 0.2, 0.4], [0.0, 0.3, 0.1]],
                  [[0.6, -2.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.5, 0.3]]])
    r = jsr(a)
    assert abs(r.lower - 0.6) < 1e-12 and r.upper < 0.6 * (1 + 1e-5)


def test_zero_and_nilpotent_sets():
    assert jsr(np.zeros((2, 3, 3))).upper == 0
    r = jsr([[[0.0, 5.0], [0.0, 0.0]]])
    assert r.lower == 0 and r.upper < 1e-3


def test_jacobian_set_like_object_uses_A_vertices():
    js = SimpleNamespace(A=SimpleNamespace(vertices=np.array(GOLDEN, dtype=float)))
    assert abs(jsr(js).lower - (1 + math.sqrt(5)) / 2) < 1e-12


def test_word_order_convention():
    a = np.array(GOLDEN, dtype=float)
    assert np.array_equal(product(a, (0, 1)), a[1] @ a[0])


def test_result_is_frozen_readable_and_json():
    r = jsr(GOLDEN)
    assert isinstance(r, JSRResult)
    with pytest.raises(AttributeError):
        r.lower = 0
    text = str(r)
    assert "JSR in [" in text and "upper:" in text and "lower:" in text
    d = json.loads(json.dumps(r.to_dict()))
    assert d["word"] == [0, 1] and d["lower"] == r.lower


def test_least_rotations_match_brute_force():
    words = np.array(list(itertools.product(range(3), repeat=4)))
    want = [min(tuple(w[r:]) + tuple(w[:r]) for r in range(4)) for w in words]
    assert [tuple(w) for w in least_rotations(words).tolist()] == want


@pytest.mark.parametrize("letters,length", [(2, 7), (4, 5), (3, 12), (100, 20)])
def test_one_per_necklace_is_the_first_row_of_each_rotation_class(letters, length):
    # (100, 20): 100^20 does not fit in 62 bits, the row-sorting path
    words = np.random.default_rng(letters).integers(0, letters, size=(400, length))
    words[200:] = np.roll(words[:200], 3, axis=1)          # every class seen twice at least
    seen, want = set(), []
    for i, w in enumerate(words.tolist()):
        key = min(tuple(w[r:]) + tuple(w[:r]) for r in range(length))
        if key not in seen:
            seen.add(key)
            want.append(i)
    assert one_per_necklace(words).tolist() == want
    assert [tuple(w) for w in least_rotations(words).tolist()] == [
        min(tuple(w[r:]) + tuple(w[:r]) for r in range(length)) for w in words.tolist()]


@pytest.mark.parametrize("scale", [1e-300, 1e-8, 1.0, 1e8, 1e300])
def test_two_by_two_closed_forms_match_lapack(scale):
    rng = np.random.default_rng(7)
    A = rng.standard_normal((3000, 2, 2)) * scale
    A[:4] = np.array([[[1, 1], [0, 1]], [[0, 0], [0, 0]], [[0, 1], [-1, 0]], [[2, 0], [0, -3]]])
    radius = np.abs(np.linalg.eigvals(A)).max(axis=-1)
    # eigenvalues of a (nearly) double root move by sqrt(eps) in any method: compare loosely
    assert np.allclose(spectral_radius(A), radius, rtol=1e-7, atol=0)
    assert np.allclose(norm2(A), np.linalg.norm(A, 2, axis=(-2, -1)), rtol=1e-14, atol=0)
    B = A.copy()
    B[0, 0, 0] = np.inf
    assert norm2(B)[0] == np.inf and np.all(np.isfinite(norm2(B)[1:]))


# --- exact helpers ---------------------------------------------------------------------------


def test_exact_psd_rejects_tiny_negative_eigenvalue():
    from fractions import Fraction as F
    eps = F(1, 10 ** 30)
    assert _exact.is_psd([[F(1), F(1)], [F(1), F(1) + eps]])
    assert not _exact.is_psd([[F(1), F(1)], [F(1), F(1) - eps]])
    assert not _exact.is_psd([[F(0), F(1)], [F(1), F(5)]])


# --- properties on random sets ----------------------------------------------------------------

small_sets = st.integers(1, 3).flatmap(lambda n: st.lists(
    st.lists(st.lists(st.integers(-4, 4), min_size=n, max_size=n), min_size=n, max_size=n),
    min_size=1, max_size=3))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_sets)
def test_bracket_is_consistent_on_random_sets(entries):
    mats = np.array(entries, dtype=float) / 4
    r = jsr(mats, time_limit=2.0, max_length=16)
    assert r.lower <= r.upper * (1 + 1e-9) + 1e-12
    if r.lower > 0:
        # the lower bound is proved exactly; a float recomputation overshoots a defective
        # eigenvalue by up to eps^(1/n) relative ([[3, 4], [-1, -1]] / 4: 0.25 + 5e-9)
        recomputed = float(spectral_radius(product(mats, r.word))) ** (1 / len(r.word))
        assert r.lower <= recomputed * (1 + 1e-9)
        assert abs(recomputed - r.lower) <= 1e-5 * r.lower
    # brute force over short words never beats the bracket's upper end
    assert brute_lower(mats, 4) <= r.upper * (1 + 1e-9) + 1e-12
    if r.upper_verified == "exact" and r.P is not None and "length" not in r.upper_method:
        assert _independent_quadratic_bound_holds(mats, r.P, r.upper)


def _independent_quadratic_bound_holds(mats, P, gamma):
    """gamma^2 P - A^T P A is PSD: all principal minors >= 0, exact sympy rationals."""
    Pq = sp.Matrix(P.shape[0], P.shape[1], lambda i, j: sp.Rational(float(P[i, j])))
    g2 = sp.Rational(float(gamma)) ** 2
    n = P.shape[0]
    for a in mats:
        A = sp.Matrix(n, n, lambda i, j: sp.Rational(float(a[i, j])))
        G = g2 * Pq - A.T * Pq * A
        for size in range(1, n + 1):
            for idx in itertools.combinations(range(n), size):
                if G.extract(list(idx), list(idx)).det() < 0:
                    return False
    return True


# --- failure paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad, exc", [
    (np.ones((2, 2, 3)), ShapeError),
    (np.ones((2, 2)) * np.nan, NonFiniteError),
    ([], ConservativeError),
    (np.zeros((0, 2, 2)), ShapeError),
    (np.ones((2, 2), dtype=complex), ConservativeError),
])
def test_bad_input_raises_named_errors(bad, exc):
    with pytest.raises(exc) as info:
        jsr(bad)
    assert "cv.jsr" in str(info.value)


def test_bad_options():
    with pytest.raises(ConservativeError, match="cv.jsr"):
        jsr(GOLDEN, tol=-1)


# --- issue 8: bounds scaled back from balanced coordinates, overflow, options, time ----------

PHI = (1 + sp.sqrt(5)) / 2


def _at_least_c_phi(value, c):
    """Exactly: value >= c * phi (phi = (1 + sqrt 5)/2), for floats value and c > 0."""
    t = 2 * sp.Rational(float(value)) / sp.Rational(float(c)) - 1
    return t >= 0 and t ** 2 >= 5


def _quadratic_bound_holds(mats, P, gamma):
    """sympy: P > 0 and gamma^2 P - A^T P A >= 0 (principal minors), independently of _exact."""
    Pq = sp.Matrix(P.shape[0], P.shape[1], lambda i, j: sp.Rational(float(P[i, j])))
    if not all(Pq[:k, :k].det() > 0 for k in range(1, P.shape[0] + 1)):
        return False
    g2 = sp.Rational(float(gamma)) ** 2
    for a in mats:
        Aq = sp.Matrix(a.shape[0], a.shape[1], lambda i, j: sp.Rational(float(a[i, j])))
        G = g2 * Pq - Aq.T * Pq * Aq
        n = G.shape[0]
        if not all(G.extract(list(i), list(i)).det() >= 0 for s in range(1, n + 1)
                   for i in itertools.combinations(range(n), s)):
            return False
    return True


@pytest.mark.parametrize("c", [2.0 ** -1072, 2.0 ** -1070, 2.0 ** -1060, 2.0 ** -1030, 1e-300,
                               1e-100, 1e100, 1e300, 2.0 ** 1000])
def test_exact_upper_bound_survives_scaling(c):
    # issue 8 item 5: at 2^-1072 the upper bound 1.618 * 2^-1072 was rounded to nearest in
    # the subnormals and came back as 1.5 * 2^-1072 < JSR, marked 'exact'
    A = np.array([[[1.0, 1.0], [1.0, 0.0]]]) * c          # exact: entries 0 and c
    r = jsr(A)
    # the lower bound is a float estimate of rho (documented), close to c phi
    assert r.lower == pytest.approx(c * (1 + 5 ** 0.5) / 2, rel=1e-12) or c < 2.0 ** -1020
    if r.upper_verified == "exact":
        assert _at_least_c_phi(r.upper, c), (r.upper / c, r.upper_method)
        if r.P is not None and "length" not in r.upper_method:
            assert _quadratic_bound_holds(A, r.P, r.upper)


@pytest.mark.parametrize("c", [2.0 ** -1070, 1e-300, 1e300])
def test_scaled_heavy_ball_bracket_contains_the_jsr(c):
    A = np.stack([heavy_ball(1), heavy_ball(9)]) * c
    r = jsr(A)
    true = (1 + math.sqrt(2)) / 2 * c
    assert r.lower <= true * (1 + 1e-12)
    if r.upper_verified == "exact":      # exact claim: upper >= c (1 + sqrt 2)/2, in rationals
        t = 2 * sp.Rational(float(r.upper)) / sp.Rational(float(c)) - 1
        assert t >= 0 and t ** 2 >= 2


def test_jsr_beyond_float_range_is_a_named_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # no leaked RuntimeWarning either
        with pytest.raises(NonFiniteError, match=r"cv.jsr: received matrices whose joint "
                                                 r"spectral radius is at least"):
            jsr([[[1e308, 1e308], [1e308, 1e308]]])


def test_near_overflow_entries_give_a_true_bracket():
    # was OverflowError (math range error) in the power-of-two scaling
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = jsr([[[1.7e308, 0.0], [0.0, 0.5]]])
    assert r.lower <= 1.7e308 <= r.upper
    if r.upper_verified == "exact":
        assert sp.Rational(float(r.upper)) >= sp.Rational(1.7e308)


@pytest.mark.parametrize("kwargs, name", [
    ({"max_length": 2.5}, "max_length"), ({"max_length": 0}, "max_length"),
    ({"max_nodes": True}, "max_nodes"), ({"tol": float("nan")}, "tol"),
    ({"time_limit": -1}, "time_limit"), ({"time_limit": float("nan")}, "time_limit"),
    ({"time_limit": "5"}, "time_limit"), ({"use_sdp": "no"}, "use_sdp"),
    ({"progress": "yes"}, "progress"),
])
def test_bad_options_name_the_option(kwargs, name):
    with pytest.raises(InputError, match=f"cv.jsr: received {name}="):
        jsr(GOLDEN, **kwargs)


@pytest.mark.parametrize("bad", [[[[1, 2], [3]]], [[[1, 2], [3, 4]], [[1, 2]]]])
def test_ragged_lists_are_a_shape_error(bad):
    with pytest.raises(ShapeError, match="cv.jsr: received mats .*unequal lengths"):
        jsr(bad)


def test_no_time_limit_and_a_progress_bar(capsys):
    r = jsr(GOLDEN, time_limit=None, progress=True)
    assert r.stopped == "" and abs(r.upper - (1 + 5 ** 0.5) / 2) < 1e-6
    assert "cv.jsr" in capsys.readouterr().err           # tqdm writes to stderr


def _random_40(scale, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 40, 40)) / np.sqrt(40) * scale


def test_time_limit_is_kept_on_two_40x40_matrices():
    # issue 8 item 7: certify_contraction on two random 40 x 40 matrices took 50 s with
    # time_limit=20. A limit of 2 s leaves no room for an SDP of this size: the bracket is
    # partial, honestly labelled, and the call returns within 20 % plus a margin for a
    # shared machine.
    import time
    from conservative.jsr import import_cvxpy
    import_cvxpy()
    A = _random_40(0.45)
    start = time.monotonic()
    r = jsr(A, time_limit=2.0)
    elapsed = time.monotonic() - start
    assert elapsed < 2.0 * 1.2 + 1.0, elapsed
    assert r.lower <= r.upper and r.stopped.startswith("time limit of 2 s")
    assert "partial bracket" in r.upper_method
    assert brute_lower(A, 2) <= r.upper * (1 + 1e-12)
