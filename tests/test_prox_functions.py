"""``cv.group_soft_threshold`` and ``cv.huber``: scalar references, finite differences away from
kinks, the pinned set on the sphere ``||z|| = t``, and no spurious choices for the C^1 Huber."""

import numpy as np
import pytest

import conservative as cv


def group_soft_threshold_ref(z, t):
    """Branchy scalar reference: the prox of t ||.||_2, entry by entry."""
    norm = float(np.sqrt(sum(float(v) ** 2 for v in z)))
    if norm <= t:
        return np.zeros(len(z))
    return np.array([float(v) * (1.0 - t / norm) for v in z])


def huber_ref(z, d):
    return z * z / 2.0 if abs(z) <= d else d * (abs(z) - d / 2.0)


def _fd(F, x, t, h=1e-6):
    x, t = np.asarray(x, float), np.asarray(t, float)
    n = x.size
    cols = []
    for e in np.eye(n + t.size):
        dx, dt = h * e[:n].reshape(x.shape), h * e[n:].reshape(t.shape)
        cols.append(np.ravel(F(x + dx, t + dt) - F(x - dx, t - dt)) / (2 * h))
    return np.array(cols).T


# --- group soft-threshold -----------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 5])
def test_group_soft_threshold_values_against_the_scalar_reference(k):
    rng = np.random.default_rng(k)
    F = cv.trace(lambda z, t: cv.group_soft_threshold(z, t), (k,), ())
    for _ in range(30):
        z, t = rng.normal(size=k), abs(rng.normal()) * np.sqrt(k)
        ref = group_soft_threshold_ref(z, t)
        np.testing.assert_allclose(F(z, t), ref, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(cv.group_soft_threshold(z, t), ref, rtol=1e-13, atol=1e-15)


def test_group_soft_threshold_of_one_element_is_the_soft_threshold():
    G = cv.trace(lambda z, t: cv.group_soft_threshold(z, t), (1,), ())
    S = cv.trace(lambda z, t: cv.soft_threshold(z, t), (1,), ())
    for z, t in [(2.0, 0.5), (-3.0, 1.0), (0.2, 1.0), (1.0, 1.0), (-1.0, 1.0)]:
        np.testing.assert_allclose(G([z], t), S([z], t), rtol=1e-15)
        a, b = G.jacobian([z], t, hull=False), S.jacobian([z], t, hull=False)
        assert {tuple(v.ravel()) for v in a.vertices} == {tuple(v.ravel()) for v in b.vertices}
        np.testing.assert_array_equal(a.default, b.default)


def test_group_soft_threshold_jacobian_matches_finite_differences_away_from_the_sphere():
    F = cv.trace(lambda z, t: cv.group_soft_threshold(z, t), (3,), ())
    rng = np.random.default_rng(7)
    for _ in range(10):
        z, t = rng.normal(size=3), abs(rng.normal())
        if abs(np.linalg.norm(z) - t) < 1e-3:
            continue
        js = F.jacobian(z, t)
        assert js.is_singleton
        np.testing.assert_allclose(js.default, _fd(F, z, t), atol=1e-7)
        if np.linalg.norm(z) > t:                         # closed form of the outer piece
            n = np.linalg.norm(z)
            A = (1 - t / n) * np.eye(3) + t * np.outer(z, z) / n ** 3
            np.testing.assert_allclose(js.default, np.column_stack([A, -z / n]), atol=1e-14)
        else:                                             # exact zeros inside the ball
            assert np.all(js.default == 0.0)


def test_group_soft_threshold_set_on_the_sphere_is_pinned():
    F = cv.trace(lambda z, t: cv.group_soft_threshold(z, t), (2,), ())
    z, t = np.array([3.0, 4.0]), 5.0                       # ||z|| = t exactly
    js = F.jacobian(z, t, hull=False)
    outer = np.column_stack([np.outer(z, z) / t ** 2, -z / t])
    assert js.n_selections == 2 and len(js.vertices) == 2
    assert js.contains(outer, atol=1e-15) and js.contains(np.zeros((2, 3)), atol=0.0)
    assert np.all(js.default == 0.0)                        # the zero piece, as soft_threshold
    hull = F.jacobian(z, t, hull=True)
    assert hull.contains(outer / 2) and not js.contains(outer / 2)
    # just outside and inside the sphere: one element, the matching piece
    np.testing.assert_allclose(F.jacobian(z * (1 + 1e-9), t).default, outer, atol=1e-7)
    assert np.all(F.jacobian(z * (1 - 1e-9), t).default == 0.0)


def test_group_soft_threshold_at_the_origin_and_with_a_negative_threshold():
    F = cv.trace(lambda z, t: cv.group_soft_threshold(z, t), (2,), ())
    np.testing.assert_array_equal(F(np.zeros(2), 0.0), np.zeros(2))
    js = F.jacobian(np.zeros(2), 0.0)                      # finite: the identity in z
    np.testing.assert_allclose(js.default, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert np.all(F.jacobian(np.zeros(2), 1.0).default == 0.0)
    with pytest.raises(cv.InputError, match="negative threshold"):
        F(np.ones(2), -1.0)


# --- huber --------------------------------------------------------------------------------------

def test_huber_values_and_derivative_against_the_scalar_reference():
    rng = np.random.default_rng(3)
    F = cv.trace(lambda z, d: cv.huber(z, d), (6,), ())
    for _ in range(10):
        z, d = 3 * rng.normal(size=6), abs(rng.normal()) + 0.1
        np.testing.assert_allclose(F(z, d), [huber_ref(v, d) for v in z], rtol=1e-14)
        js = F.jacobian(z, d)
        assert js.is_singleton
        np.testing.assert_array_equal(np.diag(js.default[:, :6]), np.clip(z, -d, d))
        np.testing.assert_allclose(js.default[:, 6],
                                   np.where(np.abs(z) > d, np.abs(z) - d, 0.0),
                                   atol=1e-15)
        np.testing.assert_allclose(js.default, _fd(F, z, d), atol=1e-6)


@pytest.mark.parametrize("hull", [True, False])
@pytest.mark.parametrize("tol", [0.0, 1e-9])
def test_huber_carries_no_kink_choice_on_its_kinks(hull, tol):
    F = cv.trace(lambda z, d: cv.huber(z, d), (4,), ())
    z, d = np.array([1.5, -1.5, 0.3, 2.0]), 1.5             # two coordinates on |z| = delta
    js = F.jacobian(z, d, hull=hull, tol=tol)
    assert js.is_singleton and js.n_selections == 1
    np.testing.assert_array_equal(js.default[:, :4], np.diag([1.5, -1.5, 0.3, 1.5]))
    np.testing.assert_array_equal(js.default[:, 4], [0.0, 0.0, 0.0, 0.5])
    # the same function written with cv.where records a choice per kink coordinate
    W = cv.trace(lambda z, d: cv.where(cv.abs(z) - d <= 0, 0.5 * z * z,
                                       d * (cv.abs(z) - 0.5 * d)), (4,), ())
    np.testing.assert_allclose(W(z, d), F(z, d), rtol=1e-15)
    assert W.jacobian(z, d, hull=hull, tol=tol).n_selections == 4


def test_huber_enclosure_contains_sampled_values_and_jacobians():
    F = cv.trace(lambda z, d: cv.huber(z, d), (3,), ())
    lo, hi = np.array([-2.0, 0.4, 0.9]), np.array([-0.5, 1.1, 3.0])
    d_box = (0.8, 1.2)
    value, M = F.enclose((lo, hi), d_box, value=True)
    rng = np.random.default_rng(5)
    for _ in range(200):
        z, d = rng.uniform(lo, hi), rng.uniform(*d_box)
        assert np.all(value.contains(F(z, d)))
        assert M.contains(F.jacobian(z, d).default)
    # the value range is attained at the corners (monotone in |z| and in delta)
    np.testing.assert_allclose(value.lo, [huber_ref(0.5, 0.8), huber_ref(0.4, 0.8),
                                          huber_ref(0.9, 0.8)], rtol=1e-15)
    np.testing.assert_allclose(value.hi, [huber_ref(2.0, 1.2), huber_ref(1.1, 1.2),
                                          huber_ref(3.0, 1.2)], rtol=1e-15)


def test_huber_refuses_a_negative_delta():
    with pytest.raises(cv.InputError, match="cv.huber: received delta"):
        cv.huber(np.ones(2), -0.5)
    F = cv.trace(lambda z, d: cv.huber(z, d), (), ())
    with pytest.raises(cv.InputError, match="cv.huber: received a negative delta"):
        F(1.0, -1.0)
    with pytest.raises(cv.UndecidedError, match=r"cv.huber \(interval rule\)"):
        F.enclose(1.0, (-0.5, 1.0))


def test_sympy_forms_agree_with_the_values():
    F = cv.trace(lambda z, t: cv.huber(z, t) + cv.group_soft_threshold(z, t), (2,), ())
    expr, xs, ts = cv.symbolic.to_sympy(F)
    for z, t in [([0.5, -2.0], 1.0), ([3.0, 4.0], 2.0), ([0.1, 0.1], 1.0)]:
        subs = {xs[0]: z[0], xs[1]: z[1], ts[()]: t}
        got = [float(e.subs(subs)) for e in expr]
        np.testing.assert_allclose(got, F(np.array(z), t), rtol=1e-12)
