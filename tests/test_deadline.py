"""The shared time budget of long calls and their progress bar (conservative._deadline)."""

import math
import time

import pytest

from conservative._deadline import Deadline, NoProgress, check_progress, progress_bar
from conservative.errors import InputError


def test_parts_never_outlive_the_parent():
    dl = Deadline(10.0)
    part = dl.part(0.3)
    assert part.at <= dl.at and part.at - time.monotonic() <= 3.0 + 1e-6
    assert part.describe() == dl.describe() == "time limit of 10 s"
    assert 0 < dl.time_limit() <= 10.0 and not dl.expired() and dl.fits(1.0)
    assert not dl.fits(11.0)


def test_no_limit():
    dl = Deadline.from_time_limit(None, call="demo")
    assert dl.remaining() == math.inf and dl.time_limit() is None and not dl.expired()
    assert dl.part(0.5).at == math.inf and dl.fits(1e9)


def test_an_expired_deadline_still_gives_a_positive_nested_limit():
    dl = Deadline(1e-6)
    time.sleep(1e-3)
    assert dl.expired() and dl.remaining() == 0.0 and not dl.fits(0.0)
    assert dl.time_limit() == 1e-3                  # public calls refuse time_limit=0


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "5", True, [1.0]])
def test_bad_time_limits_are_refused(bad):
    with pytest.raises(InputError, match="demo: received time_limit="):
        Deadline.from_time_limit(bad, call="demo")


def test_progress_flags():
    assert check_progress(None, call="demo") is None and check_progress(True, call="demo")
    with pytest.raises(InputError, match="demo: received progress="):
        check_progress("auto", call="demo")


def test_bar_only_when_asked_or_attached(capsys):
    with progress_bar(total=2, desc="demo", enabled=False) as bar:
        assert isinstance(bar, NoProgress)
    with progress_bar(total=2, desc="demo", enabled=None) as bar:   # pytest: no terminal
        assert isinstance(bar, NoProgress)
    with progress_bar(total=2, desc="demo-bar", enabled=True) as bar:
        bar.update()
        bar.set_postfix_str("half way")
        bar.update()
    assert "demo-bar" in capsys.readouterr().err
