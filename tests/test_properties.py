"""Hypothesis properties of conservative Jacobian sets of random programs.

Soundness and consistency, checked on random programs from ``tests/_programs.py`` at points on a
dyadic grid (where kinks are exactly active) or, with ``tol > 0``, near kinks:

* elements of the finite set (``hull=False``) are members of the hull (``hull=True``);
* samples of the hull are members of the hull and lie in its bounding box;
* the factored affine structure and lazy assembly describe the same set;
* the default selection is an element of the finite set, and ``Map.jvp`` pushes tangents
  through exactly that element;
* away from kinks the default is the classical Jacobian (central finite differences);
* matrices outside the bounding box are refused by ``contains``;
* batched evaluation equals the loop of unbatched evaluations.

The profile is deterministic (``derandomize=True``, no example database).
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conservative.evaluate import evaluate
from conservative.jacobian import jacobian_set
from conservative.sets import AffineGenerator
from _programs import random_program

MAX_SELECTIONS = 2048

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=30,
                         suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.filter_too_much])

seeds = st.integers(min_value=0, max_value=299)
point_seeds = st.integers(min_value=0, max_value=2**16)
tols = st.sampled_from([0.0, 0.0, 0.3])


@functools.lru_cache(maxsize=None)
def _program(seed: int, grid: bool):
    return random_program(seed, grid=grid)


def _kink_case(seed, point_seed, tol):
    """A grid program, a grid point and its (x, theta, F, hull set, finite set)."""
    prog = _program(seed, True)
    F = prog.map
    x, theta = prog.grid_point(np.random.default_rng(point_seed))
    js_h = F.jacobian(x, theta, hull=True, tol=tol)
    assume(js_h.n_selections <= MAX_SELECTIONS)
    js_f = F.jacobian(x, theta, hull=False, tol=tol)
    return prog, F, x, theta, js_h, js_f


def _scale(M):
    return max(1.0, float(np.max(np.abs(M))))


def _same_sets(P, Q, atol):
    """Each matrix of P is within atol of one of Q and conversely."""
    d = np.max(np.abs(P[:, None] - Q[None, :]), axis=(2, 3))
    return bool(np.all(d.min(axis=1) <= atol) and np.all(d.min(axis=0) <= atol))


# --- set membership ------------------------------------------------------------------------------

@DETERMINISTIC
@given(seed=seeds, point_seed=point_seeds, tol=tols)
def test_selections_of_the_finite_set_are_members_of_the_hull(seed, point_seed, tol):
    prog, F, x, theta, js_h, js_f = _kink_case(seed, point_seed, tol)
    picks = js_f.sample(6, rng=point_seed)
    verts = js_f.vertices
    for M in np.concatenate([picks, verts[:32]]):
        atol = 1e-9 * _scale(M)
        assert js_f.contains(M, atol=atol)
        assert js_h.contains(M, atol=atol), f"{prog!r}\nat x={x}, theta={theta}"
    # the enumerated finite set is exactly the set of selections of the slots
    assert len(verts) <= js_f.n_selections
    assert js_f.n_selections == js_h.n_selections


@DETERMINISTIC
@given(seed=seeds, point_seed=point_seeds, tol=tols)
def test_samples_of_the_hull_lie_in_the_hull_and_its_box(seed, point_seed, tol):
    prog, F, x, theta, js_h, js_f = _kink_case(seed, point_seed, tol)
    lo, hi = js_h.bounding_box()
    verts = js_f.vertices
    # the box of the hull is the box of the finite set (computed here from the vertices)
    np.testing.assert_allclose(lo, verts.min(axis=0), atol=1e-12 * _scale(verts))
    np.testing.assert_allclose(hi, verts.max(axis=0), atol=1e-12 * _scale(verts))
    for M in js_h.sample(5, rng=point_seed):
        atol = 1e-9 * _scale(M)
        assert np.all(lo - atol <= M) and np.all(M <= hi + atol)
        assert js_h.contains(M, atol=atol), f"{prog!r}\nat x={x}, theta={theta}"


@DETERMINISTIC
@given(seed=seeds, point_seed=point_seeds, tol=tols, hull=st.booleans())
def test_affine_and_lazy_structures_give_the_same_set(seed, point_seed, tol, hull):
    prog, F, x, theta, js_h, js_f = _kink_case(seed, point_seed, tol)
    values = evaluate(F.program, np.asarray(x, float)[None], np.asarray(theta, float)[None],
                      call="t", keep=True)
    auto = jacobian_set(F.program, values, hull=hull, tol=tol, structure="auto")
    lazy = jacobian_set(F.program, values, hull=hull, tol=tol, structure="lazy")
    Va, Vl = auto.vertices, lazy.vertices
    atol = 1e-10 * _scale(Vl)
    assert _same_sets(Va, Vl, atol), f"{prog!r}\nat x={x}, theta={theta}, tol={tol}"
    for a, b in zip(auto.bounding_box(), lazy.bounding_box()):
        np.testing.assert_allclose(a, b, atol=atol)
    np.testing.assert_allclose(auto.default, lazy.default, atol=atol)
    assert auto.n_selections == lazy.n_selections
    # the Map's own set is the auto one
    assert _same_sets((js_h if hull else js_f).vertices, Va, atol)


def test_structure_comparison_covers_affine_sets():
    """Guard: enough of the compared sets are genuinely affine (not lazily assembled twice)."""
    affine = 0
    for seed in range(60):
        prog = _program(seed, True)
        F = prog.map
        x, theta = prog.grid_point(np.random.default_rng(seed))
        js = F.jacobian(x, theta, tol=0.3)
        affine += isinstance(js._gen, AffineGenerator) and js.n_selections > 1
    assert affine >= 10


# --- the default selection -----------------------------------------------------------------------

@DETERMINISTIC
@given(seed=seeds, point_seed=point_seeds, tol=tols)
def test_default_is_an_element_of_the_finite_set(seed, point_seed, tol):
    prog, F, x, theta, js_h, js_f = _kink_case(seed, point_seed, tol)
    D = js_f.default
    np.testing.assert_array_equal(D, js_h.default)
    atol = 1e-9 * _scale(D)
    assert js_f.contains(D, atol=atol)
    assert any(np.max(np.abs(V - D)) <= atol for V in js_f.vertices)
    np.testing.assert_allclose(D[:, :F.n], js_f.A.default, atol=0)
    np.testing.assert_allclose(D[:, F.n:], js_f.B.default, atol=0)


@DETERMINISTIC
@given(seed=seeds, point_seed=point_seeds, n_dirs=st.integers(1, 3),
       which=st.sampled_from(["both", "dx", "dtheta"]))
def test_jvp_is_the_default_times_the_tangent(seed, point_seed, n_dirs, which):
    prog = _program(seed, True)
    F = prog.map
    rng = np.random.default_rng(point_seed)
    x, theta = prog.grid_point(rng)
    D = F.jacobian(x, theta).default                   # tol = 0, as Map.jvp
    dx = rng.standard_normal(F.state_shape + (n_dirs,))
    dt = rng.standard_normal(F.param_shape + (n_dirs,))
    if which == "dx":
        stacked = np.vstack([dx.reshape(F.n, n_dirs), np.zeros((F.m, n_dirs))])
        value, tangent = F.jvp(x, theta, dx=dx)
    elif which == "dtheta":
        stacked = np.vstack([np.zeros((F.n, n_dirs)), dt.reshape(F.m, n_dirs)])
        value, tangent = F.jvp(x, theta, dtheta=dt)
    else:
        stacked = np.vstack([dx.reshape(F.n, n_dirs), dt.reshape(F.m, n_dirs)])
        value, tangent = F.jvp(x, theta, dx, dt)
    assert tangent.shape == F.state_shape + (n_dirs,)
    np.testing.assert_allclose(value, F(x, theta), rtol=0, atol=0)
    expected = D @ stacked
    np.testing.assert_allclose(tangent.reshape(F.n, n_dirs), expected, rtol=1e-12,
                               atol=1e-12 * _scale(expected), err_msg=repr(prog))


@DETERMINISTIC
@given(seed=seeds, point_seed=point_seeds)
def test_default_matches_central_differences_away_from_kinks(seed, point_seed):
    prog = _program(seed, False)
    rng = np.random.default_rng(point_seed)
    point = prog.smooth_point(rng, margin=1e-3, tries=50)
    assume(point is not None)
    F = prog.map
    x, theta = point
    js = F.jacobian(x, theta, hull=False)
    assert js.is_singleton
    h = 1e-6
    z = np.concatenate([np.ravel(x), np.ravel(theta)])
    n = F.n
    fd = np.empty((n, z.size))
    for j in range(z.size):
        e = np.zeros(z.size)
        e[j] = h
        zp, zm = z + e, z - e
        for zz in (zp, zm):        # the step must not cross a kink
            assume(prog.kink_margin(zz[:n].reshape(F.state_shape),
                                    zz[n:].reshape(F.param_shape)) > 5e-4)
        fp = F(zp[:n].reshape(F.state_shape), zp[n:].reshape(F.param_shape))
        fm = F(zm[:n].reshape(F.state_shape), zm[n:].reshape(F.param_shape))
        fd[:, j] = (np.ravel(fp) - np.ravel(fm)) / (2 * h)
    np.testing.assert_allclose(js.default, fd, rtol=1e-5, atol=1e-5 * _scale(fd),
                               err_msg=f"{prog!r}\nat x={x}, theta={theta}")


# --- membership refuses what is outside ----------------------------------------------------------

@DETERMINISTIC
@given(seed=seeds, point_seed=point_seeds, tol=tols, side=st.sampled_from(["lo", "hi"]),
       hull=st.booleans())
def test_contains_refuses_matrices_outside_the_bounding_box(seed, point_seed, tol, side, hull):
    prog, F, x, theta, js_h, js_f = _kink_case(seed, point_seed, tol)
    js = js_h if hull else js_f
    lo, hi = js.bounding_box()
    rng = np.random.default_rng(point_seed)
    M = np.array(js.sample(1, rng=rng)[0])
    i, j = rng.integers(M.shape[0]), rng.integers(M.shape[1])
    step = 1e-3 * (1.0 + abs(M[i, j]))
    M[i, j] = lo[i, j] - step if side == "lo" else hi[i, j] + step
    assert not js.contains(M), f"{prog!r}\nat x={x}, theta={theta}: {M} is outside the box"
    # ... while the unperturbed default is accepted, so the refusal is about the entry moved
    assert js.contains(js.default, atol=1e-9 * _scale(js.default))


# --- batched evaluation --------------------------------------------------------------------------

@DETERMINISTIC
@given(seed=seeds, point_seed=point_seeds, grid=st.booleans(),
       batch=st.sampled_from([(1,), (4,), (2, 3)]),
       theta_batch=st.sampled_from(["none", "full", "trailing"]))
def test_batched_evaluation_equals_the_loop(seed, point_seed, grid, batch, theta_batch):
    prog = _program(seed, grid)
    F = prog.map
    rng = np.random.default_rng(point_seed)
    xs = rng.standard_normal(batch + F.state_shape)
    tb = {"none": (), "full": batch, "trailing": batch[-1:]}[theta_batch]
    thetas = rng.standard_normal(tb + F.param_shape)
    out = F(xs, thetas)
    assert out.shape == batch + F.state_shape
    for idx in np.ndindex(*batch):
        theta = thetas[idx[len(idx) - len(tb):]] if tb else thetas
        single = F(xs[idx], theta)
        np.testing.assert_allclose(out[idx], single, rtol=1e-13, atol=1e-13 * _scale(single))
        # and the NumPy twin of the recipe computes the same value independently
        reference, _ = prog.numpy_value(xs[idx], theta)
        np.testing.assert_allclose(single, reference, rtol=1e-12, atol=1e-12 * _scale(single))
