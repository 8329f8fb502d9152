"""Standing adversarial tests: no false certificate, no false bound, no bare exception.

Every case here is built so that the test knows the truth in closed form: the full conservative
Jacobian at the *exact* fixed point (which sits on a kink), or the exact joint spectral radius of
a scaled matrix set. Each claim the library makes is then re-checked by the independent exact
checker ``tests/independent.py`` (rational arithmetic, written apart from the package):

* every ``certified=True`` (a :class:`cv.Certificate`, an attractor's norm, a fixed-point
  certificate) is verified exactly on the closed-form set, not on what the library saw;
* every 'exact' upper bound is compared exactly with the closed-form JSR;
* every lower bound must come from a word over matrices genuinely in the map's own set (the
  closed-form set's convex hull) and must not exceed that word's spectral radius, nor the JSR;
* only :class:`cv.ConservativeError` subclasses may be raised.

Refusing (``certified=False``, a ``ConservativeError``) is always allowed: these tests are about
soundness. Hypothesis draws the cases with a fixed seed (``derandomize=True``); shrinking is off so
that a failure costs one example, and the reproductions of the known false answers are pinned
with ``@example``.

Tolerances (the only ones): a lower bound is a floating estimate of an algebraic number, so it
may exceed the spectral radius of its word by ``LOWER_RTOL`` relative; an upper bound labelled
'float' (unproved) may fall below the JSR by ``FLOAT_UPPER_RTOL`` relative (solver tolerances).
'exact' bounds and certificates get no tolerance at all.

Closed forms used: golden pair {[[1,1],[0,1]], [[1,0],[1,1]]}, JSR = (1 + sqrt 5)/2; heavy-ball
pair (alpha = beta = 1/4, curvatures 1 and 9) times 4, JSR = 2 (1 + sqrt 2); Gripenberg's pair
{[[3,0],[1,3]], [[3,-3],[0,-1]]} (G. Gripenberg, Linear Algebra Appl. 234, 1996), JSR^13 =
rho(A1 A0^12) = 3^11 (15 + 6 sqrt 7).
"""

from __future__ import annotations

import itertools
import math
import os
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

import conservative as cv
import independent as ind

LOWER_RTOL = 1e-12
FLOAT_UPPER_RTOL = 1e-6


#: Multiplies every example count (the default keeps the module under a minute of CPU time;
#: a deeper run: ``CV_ADVERSARIAL_SCALE=10 pytest tests/test_adversarial.py``).
SCALE = float(os.environ.get("CV_ADVERSARIAL_SCALE", "1"))


def seeded(n: int):
    """Hypothesis settings of this module: seeded, no deadline, no shrinking."""
    return settings(derandomize=True, deadline=None, max_examples=max(1, round(n * SCALE)),
                    database=None,
                    phases=(Phase.explicit, Phase.generate),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# ---------------------------------------------------------------------------------------------
# helpers: calling the library, and judging what it claims


class Refused:
    """A ConservativeError raised by the library: an allowed refusal."""

    def __init__(self, error):
        self.error = error

    def __repr__(self):
        return f"Refused({type(self.error).__name__}: {self.error})"


def call(fn, *args, **kwargs):
    """Run a library call; a ConservativeError is a refusal, any other exception fails."""
    try:
        return fn(*args, **kwargs)
    except cv.ConservativeError as err:
        return Refused(err)
    except Exception as err:  # noqa: BLE001 -- the point of the test
        pytest.fail(f"bare {type(err).__name__} from {getattr(fn, '__name__', fn)}: {err}")


def Q(x) -> Fraction:
    return ind.rational(x)


def qmat(rows) -> list:
    return [[Q(v) for v in row] for row in rows]


def to_float(M) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in M])


def exact_solve(A: list, B: list):
    """``(I - A)^{-1} B`` exactly (None if singular)."""
    n = len(A)
    m = [[Fraction(int(i == j)) - A[i][j] for j in range(n)] + list(B[i]) for i in range(n)]
    for k in range(n):
        piv = next((i for i in range(k, n) if m[i][k] != 0), None)
        if piv is None:
            return None
        m[k], m[piv] = m[piv], m[k]
        for i in range(n):
            if i != k and m[i][k] != 0:
                f = m[i][k] / m[k][k]
                m[i] = [x - f * y for x, y in zip(m[i], m[k])]
    return [[m[i][n + j] / m[i][i] for j in range(len(B[0]))] for i in range(n)]


def assert_certificate_sound(cert, exact_As, what: str):
    """A certified result must be a norm, exactly valid on the closed-form set, with rho < 1."""
    assert isinstance(cert.certified, bool), what
    if not cert.certified:
        return
    assert cert.verified in ("exact", "interval"), f"{what}: certified but verified={cert.verified}"
    assert cert.rho < 1, f"{what}: certified with rho = {cert.rho}"
    if cert.polytope is not None:
        v = ind.check_polytope_certificate(exact_As, cert.polytope, cert.rho)
    elif cert.k > 1:
        v = ind.check_lifted_certificate(exact_As, cert.Pk, cert.rho, cert.k)
    elif cert.P is not None:
        v = ind.check_quadratic_certificate(exact_As, cert.P, cert.rho)
    else:
        v = ind.Verdict(False, "certified without a norm (no P, Pk or polytope)")
    assert v, f"{what}: FALSE CERTIFICATE (rho = {cert.rho!r}, {cert.norm}): {v.reason}"


def assert_lower_sound(lower, word, candidates, exact_As, what: str, atol: float = 0.0):
    """A lower bound is ``rho(A_w)^(1/|w|)`` for a word over the map's own matrices
    (``atol``: rounding allowed in the map's floating-point Jacobians)."""
    if lower is None or (isinstance(lower, float) and math.isnan(lower)) or lower <= 0:
        return
    assert word is not None and len(word) > 0, f"{what}: lower bound {lower} without a word"
    assert candidates is not None, f"{what}: a word {word} but no matrices it indexes (.samples)"
    cands = np.asarray(candidates, dtype=np.float64)
    assert max(word) < len(cands), f"{what}: word {word} indexes beyond {len(cands)} matrices"
    for i in sorted(set(word)):
        assert ind.in_hull(cands[i], exact_As, atol=atol), (
            f"{what}: the word {word} uses a matrix that is not in the map's own set "
            f"(candidate {i} = {cands[i].tolist()})")
    v = ind.check_lower_bound(cands, word, lower, rtol=LOWER_RTOL)
    assert v, f"{what}: FALSE LOWER BOUND: {v.reason}"


def word_candidates(cert, F=None, x=None, theta=None):
    """The matrices a certificate's word indexes: ``.samples`` when given, else the A-vertices
    of ``F.jacobian(x, theta)`` (for a Map target), else None (the matrices passed)."""
    if cert.samples is not None:
        return cert.samples
    if F is not None:
        return F.jacobian(x, theta, hull=True).A.vertices
    return None


# ---------------------------------------------------------------------------------------------
# the independent checker itself must be able to say no


@pytest.mark.parametrize("backend", ["flint", "fractions"])
def test_checker_refutes_false_claims(backend, monkeypatch):
    if backend == "fractions":
        monkeypatch.setattr(ind, "flint", None)
    elif ind.flint is None:
        pytest.skip("python-flint not installed (the fractions backend is tested)")
    H = np.array([[1.0, -0.25], [1.0, 0.0]])                # double eigenvalue 1/2
    pair = [H, np.array([[-1.0, -0.25], [1.0, 0.0]])]      # JSR (1 + sqrt 2)/2
    assert ind.check_quadratic_certificate(pair, np.diag([4.0, 1.0]), 0.5 + 0.5 ** 0.5 + 1e-9)
    assert not ind.check_quadratic_certificate(pair, np.diag([4.0, 1.0]), 1.2)
    assert not ind.check_quadratic_certificate(pair, np.diag([4.0, -1.0]), 5.0)
    assert [ind.spectral_radius_compare(H, r) for r in (0.4999, 0.5, 0.5001)] == [1, 0, -1]
    assert ind.check_lower_bound([H], (0,), 0.5)
    assert not ind.check_lower_bound([H], (0,), 0.5 + 1e-9, rtol=LOWER_RTOL)
    assert ind.check_lower_bound(pair, (0, 1), (1 + 2 ** 0.5) / 2, rtol=LOWER_RTOL)
    nil = np.array([[0.0, 1.0], [0.0, 0.0]])
    assert ind.spectral_radius_compare(nil, 0) == 0 and not ind.check_lower_bound([nil], (0,), 1e-300)
    swap = np.array([[[0.0, 2.0], [0.125, 0.0]]])           # ||A|| = 2, A^2 = I/4
    assert ind.check_lifted_certificate(swap, np.eye(2), 0.5, 2)
    assert not ind.check_lifted_certificate(swap, np.eye(2), 0.5 - 2 ** -40, 2)
    # ||x||^2 = max(|x|^2, |A x|^2 / rho^2): A e2 = 2 e1, so ||e2||^2 = 4 / (1/4) = 16
    assert ind.lifted_norm_squared(swap, np.eye(2), 0.5, 2, [0.0, 1.0]) == 16
    assert ind.lifted_norm_squared(swap, np.eye(2), 0.5, 2, [1.0, 0.0]) == 1
    A = np.array([[[0.5, 0.25], [0.0, 0.5]]])
    assert ind.check_polytope_certificate(A, np.eye(2), 0.75)
    assert not ind.check_polytope_certificate(A, np.eye(2), 0.75 - 2 ** -50)
    assert not ind.check_polytope_certificate(A, np.array([[1.0, 2.0], [1.0, 2.0]]), 10.0)
    phi = (1 + sp.sqrt(5)) / 2
    assert ind.is_exactly_upper_bound(1.618033988749895, phi)          # the float above phi
    assert not ind.is_exactly_upper_bound(1.6180339887498947, phi)     # the float below
    assert ind.is_exactly_upper_bound(2.0 ** -1074 * 7, phi, scale=2.0 ** -1072)   # 1.75 > phi
    assert not ind.is_exactly_upper_bound(2.0 ** -1074 * 6, phi, scale=2.0 ** -1072)


def test_lifted_norm_is_the_norm_the_certificate_describes():
    """A lifted certificate that passes the exact check gives ||A_i x|| <= rho ||x|| in the
    norm built from it (checked exactly on random vectors, for a set of two matrices)."""
    mats = np.array([[[0.0, 2.0], [0.125, 0.0]], [[0.0, 1.0], [0.0625, 0.25]]])
    rho, k = 0.75, 2
    assert ind.check_lifted_certificate(mats, np.eye(2), rho, k)
    rng = np.random.default_rng(0)
    for x in rng.normal(size=(5, 2)):
        for A in mats:
            Ax = [sum(Q(A[i][j]) * Q(x[j]) for j in range(2)) for i in range(2)]   # exact
            lhs = ind.lifted_norm_squared(mats, np.eye(2), rho, k, Ax)
            assert lhs <= Q(rho) ** 2 * ind.lifted_norm_squared(mats, np.eye(2), rho, k, x)


# ---------------------------------------------------------------------------------------------
# 1. near-duplicate elements


KINKS = {
    "relu": (lambda z: cv.relu(z), (0.0, 1.0)),
    "maximum": (lambda z: cv.maximum(z, 0.0), (0.0, 1.0)),
    "abs": (lambda z: abs(z), (-1.0, 1.0)),
    "clip": (lambda z: cv.clip(z, 0.0, 1.0), (0.0, 1.0)),
}


def near_duplicate_case(a, r, gap, kind):
    """``[a*x0 + big*x1, a*x1 + eps*kink(x0)]`` at 0 with ``eps = gap * big`` and
    ``sqrt(big * eps) = r``: the elements differ by ``gap`` relative to the largest entry, and
    the JSR of the set is ``a + r`` (nonnegative matrices, the largest one dominates)."""
    big = r / math.sqrt(gap)
    eps = gap * big
    kink, slopes = KINKS[kind]
    F = cv.trace(lambda x, t: cv.stack([a * x[0] + big * x[1], a * x[1] + eps * kink(x[0])]),
                 (2,), ())
    elements = [np.array([[a, big], [eps * s, a]]) for s in slopes]
    # JSR in closed form, with the float parameters as exact rationals
    jsr_exact = sp.Rational(Q(a)) + sp.sqrt(sp.Rational(Q(big)) * sp.Rational(Q(eps)))
    return F, elements, jsr_exact


@seeded(12)
@given(a=st.floats(0.05, 0.95), r=st.floats(0.01, 1.5), gap_exp=st.floats(10.0, 16.0),
       kind=st.sampled_from(sorted(KINKS)))
@example(a=0.5, r=math.sqrt(0.3), gap_exp=-math.log10(3e-13), kind="relu")  # issue 8.2
def test_near_duplicate_elements_are_all_seen(a, r, gap_exp, kind):
    gap = 10.0 ** -gap_exp
    F, elements, jsr_exact = near_duplicate_case(a, r, gap, kind)
    assert not np.array_equal(elements[0], elements[1])
    js = call(F.jacobian, np.zeros(2), 0.0, hull=False)
    assert not isinstance(js, Refused), js
    assert not js.is_singleton, "two distinct elements reported as a singleton"
    verts = js.A.vertices
    for M in elements:
        assert any(np.array_equal(v, M) for v in verts), (
            f"element {M.tolist()} missing from the vertices {verts.tolist()}")
        assert js.A.contains(M, atol=0.0), f"contains() rejects the element {M.tolist()}"
    eps = elements[1][1, 0]
    outsider = elements[1].copy()
    outsider[1, 0] = 3 * eps
    assert not js.A.contains(outsider, atol=abs(eps) / 4)
    # certificates must see both elements
    exact_As = [qmat(M) for M in elements]
    cert = call(cv.certify_contraction, F, theta=0.0, x=np.zeros(2))
    if not isinstance(cert, Refused):
        assert_certificate_sound(cert, exact_As, "certify_contraction(F, x=0)")
        assert_lower_sound(cert.lower, cert.word, word_candidates(cert, F, np.zeros(2), 0.0),
                           exact_As, "certify_contraction(F, x=0)")
        assert ind.is_at_most(cert.lower, jsr_exact, rtol=LOWER_RTOL)
    cert = call(cv.certify_contraction, np.stack(elements))
    assert not isinstance(cert, Refused), cert
    assert_certificate_sound(cert, exact_As, "certify_contraction(matrices)")
    assert_lower_sound(cert.lower, cert.word, np.stack(elements), exact_As,
                       "certify_contraction(matrices)")
    if float(jsr_exact) > 1 + 1e-9:
        assert not cert.certified


@seeded(10)
@given(a=st.floats(0.05, 0.95), r=st.floats(0.01, 1.5), gap_exp=st.floats(10.0, 16.0),
       order=st.permutations([0, 1, 2]))
def test_near_duplicate_matrix_lists(a, r, gap_exp, order):
    """Explicit lists (and JacobianSets built from them) with near-duplicates and a true
    duplicate: every distinct element counts, for jsr and certify_contraction."""
    gap = 10.0 ** -gap_exp
    _, elements, jsr_exact = near_duplicate_case(a, r, gap, "relu")
    mats = np.stack([elements[0], elements[1], elements[0]])[list(order)]
    js = call(cv.JacobianSet.from_matrices, mats, hull=False)
    assert len(js.vertices) == 2, f"{len(js.vertices)} elements kept out of 2 distinct"
    exact_As = [qmat(M) for M in elements]
    for target in (mats, js):
        cert = call(cv.certify_contraction, target)
        assert not isinstance(cert, Refused), cert
        assert_certificate_sound(cert, exact_As, "certify_contraction(list)")
    res = call(cv.jsr, mats, time_limit=5.0)
    assert not isinstance(res, Refused), res
    assert_jsr_sound(res, mats, jsr_exact, 1, Fraction(1), "jsr(list)")


@pytest.mark.parametrize("small", [1e-13, 1e-100, 3e-300])
def test_tiny_distinct_elements_are_not_merged(small):
    """Elements whose entries are all tiny differ by far less than 1e-12 in absolute terms:
    they are still distinct. ``x <- 2s relu(x) + s x`` at 0 has A in {s, 3s}, JSR 3s."""
    F = cv.trace(lambda x, t: 2 * small * cv.relu(x) + small * x, (), ())
    js = call(F.jacobian, 0.0, 0.0, hull=False)
    assert not js.is_singleton, f"A in {{{small}, 3 * {small}}} reported as a singleton"
    cert = call(cv.certify_contraction, F, theta=0.0, x=0.0)
    if not isinstance(cert, Refused):
        assert_certificate_sound(cert, [[[Q(small)]], [[Q(2 * small) + Q(small)]]],
                                 f"certify_contraction(F), s = {small}")
    mats = np.array([[[small]], [[3 * small]]])
    assert len(call(cv.JacobianSet.from_matrices, mats, hull=False).vertices) == 2
    for target in (mats, cv.JacobianSet.from_matrices(mats)):
        cert = call(cv.certify_contraction, target)
        if not isinstance(cert, Refused):
            assert_certificate_sound(cert, [qmat(M) for M in mats], f"certify, s = {small}")
        res = call(cv.jsr, target)
        if not isinstance(res, Refused):
            assert_jsr_sound(res, mats, sp.Rational(Q(3 * small)), 1, Fraction(1),
                             f"jsr, s = {small}")


# ---------------------------------------------------------------------------------------------
# 2. a large B hides choices in A


def large_b_case(a, b, big):
    F = cv.trace(lambda x, t: a * x + b * cv.relu(x) + big * t, (), ())
    blocks = [([[Q(a)]], [[Q(big)]]), ([[Q(a) + Q(b)]], [[Q(big)]])]
    return F, blocks


@seeded(12)
@given(a=st.floats(-0.95, 0.95), b_exp=st.floats(-6.0, 0.3), b_sign=st.sampled_from([-1, 1]),
       big_exp=st.floats(0.0, 300.0))
@example(a=0.5, b_exp=0.0, b_sign=1, big_exp=13.0)                               # issue 8.3
@example(a=0.5, b_exp=math.log10(0.25), b_sign=1, big_exp=100.0)     # A in {0.5, 0.75}
def test_large_b_small_a(a, b_exp, b_sign, big_exp):
    b, big = b_sign * 10.0 ** b_exp, 10.0 ** big_exp
    F, blocks = large_b_case(a, b, big)
    As = [A for A, _ in blocks]
    js = call(F.jacobian, 0.0, 0.0, hull=True)
    if Q(a) != Q(a) + Q(b):
        assert not js.A.is_singleton, "the A-block set lost one of its two elements"
    exact_singular = min(As[0][0][0], As[1][0][0]) <= 1 <= max(As[0][0][0], As[1][0][0])
    exact_contracting = max(abs(As[0][0][0]), abs(As[1][0][0])) < 1
    check_fixed_point_claims(F, 0.0, 0.0, blocks, [Q(0)], singular_on_hull=exact_singular,
                             what=f"a={a}, b={b}, big={big}")
    if not exact_contracting:
        cert = call(cv.certify_contraction, F, theta=0.0, x=0.0)
        assert isinstance(cert, Refused) or not cert.certified


# ---------------------------------------------------------------------------------------------
# 3. computed fixed points next to kinks


def check_fixed_point_claims(F, theta, x, blocks, x_exact, *, singular_on_hull=None,
                             what=""):
    """Every claim about the fixed point near ``x`` must hold for the exact fixed point
    ``x_exact`` whose full Jacobian set has the vertices ``blocks`` [(A, B), ...] (rationals).

    ``singular_on_hull``: True when ``I - A`` is singular somewhere on the hull of the A's,
    False when it is provably invertible there, None when the test does not know.
    """
    x = np.asarray(x, dtype=np.float64)
    for claims in FIXED_POINT_CLAIMS:
        claims(F, theta, x, blocks, x_exact, singular_on_hull=singular_on_hull, what=what)


def rounding(blocks) -> float:
    """Absolute rounding allowed in the map's float Jacobians: 1e-12 of the data's size."""
    return 1e-12 * (1 + max(abs(float(v)) for A, B in blocks for row in A + B for v in row))


def images_of(blocks):
    """``(I - A)^{-1} B`` of every element (None where singular), exactly."""
    return [exact_solve(A, B) for A, B in blocks]


def claims_certify_at_point(F, theta, x, blocks, x_exact, *, singular_on_hull, what):
    """certify_contraction(F, theta, x) at a numerical fixed point: the whole exact set."""
    exact_As = [A for A, _ in blocks]
    cert = call(cv.certify_contraction, F, theta=theta, x=x)
    if not isinstance(cert, Refused):
        assert_certificate_sound(cert, exact_As, f"certify_contraction(F, theta, x) [{what}]")
        assert_lower_sound(cert.lower, cert.word, word_candidates(cert, F, x, theta), exact_As,
                           f"certify_contraction(F, theta, x) [{what}]", atol=rounding(blocks))


def claims_attractor(F, theta, x, blocks, x_exact, *, singular_on_hull, what):
    """attractor: its norm contracts every A at the exact point, and its points hold the fixed
    point of every affine map ``J -> A J + B`` of the exact set (within the proved bound)."""
    exact_As = [A for A, _ in blocks]
    images = [to_float(im).ravel() for im in images_of(blocks) if im is not None]
    if not images:
        images = [np.zeros(1)]
    spread = float(np.ptp(np.array(images), axis=0).max()) if len(images) > 1 else 0.0
    size = float(np.abs(np.array(images)).max())
    # a coarse net (about 10 points across; the finite system's attractor beyond two
    # dimensions, whose net stays small): the check is about which elements count
    att = call(cv.attractor, F, theta, x, hull=len(images[0]) <= 2,
               tol=max(0.1 * spread, 1e-3 * (1 + size)))
    if isinstance(att, Refused):
        return
    v = ind.check_quadratic_certificate(exact_As, att.P, att.rho)
    assert v and att.rho < 1, f"attractor [{what}]: its norm is no contraction: {v.reason}"
    pts = att.points.reshape(len(att.points), -1)
    bound = att.points_bound          # two-sided: the points against the attractor
    for J in images:
        J = np.asarray(J, dtype=float).ravel()
        scale = max(1.0, float(np.abs(J).max()))           # no overflow at 1e268
        dist = scale * float(np.min(np.linalg.norm((pts - J) / scale, axis=1)))
        slack = bound * (1 + 1e-6) + 1e-9 * scale
        assert dist <= slack, (
            f"attractor [{what}]: the fixed point {J.tolist()} of an element at the exact "
            f"fixed point is {dist:.3g} away from the points (bound {bound:.3g})")


def claims_implicit(F, theta, x, blocks, x_exact, *, singular_on_hull, what):
    """implicit_jacobian: refuse when I - A may be singular on the hull, else hold every image."""
    images = images_of(blocks)
    imp = call(cv.implicit_jacobian, F, theta, x)
    if singular_on_hull or any(im is None for im in images):
        assert isinstance(imp, Refused), (
            f"implicit_jacobian [{what}]: I - A is singular on the hull of the exact set, yet "
            f"it returned {imp.vertices.ravel().tolist()}")
        return
    if isinstance(imp, Refused):
        return
    for im in images:
        J = to_float(im)
        atol = 1e-9 * (1 + float(np.abs(J).max()))
        assert imp.contains(J, atol=atol), (
            f"implicit_jacobian [{what}]: misses (I - A)^-1 B = {J.tolist()} of an element "
            f"at the exact fixed point (returned {imp.vertices.reshape(-1).tolist()})")


def claims_certify_fixed_point(F, theta, x, blocks, x_exact, *, singular_on_hull, what):
    """certify_fixed_point: the box holds the exact point, the enclosure every element at it,
    and the certified norm contracts every element."""
    res = call(cv.certify_fixed_point, F, theta, x)
    if isinstance(res, Refused) or not res.certified:
        return
    lo, hi = (np.ravel(np.asarray(b, dtype=np.float64)) for b in res.x_box)
    for i, xi in enumerate(x_exact):
        assert Q(lo[i]) <= xi <= Q(hi[i]), (
            f"certify_fixed_point [{what}]: the exact fixed point is outside x_box")
    assert Q(res.radius) >= max(abs(Q(x.ravel()[i]) - xi) for i, xi in enumerate(x_exact)), (
        f"certify_fixed_point [{what}]: radius {res.radius} below the true distance")
    M = res.jacobian
    for A, B in blocks:
        full = [list(ra) + list(rb) for ra, rb in zip(A, B)]
        assert all(Q(M.lo[i, j]) <= v <= Q(M.hi[i, j])
                   for i, row in enumerate(full) for j, v in enumerate(row)), (
            f"certify_fixed_point [{what}]: enclosure misses an element at the exact point")
    assert_certificate_sound(res.certificate, [A for A, _ in blocks],
                             f"certify_fixed_point [{what}]")


FIXED_POINT_CLAIMS = (claims_certify_at_point, claims_attractor, claims_implicit,
                      claims_certify_fixed_point)


def tiny_offsets(n):
    """Offsets of size 1e-15 .. 1e-9, either sign, one per coordinate."""
    return st.lists(st.tuples(st.floats(9.0, 15.0), st.sampled_from([-1.0, 1.0])),
                    min_size=n, max_size=n).map(lambda l: np.array([s * 10.0 ** -e for e, s in l]))


def heavy_ball_case(a1, a2, alpha, beta):
    def grad(x, t):
        d = x - t[0]
        return cv.where(d > 0, a2 * d, a1 * d)
    F = cv.algorithms.heavy_ball(grad, alpha, beta, 1)
    al, be = Q(alpha), Q(beta)
    blocks = [([[1 + be - al * Q(c), -be], [Fraction(1), Fraction(0)]], [[al * Q(c)], [Fraction(0)]])
              for c in (a1, a2)]
    return F, blocks


def curvatures(alpha, beta, u1, u2):
    """Two curvatures with alpha c in (0, 2 (1 + beta)): each piece alone is Schur stable."""
    top = 2 * (1 + beta) / alpha
    return tuple(sorted([u1 * top, u2 * top]))


def heavy_ball_claims(a1, a2, alpha, beta, theta, offset, use_solver):
    F, blocks = heavy_ball_case(a1, a2, alpha, beta)
    th = np.array([theta])
    x = None
    if use_solver:
        fp = call(cv.fixed_point, F, np.array([theta + 1.0, theta + 1.0]), th, max_steps=20000)
        x = None if isinstance(fp, Refused) else fp.x
    if x is None:
        x = theta + offset
    check_fixed_point_claims(F, th, x, blocks, [Q(theta), Q(theta)], singular_on_hull=False,
                             what=f"heavy-ball a=({a1!r}, {a2!r}) alpha={alpha!r} "
                                  f"beta={beta!r} theta={theta!r} x={x.tolist()}")


def test_heavy_ball_issue_example_at_its_computed_fixed_point():
    """Issue 8.1: alpha = beta = 1/4, curvatures 1 and 9 (JSR (1 + sqrt 2)/2), the fixed point
    computed from [1, 1] lands ~3e-13 off the kink."""
    heavy_ball_claims(1.0, 9.0, 0.25, 0.25, 0.0, np.zeros(2), use_solver=True)


@pytest.mark.slow
@seeded(8)
@given(alpha=st.floats(0.05, 0.5), beta=st.floats(0.0, 0.9), u1=st.floats(0.02, 0.98),
       u2=st.floats(0.02, 0.98), theta=st.floats(-2.0, 2.0), offset=tiny_offsets(2),
       use_solver=st.booleans())
def test_heavy_ball_fixed_point_on_the_kink(alpha, beta, u1, u2, theta, offset, use_solver):
    a1, a2 = curvatures(alpha, beta, u1, u2)
    heavy_ball_claims(a1, a2, alpha, beta, theta, offset, use_solver)


def test_momentum_divergence_example_is_refused_at_its_computed_fixed_point():
    ce = cv.examples.momentum_divergence()
    F = ce.map
    x = cv.fixed_point(F, ce.x0, ce.theta).x
    cert = call(cv.certify_contraction, F, theta=ce.theta, x=x)
    assert isinstance(cert, Refused) or not cert.certified, (
        f"the README's divergent heavy-ball is certified at its computed fixed point "
        f"(rho = {cert.rho}, {cert.verified})")
    att = call(cv.attractor, F, ce.theta, x)
    assert isinstance(att, Refused), "attractor returned for a pair of JSR (1 + sqrt 2)/2"


def kink_scalar_case(p, q, r, kind):
    """``x <- p * kink(x) + q * x + r * t`` at t = 0: the fixed point is x̄ = 0, on the kink,
    with A in {q + p s0, q + p s1} (the kink's two slopes) and B = r."""
    kink, slopes = KINKS[kind]
    F = cv.trace(lambda x, t: p * kink(x) + q * x + r * t, (), ())
    blocks = [([[Q(q) + Q(p) * Q(s)]], [[Q(r)]]) for s in slopes]
    return F, blocks


@seeded(12)
@given(p=st.floats(-1.5, 1.5), q=st.floats(-0.95, 0.95), r=st.floats(-3.0, 3.0),
       offset=tiny_offsets(1), kind=st.sampled_from(sorted(KINKS)))
@example(p=0.5, q=0.25, r=0.5, offset=np.array([1e-12]), kind="relu")
@example(p=3.000780254171155e-101, q=2.758291876602057e-272, r=-2.0,
         offset=np.array([1.11e-13]), kind="relu")          # tiny slopes: 3e-101 is an element
def test_scalar_kink_fixed_point_next_to_the_kink(p, q, r, offset, kind):
    F, blocks = kink_scalar_case(p, q, r, kind)
    As = sorted(A[0][0] for A, _ in blocks)
    what = f"{kind}: p={p!r}, q={q!r}, r={r!r}, x={offset[0]!r}"
    check_fixed_point_claims(F, 0.0, float(offset[0]), blocks, [Q(0)],
                             singular_on_hull=As[0] <= 1 <= As[-1], what=what)
    if 0 <= As[0] and As[-1] < 1:
        # with 0 <= A < 1 on the hull the attractor is exactly the segment between the images:
        # no point may lie farther than the proved bound from it
        att = call(cv.attractor, F, 0.0, float(offset[0]), tol=1e-2 * (1 + abs(r)))
        if not isinstance(att, Refused):
            ends = sorted(float(to_float(im)[0][0]) for im in images_of(blocks))
            slack = att.hausdorff_bound * (1 + 1e-6) + 1e-12 * (1 + abs(ends[-1]))
            assert np.all((att.points >= ends[0] - slack) & (att.points <= ends[-1] + slack)), (
                f"attractor [{what}]: points outside the true attractor {ends} by more than "
                f"the bound {att.hausdorff_bound}")


@st.composite
def relu_layer_cases(draw):
    """``x <- relu(W x + b + t u)`` whose exact fixed point has coordinates on the kink.

    Dyadic data with few bits: ``W x̄ + b`` is computed exactly in floating point, so the kink
    coordinates have pre-activation exactly 0 at x̄ (and at t = 0)."""
    n = draw(st.integers(2, 3))
    ints = st.integers(-40, 40)
    W = np.array([[draw(ints) for _ in range(n)] for _ in range(n)], dtype=float) / 64
    scale = draw(st.sampled_from([0.5, 1.0, 1.5]))
    norm = float(np.linalg.norm(W, 2))
    if norm > 0:
        W = np.round(W * (scale * 0.75 / norm) * 64) / 64
    pattern = draw(st.lists(st.sampled_from(["on", "kink", "off"]), min_size=n, max_size=n)
                   .filter(lambda pat: "kink" in pat))
    xbar = np.array([draw(st.integers(1, 64)) / 32 if s == "on" else 0.0 for s in pattern])
    z = np.array([xbar[i] if s == "on" else (0.0 if s == "kink" else -draw(st.integers(1, 64)) / 32)
                  for i, s in enumerate(pattern)])
    b = z - W @ xbar
    u = np.array([draw(st.integers(-8, 8)) / 4 for _ in range(n)])
    offset = draw(tiny_offsets(n))
    return W, b, u, xbar, pattern, offset


@pytest.mark.slow
@seeded(6)
@given(case=relu_layer_cases())
def test_relu_layer_fixed_point_on_kinks(case):
    W, b, u, xbar, pattern, offset = case
    n = len(xbar)
    for i, s in enumerate(pattern):      # the construction is exact: z = W x̄ + b in rationals
        z = sum(Q(W[i, j]) * Q(xbar[j]) for j in range(n)) + Q(b[i])
        assert (z == Q(xbar[i]) > 0) if s == "on" else (z == 0 if s == "kink" else z < 0)
    F = cv.trace(lambda x, t: cv.relu(W @ x + b + t * u), (n,), ())
    Wq, uq = qmat(W), [Q(v) for v in u]
    kinks = [i for i, s in enumerate(pattern) if s == "kink"]
    blocks = []
    for choice in range(2 ** len(kinks)):
        d = [Fraction(1) if s == "on" else Fraction(0) for s in pattern]
        for bit, i in enumerate(kinks):
            d[i] = Fraction((choice >> bit) & 1)
        blocks.append(([[d[i] * Wq[i][j] for j in range(n)] for i in range(n)],
                       [[d[i] * uq[i]] for i in range(n)]))
    x = xbar + offset
    check_fixed_point_claims(F, 0.0, x, blocks, [Q(v) for v in xbar],
                             what=f"relu layer {pattern}, W={W.tolist()}, x={x.tolist()}")


@st.composite
def lasso_at_threshold(draw):
    """Forward-backward Lasso with lam = max |X^T y|: the solution is 0 and the coordinates
    attaining the maximum (one, or several tied) sit exactly at the soft-threshold's kink
    (integer data: X^T y is exact)."""
    n, p = draw(st.integers(3, 5)), draw(st.integers(2, 3))
    X = np.array([[draw(st.integers(-3, 3)) for _ in range(p)] for _ in range(n)], dtype=float)
    y = np.array([draw(st.integers(-3, 3)) for _ in range(n)], dtype=float)
    assume(np.abs(X.T @ y).max() > 0 and np.all(np.linalg.norm(X, axis=0) > 0))
    offset = draw(tiny_offsets(p))
    exact_point = draw(st.booleans())     # the exact fixed point itself, or a point next to it
    return X, y, (np.zeros(p) if exact_point else offset)


@seeded(6)
@given(case=lasso_at_threshold())
def test_lasso_coordinates_at_threshold(case):
    X, y, w = case
    F = cv.algorithms.forward_backward_lasso(X, y)
    step = Q(F.info["step"])
    c = X.T @ y
    lam = float(np.abs(c).max())
    p = X.shape[1]
    kinks = [i for i in range(p) if abs(c[i]) == lam]
    G = qmat(X.T @ X)
    blocks = []
    for choice in range(2 ** len(kinks)):        # d_i in {0, 1} on the kink coordinates
        d = [0] * p
        for bit, i in enumerate(kinks):
            d[i] = (choice >> bit) & 1
        A = [[d[i] * (Fraction(int(i == k)) - step * G[i][k]) for k in range(p)]
             for i in range(p)]
        B = [[-d[i] * step * (1 if c[i] > 0 else -1)] for i in range(p)]
        blocks.append((A, B))
    check_fixed_point_claims(F, lam, w, blocks, [Fraction(0)] * p,
                             singular_on_hull=False if len(kinks) == 1 else None,
                             what=f"Lasso X={X.tolist()}, y={y.tolist()}, w={w.tolist()}")


# ---------------------------------------------------------------------------------------------
# 4. scalings 2^-1070 .. 1e300 of sets with known JSR, and 5. JSR just above / below 1


KNOWN = {
    # name: (integer matrices, closed form of JSR^power for the integer set, power)
    "golden": (np.array([[[1, 1], [0, 1]], [[1, 0], [1, 1]]], dtype=float),
               (1 + sp.sqrt(5)) / 2, 1),
    "heavy-ball": (np.array([[[4, -1], [4, 0]], [[-4, -1], [4, 0]]], dtype=float),
                   2 * (1 + sp.sqrt(2)), 1),
    "gripenberg": (np.array([[[3, 0], [1, 3]], [[3, -3], [0, -1]]], dtype=float),
                   3 ** 11 * (15 + 6 * sp.sqrt(7)), 13),
}


def assert_jsr_sound(res, mats, exact, power, scale, what):
    """Bracket of cv.jsr for ``mats`` (= scale * integer set with JSR^power = exact)."""
    assert ind.is_at_most(res.lower, exact, scale=scale, power=power, rtol=LOWER_RTOL), (
        f"{what}: FALSE LOWER BOUND {res.lower!r} above the JSR")
    v = ind.check_lower_bound(mats, res.word, res.lower, rtol=LOWER_RTOL)
    assert v, f"{what}: {v.reason}"
    if res.upper_verified == "exact":
        v = ind.is_exactly_upper_bound(res.upper, exact, scale=scale, power=power)
        assert v, f"{what}: FALSE 'exact' UPPER BOUND ({res.upper_method}): {v.reason}"
        recheck_jsr_norm(res, mats, what)
    else:
        v = ind.is_exactly_upper_bound(res.upper, exact, power=power,
                                       scale=Q(scale) / (1 + Q(FLOAT_UPPER_RTOL)))
        assert v, f"{what}: float upper bound below the JSR by more than {FLOAT_UPPER_RTOL}"
    assert res.lower <= res.upper, f"{what}: lower {res.lower} > upper {res.upper}"


def recheck_jsr_norm(res, mats, what):
    """Re-check the norm behind an 'exact' JSR upper bound when the result carries it."""
    method = res.upper_method
    if res.polytope is not None and "polytope" in method:
        v = ind.check_polytope_certificate(mats, res.polytope, res.upper)
    elif res.P is not None and "products of length" in method:
        k = int(method.split("products of length")[1].split()[0])
        v = ind.check_lifted_certificate(mats, res.P, res.upper, k, as_norm=False)
    elif res.P is not None and "quadratic" in method:
        v = ind.check_quadratic_certificate(mats, res.P, res.upper)
    else:
        return
    assert v, f"{what}: the norm behind the 'exact' upper bound fails: {v.reason}"


def scaled(name, m, e):
    ints, exact, power = KNOWN[name]
    c = math.ldexp(m, e)
    mats = ints * c
    assert np.array_equal(mats / c, ints), "the scaling must be exact in floating point"
    return mats, exact, power, Q(c)


@seeded(24)
@given(name=st.sampled_from(sorted(KNOWN)), m=st.integers(1, 1023).map(lambda v: 2 * v - 1),
       e=st.integers(-1074, 986))
@example(name="golden", m=1, e=-1070)                 # lower bound rounded up
@example(name="gripenberg", m=1, e=-1068)             # 'exact' upper 3.296875 * 2^-1068
@example(name="golden", m=5, e=-1074)                 # 'exact' upper 1.6 * 5 * 2^-1074
@example(name="heavy-ball", m=1, e=-1074)
@example(name="golden", m=1, e=996)
def test_scaled_known_sets(name, m, e):
    mats, exact, power, c = scaled(name, m, e)
    what = f"{name} * {m} * 2^{e}"
    res = call(cv.jsr, mats, time_limit=5.0)
    if not isinstance(res, Refused):
        assert_jsr_sound(res, mats, exact, power, c, f"jsr({what})")
    cert = call(cv.certify_contraction, mats, time_limit=5.0)
    if not isinstance(cert, Refused):
        exact_As = [qmat(M) for M in mats]
        assert_certificate_sound(cert, exact_As, f"certify_contraction({what})")
        assert_lower_sound(cert.lower, cert.word, mats, exact_As, f"certify_contraction({what})")
        if ind.compare_algebraic(1 / c ** power, exact) <= 0:        # JSR >= 1
            assert not cert.certified, f"{what}: certified although JSR >= 1"


def test_golden_pair_subnormal_upper_bound_issue_example():
    """Issue 8.5: one matrix, phi * 2^-1072, upper bound 1.5 * 2^-1072 marked 'exact'."""
    c = 2.0 ** -1072
    res = call(cv.jsr, np.array([[[1.0, 1.0], [1.0, 0.0]]]) * c)
    assert not isinstance(res, Refused), res
    if res.upper_verified == "exact":
        assert ind.is_exactly_upper_bound(res.upper, (1 + sp.sqrt(5)) / 2, scale=c), (
            f"'exact' upper bound {res.upper!r} = {res.upper / c} * 2^-1072 < phi * 2^-1072")
    assert ind.is_at_most(res.lower, (1 + sp.sqrt(5)) / 2, scale=c, rtol=LOWER_RTOL)


@pytest.mark.parametrize("mats", [
    [[[1e308, 1e308], [1e308, 1e308]]],
    [[[1.7e308, 0.0], [0.0, 0.5]]],
    [[[1e300, 1e300], [0.0, 1e300]], [[1e300, 0.0], [1e300, 1e300]]],
    [[[5e-324, 5e-324], [5e-324, 5e-324]]],
    [[[1e-320, 1e300], [0.0, 1e-320]]],
])
def test_extreme_magnitudes_no_bare_exception(mats):
    arr = np.array(mats)
    exact_As = [qmat(M) for M in arr]
    res = call(cv.jsr, arr, time_limit=5.0)
    if not isinstance(res, Refused):
        v = ind.check_lower_bound(arr, res.word, res.lower, rtol=LOWER_RTOL)
        assert v, v.reason
        if res.upper_verified == "exact":
            recheck_jsr_norm(res, arr, "jsr(extreme)")
            words = [(i,) for i in range(len(arr))] + [(i, j) for i in range(len(arr))
                                                        for j in range(i, len(arr))]
            for w in words:           # a JSR bound is at least every rho(A_w)^(1/|w|)
                W = ind.word_product([qmat(M) for M in arr], w)
                assert ind.spectral_radius_compare(W, Q(res.upper) ** len(w)) <= 0, (
                    f"'exact' upper {res.upper!r} below rho of the word {w}")
    cert = call(cv.certify_contraction, arr, time_limit=5.0)
    if not isinstance(cert, Refused):
        assert_certificate_sound(cert, exact_As, "certify_contraction(extreme)")


@pytest.mark.slow
@seeded(14)
@given(name=st.sampled_from(sorted(KNOWN)), k=st.integers(1, 44), side=st.sampled_from([-1, 1]))
@example(name="golden", k=44, side=1)
@example(name="gripenberg", k=30, side=-1)
def test_jsr_just_above_and_below_one(name, k, side):
    ints, exact, power = KNOWN[name]
    target = (1 + side * 2.0 ** -k) / float(sp.N(exact ** sp.Rational(1, power), 30))
    m, ex = math.frexp(target)
    s = math.ldexp(round(m * 2 ** 48), ex - 48)         # 48 bits: s * entries is exact
    mats = ints * s
    assert np.array_equal(mats / s, ints)
    above = ind.compare_algebraic(1 / Q(s) ** power, exact) <= 0     # s * JSR >= 1
    exact_As = [qmat(M) for M in mats]
    what = f"{name} scaled to JSR = 1 {'+' if side > 0 else '-'} 2^-{k}"
    cert = call(cv.certify_contraction, mats, time_limit=5.0)
    assert not isinstance(cert, Refused), cert
    if above:
        assert not cert.certified, f"{what}: certified (rho = {cert.rho}) although JSR >= 1"
    assert_certificate_sound(cert, exact_As, what)
    assert_lower_sound(cert.lower, cert.word, mats, exact_As, what)
    assert ind.is_at_most(cert.lower, exact, scale=Q(s), power=power, rtol=LOWER_RTOL), (
        f"{what}: lower bound {cert.lower!r} above the JSR")
    res = call(cv.jsr, mats, time_limit=5.0)
    assert not isinstance(res, Refused), res
    assert_jsr_sound(res, mats, exact, power, Q(s), f"jsr({what})")


# ---------------------------------------------------------------------------------------------
# box certificates: lower bounds from the map's own Jacobians (issue 8.4)


def box_claims(a1, a2, alpha, beta, widths):
    F, blocks = heavy_ball_case(a1, a2, alpha, beta)
    exact_As = [A for A, _ in blocks]
    # a box of states around the kink x = theta = 0: every Jacobian of the map there is in
    # conv{M(a1), M(a2)}
    lo, hi = np.array([-widths[0], -widths[1]]), np.array([widths[1], widths[0]])
    cert = call(cv.certify_contraction, F, theta=np.zeros(1), x=(lo, hi))
    if isinstance(cert, Refused):
        return
    assert_certificate_sound(cert, exact_As, "box certificate")
    assert_lower_sound(cert.lower, cert.word, word_candidates(cert), exact_As, "box certificate",
                       atol=rounding(blocks))


def test_box_certificate_issue_example():
    """Issue 8.4: x in [-0.1, 0.1]^2 around the kink of the alpha = beta = 1/4, (1, 9) map."""
    box_claims(1.0, 9.0, 0.25, 0.25, (0.1, 0.1))


@seeded(6)
@given(alpha=st.floats(0.05, 0.5), beta=st.floats(0.0, 0.9), u1=st.floats(0.02, 0.98),
       u2=st.floats(0.02, 0.98), widths=st.tuples(st.floats(1e-3, 0.2), st.floats(1e-3, 0.2)))
def test_box_certificate_words_use_the_maps_own_jacobians(alpha, beta, u1, u2, widths):
    box_claims(*curvatures(alpha, beta, u1, u2), alpha, beta, widths)


# ---------------------------------------------------------------------------------------------
# attacks beyond the issue's list: each false answer found became a case here


def rho_2x2(M):
    """Spectral radius of a 2x2 float matrix as an exact sympy closed form."""
    a, b, c, d = (sp.Rational(Q(v)) for v in np.ravel(M))
    tr, det = a + d, a * d - b * c
    disc = tr ** 2 - 4 * det
    return (abs(tr) + sp.sqrt(disc)) / 2 if disc >= 0 else sp.sqrt(det)


def defective(r):
    """``S J S^-1`` with ``J = [[r, 1], [0, r]]``, ``S = [[1, 1], [1, 2]]``: a defective matrix
    with double eigenvalue r, exact in floating point for dyadic r."""
    return np.array([[r - 1, 1.0], [-1.0, r + 1]])


def jordan_similar(r, n):
    """``S (r I + N) S^-1``: one n x n Jordan block at r (N the shift), S unit lower triangular
    with integer inverse; exact in floating point for dyadic r (asserted)."""
    S = np.eye(n) + np.tril(np.ones((n, n)), -1)
    Sinv = np.round(np.linalg.inv(S))
    J = r * np.eye(n) + np.eye(n, k=1)
    M = S @ J @ Sinv
    assert qmat(M) == ind.matmul(ind.matmul(qmat(S), qmat(J)), qmat(Sinv))
    return M


HB = lambda c: np.array([[1.25 - 0.25 * c, -0.25], [1.0, 0.0]])    # heavy-ball, alpha=beta=1/4

SMALL_SETS = {
    # name: (matrices, closed form of their JSR)
    "1x1 -1": ([[[-1.0]]], sp.Integer(1)),
    "1x1 one ulp below 1": ([[[1 - 2.0 ** -53]]], sp.Rational(Q(1 - 2.0 ** -53))),
    "1x1 pair 0.5, -0.99999999": ([[[0.5]], [[-0.99999999]]], sp.Rational(Q(0.99999999))),
    "1x1 subnormal": ([[[5e-324]]], sp.Rational(Q(5e-324))),
    "zero": ([np.zeros((2, 2))], sp.Integer(0)),
    "zero and nilpotent": ([np.zeros((2, 2)), [[0.0, 1.0], [0.0, 0.0]]], sp.Integer(0)),
    "nilpotent pair (JSR 1)": ([[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]],
                               sp.Integer(1)),
    "rotation": ([[[0.0, -1.0], [1.0, 0.0]]], sp.Integer(1)),
    "Jordan block at 1": ([[[1.0, 1.0], [0.0, 1.0]]], sp.Integer(1)),
    "defective, rho 1 - 2^-10": ([defective(1 - 2.0 ** -10)], sp.Rational(Q(1 - 2.0 ** -10))),
    "defective, rho 1 - 2^-30": ([defective(1 - 2.0 ** -30)], sp.Rational(Q(1 - 2.0 ** -30))),
    "heavy-ball M(1) (Polyak-tuned, defective)": ([HB(1.0)], sp.Rational(1, 2)),
    "heavy-ball M(9) (Polyak-tuned, defective)": ([HB(9.0)], sp.Rational(1, 2)),
    "3x3 Jordan at 1/2": ([[[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5]]],
                          sp.Rational(1, 2)),
    "4x4 Jordan block at 1 - 2^-16, similar to a full matrix": (
        [jordan_similar(1 - 2.0 ** -16, 4)], sp.Rational(Q(1 - 2.0 ** -16))),
    "subnormal coupling": ([[[0.96, 5e-324], [1.0, 0.0]]],
                           rho_2x2([[0.96, 5e-324], [1.0, 0.0]])),
    "tiny and huge entries": ([[[1e-300, 1e300], [1e-300, 1e-300]]],
                              rho_2x2([[1e-300, 1e300], [1e-300, 1e-300]])),
    "huge coupling 1e300": ([[[0.5, 1e300], [0.0, 0.5]]], sp.Rational(1, 2)),
}


@pytest.mark.parametrize("name", sorted(SMALL_SETS))
def test_small_sets_with_known_jsr(name):
    """Zero, nilpotent, defective, 1x1, rotations and extreme entries: the bracket holds the
    JSR exactly ('exact' uppers) or within the stated tolerances, certificates are exact, and
    nothing is certified at JSR >= 1."""
    mats, exact = SMALL_SETS[name]
    arr = np.array(mats, dtype=float)
    exact_As = [qmat(M) for M in arr]
    res = call(cv.jsr, arr, time_limit=2.0)
    if not isinstance(res, Refused):
        assert_jsr_sound(res, arr, exact, 1, Fraction(1), f"jsr({name})")
    cert = call(cv.certify_contraction, arr, time_limit=2.0)
    if not isinstance(cert, Refused):
        if exact >= 1:
            assert not cert.certified, f"{name}: certified although JSR = {exact}"
        assert_certificate_sound(cert, exact_As, name)
        assert_lower_sound(cert.lower, cert.word, arr, exact_As, name)
        assert ind.is_at_most(cert.lower, exact, rtol=LOWER_RTOL), (
            f"{name}: certificate's lower bound {cert.lower!r} exceeds the JSR {exact}")


@st.composite
def defective_sets(draw):
    """``S J S^-1`` for a random unimodular integer S and a Jordan block J = [[r, 1], [0, r]]
    (dyadic r near 1, either side), plus optionally a second, contracting matrix."""
    k = draw(st.integers(8, 40))
    r = 1 + draw(st.sampled_from([-1, 1])) * 2.0 ** -k
    a, b = draw(st.integers(-3, 3)), draw(st.integers(-3, 3))
    S = np.array([[1, a], [0, 1]]) @ np.array([[1, 0], [b, 1]])           # det 1
    Sinv = np.array([[1, 0], [-b, 1]]) @ np.array([[1, -a], [0, 1]])
    M = S @ np.array([[r, 1.0], [0.0, r]]) @ Sinv
    exact = ind.matmul(ind.matmul(qmat(S), [[Q(r), Fraction(1)], [Fraction(0), Q(r)]]),
                       qmat(Sinv))
    assume(qmat(M) == exact)                                  # the float matrix is exact
    return M, r


@seeded(10)
@given(case=defective_sets())
@example(case=(defective(1 - 2.0 ** -30), 1 - 2.0 ** -30))
def test_defective_matrices_near_one(case):
    """A defective matrix with double eigenvalue r: floating eigenvalues err by ~sqrt(eps), so a
    lower bound read off them can exceed r, and exceed 1 while r < 1 (a false counterexample)."""
    M, r = case
    arr = M[None]
    exact = sp.Rational(Q(r))
    res = call(cv.jsr, arr, time_limit=5.0)
    if not isinstance(res, Refused):
        assert_jsr_sound(res, arr, exact, 1, Fraction(1), f"jsr(defective, r = {r!r})")
    cert = call(cv.certify_contraction, arr, time_limit=5.0)
    if not isinstance(cert, Refused):
        assert_certificate_sound(cert, [qmat(M)], f"defective r = {r!r}")
        if r >= 1:
            assert not cert.certified
        assert ind.is_at_most(cert.lower, exact, rtol=LOWER_RTOL), (
            f"defective r = {r!r}: lower bound {cert.lower!r} above the spectral radius")


@st.composite
def random_sets(draw):
    """Two or three random 2x2 / 3x3 matrices with small dyadic entries, scaled near JSR 1."""
    n, m = draw(st.integers(2, 3)), draw(st.integers(2, 3))
    mats = np.array([[[draw(st.integers(-16, 16)) / 8 for _ in range(n)] for _ in range(n)]
                     for _ in range(m)])
    size = max(float(np.max(np.abs(np.linalg.eigvals(mats)))), 1e-3)
    scale = draw(st.sampled_from([0.5, 0.75, 0.9, 1.0, 1.1])) / size
    scale = 2.0 ** round(math.log2(scale))                   # exact scaling
    return mats * scale


def all_words(m, length):
    for k in range(1, length + 1):
        yield from itertools.product(range(m), repeat=k)


@pytest.mark.slow
@seeded(8)
@given(mats=random_sets(), prefer=st.sampled_from(["quadratic", "tightest"]))
def test_random_sets_brackets_and_certificates(mats, prefer):
    """No closed form: an 'exact' upper bound must still exceed rho(A_w)^(1/|w|) for every word
    up to length 4 (exactly), and a certificate must pass the exact check."""
    exact_As = [qmat(M) for M in mats]
    res = call(cv.jsr, mats, time_limit=3.0)
    if not isinstance(res, Refused):
        v = ind.check_lower_bound(mats, res.word, res.lower, rtol=LOWER_RTOL)
        assert v, f"jsr: {v.reason}"
        if res.upper_verified == "exact":
            recheck_jsr_norm(res, mats, "jsr(random)")
            for w in all_words(len(mats), 4):
                W = ind.word_product(exact_As, w)
                assert ind.spectral_radius_compare(W, Q(res.upper) ** len(w)) <= 0, (
                    f"'exact' upper bound {res.upper!r} below rho(A_w)^(1/|w|) for w = {w}")
    cert = call(cv.certify_contraction, mats, time_limit=3.0, prefer=prefer)
    if not isinstance(cert, Refused):
        assert_certificate_sound(cert, exact_As, f"certify_contraction(random, {prefer})")
        assert_lower_sound(cert.lower, cert.word, mats, exact_As, "certify_contraction(random)")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_found_counterexamples_hold_exactly(seed):
    """find_momentum_counterexample: each selected A is Schur stable and the word's product
    has spectral radius > 1, decided exactly; the growth is that product's."""
    ce = call(cv.examples.find_momentum_counterexample, seed)
    assert not isinstance(ce, Refused), ce
    mats = np.asarray(ce.matrices)
    for M in mats:
        assert ind.spectral_radius_compare(M, 1) < 0, f"a selected A is not Schur stable: {M}"
    W = ind.word_product([qmat(M) for M in mats], ce.word)
    assert ind.spectral_radius_compare(W, 1) > 0, "the counterexample's word does not diverge"
    assert ind.check_lower_bound(mats, ce.word, ce.growth, rtol=LOWER_RTOL)
    own = ce.map.jacobian(ce.x0, ce.theta, hull=False).A.vertices
    for M in mats:
        assert any(np.array_equal(M, v) for v in own), "a matrix that is not the map's own"


@pytest.mark.parametrize("case", [
    "jsr 1e308 pair", "contains atol=inf", "jsr max_nodes=2.5", "certify subnormal coupling",
    "fpad overflow",
])
def test_no_bare_exception_or_silent_acceptance(case):
    """Bad or extreme input gives a ConservativeError (or a sound answer), never a bare one."""
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + 0.25 * x + 0.5 * t, (), ())
    if case == "jsr 1e308 pair":
        call(cv.jsr, [[[1e308, 0.0], [0.0, 1e308]], [[0.0, 1e308], [1e308, 0.0]]], time_limit=5.0)
    elif case == "contains atol=inf":
        call(F.jacobian(0.0, 0.0).contains, np.zeros((1, 2)), atol=math.inf)
    elif case == "jsr max_nodes=2.5":
        assert isinstance(call(cv.jsr, [[[0.5]]], max_nodes=2.5), Refused), (
            "max_nodes=2.5 accepted silently")
    elif case == "certify subnormal coupling":
        call(cv.certify_contraction, [[[0.96, 5e-324], [1.0, 0.0]]])
    elif case == "fpad overflow":          # J = A J + B overflows: refuse, never return NaN
        G = cv.trace(lambda x, t: 0.5 * x + 0.25 * cv.relu(x) + 1.7e308 * t, (), ())
        Js = call(cv.fpad, G, 0.0, 0.0, 5)
        assert isinstance(Js, Refused) or np.all(np.isfinite(Js)), f"fpad returned {Js.ravel()}"


def box_vertices(lo, hi):
    """All vertices of the box lo <= A <= hi (the box is their convex hull)."""
    free = np.flatnonzero(lo.ravel() != hi.ravel())
    out = []
    for bits in itertools.product([0, 1], repeat=len(free)):
        M = lo.ravel().copy()
        M[free] = np.where(np.array(bits, dtype=bool), hi.ravel()[free], lo.ravel()[free])
        out.append(M.reshape(lo.shape))
    return out


@seeded(8)
@given(n=st.integers(2, 3), seed=st.integers(0, 2 ** 16), size=st.floats(0.3, 1.05),
       width_exp=st.floats(1.0, 6.0), sparse=st.booleans())
def test_interval_box_certificates(n, seed, size, width_exp, sparse):
    """Interval matrices (few uncertain entries: the vertex path; many: the midpoint-radius
    path): a certificate must hold for every vertex of the box, exactly, and words must index
    matrices of the box."""
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(n, n))
    C *= size / max(float(np.max(np.abs(np.linalg.eigvals(C)))), 1e-9)
    R = np.abs(rng.normal(size=(n, n))) * 10.0 ** -width_exp
    if sparse:
        R[rng.random((n, n)) < 0.5] = 0.0
    lo, hi = C - R, C + R
    cert = call(cv.certify_contraction, cv.IntervalMatrix(lo, hi), time_limit=5.0)
    if isinstance(cert, Refused):
        return
    verts = box_vertices(lo, hi)
    assert_certificate_sound(cert, verts, "interval box")
    if cert.word is not None and cert.lower > 0:
        S = word_candidates(cert)
        assert S is not None
        for i in set(cert.word):
            assert np.all(lo <= S[i]) and np.all(S[i] <= hi), "a word matrix outside the box"
        assert ind.check_lower_bound(S, cert.word, cert.lower, rtol=LOWER_RTOL)


@seeded(5)
@given(case=relu_layer_cases())
def test_box_certificate_relu_layer_around_kinks(case):
    """x in x̄ ± 1e-3 for a ReLU layer whose x̄ has kink coordinates: every Jacobian of the map
    in the box is in conv{D W : D_kink in {0, 1}}; certificates and words must respect that."""
    W, b, u, xbar, pattern, _ = case
    n = len(xbar)
    F = cv.trace(lambda x, t: cv.relu(W @ x + b + t * u), (n,), ())
    Wq = qmat(W)
    kinks = [i for i, s in enumerate(pattern) if s == "kink"]
    exact_As = []
    for choice in range(2 ** len(kinks)):
        d = [Fraction(1) if s == "on" else Fraction(0) for s in pattern]
        for bit, i in enumerate(kinks):
            d[i] = Fraction((choice >> bit) & 1)
        exact_As.append([[d[i] * Wq[i][j] for j in range(n)] for i in range(n)])
    r = 1e-3                   # |W| r < 1/32: only the kink coordinates change activity
    cert = call(cv.certify_contraction, F, theta=0.0, x=(xbar - r, xbar + r))
    if isinstance(cert, Refused):
        return
    assert_certificate_sound(cert, exact_As, f"relu box {pattern}")
    assert_lower_sound(cert.lower, cert.word, word_candidates(cert), exact_As,
                       f"relu box {pattern}, W={W.tolist()}", atol=1e-12)


@seeded(10)
@given(seed=st.integers(0, 10 ** 6), point_seed=st.integers(0, 10 ** 6),
       delta=st.sampled_from([0.0, 1e-15, 1e-12, 1e-6]))
def test_enclosures_at_kinks_hold_every_element(seed, point_seed, delta):
    """Random programs with dyadic constants at grid points (kinks exactly active): the
    enclosure of a point box, or of a tiny box around it, holds every element of the
    conservative Jacobian at the point and at points sampled in the box."""
    from _programs import random_program
    prog = random_program(seed, grid=True)
    F = prog.map
    rng = np.random.default_rng(point_seed)
    x, t = prog.grid_point(rng)
    M = call(F.enclose, (x - delta, x + delta), (t - delta, t + delta))
    if isinstance(M, Refused):
        return
    points = [(x, t)] + [(x + delta * rng.uniform(-1, 1, np.shape(x)),
                          t + delta * rng.uniform(-1, 1, np.shape(t))) for _ in range(3)]
    for xx, tt in points:
        js = call(F.jacobian, xx, tt, hull=True)
        if isinstance(js, Refused) or js.n_selections > 4096:
            continue
        V = js.enumerate(max_vertices=4096).reshape(-1, *M.lo.shape)
        inside = (M.lo <= V) & (V <= M.hi)
        assert np.all(inside), (
            f"enclosure misses an element at a kink: program {prog!r}, x={np.ravel(xx).tolist()},"
            f" theta={np.ravel(tt).tolist()}, delta={delta}")


@pytest.mark.parametrize("jump", [1e-9, 1e-6])
def test_undetected_jump_in_where_has_no_fixed_point_to_differentiate(jump):
    """``where(x > 1000, x/4 + 750 - jump, x/4 + 750 + jump)`` jumps at 1000 (the trace-time
    sampler does not see it, the point x = 1000 + 1e-10 never evaluates the boundary): left of
    1000 the branch's fixed point lies right of 1000 and vice versa, so F has NO fixed point,
    yet x is a numerical one. Nothing may be claimed about "the exact fixed point" there."""
    F = cv.trace(lambda x, t: cv.where(x > 1000.0, 0.25 * x + (750.0 - jump),
                                       0.25 * x + (750.0 + jump)), (), ())
    for z in (999.0, 1000.0 - 1e-7, 1000.0 + 1e-7, 1001.0):     # F(z) != z on both sides
        assert float(np.asarray(F(z, 0.0))) != z
    x = 1000.0 + 1e-10
    res = call(cv.certify_fixed_point, F, 0.0, x)
    assert isinstance(res, Refused) or not res.certified, "certified a fixed point that does not exist"
    att = call(cv.attractor, F, 0.0, x, tol=0.1)
    assert isinstance(att, Refused), "attractor at a fixed point that does not exist"
    imp = call(cv.implicit_jacobian, F, 0.0, x)
    assert isinstance(imp, Refused), (
        f"implicit_jacobian at a fixed point that does not exist: {imp.vertices.ravel().tolist()}")


@pytest.mark.parametrize("offset", [(0.0, 0.0), (1e-12, -3e-12), (1e-12, 3e-12), (-1e-9, 2e-15)])
def test_hull_singular_between_invertible_vertices(offset):
    """``x <- (relu(x0 + x1) + t, relu(x0 + x1))`` at 0: A in {0, [[1, 1], [1, 1]]}; I - A is
    invertible at both vertices but singular at their midpoint, so no implicit function."""
    F = cv.trace(lambda x, t: cv.stack([cv.relu(x[0] + x[1]) + t, cv.relu(x[0] + x[1])]),
                 (2,), ())
    one, zero = Fraction(1), Fraction(0)
    B = [[one], [zero]]
    blocks = [([[zero, zero], [zero, zero]], B), ([[one, one], [one, one]], B)]
    assert exact_solve(blocks[1][0], B) is not None
    check_fixed_point_claims(F, 0.0, np.array(offset), blocks, [zero, zero],
                             singular_on_hull=True, what=f"relu(x0 + x1) at {offset}")
