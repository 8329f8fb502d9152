"""Interval sweeps restricted to what the caller reads (demanded rows, sparse seeds and radii),
the possible pieces from the same sweep, and the first Krawczyk box from a Newton estimate."""

from fractions import Fraction

import numpy as np
import pytest

import conservative as cv
import conservative.fixed_point_set as fps
from conservative import interval as iv
from conservative.enclose import enclose_program, interval_demand, possible_pieces

RNG = np.random.default_rng(7)
X = RNG.normal(size=(60, 150)) / np.sqrt(60)
Y = RNG.normal(size=60)
W = RNG.normal(size=(150, 150)) / 20.0


def layered(x, t):
    z = x - 0.3 * (X.T @ (X @ x - Y))
    h = cv.tanh(W @ cv.relu(z) + 0.1 * x[::-1])
    return cv.soft_threshold(z, t[0]) + 0.2 * h * t[1]


F = cv.trace(layered, (150,), (2,))


def box_and_seeds(seed, width):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=150)
    x0[rng.choice(150, 120, replace=False)] *= 0.01        # mostly near the dead zone
    rad = np.zeros(150)
    rad[rng.choice(150, 10, replace=False)] = width          # wide in a few coordinates only
    cols = rng.choice(150, 6, replace=False)
    S = np.zeros((150, 6))
    S[cols, np.arange(6)] = rng.normal(size=6)
    return x0, rad, S


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("width", [0.0, 1e-9, 1e-3])
def test_demanded_rows_match_the_full_sweep_and_contain_every_jacobian(seed, width):
    x0, rad, S = box_and_seeds(seed, width)
    t0 = np.array([0.3, 1.0])
    box = iv.Interval(x0 - rad, x0 + rad)
    tb = iv.Interval(t0)
    rows = np.sort(np.random.default_rng(seed).choice(150, 20, replace=False))
    _, full = enclose_program(F.program, box, tb, seeds=(iv.Interval(S), None))
    _, part = enclose_program(F.program, box, tb, seeds=(iv.Interval(S), None), rows=rows)
    # both are enclosures of the same rows; the restricted one may differ by rounding only
    scale = 1.0 + np.abs(full.hi[rows])
    assert np.all(np.abs(part.lo[rows] - full.lo[rows]) <= 1e-12 * scale)
    assert np.all(np.abs(part.hi[rows] - full.hi[rows]) <= 1e-12 * scale)
    rng = np.random.default_rng(seed + 100)
    for _ in range(8):
        x = rng.uniform(x0 - rad, x0 + rad)
        for V in F.jacobian(x, t0, hull=False, tol=1e-12).enumerate(max_vertices=256):
            JS = V[:, :150] @ S
            assert np.all(part.lo[rows] <= JS[rows] + 1e-15) and \
                np.all(JS[rows] <= part.hi[rows] + 1e-15)


def test_demand_reaches_only_what_the_rows_depend_on():
    G = cv.trace(lambda x, t: cv.relu(X.T @ (X @ x) + t) + x * t, (150,), ())
    needs = interval_demand(G.program, np.array([3, 7]))
    out = needs[G.program.out_node]
    assert out.shape == (150,) and set(np.flatnonzero(out)) == {3, 7}
    # the matmul X.T @ (...) is needed on rows 3 and 7 only, its vector operand whole
    masks = [v for v in needs.values() if np.ndim(v) and v.shape == (150,)]
    assert all(set(np.flatnonzero(m)) <= {3, 7} or m.all() for m in masks)


@pytest.mark.parametrize("seed", range(4))
def test_pieces_from_the_sweep_equal_possible_pieces(seed):
    x0, rad, S = box_and_seeds(seed, 0.05)
    box, tb = iv.Interval(x0 - rad, x0 + rad), iv.Interval(np.array([0.01, 1.0]))
    found: dict = {}
    enclose_program(F.program, box, tb, seeds=(iv.Interval(S), None), pieces=found)
    ref = possible_pieces(F.program, box, tb)
    assert found.keys() == ref.keys() and len(ref) > 0
    for node in ref:
        np.testing.assert_array_equal(found[node], ref[node])


def exact_point_times_interval(A, lo, hi):
    """Exact bounds of ``A @ b`` over ``b`` in ``[lo, hi]`` (rationals)."""
    out_lo, out_hi = [], []
    for row in A:
        s_lo = s_hi = Fraction(0)
        for a, l, h in zip(row, lo, hi):
            a, l, h = Fraction(a), Fraction(l), Fraction(h)
            s_lo += min(a * l, a * h)
            s_hi += max(a * l, a * h)
        out_lo.append(s_lo)
        out_hi.append(s_hi)
    return out_lo, out_hi


@pytest.mark.parametrize("case", ["centred", "sparse radius", "tiny"])
def test_midrad_product_with_centred_or_sparse_operand_is_rigorous(case):
    rng = np.random.default_rng(3)
    A = rng.normal(size=(12, 100))
    mid = rng.normal(size=100)
    rad = np.zeros(100)
    rad[rng.choice(100, 5, replace=False)] = rng.uniform(0, 1e-3, 5)
    if case == "centred":
        mid, rad = np.zeros(100), rng.uniform(0, 1, 100)
    if case == "tiny":
        A[0, :3] = 1e-310                                # products may underflow
    b = iv.Interval(mid - rad, mid + rad)
    got = iv.matmul(A, b)
    e_lo, e_hi = exact_point_times_interval(A, b.lo, b.hi)
    assert all(Fraction(got.lo[i]) <= e_lo[i] and e_hi[i] <= Fraction(got.hi[i])
               for i in range(12))
    width = got.hi - got.lo
    exact_width = np.array([float(h - l) for l, h in zip(e_lo, e_hi)])
    assert np.all(width <= exact_width + 1e-10 * (1 + np.abs(got.hi)))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("width", [1e-12, 1e-6, 0.05])
def test_centred_values_contain_every_value_on_the_box(seed, width):
    x0, rad, _ = box_and_seeds(seed, width)
    tb = iv.Interval(np.array([0.3, 0.3 + width]), np.array([1.0, 1.0 + width]))
    box = iv.Interval(x0 - rad, x0 + rad)
    centre = fps.enclose_values(F.program, iv.Interval(x0), tb)
    d = iv.subtract(box, iv.Interval(x0)).reshape((150, 1))
    vals, _ = enclose_program(F.program, box, tb, seeds=(d, None), keep=True, centre=centre)
    natural = fps.enclose_values(F.program, box, tb)[F.program.out_node]
    got = vals[F.program.out_node]
    rng = np.random.default_rng(seed)
    for _ in range(30):
        y = rng.uniform(x0 - rad, x0 + rad)
        t = rng.uniform(tb.lo, tb.hi)
        assert np.all(got.contains(F(y, t)))
    # the centred form is never much wider than the natural extension on small boxes
    if width <= 1e-6:
        assert np.all(got.hi - got.lo <= 4 * (natural.hi - natural.lo) + 1e-15)


def test_lasso_enclosure_takes_the_centred_test(monkeypatch):
    Xl, yl = cv.datasets.lasso_small()
    G = cv.algorithms.forward_backward_lasso(Xl, yl)
    lam = 0.2 * float(np.max(np.abs(Xl.T @ yl)))
    w = cv.fixed_point(G, np.zeros(Xl.shape[1]), lam, tol=1e-14).x
    general, sweeps = [], []
    original, sweep = fps._krawczyk_step, fps.enclose_program
    monkeypatch.setattr(fps, "_krawczyk_step", lambda *a: general.append(1) or original(*a))
    monkeypatch.setattr(fps, "enclose_program",
                        lambda *a, **k: sweeps.append(1) or sweep(*a, **k))
    # soft-threshold of an affine map: the affine test proves it without an interval sweep
    fps._RECENT.clear()
    affine = cv.fixed_point_enclosure(G, lam, w + 1e-13)
    assert affine.proven and affine.block is not None and general == [] and sweeps == []
    monkeypatch.setattr(fps, "_affine_test", lambda *a: None)
    fps._RECENT.clear()
    enc = cv.fixed_point_enclosure(G, lam, w + 1e-13)
    # interval sweeps: the centred box and its Jacobian columns (the point's values are one
    # more, without tangents; the Newton estimate away from kinks is in floating point)
    assert enc.proven and general == [] and len(sweeps) == 2
    # the general test proves a box from the same point too, and both hold the fixed point
    monkeypatch.setattr(fps, "_centred_test", lambda *a: None)
    fps._RECENT.clear()
    enc_general = cv.fixed_point_enclosure(G, lam, w + 1e-13)
    assert enc_general.proven and general
    # the fixed point lies in the box: the exact support solution is inside it
    S = np.flatnonzero(w)
    XS = Xl[:, S]
    exact = np.zeros_like(w)
    exact[S] = np.linalg.solve(XS.T @ XS, XS.T @ yl - lam * np.sign(w[S]))
    for e in (affine, enc, enc_general):
        assert np.all(e.lo <= exact + 1e-14) and np.all(exact - 1e-14 <= e.hi)


def test_the_first_box_comes_from_floats_away_from_kinks_and_from_intervals_at_one():
    Xl, yl = cv.datasets.lasso_small()
    G = cv.algorithms.forward_backward_lasso(Xl, yl)
    lam = 0.2 * float(np.max(np.abs(Xl.T @ yl)))
    w = cv.fixed_point(G, np.zeros(Xl.shape[1]), lam, tol=1e-14).x
    kinks = {}
    at_x = fps.enclose_values(G.program, iv.Interval(w), iv.Interval(np.asarray(lam)),
                              call="test", pieces=kinks)
    assert kinks == {}                                     # no kink at the Lasso solution
    rows_f, block_f = fps._float_rows_and_block(G, np.asarray(lam), w)
    rows_i, block_i = fps._interval_rows_and_block(G, np.asarray(lam), w, at_x)
    np.testing.assert_array_equal(rows_f, np.flatnonzero(w))          # the support
    np.testing.assert_array_equal(rows_i, rows_f)
    np.testing.assert_allclose(block_f, block_i, atol=1e-14)
    # a coordinate on its kink (relu at 0): every piece's rows, from the interval probe
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + t, (2,), (2,))
    seen = []
    original = fps._interval_rows_and_block
    try:
        fps._interval_rows_and_block = lambda *a: seen.append(original(*a)) or seen[-1]
        enc = cv.fixed_point_enclosure(F, [0.0, 1.0], [0.0, 2.0 + 1e-13])
    finally:
        fps._interval_rows_and_block = original
    assert enc.proven and enc.lo[0] <= 0.0 <= enc.hi[0] and enc.lo[1] <= 2.0 <= enc.hi[1]
    rows, block = seen[0]
    np.testing.assert_array_equal(rows, [0, 1])
    np.testing.assert_allclose(block, np.diag([0.25, 0.5]))          # the hull's midpoint
