"""Odd input to every public call: a result or a ConservativeError, never a bare exception.

Each argument of each call below is replaced, one at a time, by values a user may pass by
mistake (NaN, infinities, negative or fractional counts, bool, complex, strings, None, objects,
huge and subnormal numbers, empty and ragged lists, integers beyond float64, arrays of the
wrong kind). Found by this sweep and fixed (issue 8): ragged lists at every boundary
conversion, ``max_length=2.5``, ``attempts=2.5``, ``atol=nan``, ``sample(-1)``, ``hull="no"``,
``J0`` of the wrong shape in ``cv.fpad``, unchecked ``tol``/``max_steps`` of ``fixed_point``
and ``fpad_vjp``, ``merge``/``max_points`` of ``piggyback_sets``, a non-sequence
``selection``, the seed of ``JacobianSet.sample``, ``select`` with non-integer choices,
integers beyond float64 in every real option, constant-only ``cv.linalg.solve`` shapes,
``Counterexample.run(2.5)``, ``spurious_relu_gradient(alpha=1e308)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import conservative as cv

ODD = {
    "nan": float("nan"), "inf": float("inf"), "neg": -1, "zero": 0, "frac": 2.5, "bool": True,
    "complex": 1 + 2j, "str": "abc", "none": None, "obj": object(), "huge": 1e308,
    "subnormal": 5e-324, "empty": [], "ragged": [[1, 2], [3]], "arr0": np.zeros((0,)),
    "arr_nan": np.array([np.nan, 1.0]), "bigint": 10 ** 400, "dict": {},
    "arr_obj": np.array([1, None], dtype=object), "arr_bool": np.array([True, False]),
}


def _calls():
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + t, (2,), ())
    G = cv.trace(lambda x, t: 0.5 * x + t[0], (), (1,))
    js = cv.JacobianSet.from_matrices([[[0.0]], [[1.0]]])
    quick = {"time_limit": 1.0}
    return {
        "Map.__call__": (lambda a: F(*a), [np.zeros(2), 0.0]),
        "Map.jacobian": (lambda a: F.jacobian(a[0], a[1], hull=a[2], tol=a[3]),
                         [np.zeros(2), 0.0, True, 0.0]),
        "Map.enclose": (lambda a: F.enclose(a[0], a[1]), [(np.zeros(2), np.ones(2)), (0.0, 0.0)]),
        "cv.iterate": (lambda a: cv.iterate(F, a[0], a[1], a[2]), [np.zeros(2), 0.0, 3]),
        "cv.fixed_point": (lambda a: cv.fixed_point(F, a[0], a[1], tol=a[2], max_steps=a[3]),
                           [np.zeros(2), 0.0, 1e-12, 200]),
        "cv.piggyback": (lambda a: cv.piggyback(F, a[0], a[1], a[2], J0=a[3], selection=a[4]),
                         [np.zeros(2), 0.0, 3, None, "default"]),
        "cv.piggyback_sets": (lambda a: cv.piggyback_sets(F, a[0], a[1], a[2], merge=a[3],
                                                          max_points=a[4]),
                              [np.zeros(2), 0.0, 2, 1e-12, 1000]),
        "cv.fpad": (lambda a: cv.fpad(G, a[0], a[1], a[2], J0=a[3]), [[1.0], 2.0, 3, None]),
        "cv.fpad_vjp": (lambda a: cv.fpad_vjp(G, a[0], a[1], a[2], tol=a[3], max_steps=a[4]),
                        [[1.0], 2.0, 1.0, 1e-12, 100]),
        "cv.implicit_jacobian": (lambda a: cv.implicit_jacobian(G, a[0], a[1], hull=a[2]),
                                 [[1.0], 2.0, True]),
        "cv.jsr": (lambda a: cv.jsr(a[0], tol=a[1], max_length=a[2], max_nodes=a[3], **quick),
                   [[[[0.5, 1.0], [0.0, 0.5]]], 1e-6, 6, 100]),
        "cv.certify_contraction": (lambda a: cv.certify_contraction(a[0], tol=a[1], **quick),
                                   [[[[0.5, 1.0], [0.0, 0.5]]], 1e-4]),
        "cv.certify_fixed_point": (lambda a: cv.certify_fixed_point(G, a[0], a[1], radius=a[2],
                                                                    attempts=a[3]),
                                   [[1.0], 2.0, None, 2]),
        "JacobianSet.contains": (lambda a: js.contains(a[0], atol=a[1]), [[[0.5]], 1e-9]),
        "JacobianSet.sample": (lambda a: js.sample(a[0], rng=a[1]), [3, 0]),
        "JacobianSet.select": (lambda a: F.jacobian(np.zeros(2), 0.0).select(a[0]), [[0, 0]]),
        "cv.Interval": (lambda a: cv.Interval(a[0], a[1]), [0.0, 1.0]),
        "cv.linalg.solve": (lambda a: cv.linalg.solve(a[0], a[1]), [np.eye(2), np.ones(2)]),
        "heavy_ball_matrix": (lambda a: cv.examples.heavy_ball_matrix(*a), [0.25, 0.25, 1.0]),
        "spurious_relu_gradient": (lambda a: cv.examples.spurious_relu_gradient(*a), [0.5, 5]),
    }


CALLS = _calls()
CASES = [(name, pos) for name, (_, args) in CALLS.items() for pos in range(len(args))]


@pytest.mark.parametrize("name, pos", CASES, ids=[f"{n}-arg{p}" for n, p in CASES])
def test_odd_input_is_a_result_or_a_named_error(name, pos):
    fn, args = CALLS[name]
    leaked = []
    for label, value in ODD.items():
        a = list(args)
        a[pos] = value
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(a)
        except cv.ConservativeError:
            pass
        except Exception as exc:  # noqa: BLE001 -- the point of the test
            leaked.append(f"{label}: {type(exc).__name__}: {str(exc)[:80]}")
    assert not leaked, "\n".join(leaked)
