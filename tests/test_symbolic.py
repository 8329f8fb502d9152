"""sympy export against the numeric program and its Jacobian."""

import numpy as np
import sympy

import conservative as cv


def test_export_matches_values_and_smooth_jacobian():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(2, 2))
    F = cv.trace(lambda x, t: cv.relu(M @ x - t[0]) + cv.where(x > t[1], x - t[1], 0.0 * x)
                 + cv.clip(x, -1.0, 1.0) * cv.exp(x[0]) + cv.max(x) + cv.tanh(x) ** 3,
                 (2,), (2,))
    expr, x, t = cv.symbolic.to_sympy(F)
    syms = list(x) + list(t)
    f = sympy.lambdify(syms, expr.tolist(), "numpy")
    jac = sympy.Matrix(expr.tolist()).jacobian(syms)
    for _ in range(10):
        xv, tv = rng.normal(size=2), rng.normal(size=2)
        np.testing.assert_allclose(np.array(f(*xv, *tv), float), F(xv, tv), atol=1e-14)
        subs = dict(zip(syms, [*xv, *tv]))
        J = np.array(jac.subs(subs).evalf(), dtype=float)
        np.testing.assert_allclose(J, F.jacobian(xv, tv).default, atol=1e-12)


def test_rational_export_is_exact():
    F = cv.trace(lambda x, t: cv.soft_threshold(x - 0.25 * (x - 1.0), 0.5 * t), (), ())
    expr, x, t = cv.symbolic.to_sympy(F, rational=True)
    assert expr[()].subs({x[()]: 3, t[()]: 1}) == sympy.Rational(2)
    assert expr[()].subs({x[()]: sympy.Rational(1, 3), t[()]: 2}) == 0
