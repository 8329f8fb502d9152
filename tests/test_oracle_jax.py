"""JAX as an independent oracle for values and Jacobians of traced programs.

Away from kinks every conservative Jacobian is the classical Jacobian: ``F.jacobian(x, theta)``
must be a single matrix equal to ``jax.jacfwd`` w.r.t. ``(x, theta)``, flattened in C order.
At kinks JAX silently returns one element (its own convention: a 1/2 split at ties of
``maximum``, ``abs'(0) = 1``, ``relu'(0) = 0``, ...). Those values must be *members* of our
``hull=True`` set, never the expected value of an equality with our default.

The random programs come from ``tests/_programs.py``; the same recipe builds the DSL program
and its ``jax.numpy`` twin.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import conservative as cv  # noqa: E402
from _programs import random_program, NONSMOOTH_OPS, ALL_OPS  # noqa: E402

N_PROGRAMS = 50
N_POINTS = 3
RTOL = 1e-9


def _oracle_seeds():
    """The first N_PROGRAMS seeds whose program has points away from every kink.

    Programs whose kinks are active on open sets (e.g. ``abs(where(...) - x)`` where the
    branch equals x) have no such points; they are exercised by the property tests instead.
    """
    seeds = []
    for seed in range(10 * N_PROGRAMS):
        prog = random_program(seed)
        if prog.smooth_point(np.random.default_rng(seed)) is not None:
            seeds.append(seed)
        if len(seeds) == N_PROGRAMS:
            return seeds
    raise AssertionError("the generator makes too few programs with smooth points")


ORACLE_SEEDS = _oracle_seeds()


def _jax_value_and_jacobian(prog, xs, thetas):
    """Values and [A B] Jacobians of the JAX twin at a batch of points (one compilation)."""
    n, m = prog.n, prog.m

    def one(x, theta):
        jx, jt = jax.jacfwd(prog.jax_fn, argnums=(0, 1))(x, theta)
        return prog.jax_fn(x, theta), jnp.concatenate([jx.reshape(n, n), jt.reshape(n, m)],
                                                       axis=1)

    vals, jacs = jax.jit(jax.vmap(one))(jnp.asarray(xs), jnp.asarray(thetas))
    return np.asarray(vals), np.asarray(jacs)


# --- the generator is what the oracle tests rely on ----------------------------------------------

def test_oracle_programs_cover_every_operation_and_shape():
    progs = [random_program(s) for s in ORACLE_SEEDS]
    used = set().union(*(p.ops for p in progs))
    assert set(ALL_OPS) <= used, f"operations never generated: {set(ALL_OPS) - used}"
    assert {p.state_shape for p in progs} == {(), (3,), (2, 2)}
    assert {p.param_shape for p in progs} == {(), (2,)}
    assert all(p.nonsmooth_ops for p in progs)


def test_the_same_seed_gives_the_same_program():
    a, b = random_program(7), random_program(7)
    x, t = a.random_point(np.random.default_rng(0))
    np.testing.assert_array_equal(a.numpy_value(x, t)[0], b.numpy_value(x, t)[0])
    assert repr(a) == repr(b)


# --- away from kinks: equality with jax.jacfwd ---------------------------------------------------

@pytest.mark.parametrize("seed", ORACLE_SEEDS)
def test_value_and_jacobian_equal_jax_away_from_kinks(seed):
    prog = random_program(seed)
    rng = np.random.default_rng(seed)
    points = [prog.smooth_point(rng) for _ in range(N_POINTS)]
    points = [p for p in points if p is not None]
    assert points, f"no point away from kinks for\n{prog!r}"
    xs = np.stack([p[0] for p in points])
    thetas = np.stack([p[1] for p in points])
    F = prog.map
    j_vals, j_jacs = _jax_value_and_jacobian(prog, xs, thetas)

    # batched evaluation against JAX at once, then each point
    np.testing.assert_allclose(F(xs, thetas), j_vals, rtol=1e-12, atol=1e-12, err_msg=repr(prog))
    for (x, theta), Jj in zip(points, j_jacs):
        assert prog.kink_margin(x, theta) > 1e-3
        for hull in (True, False):
            js = F.jacobian(x, theta, hull=hull)
            V = js.vertices
            assert V.shape == (1, prog.n, prog.n + prog.m), \
                f"{V.shape[0]} vertices away from kinks for\n{prog!r}"
            assert js.is_singleton
            scale = max(1.0, float(np.max(np.abs(Jj))))
            np.testing.assert_allclose(V[0], Jj, rtol=RTOL, atol=RTOL * scale,
                                       err_msg=f"{prog!r}\nat x={x}, theta={theta}")
            np.testing.assert_allclose(js.A.vertices[0], Jj[:, :prog.n], rtol=RTOL,
                                       atol=RTOL * scale)
            np.testing.assert_allclose(js.B.vertices[0], Jj[:, prog.n:], rtol=RTOL,
                                       atol=RTOL * scale)


# --- at kinks: JAX's choice is a member of the hull ----------------------------------------------

def _jax_jac(fn, x, theta, n, m):
    jx, jt = jax.jacfwd(fn, argnums=(0, 1))(jnp.asarray(x, dtype=float),
                                             jnp.asarray(theta, dtype=float))
    return np.hstack([np.asarray(jx).reshape(n, n), np.asarray(jt).reshape(n, m)])


def _soft_jax(z, t):
    return jnp.sign(z) * jnp.maximum(jnp.abs(z) - t, 0.0)


W3 = np.array([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0], [-0.7, 0.2, 1.5]])

# (name, cv fn, jax fn, state shape, param shape, kink point x, theta)
KINK_CASES = [
    ("relu", lambda x, t: cv.relu(x - t), lambda x, t: jax.nn.relu(x - t),
     (3,), (), np.array([0.0, 1.0, -1.0]), 0.0),
    ("relu via maximum(., 0)", lambda x, t: cv.relu(x) * t,
     lambda x, t: jnp.maximum(x, 0.0) * t, (2,), (), np.zeros(2), 1.5),
    ("relu layer", lambda x, t: cv.relu(W3 @ x + t), lambda x, t: jax.nn.relu(W3 @ x + t),
     (3,), (3,), np.zeros(3), np.array([0.0, 0.0, 1.0])),
    ("abs", lambda x, t: cv.abs(x) + t * x, lambda x, t: jnp.abs(x) + t * x,
     (3,), (), np.array([0.0, 0.0, 2.0]), 0.5),
    ("abs of a difference", lambda x, t: cv.abs(x - t), lambda x, t: jnp.abs(x - t),
     (), (), 0.7, 0.7),
    ("maximum", lambda x, t: cv.stack([cv.maximum(x[0], x[1]), cv.maximum(x[1], t)]),
     lambda x, t: jnp.stack([jnp.maximum(x[0], x[1]), jnp.maximum(x[1], t)]),
     (2,), (), np.array([1.0, 1.0]), 1.0),
    ("minimum", lambda x, t: cv.stack([cv.minimum(x[0], x[1]), cv.minimum(x[1], t)]),
     lambda x, t: jnp.stack([jnp.minimum(x[0], x[1]), jnp.minimum(x[1], t)]),
     (2,), (), np.array([-0.5, -0.5]), -0.5),
    ("clip at lo", lambda x, t: cv.clip(x, t[0], t[1]), lambda x, t: jnp.clip(x, t[0], t[1]),
     (), (2,), -1.0, np.array([-1.0, 2.0])),
    ("clip at hi", lambda x, t: cv.clip(x, t[0], t[1]), lambda x, t: jnp.clip(x, t[0], t[1]),
     (), (2,), 2.0, np.array([-1.0, 2.0])),
    ("clip constant bounds", lambda x, t: cv.clip(x * t, -1.0, 1.0),
     lambda x, t: jnp.clip(x * t, -1.0, 1.0), (3,), (), np.array([-0.5, 0.5, 0.0]), 2.0),
    ("max reduction, 3 ties", lambda x, t: cv.max(x) + 0.0 * x + t,
     lambda x, t: jnp.max(x) + 0.0 * x + t, (3,), (), np.ones(3), 0.0),
    ("max reduction, 2 of 4 tied", lambda x, t: cv.max(x * t) + x,
     lambda x, t: jnp.max(x * t) + x, (4,), (), np.array([1.0, 3.0, 3.0, -2.0]), 1.0),
    ("min reduction over an axis", lambda x, t: cv.min(x, axis=0) + x,
     lambda x, t: jnp.min(x, axis=0) + x, (2, 2), (), np.array([[1.0, 2.0], [1.0, 0.0]]), 0.0),
    ("soft threshold z == t > 0", lambda x, t: cv.soft_threshold(x, t),
     lambda x, t: _soft_jax(x, t), (), (), 0.5, 0.5),
    ("soft threshold z == -t", lambda x, t: cv.soft_threshold(x, t),
     lambda x, t: _soft_jax(x, t), (), (), -0.5, 0.5),
    ("soft threshold z == t == 0", lambda x, t: cv.soft_threshold(x, t),
     lambda x, t: _soft_jax(x, t), (), (), 0.0, 0.0),
    ("soft threshold t = theta**2", lambda x, t: cv.soft_threshold(x, t * t),
     lambda x, t: _soft_jax(x, t * t), (3,), (), np.array([4.0, -4.0, 1.0]), 2.0),
    ("where at the boundary", lambda x, t: cv.where(x > 0, 2.0 * x, -t * x),
     lambda x, t: jnp.where(x > 0, 2.0 * x, -t * x), (), (), 0.0, 1.0),
]


@pytest.mark.parametrize("case", KINK_CASES, ids=[c[0] for c in KINK_CASES])
def test_jax_at_a_kink_is_a_member_of_the_hull(case):
    name, fn, jfn, S, P, x, theta = case
    F = cv.trace(fn, S, P)
    n, m = F.n, F.m
    np.testing.assert_allclose(F(x, theta), np.asarray(jfn(jnp.asarray(x, dtype=float),
                                                           jnp.asarray(theta, dtype=float))))
    js = F.jacobian(x, theta, hull=True)
    assert not js.is_singleton, f"{name}: the point is not at a kink"
    Jj = _jax_jac(jfn, x, theta, n, m)
    assert js.contains(Jj), f"{name}: JAX's {Jj} is outside the hull {js.vertices}"
    lo, hi = js.bounding_box()
    assert np.all(lo - 1e-12 <= Jj) and np.all(Jj <= hi + 1e-12)


def test_jax_tie_split_is_in_the_hull_but_not_in_the_finite_set():
    F = cv.trace(lambda x, t: cv.maximum(x, t), (), ())
    Jj = _jax_jac(lambda x, t: jnp.maximum(x, t), 1.0, 1.0, 1, 1)
    np.testing.assert_allclose(Jj, [[0.5, 0.5]])
    assert F.jacobian(1.0, 1.0, hull=True).contains(Jj)
    assert not F.jacobian(1.0, 1.0, hull=False).contains(Jj)


# --- random programs at kinks --------------------------------------------------------------------

KINK_SEEDS = list(range(1000, 1030))
MAX_SELECTIONS = 4096


def _kink_points(prog, F, rng, want=2, tries=40):
    """Grid points where some kink of the program is active (with a manageable set)."""
    points = []
    for _ in range(tries):
        x, theta = prog.grid_point(rng)
        if prog.kink_margin(x, theta) == 0.0:
            js = F.jacobian(x, theta, hull=True, tol=1e-9)
            if 1 < js.n_selections <= MAX_SELECTIONS:
                points.append((x, theta, js))
        if len(points) == want:
            break
    return points


@pytest.mark.parametrize("seed", KINK_SEEDS)
def test_random_program_jax_at_kinks_is_a_member_of_the_hull(seed):
    """JAX's per-node choices lie in each node's hull; the composite then lies in our hull.

    (The composite Jacobian is multi-affine in the nodes' convex weights, so any choice of
    elements of the nodes' hulls gives a member of the hull of the vertex products.)
    """
    prog = random_program(seed, grid=True)
    F = prog.map
    points = _kink_points(prog, F, np.random.default_rng(seed))
    if not points:
        pytest.skip("no grid point of this program sits on a kink")
    xs = np.stack([p[0] for p in points])
    thetas = np.stack([p[1] for p in points])
    j_vals, j_jacs = _jax_value_and_jacobian(prog, xs, thetas)
    np.testing.assert_allclose(F(xs, thetas), j_vals, rtol=1e-12, atol=1e-12)
    for (x, theta, js), Jj in zip(points, j_jacs):
        assert js.contains(Jj, atol=1e-9 * max(1.0, float(np.max(np.abs(Jj))))), \
            f"JAX's Jacobian is outside our hull for\n{prog!r}\nat x={x}, theta={theta}"


def test_random_programs_at_kinks_are_mostly_tested():
    """Guard against the kink test silently skipping most programs."""
    hits, used = 0, set()
    for seed in KINK_SEEDS:
        prog = random_program(seed, grid=True)
        F = prog.map
        if _kink_points(prog, F, np.random.default_rng(seed), want=1):
            hits += 1
            used |= prog.nonsmooth_ops
    assert hits >= 0.7 * len(KINK_SEEDS)
    assert set(NONSMOOTH_OPS) <= used, f"never tested at a kink: {set(NONSMOOTH_OPS) - used}"
