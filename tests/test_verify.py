"""Rigorous certification at the exact fixed point."""

import numpy as np

import conservative as cv


def test_lasso_fixed_point_is_located_and_certified():
    X, y = cv.datasets.lasso_small()
    F = cv.algorithms.forward_backward_lasso(X, y)
    lam = float(np.max(np.abs(X.T @ y)))          # w = 0 sits exactly on a kink
    approx = np.full(8, 1e-7)                      # a deliberately inexact fixed point
    res = cv.certify_fixed_point(F, lam, approx)
    assert res.certified and res.certificate.verified == "exact"
    lo, hi = res.x_box
    assert np.all(lo <= 0) and np.all(0 <= hi)     # the exact fixed point w = 0 is inside
    for V in F.jacobian(np.zeros(8), lam, hull=False).vertices:
        assert res.jacobian.contains(V)            # both pieces at the kink are covered
    A = F.jacobian(np.zeros(8), lam, hull=False).A.vertices
    P, rho = res.certificate.P, res.certificate.rho
    for Ai in A:                                   # independent check of the norm bound
        assert np.linalg.eigvalsh(rho ** 2 * P - Ai.T @ P @ Ai).min() >= -1e-12
    assert "certified" in str(res)


def test_divergent_switching_is_not_certified():
    ce = cv.examples.momentum_divergence()
    res = cv.certify_fixed_point(ce.map, ce.theta, ce.x0, attempts=3)
    assert not res.certified and res.reason
    assert "not certified" in str(res)
