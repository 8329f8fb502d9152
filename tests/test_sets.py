"""Jacobian sets never merge elements that differ, and membership works entry by entry.

The reproduction of issue 8, item 2: in
``F(x) = (0.5 x0 + 1e6 x1, 0.5 x1 + 3e-7 relu(x0))`` at x = 0 the two choices of relu'(0) give
A blocks that differ only in an entry of size 3e-7 next to one of size 1e6. Rounding to 12
digits relative to the largest entry used to merge them: ``is_singleton`` was True, the
element relu'(0) = 1 was not a member, and the set was certified to contract with rho = 0.50
although that element alone has spectral radius 0.5 + sqrt(0.3) = 1.048.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import conservative as cv
from conservative.errors import InputError
from conservative.sets import JacobianSet


def _tiny_coupling_map():
    return cv.trace(lambda x, t: cv.stack([0.5 * x[0] + 1e6 * x[1],
                                           0.5 * x[1] + 3e-7 * cv.relu(x[0])]), (2,), ())


@pytest.mark.parametrize("hull", [True, False])
def test_tiny_difference_is_a_second_element(hull):
    js = _tiny_coupling_map().jacobian(np.zeros(2), 0.0, hull=hull)
    assert not js.is_singleton
    verts = js.vertices
    assert len(verts) == 2
    A1 = np.array([[0.5, 1e6, 0.0], [3e-7, 0.5, 0.0]])
    assert any(np.array_equal(v, A1) for v in verts)
    assert js.contains(A1, atol=0.0) and js.contains(js.select([0]), atol=0.0)
    half = (A1 + js.select([0])) / 2
    assert js.contains(half) == hull                 # only the hull holds the mix
    # a matrix off both elements in the small entry, by far less than 1e-9 * 1e6
    off = A1.copy()
    off[1, 0] = 1e-4
    assert not js.contains(off)


def test_tiny_difference_is_not_certified():
    F = _tiny_coupling_map()
    cert = cv.certify_contraction(F, theta=0.0, x=np.zeros(2))
    assert not cert.certified
    # the element relu'(0) = 1 alone: (0.5 - l)^2 = 1e6 * 3e-7, so rho = 0.5 + sqrt(0.3)
    assert cert.lower == pytest.approx(0.5 + math.sqrt(1e6 * 3e-7), rel=1e-12)
    # and it is a member of the set with that spectral radius (checked in rationals: the
    # characteristic polynomial at 1 is negative, so a real eigenvalue exceeds 1)
    A1 = F.jacobian(np.zeros(2), 0.0, hull=False).A.vertices
    q = [[Fraction(float(v)) for v in row] for row in A1[int(np.argmax(
        np.abs(np.linalg.eigvals(A1)).max(axis=1)))]]
    tr, det = q[0][0] + q[1][1], q[0][0] * q[1][1] - q[0][1] * q[1][0]
    assert 1 - tr + det < 0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(gap_exp=st.integers(min_value=-16, max_value=-10), entry=st.integers(0, 3),
       big=st.sampled_from([1.0, 1e6, 1e12]))
def test_from_matrices_keeps_near_duplicates(gap_exp, entry, big):
    base = np.array([[0.5, big], [0.25, 0.5]])
    other = base.copy()
    other.flat[entry] += max(abs(other.flat[entry]), 1.0) * 10.0 ** gap_exp * 4
    distinct = not np.array_equal(base, other)
    js = JacobianSet.from_matrices([base, other, base], hull=False)
    assert len(js.vertices) == (2 if distinct else 1)
    assert js.is_singleton == (not distinct)
    for hull in (True, False):
        s = JacobianSet.from_matrices([base, other], hull=hull)
        assert s.contains(base, atol=0.0) and s.contains(other, atol=0.0)


def test_signed_zeros_are_one_element():
    js = JacobianSet.from_matrices([[[0.0, 1.0]], [[-0.0, 1.0]]], hull=False)
    assert js.is_singleton and len(js.vertices) == 1


def _wide_scale_relu_layer(k=17):
    """0.5 x + D relu(x) + small couplings, 2^k choices: the MILP / affine LP paths."""
    scales = np.logspace(-7, 6, k)
    W = np.triu(np.full((k, k), 1e-3), 1)
    return cv.trace(lambda x, t: 0.5 * x + scales * cv.relu(x) + W @ x + t, (k,), ()), scales


@pytest.mark.parametrize("hull", [True, False])
def test_factored_membership_at_each_entry_scale(hull):
    F, scales = _wide_scale_relu_layer()
    js = F.jacobian(np.zeros(len(scales)), 0.0, hull=hull)
    assert js.n_selections == 2 ** len(scales)
    rng = np.random.default_rng(0)
    for _ in range(3):
        choice = rng.integers(0, 2, len(scales))
        M = js.select(choice)
        assert js.contains(M, atol=0.0)
        # flip the smallest coordinate's choice halfway: a hull member, not a finite one
        half = M.copy()
        half[0, 0] = 0.5 + scales[0] / 2
        assert js.contains(half) == hull
        # outside the box [0.5, 0.5 + scale] in the smallest entry, by 30 % of its scale
        out = M.copy()
        out[0, 0] = 0.5 + 1.3 * scales[0]
        assert not js.contains(out)


@pytest.mark.parametrize("atol", [float("nan"), -1.0, float("inf"), True, "1e-9", None])
def test_contains_refuses_bad_atol(atol):
    js = JacobianSet.from_matrices([[[0.0]], [[1.0]]])
    with pytest.raises(InputError, match="JacobianSet.contains: received atol="):
        js.contains([[0.5]], atol=atol)


@pytest.mark.parametrize("size", [-1, 2.5, True, "3"])
def test_sample_refuses_bad_size(size):
    js = JacobianSet.from_matrices([[[0.0]], [[1.0]]])
    with pytest.raises(InputError, match="JacobianSet.sample: received size="):
        js.sample(size)


def test_sample_zero_and_members():
    js = JacobianSet.from_matrices([[[0.0, 1e6]], [[3e-7, 1e6]]], hull=True)
    assert js.sample(0, rng=0).shape == (0, 1, 2)
    for M in js.sample(20, rng=1):
        assert js.contains(M, atol=0.0)


@pytest.mark.parametrize("hull", ["no", 1, None])
def test_hull_must_be_a_bool(hull):
    F = _tiny_coupling_map()
    with pytest.raises(InputError, match="Map.jacobian: received hull="):
        F.jacobian(np.zeros(2), 0.0, hull=hull)
    with pytest.raises(InputError, match="received hull="):
        JacobianSet.from_matrices([[[0.0]]], hull=hull)
