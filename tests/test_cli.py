"""The command line."""

import json
import warnings

import numpy as np
import pytest

from conservative.cli import main


def test_demo_runs_and_explains(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "soft_threshold" in out and "kink" in out
    assert "single classical Jacobian" in out and "2 distinct elements" in out
    assert "certified = True" in out and "final check: exact" in out
    assert "attractor" in out and "Schur stable" in out and "refuses" in out
    for name in ("convergence.png", "attractor.png", "momentum.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 10_000


def test_bad_file_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([[1.0, 2.0]]))
    pytest.importorskip("conservative.jsr")
    assert main(["jsr", str(bad)]) == 2
    assert "conservative jsr" in capsys.readouterr().err


# --- issue 8: errors are one clear line (and JSON with --json), no leaked warnings ----------


@pytest.mark.parametrize("content, expect", [
    ([[[1.0, 2.0], [3.0]]], "unequal lengths"),
    ([[[1e308, 1e308], [1e308, 1e308]]], "beyond float64"),
    ({"matrices": "abc"}, "pass real numbers"),
    ({"other": []}, "without a 'matrices' key"),
    ("not json at all", "is not valid JSON"),
])
def test_errors_are_json_on_stdout_with_json(capsys, tmp_path, content, expect):
    path = tmp_path / "m.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # a leaked RuntimeWarning fails
        assert main(["jsr", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and expect in captured.err
    payload = json.loads(captured.out)
    assert payload["command"] == "jsr" and expect in payload["message"]
    assert payload["error"] in {"ShapeError", "NonFiniteError", "InputError", "InputFileError"}


def test_missing_file_is_one_line(capsys, tmp_path):
    assert main(["certify", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err


def test_near_overflow_certify_is_a_clear_refusal(capsys, tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps([[[1e308, 1e308], [1e308, 1e308]]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["certify", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["certified"] is False and "beyond the float64 range" in out["reason"]


def test_near_overflow_jsr_gives_a_true_bracket(capsys, tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps([[[1.7e308, 0.0], [0.0, 0.5]]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["jsr", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lower"] <= 1.7e308 <= out["upper"]
