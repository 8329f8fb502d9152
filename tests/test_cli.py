"""The command line."""

import json

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
