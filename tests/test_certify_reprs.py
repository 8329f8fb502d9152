"""Summaries of the certify results (Certificate, FixedPointCertificate, RegionCertificate,
JSRResult, Counterexample): a repr of at most 8 lines that says what matters (certified or not,
rho, the norm family, the verification, the word; never the matrix P), the same rows as an HTML
table, and ``to_dict()`` as plain JSON data. Counterexamples run long enough to be seen."""

import html
import json

import numpy as np
import pytest

import conservative as cv

GOLDEN = [[[1.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]]]
GRIPENBERG = [[[0.6, 0.0], [0.2, 0.6]], [[0.6, -0.6], [0.0, -0.2]]]


def _check_summary(obj, words, *, forbidden=()):
    text = repr(obj)
    lines = text.splitlines()
    assert 1 <= len(lines) <= 8, text
    assert max(len(line) for line in lines) <= 130, text
    for word in words:
        assert word in text, (word, text)
    for word in forbidden:
        assert word not in text, (word, text)
    table = obj._repr_html_()
    assert table.startswith("<table") and table.endswith("</table>")
    assert table.count("<tr>") == len(lines) - 1                 # one table row per line
    assert html.escape(lines[0]) in table                         # the title is the caption
    for line in lines[1:]:
        label = line.strip().split("  ")[0]
        assert f">{html.escape(label)}</th>" in table, (label, table)
    json.dumps(obj.to_dict())
    return text


def test_certificate_certified_and_refused():
    cert = cv.certify_contraction(np.array([[[0.5, 1.0], [0.0, 0.5]]]))
    assert cert.certified and cert.P is not None
    text = _check_summary(cert, ["Certificate: certified", f"rho = {cert.rho:.4g} < 1",
                                 cert.family, "verified", "exact", "JSR lower bound"],
                          forbidden=["P =", "array("])
    assert cert.to_dict()["P"] == cert.P.tolist()                # the full data stays there
    refused = cv.certify_contraction(GOLDEN)
    text = _check_summary(refused, ["Certificate: NOT certified", "float", "word [0, 1]",
                                    "1.618", "reason"])
    assert "rho =" not in text.splitlines()[0]


def test_certificate_of_a_large_map_stays_short():
    rng = np.random.default_rng(0)
    n = 60
    W = rng.normal(size=(n, n))
    W *= 0.9 / np.linalg.norm(W, 2)
    b = rng.normal(size=n)
    F = cv.trace(lambda x, t: cv.relu(W @ x + b + t), (n,), ())
    x = cv.fixed_point(F, np.zeros(n), 0.0, tol=1e-14).x
    cert = cv.certify_contraction(F, 0.0, x)
    assert cert.certified
    _check_summary(cert, ["certified", "interval" if cert.verified == "interval" else "exact",
                          "notes"])


def test_fixed_point_certificate():
    F = cv.trace(lambda x, t: 0.5 * cv.relu(x) + t, (), ())
    res = cv.certify_fixed_point(F, 1.0, 2.0 + 1e-13)
    assert res.certified
    _check_summary(res, ["FixedPointCertificate: certified", "proved box", res.certificate.family,
                         "verified", "JSR lower bound"])
    G = cv.trace(lambda x, t: 2.0 * x + t, (), ())             # x̄ = -1 repels
    bad = cv.certify_fixed_point(G, 1.0, -1.0)
    assert not bad.certified
    _check_summary(bad, ["FixedPointCertificate: NOT certified", "reason"])


def test_jsr_result():
    res = cv.jsr(GRIPENBERG)
    text = _check_summary(res, ["JSRResult: JSR in [0.6596789", "13 letters", "relative gap",
                                "upper bound", "verified"])
    assert str(res.upper_verified) in text
    d = res.to_dict()
    assert len(d["word"]) == 13 and d["lower"] <= 0.6596924 and d["upper"] >= 0.6596789


def test_region_certificate():
    X, y = cv.datasets.lasso_small()
    F = cv.algorithms.forward_backward_lasso(X, y)
    reg = cv.certify_region(F, (np.array(4.0), np.array(6.0)))
    assert reg.certified and reg.verified in ("exact", "interval")
    _check_summary(reg, ["RegionCertificate: certified on the whole box", "100.0%", "rho",
                         str(reg.verified), "refused", "0 with a divergent word"])
    assert reg.to_dict()["verified"] == str(reg.verified)
    HB = cv.examples.heavy_ball_step_sizes(1.0, 9.0)
    part = cv.certify_region(HB, (np.array([0.2, 0.2]), np.array([0.3, 0.3])), max_boxes=8,
                             progress=False)
    assert not part.certified and part.refused
    text = _check_summary(part, ["RegionCertificate: NOT certified", "of the box is",
                                 "stopped", "max_boxes=8"])
    if any(w is not None for *_, w in part.refused):
        assert "e.g. [" in text
    if not part.leaves:
        assert part.verified == "float"


def test_counterexample_summary_and_length():
    ce = cv.examples.momentum_divergence()
    _check_summary(ce, ["Counterexample: iterates converge, derivatives diverge", "growth",
                        "Schur stable", "word", f"||J_{ce.steps}||"])
    assert np.linalg.norm(ce.run()[1][-1]) >= 1e6


@pytest.mark.parametrize("make", [
    lambda: cv.examples.momentum_divergence(),
    lambda: cv.examples.find_momentum_counterexample(0),
    lambda: cv.examples.spurious_relu_gradient(),
], ids=["built-in", "generated", "relu"])
def test_counterexamples_run_until_the_derivative_norm_reaches_1e6(make):
    ce = make()
    _, Js = cv.piggyback(ce.map, ce.x0, ce.theta, ce.steps, selection=ce.selection)
    assert np.linalg.norm(Js[-1]) >= 1e6                      # ||J_steps|| >= 1e6
    assert ce.measured["final_norm"] >= 1e6
    assert len(repr(ce).splitlines()) <= 8


def test_found_counterexample_reaches_1e6():
    def grad(x, t):
        d = x - t[0]
        return cv.where(d > 0, 9.0 * d, 1.0 * d)
    F = cv.algorithms.heavy_ball(grad, 0.25, 0.25, 1)
    ce = cv.find_counterexample(F, [0.0], np.zeros(2))
    _, Js = cv.piggyback(F, ce.x0, ce.theta, ce.steps, selection=ce.selection)
    assert np.linalg.norm(Js[-1]) >= 1e6
    _check_summary(ce, ["Counterexample", "growth 1.20711", "word", "[0, 1]"])
