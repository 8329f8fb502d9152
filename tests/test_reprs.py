"""Summaries of JacobianSet, IntervalMatrix and Map: a repr of at most 8 lines that says what
matters, the same content as an HTML table for Jupyter, and to_dict() as plain JSON data."""

import json

import numpy as np
import pytest

import conservative as cv


def _objects():
    X, y = cv.datasets.lasso_small()
    lasso = cv.algorithms.forward_backward_lasso(X, y)
    lam_max = float(np.max(np.abs(X.T @ y)))
    F = cv.trace(lambda x, t: cv.relu(x) - cv.relu(-x) + t, (2,), ())
    big = cv.trace(lambda x, t: cv.relu(x) * t, (300,), ())
    return {
        "set at a kink": (F.jacobian(np.zeros(2), 0.0), ["convex hull", "2 x 3", "4 kink",
                                                          "16 combinations", "affine"]),
        "finite set": (F.jacobian(np.zeros(2), 0.0, hull=False), ["finite set"]),
        "single matrix": (F.jacobian(np.ones(2), 0.0), ["a single 2 x 3 matrix", "matrix"]),
        "lasso set": (lasso.jacobian(np.zeros(8), lam_max), ["8 x 9", "kink choice"]),
        "large set": (big.jacobian(np.zeros(300), 1.0), ["300 x 301", "300 kink choice(s)"]),
        "enclosure": (F.enclose((-np.ones(2), np.ones(2)), 0.0), ["IntervalMatrix(shape=(2, 3)",
                                                                  "max_width=", "lo=", "hi="]),
        "large enclosure": (big.enclose((-np.ones(300), np.ones(300)), (0.5, 1.0)),
                            ["shape=(300, 301)", "exact", "widest"]),
        "map": (F, ["Map(state_shape=(2,)", "operations", "relu (2)", "test_reprs.py"]),
        "zoo map": (lasso, ["AlgorithmMap(forward-backward (Lasso)", "soft_threshold (1)"]),
    }


# "large set": its repr takes seconds (the bounding box of 300 kink choices), a slow case
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow)
                                  if name == "large set" else name for name in _objects()])
def test_repr_is_short_and_says_what_matters(name):
    obj, words = _objects()[name]
    text = repr(obj)
    assert len(text.splitlines()) <= 8, text
    assert max(len(line) for line in text.splitlines()) <= 120, text
    for word in words:
        assert word in text, (word, text)
    table = obj._repr_html_()
    assert table.startswith("<table") and table.endswith("</table>")
    for line in text.splitlines()[1:]:                      # every row is in the table too
        label = line.split()[0]
        assert label in table, (label, table)
    json.dumps(obj.to_dict())                               # plain data


def test_to_dict_contents():
    F = cv.trace(lambda x, t: cv.relu(x) - cv.relu(-x) + t, (2,), ())
    d = F.jacobian(np.zeros(2), 0.0).to_dict()
    assert d["shape"] == [2, 3] and d["hull"] and not d["singleton"]
    assert d["n_slots"] == 4 and d["n_selections"] == 16 and d["structure"] == "affine"
    assert d["lower"] == [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    assert d["upper"] == [[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]]
    M = F.enclose((-np.ones(2), np.ones(2)), 0.0).to_dict()
    assert M["shape"] == [2, 3] and M["lo"][0][0] == 0.0 and M["hi"][0][0] == 2.0
    m = F.to_dict()
    assert m == {"state_shape": [2], "param_shape": [], "n": 2, "m": 1, "operations": 6,
                 "nonsmooth": {"relu": 2}, "smooth": {"neg": 1, "sub": 1, "broadcast_to": 1,
                                                      "add": 1}}
    # str stays one line (it is used inside error messages)
    assert "\n" not in str(F.jacobian(np.zeros(2), 0.0))
