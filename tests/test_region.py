"""cv.certify_region: leaves against point certificates, the fixed-point enclosure over each
leaf, divergent words, executors (a process pool and a real Dask LocalCluster)."""

import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import sympy as sp
from fractions import Fraction

import conservative as cv
import conservative.certify.region as region_module

from _certify_checks import certificate_holds


def lasso_map():
    """Module-level factory: process pools build the map inside each worker (a Map does not
    pickle with the standard pickle module until its primitives do)."""
    X, y = cv.datasets.lasso_small()
    return cv.algorithms.forward_backward_lasso(X, y)


def heavy_ball_step_sizes():
    """Heavy-ball on curvatures 1 and 9 with theta = (alpha, beta)."""
    def step(z, t):
        x, xp = z[0], z[1]
        g = cv.where(x > 0, 9.0 * x, 1.0 * x)
        return cv.stack([x - t[0] * g + t[1] * (x - xp), x])
    return cv.trace(step, (2,), (2,))


LAM = (np.array(4.0), np.array(6.0))


@pytest.fixture(scope="module")
def lasso_region():
    return cv.certify_region(lasso_map(), LAM)


def test_fixed_point_mode_covers_the_box(lasso_region):
    reg = lasso_region
    assert reg.certified and reg.coverage == 1.0 and reg.rho < 1
    total = sum(float(t[1] - t[0]) for t, _, _ in reg.leaves)
    assert total == pytest.approx(2.0)
    assert all(c.verified in ("exact", "interval") for _, _, c in reg.leaves)


def test_leaves_against_point_certificates(lasso_region):
    F = lasso_map()
    rng = np.random.default_rng(0)
    for theta_box, x_box, cert in lasso_region.leaves:
        for lam in rng.uniform(theta_box[0], theta_box[1], size=2):
            w = cv.fixed_point(F, np.zeros(8), lam, tol=1e-14).x
            # the proved enclosure holds the fixed point of every lambda of the leaf
            assert np.all(x_box[0] <= w) and np.all(w <= x_box[1])
            # the leaf's norm bounds the map's own Jacobian there (exact re-check)
            assert certificate_holds(F.jacobian(w, lam, hull=False).A.vertices, cert)
            point = cv.certify_contraction(F, lam, w)
            assert point.certified and point.rho <= cert.rho * (1 + 1e-9) + 1e-12


def test_state_box_mode_subdivides_and_is_sound():
    F = heavy_ball_step_sizes()
    theta = (np.array([0.1, 0.2]), np.array([0.12, 0.22]))
    x_box = (np.array([-0.1, -0.1]), np.array([0.1, 0.1]))
    reg = cv.certify_region(F, theta, x_box, max_boxes=64)
    assert reg.certified and reg.coverage == 1.0
    rng = np.random.default_rng(1)
    for t_box, xb, cert in reg.leaves[:4]:
        own = [A for _ in range(10) for A in F.jacobian(
            rng.uniform(xb[0], xb[1]), rng.uniform(t_box[0], t_box[1]), hull=False).A.vertices]
        assert certificate_holds(own, cert)


def _exact_radius(mats, word):
    n = mats[0].shape[0]
    P = sp.eye(n)
    for i in word:
        P = sp.Matrix(n, n, lambda a, b: sp.Rational(Fraction(float(mats[i][a, b])))) * P
    lam = sp.symbols("lam")
    return max(abs(complex(r)) for r in sp.Poly(P.charpoly(lam).as_expr(), lam).nroots())


def test_divergent_leaves_carry_the_maps_own_word():
    F = heavy_ball_step_sizes()
    box = (np.array([0.2, 0.5]), np.array([0.3, 0.7]))      # alpha = beta = 1/4 is inside
    reg = cv.certify_region(F, box, max_boxes=24)
    diverging = [r for r in reg.refused if r[3] is not None]
    assert diverging and not reg.certified
    for t_box, x_box, reason, word in diverging[:3]:
        # the word indexes the map's own Jacobians at the leaf's centre: its product diverges,
        # by the exact characteristic polynomial
        centre = 0.5 * (t_box[0] + t_box[1])
        own = F.jacobian(np.zeros(2), centre, hull=False).vertices[:, :, :2]
        assert "spectral radius" in reason and len(own) == 2
        assert _exact_radius(own, word) ** (1 / len(word)) > 1


def test_region_result_reads_well_and_serialises(lasso_region):
    text = repr(lasso_region)
    assert len(text.splitlines()) <= 8 and "coverage" in text and "rho" in text
    assert "<table" in lasso_region._repr_html_()
    d = json.loads(json.dumps(lasso_region.to_dict()))
    assert d["certified"] is True and len(d["leaves"]) == len(lasso_region.leaves)


def test_plot_draws_leaves(lasso_region):
    import matplotlib
    matplotlib.use("Agg")
    ax = lasso_region.plot()
    assert ax.get_ylabel() and ax.get_xlabel()
    reg2 = cv.certify_region(heavy_ball_step_sizes(), (np.array([0.05, 0.0]),
                                                       np.array([0.3, 0.6])), max_boxes=20)
    ax2 = reg2.plot()
    assert len(ax2.patches) == len(reg2.leaves) + len(reg2.refused)


def test_process_pool_with_a_factory_gives_the_serial_result(lasso_region):
    with ProcessPoolExecutor(max_workers=2) as pool:
        reg = cv.certify_region(lasso_map, LAM, executor=pool)
    assert reg.certified and reg.coverage == 1.0
    assert reg.rho == pytest.approx(lasso_region.rho, rel=1e-6)


def test_process_pool_with_the_map_itself_gives_the_serial_leaves(lasso_region):
    # the map travels as its pickle; each worker unpickles it once (by digest) and reuses it
    with ProcessPoolExecutor(max_workers=2) as pool:
        reg = cv.certify_region(lasso_map(), LAM, executor=pool)
    assert reg.certified and reg.boxes == lasso_region.boxes
    key = lambda leaf: float(leaf[0][0])
    for (t, x, c), (t0, x0, c0) in zip(sorted(reg.leaves, key=key),
                                       sorted(lasso_region.leaves, key=key)):
        assert np.array_equal(t[0], t0[0]) and np.array_equal(t[1], t0[1])
        assert c.rho == pytest.approx(c0.rho, rel=1e-9) and c.verified == c0.verified


def test_a_pickled_map_is_loaded_once_per_process():
    import pickle
    from conservative.certify.region import _PickledMap, _map_of
    F = lasso_map()
    a, b = _PickledMap.of(F), _PickledMap.of(lasso_map())
    assert a.digest == b.digest                                   # same map, same bytes
    G = _map_of(pickle.loads(pickle.dumps(a)))
    assert G is _map_of(pickle.loads(pickle.dumps(b)))           # one copy per process
    w = np.linspace(-1, 1, 8)
    assert np.array_equal(G(w, 5.0), F(w, 5.0))
    X, y = cv.datasets.lasso_small()
    other = _PickledMap.of(cv.algorithms.forward_backward_lasso(X, 2 * y))
    assert other.digest != a.digest and _map_of(other) is not G


def test_dask_local_cluster_executor(lasso_region):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        reg = cv.certify_region(lasso_map(), LAM, executor=client.get_executor())
    assert reg.certified and reg.coverage == 1.0
    assert reg.rho == pytest.approx(lasso_region.rho, rel=1e-6)


def test_time_limit_and_budget_are_kept():
    import time
    start = time.monotonic()
    reg = cv.certify_region(heavy_ball_step_sizes(), (np.array([0.02, 0.0]),
                                                      np.array([0.42, 0.9])), time_limit=2.0)
    assert time.monotonic() - start < 2.0 + 3.0
    assert not reg.certified and reg.stopped.startswith("time limit")
    small = cv.certify_region(heavy_ball_step_sizes(), (np.array([0.02, 0.0]),
                                                        np.array([0.42, 0.9])), max_boxes=5)
    assert small.boxes <= 5 and "max_boxes" in small.stopped


def test_bad_input_is_a_named_error():
    F = lasso_map()
    for bad in ((4.0,), "box", (np.array(6.0), np.array(4.0))):
        with pytest.raises(cv.ConservativeError, match="cv.certify_region"):
            cv.certify_region(F, bad)
    with pytest.raises(cv.ConservativeError, match="cv.certify_region"):
        cv.certify_region(F, LAM, max_boxes=0)
    with pytest.raises(cv.ConservativeError, match="cv.certify_region"):
        cv.certify_region(object(), LAM)


# --- cheaper leaves: each shortcut against an independent check ------------------------------


def _M(a, b, c):
    return np.array([[1 + b - a * c, -b], [1.0, 0.0]])


def _diverges_somewhere(mats, max_length=6):
    """Brute force over every word up to max_length, exactly (sympy): some product has
    rho(A_w)^(1/|w|) > 1."""
    import itertools
    for k in range(1, max_length + 1):
        for w in itertools.product(range(len(mats)), repeat=k):
            if _exact_radius(mats, w) ** (1 / k) > 1 + 1e-12:
                return True
    return False


def test_a_leaf_inside_a_divergent_region_is_refused_from_its_samples_alone():
    from conservative.certify.region import certify_leaf
    F = heavy_ball_step_sizes()
    box = (np.array([0.35, 0.5]), np.array([0.4, 0.6]))
    cert, x_box, _, everywhere, word = certify_leaf(F, box, None, np.zeros(2), 10.0, 1.0, True)
    assert not cert.certified and everywhere and word == cert.word
    assert cert.norm is None and "none was sought" in cert.reason and x_box is None
    # the word indexes the centre's own elements (.samples), which are the two curvatures'
    # matrices there, and its product diverges (exact characteristic polynomial)
    a, b = 0.375, 0.55
    assert len(cert.samples) == 2 and all(
        any(np.array_equal(A, _M(a, b, c)) for c in (1.0, 9.0)) for A in cert.samples)
    exact = _exact_radius(cert.samples, word) ** (1 / len(word))
    assert exact > 1 and exact == pytest.approx(cert.lower, rel=1e-9)
    # and every corner diverges too, by brute force over all short words
    for alpha in box[0][0], box[1][0]:
        for beta in box[0][1], box[1][1]:
            assert _diverges_somewhere([_M(alpha, beta, 1.0), _M(alpha, beta, 9.0)])


def test_a_contracting_leaf_is_certified_whether_or_not_divergence_is_examined_first():
    from conservative.certify.region import certify_leaf
    F = heavy_ball_step_sizes()
    box = (np.array([0.1, 0.1]), np.array([0.11, 0.11]))
    plain = certify_leaf(F, box, None, np.zeros(2), 10.0)
    first = certify_leaf(F, box, None, np.zeros(2), 10.0, 1.0, True)
    for cert, x_box, _, everywhere, word in (plain, first):
        assert cert.certified and cert.rho < 1 and not everywhere and word is None
        corners = [_M(a, b, c) for a in (0.1, 0.11) for b in (0.1, 0.11) for c in (1.0, 9.0)]
        assert certificate_holds(corners, cert)          # independent exact re-check
    assert first[0].rho == plain[0].rho


def test_product_search_that_stops_at_the_first_divergent_product():
    from conservative.certify.search import product_lower_bound
    mats = np.array([_M(0.25, 0.25, 1.0), _M(0.25, 0.25, 9.0)])
    full, w_full = product_lower_bound(mats, deadline=np.inf)
    quick, w = product_lower_bound(mats, deadline=np.inf, stop_above=1.0)
    assert 1 < quick <= full and full == pytest.approx((1 + 2 ** 0.5) / 2, rel=1e-9)
    assert _exact_radius(mats, w) ** (1 / len(w)) == pytest.approx(quick, rel=1e-9)
    # nothing above the threshold: the full search runs, the same answer
    assert product_lower_bound(mats, deadline=np.inf, stop_above=5.0) == (full, w_full)


def test_polytope_bound_from_facets_matches_the_exact_gauge():
    import itertools
    from conservative.certify.polytope import polytope_bound, polytope_values
    rng = np.random.default_rng(3)
    V = rng.standard_normal((2, 5))
    mats = rng.standard_normal((3, 2, 2)) * 0.5
    bound = polytope_bound(mats, V)                        # bases from the facets
    assert polytope_values(mats, V) is not None
    # the exact gauge of y in the plane: the least ||lam||_1 over all pairs of columns
    Vq = [[Fraction(float(v)) for v in row] for row in V]
    worst = Fraction(0)
    for A in mats:
        Aq = [[Fraction(float(v)) for v in row] for row in A]
        for j in range(V.shape[1]):
            y = [sum(Aq[r][c] * Vq[c][j] for c in range(2)) for r in range(2)]
            best = None
            for p, q in itertools.combinations(range(V.shape[1]), 2):
                det = Vq[0][p] * Vq[1][q] - Vq[0][q] * Vq[1][p]
                if det == 0:
                    continue
                l1 = (y[0] * Vq[1][q] - y[1] * Vq[0][q]) / det
                l2 = (Vq[0][p] * y[1] - Vq[1][p] * y[0]) / det
                best = abs(l1) + abs(l2) if best is None else min(best, abs(l1) + abs(l2))
            worst = max(worst, best)
    assert Fraction(bound) >= worst and bound <= float(worst) * (1 + 1e-9)
    assert polytope_bound(mats, V, limit=float(worst) * 0.9) is None   # clearly above


def test_own_jacobians_keep_the_order_found_and_the_words_index_them():
    from conservative.certify.maps import own_jacobians_restricted
    from conservative.sets import distinct_matrices
    A = np.array([[[1.0]], [[0.0]], [[1.0]], [[-0.0]], [[2.0]]])
    assert distinct_matrices(A).ravel().tolist() == [1.0, 0.0, 2.0]
    F = heavy_ball_step_sizes()
    x_box = (np.full(2, -1e-9), np.full(2, 1e-9))
    t_box = (np.array([0.24, 0.24]), np.array([0.26, 0.26]))
    own = own_jacobians_restricted(F, x_box, t_box, np.arange(2), call="test")
    want = np.unique(own, axis=0)
    assert len(own) == len(want) and all(any(np.array_equal(a, b) for b in own) for a in want)
    centre = F.jacobian(np.zeros(2), [0.25, 0.25], hull=False).A.vertices
    assert all(any(np.array_equal(a, b) for b in own[:2]) for a in centre)


class _CountingExecutor:
    """A serial executor that records how many leaves each task carries."""

    def __init__(self):
        self.sizes = []

    def submit(self, fn, *args):
        from concurrent.futures import Future
        self.sizes.append(len(args[0]) if fn is region_module.certify_leaves else 1)
        future = Future()
        future.set_result(fn(*args))
        return future


def test_batched_tasks_give_the_serial_leaves(lasso_region):
    # once many leaves wait, a task carries several (a scheduler round trip per leaf costs
    # more than a small leaf); the leaves decided are those of a serial run
    F = cv.examples.heavy_ball_step_sizes(1.0, 9.0)
    box = (np.array([0.01, 0.0]), np.array([0.45, 0.95]))
    ex = _CountingExecutor()
    reg = cv.certify_region(F, box, executor=ex, max_boxes=120)
    serial = cv.certify_region(F, box, max_boxes=120)
    assert sum(ex.sizes) == reg.boxes == serial.boxes == 120
    assert 1 < max(ex.sizes) <= region_module.MAX_BATCH
    # under a budget the order of examination decides which leaves are reached; each leaf
    # certified in a batch is a leaf of the same subdivision, certified on its own box
    lo, hi = box
    assert reg.coverage > 0 and serial.coverage > 0
    for (t_lo, t_hi), _, cert in reg.leaves:
        assert np.all(lo <= t_lo) and np.all(t_hi <= hi) and cert.certified and cert.rho < 1
    ex = _CountingExecutor()                       # no budget: exactly the serial leaves
    lasso = cv.certify_region(lasso_map(), LAM, executor=ex)
    assert lasso.boxes == lasso_region.boxes and lasso.rho == pytest.approx(lasso_region.rho)
    assert [region_module._batch_size(w) for w in (0, 7, 16, 32, 1000)] == [1, 1, 2, 4, 8]
