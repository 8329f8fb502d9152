"""``cv.fpad_vjp`` where the exact fixed point sits on a kink: which cases it answers (and with
what), which it refuses, against exact references (dyadic data, so the float fixed point is the
exact one and every product below is exact)."""
from fractions import Fraction

import numpy as np
import pytest

import conservative as cv


def _exact_matvec(W, x):
    return [sum(Fraction(float(w)) * Fraction(float(v)) for w, v in zip(row, x)) for row in W]


def _kink_selection_hypergradient(W, active, g):
    """``g^T (I - D W)^{-1} D`` with D the 0/1 diagonal of ``active`` (relu'(0) = 0 on the
    units at the kink), in floating point from exact data (a 1e-13 comparison)."""
    D = np.diag(np.asarray(active, dtype=float))
    n = len(active)
    return g @ np.linalg.solve(np.eye(n) - D @ W, D)


def test_proved_box_at_a_kink_with_wide_rows_uses_the_block_test():
    """Row 0 of W has l1 norm 1.2 (no ||A||_inf < 1 shortcut), unit 0 sits exactly on its kink;
    I - A is invertible on the hull (a k x k interval test proves it)."""
    W = np.array([[0.625, -0.625], [0.25, 0.125]])
    xs = np.array([0.0, 0.5])
    b = np.array([0.3125, 0.4375])                    # W x + b = (0, 0.5) exactly
    assert [Fraction(v) for v in xs] == [max(z + Fraction(bi), Fraction(0)) for z, bi in
                                         zip(_exact_matvec(W, xs), b)]
    assert _exact_matvec(W, xs)[0] + Fraction(b[0]) == 0          # on the kink
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (2,), (2,))
    enc = cv.fixed_point_enclosure(F, b, xs)
    assert enc.proven and enc.kinks
    g = np.array([1.0, -2.0])
    got = cv.fpad_vjp(F, b, xs, g)
    np.testing.assert_allclose(got, _kink_selection_hypergradient(W, [0, 1], g), atol=1e-13)
    # and it is an element of the implicit set there
    imp = cv.implicit_jacobian(F, b, xs)
    assert any(np.allclose(g @ V, got, atol=1e-12) for V in imp.vertices)


def _contracting_layer_on_kinks():
    """``x = relu(W x + b)``, ||W||_2 = 0.6, 24 of 40 units exactly on their kinks: (F, b, xs,
    W, at_kink)."""
    rng = np.random.default_rng(3)
    n, at_kink = 40, 24
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    W = np.round(0.6 * Q * 2 ** 20) / 2 ** 20
    xs = np.zeros(n)
    xs[at_kink:] = np.round(rng.uniform(0.5, 1, n - at_kink) * 2 ** 10) / 2 ** 10
    Wx = _exact_matvec(W, xs)
    b = np.array([float(-v) for v in Wx[:at_kink]] + [float(Fraction(x) - v) for x, v in
                                                        zip(xs[at_kink:], Wx[at_kink:])])
    pre = [v + Fraction(bi) for v, bi in zip(Wx, b)]
    assert all(p == 0 for p in pre[:at_kink])                      # exactly on the kinks
    assert all(p == Fraction(x) for p, x in zip(pre[at_kink:], xs[at_kink:]))
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (n,), (n,))
    return F, b, xs, W, at_kink


def test_contracting_layer_with_many_units_on_the_kink():
    """A layer with ||W||_2 = 0.6 but rows of l1 norm above 1: Krawczyk's interval test does not
    close at 24 units exactly on their kinks, a fixed-point certificate (Banach's theorem in a
    certified norm) does, and fpad_vjp answers with the selection on the kinks."""
    F, b, xs, W, at_kink = _contracting_layer_on_kinks()
    n = F.n
    assert not cv.fixed_point_enclosure(F, b, xs).proven             # interval hull too wide
    g = np.linspace(-1.0, 1.0, n)
    got = cv.fpad_vjp(F, b, xs, g)
    ref = _kink_selection_hypergradient(W, [0] * at_kink + [1] * (n - at_kink), g)
    np.testing.assert_allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize("x0", [0.0, 1e-300, 1e-12])
def test_no_lipschitz_solution_map_is_refused(x0):
    """``x = t + 2|x|``-like layer in two dimensions: at t = 0 the hull of A holds I (the unit
    on its kink has slopes 1/2 and 3/2)."""
    F = cv.trace(lambda x, t: t + 0.5 * x + cv.relu(x) * np.array([1.0, 0.0]), (2,), (2,))
    with pytest.raises((cv.SingularJacobianError, cv.UndecidedError)):
        cv.fpad_vjp(F, np.zeros(2), np.array([x0, 0.0]), np.ones(2))


def test_away_from_kinks_nothing_is_checked_and_the_derivative_is_exact():
    W = np.array([[0.25, -0.125], [0.125, 0.25]])
    xs = np.array([0.5, 0.75])
    b = np.array([float(Fraction(x) - v) for x, v in zip(xs, _exact_matvec(W, xs))])
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (2,), (2,))
    assert not cv.fixed_point_enclosure(F, b, xs).kinks
    g = np.array([1.0, 1.0])
    np.testing.assert_allclose(cv.fpad_vjp(F, b, xs, g),
                               _kink_selection_hypergradient(W, [1, 1], g), atol=1e-14)


# --- time limits of the proofs made at a kink -------------------------------------------------

def _triangular_layer():
    """``x = relu(W x + b)``, W strictly upper triangular with entries up to 4, three units
    exactly on their kink: rows of A with l1 norm >= 1, so the quick tests fail and the hull's
    invertibility needs the contraction certificate (an SDP; A is nilpotent, JSR 0)."""
    rng = np.random.default_rng(5)
    n, nk = 5, 3
    W = np.triu(rng.integers(-4, 5, size=(n, n)).astype(float), 1)
    xs = np.zeros(n)
    xs[nk:] = 1.0
    b = xs - W @ xs
    assert all(v == 0 for v in (_exact_matvec(W, xs)[i] + Fraction(b[i]) for i in range(nk)))
    F = cv.trace(lambda x, t: cv.relu(W @ x + t), (n,), (n,))
    g = np.linspace(1.0, 2.0, n)
    return F, b, xs, g, _kink_selection_hypergradient(W, [0] * nk + [1] * (n - nk), g)


def _spy_time_limits(monkeypatch, module, name):
    seen = []
    original = getattr(module, name)

    def spy(*args, **kw):
        seen.append(kw.get("time_limit", "missing"))
        return original(*args, **kw)
    monkeypatch.setattr(module, name, spy)
    return seen


def test_fpad_vjp_time_limit_reaches_the_hull_certificate(monkeypatch):
    import conservative.derivatives.implicit as implicit
    import conservative.fixed_point_set as fps
    F, b, xs, g, ref = _triangular_layer()
    seen = _spy_time_limits(monkeypatch, implicit, "certify_contraction")
    fps._RECENT.clear()
    np.testing.assert_allclose(cv.fpad_vjp(F, b, xs, g, time_limit=30.0), ref, atol=1e-12)
    assert seen and all(isinstance(t, float) and 0 < t <= 30.0 for t in seen), seen
    seen.clear()
    np.testing.assert_allclose(cv.implicit_jacobian(F, b, xs, time_limit=30.0).vertices[0].T
                               @ g, ref, atol=1e-12)
    assert seen and all(isinstance(t, float) and 0 < t <= 30.0 for t in seen), seen
    seen.clear()
    np.testing.assert_allclose(cv.fpad_vjp(F, b, xs, g, time_limit=None), ref, atol=1e-12)
    assert seen == [None]


def test_fpad_vjp_out_of_time_is_undecided_never_singular():
    """With a millisecond the hull proof may not finish: the answer is then UndecidedError
    naming the time limit (I - A is invertible on this hull: "singular" would be false)."""
    import conservative.fixed_point_set as fps
    F, b, xs, g, ref = _triangular_layer()
    for x0 in (xs, xs + 1e-15):
        fps._RECENT.clear()
        try:
            got = cv.fpad_vjp(F, b, x0, g, time_limit=1e-3)
        except cv.UndecidedError as exc:
            assert "time_limit" in str(exc) and "cv.fpad_vjp" in str(exc)
        else:
            np.testing.assert_allclose(got, ref, atol=1e-12)


def test_fpad_vjp_time_limit_reaches_the_fixed_point_certificate(monkeypatch):
    """Where Krawczyk's loop does not close (the layer above), the fixed-point certificate
    decides, within the caller's time limit."""
    import conservative.certify as certify
    import conservative.fixed_point_set as fps
    F, b, xs, W, at_kink = _contracting_layer_on_kinks()
    seen = _spy_time_limits(monkeypatch, certify, "certify_fixed_point")
    fps._RECENT.clear()
    g = np.linspace(-1.0, 1.0, F.n)
    got = cv.fpad_vjp(F, b, xs, g, time_limit=45.0)
    ref = _kink_selection_hypergradient(W, [0] * at_kink + [1] * (F.n - at_kink), g)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    assert len(seen) == 1 and 0 < seen[0] <= 45.0


@pytest.mark.parametrize("bad", [0, -1.0, "10", True])
def test_fpad_vjp_rejects_a_bad_time_limit(bad):
    F, b, xs, g, _ = _triangular_layer()
    with pytest.raises(cv.InputError, match=r"cv\.fpad_vjp.*time_limit"):
        cv.fpad_vjp(F, b, xs, g, time_limit=bad)
    with pytest.raises(cv.InputError, match=r"cv\.implicit_jacobian.*time_limit"):
        cv.implicit_jacobian(F, b, xs, time_limit=bad)


def test_fpad_vjp_rejects_a_bad_progress():
    F, b, xs, g, _ = _triangular_layer()
    with pytest.raises(cv.InputError, match=r"cv\.fpad_vjp.*progress"):
        cv.fpad_vjp(F, b, xs, g, progress="yes")
