"""Norms as values (conservative.certify.norms): every family proves what it claims, checked
here independently of the library's own checks (sympy rationals, python-flint, exact
Fractions), and the certifier returns the tightest norm the finders reach."""

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

import conservative as cv
from conservative.certify import (FINDERS, DiagonalQuadraticNorm, EuclideanNorm, LyapunovNorm,
                                  MatrixSet, Norm, PolytopeNorm, QuadraticNorm,
                                  StructuredQuadraticNorm, Verified, WeightedInfinityNorm,
                                  norm_from_dict)
from conservative.certify.rigorous import (check_quadratic_rigorous, prove_with_margin,
                                           spd_interval)

HEAVY_BALL_3 = np.array([[[2 / 3, -1 / 9], [1, 0]], [[0, -1 / 9], [1, 0]],
                         [[-2 / 3, -1 / 9], [1, 0]]])


def qmat(a):
    a = np.atleast_2d(a)
    return sp.Matrix(a.shape[0], a.shape[1], lambda i, j: sp.Rational(Fraction(float(a[i, j]))))


def quadratic_holds(mats, P, rho):
    """sympy: P > 0 (leading minors) and rho^2 P - A^T P A >= 0 (all eigenvalues, exactly)."""
    Pq = qmat(P)
    if not all(Pq[:k, :k].det() > 0 for k in range(1, Pq.shape[0] + 1)):
        return False
    g = sp.Rational(Fraction(float(rho))) ** 2
    for a in mats:
        G = g * Pq - qmat(a).T * Pq * qmat(a)
        n = G.shape[0]
        import itertools
        if not all(G.extract(list(i), list(i)).det() >= 0 for s in range(1, n + 1)
                   for i in itertools.combinations(range(n), s)):
            return False
    return True


def flint_pd(M):
    """python-flint: exact positive definiteness of a float matrix by leading minors."""
    flint = pytest.importorskip("flint")
    n = M.shape[0]
    Q = flint.fmpq_mat(n, n, [flint.fmpq(*Fraction(float(v)).as_integer_ratio())
                              for v in M.ravel()])
    return all(flint.fmpq_mat(k, k, [Q[i, j] for i in range(k) for j in range(k)]).det() > 0
               for k in range(1, n + 1))


def flint_gap_pd(a, P, rho):
    flint = pytest.importorskip("flint")

    def fq(x):
        x = np.atleast_2d(x)
        return flint.fmpq_mat(x.shape[0], x.shape[1],
                              [flint.fmpq(*Fraction(float(v)).as_integer_ratio())
                               for v in x.ravel()])
    r = Fraction(float(rho))
    G = fq(P) * flint.fmpq(*(r * r).as_integer_ratio()) - fq(a).transpose() * fq(P) * fq(a)
    n = G.nrows()
    return all(flint.fmpq_mat(k, k, [G[i, j] for i in range(k) for j in range(k)]).det() > 0
               for k in range(1, n + 1))


# --- the reference: the tightest norm, as jsr ----------------------------------------


def test_certify_contraction_reports_the_tightest_norm_the_finders_reach():
    r = cv.jsr(HEAVY_BALL_3)
    assert r.upper <= 0.8047383 and r.upper_verified.rigorous
    quad = cv.certify_contraction(HEAVY_BALL_3)               # prefer="quadratic"
    assert quad.certified and quad.P is not None
    assert quad.rho < 0.8048007                              # where it stopped before
    assert quad.rho <= r.lower * (1 + 2e-4)
    assert quadratic_holds(HEAVY_BALL_3, quad.P, quad.rho)
    tight = cv.certify_contraction(HEAVY_BALL_3, prefer="tightest", tol=1e-6)
    assert tight.certified and tight.rho <= r.upper * (1 + 1e-6)


def test_verified_is_a_string_enum():
    cert = cv.certify_contraction([[[0.5, 0.0], [0.0, 0.25]]])
    assert cert.verified == "exact" and isinstance(cert.verified, str)
    assert cert.verified is Verified.EXACT and repr(cert.verified) == "'exact'"
    assert json.loads(json.dumps(cert.to_dict()))["verified"] == "exact"
    assert Verified.weakest("exact", "interval") == "interval"


def test_old_attributes_are_read_only_properties():
    cert = cv.certify_contraction(np.stack([HEAVY_BALL_3[0], HEAVY_BALL_3[2]]))
    assert isinstance(cert.norm, QuadraticNorm)
    assert np.array_equal(cert.P, cert.norm.P) and cert.k == 1 and cert.Pk is None
    assert cert.polytope is None
    with pytest.raises(AttributeError):
        cert.P = np.eye(2)
    assert "quadratic" in cert.norm and "quadratic" in str(cert.norm)


# --- each family against an independent check --------------------------------------------------


@pytest.mark.parametrize("family", [EuclideanNorm, DiagonalQuadraticNorm, LyapunovNorm,
                                    QuadraticNorm])
def test_quadratic_families_are_sound(family):
    rng = np.random.default_rng(1)
    from conservative.certify.norms import Context
    from conservative._deadline import Deadline
    for trial in range(4):
        n = 2 + trial
        A = rng.normal(size=(1, n, n)) / n
        A[0] *= 0.7 / max(np.max(np.abs(np.linalg.eigvals(A[0]))), 1e-9)
        target = MatrixSet(A)
        ctx = Context(float(np.max(np.abs(np.linalg.eigvals(A[0])))), (0,), Deadline(10.0))
        if not family.applies(target, ctx):
            continue
        norm = family.find(target, ctx)
        assert norm is not None
        got = norm.certify(target)
        if got is None:
            continue
        rho, how = got
        assert how == "exact" and rho >= norm.estimate(target)
        assert quadratic_holds(A, norm.P, rho)


def test_weighted_infinity_norm_is_sound_and_tight_for_nonnegative_sets():
    rng = np.random.default_rng(2)
    A = rng.uniform(0, 1, size=(2, 5, 5))
    A /= 1.25 * max(np.max(np.abs(np.linalg.eigvals(a))) for a in A.sum(axis=0)[None])
    norm = WeightedInfinityNorm.find(MatrixSet(A), None)
    rho, how = norm.certify(MatrixSet(A))
    w = [Fraction(float(v)) for v in norm.w]
    for a in A:                        # max_i sum_j |a_ij| w_j / w_i <= rho, exactly
        for i in range(5):
            assert sum(abs(Fraction(float(a[i, j]))) * w[j] for j in range(5)) \
                <= Fraction(rho) * w[i]
    # Perron: the bound is (nearly) the spectral radius of the entrywise max
    assert rho <= np.max(np.abs(np.linalg.eigvals(np.abs(A).max(axis=0)))) * (1 + 1e-6)


def test_polytope_norm_closes_the_gripenberg_bracket():
    G = np.array([[[3, 0], [1, 3]], [[3, -3], [0, -1]]]) / 5
    cert = cv.certify_contraction(G, prefer="tightest")
    assert isinstance(cert.norm, PolytopeNorm) and cert.rho < 0.6596789089552835 * (1 + 1e-9)


def test_norms_serialise_and_round_trip():
    for norm in (EuclideanNorm(3), WeightedInfinityNorm(np.array([1.0, 0.5])),
                 QuadraticNorm(np.array([[2.0, 0.5], [0.5, 1.0]])),
                 PolytopeNorm(np.eye(2)),
                 StructuredQuadraticNorm(np.eye(2), np.array([0.5]))):
        d = json.loads(json.dumps(norm.to_dict()))
        back = norm_from_dict(d)
        assert type(back) is type(norm) and back.describe() == norm.describe()
        assert isinstance(back, Norm) and d["family"] == norm.family


def test_every_finder_is_a_norm_family_with_its_methods():
    for cls in FINDERS:
        assert issubclass(cls, Norm) and cls.title and cls.family
        for method in ("applies", "find", "estimate", "prove", "describe", "to_dict"):
            assert callable(getattr(cls, method))


# --- rigorous floating point ("interval") ----------------------------------------------------


def test_rigorous_positive_definiteness_agrees_with_exact_minors():
    rng = np.random.default_rng(5)
    for trial in range(40):
        n = 3 + trial % 5
        M = rng.normal(size=(n, n))
        S = M @ M.T
        shift = float(np.linalg.eigvalsh(S).min()) * (1 - 10.0 ** (-1 - trial % 12))
        S = S - shift * np.eye(n)                     # nearly singular, still PD
        S = (S + S.T) / 2
        if spd_interval(S, S):
            assert flint_pd(S)                        # never a false proof
        T = S - 2 * shift * np.eye(n) - 1e-3 * np.eye(n)
        T = (T + T.T) / 2
        if not flint_pd(T):
            assert not spd_interval(T, T)


def test_rigorous_quadratic_check_at_60_coordinates_agrees_with_flint():
    rng = np.random.default_rng(6)
    n = 60
    A = rng.normal(size=(n, n)) / np.sqrt(n) * 0.4
    P = np.eye(n)
    rho = float(np.linalg.norm(A, 2))
    assert check_quadratic_rigorous(A[None], P, rho * (1 + 1e-9))
    assert flint_gap_pd(A, P, rho * (1 + 1e-9))
    assert not check_quadratic_rigorous(A[None], P, rho * (1 - 1e-9))


def test_the_margin_rule_is_the_only_ladder():
    calls = []

    def prove(value):
        calls.append(value)
        return Verified.INTERVAL if value >= 0.75 * (1 + 1e-7) else None
    value, how = prove_with_margin(0.75, prove)
    assert how == "interval" and value >= 0.75 * (1 + 1e-7) and len(calls) == 3
    assert prove_with_margin(0.999, prove, limit=1.0) is not None
    assert prove_with_margin(0.9999999, lambda v: None, limit=1.0) is None


def test_the_documented_new_family_works_as_written():
    # docs/adding_a_norm_family.md: its class, executed as written, is found and proved by
    # the loop like every family
    import pathlib
    import re

    import conservative.certify.norms as norms
    from conservative.certify.finders import analyse
    text = (pathlib.Path(__file__).parent.parent / "docs" / "adding_a_norm_family.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    namespace = dict(vars(norms))
    exec(code, namespace)
    family = namespace["WeightedOneNorm"]
    A = np.array([[[0.5, 0.0], [0.4, 0.1]], [[0.2, 0.1], [0.1, 0.3]]])
    an = analyse(MatrixSet(A), finders=(family,))
    proved = [u for u in an.uppers if isinstance(u.norm, family)]
    assert proved and proved[0].verified == "exact"
    w = [Fraction(float(v)) for v in proved[0].norm.w]
    rho = Fraction(proved[0].value)
    for a in A:                                # column sums: max_j sum_i w_i |a_ij| / w_j
        for j in range(2):
            assert sum(w[i] * abs(Fraction(float(a[i, j]))) for i in range(2)) <= rho * w[j]


# --- what the derivative layer calls -----------------------------------------------------------


def test_well_conditioned_norm_is_proved():
    from conservative.certify import well_conditioned_norm
    A = np.array([[[0.5, 1.0], [0.0, 0.5]], [[0.5, 0.0], [0.0, 0.4]]])
    P, rho = well_conditioned_norm(A, np.diag([1.0, 1e6]), 0.6)
    assert np.linalg.cond(P) < 1e4 and rho < 1
    assert quadratic_holds(A, P, rho)


def test_invertibility_on_the_hull_agrees_with_the_exact_reference():
    from conservative.certify import invertibility_on_hull
    from conservative.implicit import invertible_on_hull
    assert not invertibility_on_hull(np.array([[[-1.0]], [[1.0]]]))[0]      # hull holds 0
    rng = np.random.default_rng(8)
    for _ in range(12):
        A = rng.normal(size=(2, 3, 3)) * 0.6
        mine, _ = invertibility_on_hull(A)
        if mine:                        # sound: no singular I - A on sampled hull points
            for t in np.linspace(0, 1, 11):
                M = np.eye(3) - (t * A[0] + (1 - t) * A[1])
                assert abs(np.linalg.det(M)) > 1e-12
        assert mine == invertible_on_hull(A)[0]      # the same two tests, same answers
