"""Independent re-checks of certificates, for the tests: python-flint's exact rational matrices
(fmpq_mat, leading principal minors) and exact Fractions, never conservative's own checks."""

from fractions import Fraction

import numpy as np
import pytest


def fq(a):
    """Exact rational matrix of a float array (python-flint)."""
    flint = pytest.importorskip("flint")
    a = np.atleast_2d(np.asarray(a, dtype=float))
    return flint.fmpq_mat(a.shape[0], a.shape[1],
                          [flint.fmpq(*Fraction(float(v)).as_integer_ratio()) for v in a.ravel()])


def positive_definite(M) -> bool:
    """Leading principal minors of an fmpq_mat are all positive."""
    flint = pytest.importorskip("flint")
    n = M.nrows()
    return all(flint.fmpq_mat(k, k, [M[i, j] for i in range(k) for j in range(k)]).det() > 0
               for k in range(1, n + 1))


def quadratic_bound_holds(mats, P, rho) -> bool:
    """Exactly: P ≻ 0 and rho^2 P - A^T P A ≻ 0 for each given float matrix (strict, which the
    certificates' margins give)."""
    flint = pytest.importorskip("flint")
    Pq = fq(P)
    if not positive_definite(Pq):
        return False
    r = Fraction(float(rho))
    g2 = flint.fmpq(*(r * r).as_integer_ratio())
    for a in mats:
        A = fq(a)
        if not positive_definite(Pq * g2 - A.transpose() * Pq * A):
            return False
    return True


def weighted_infinity_bound_holds(mats, w, rho) -> bool:
    """Exactly: max_i sum_j |A_ij| w_j / w_i <= rho for each matrix."""
    wq = [Fraction(float(v)) for v in w]
    r = Fraction(float(rho))
    for a in np.asarray(mats):
        for i, row in enumerate(a):
            if sum(abs(Fraction(float(v))) * wq[j] for j, v in enumerate(row) if v) > r * wq[i]:
                return False
    return True


def certificate_holds(mats, cert) -> bool:
    """Re-check a certificate's bound on given matrices (of the full space) exactly."""
    if cert.family == "weighted infinity":
        return weighted_infinity_bound_holds(mats, cert.norm.w, cert.rho)
    assert cert.P is not None, f"no independent check for the family {cert.family}"
    return quadratic_bound_holds(mats, cert.P, cert.rho)
