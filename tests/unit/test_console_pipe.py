"""On a pipe a long phase is never silent for longer than PIPE_INTERVAL_S, progress lines carry the rate and an
ETA, nothing uses carriage returns, and the time of each phase is summed up at the end. The interval is set to a
fraction of a second here (production: 25 s, under the 30 s a log may stay silent)."""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from common import console


class _Timed(io.StringIO):
    """A pipe that remembers when each line arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []

    def write(self, s: str) -> int:
        for line in s.splitlines():
            if line.strip():
                self.lines.append((time.monotonic(), line))
        return super().write(s)

    def isatty(self) -> bool:
        return False


@pytest.fixture
def pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Timed]:
    out = _Timed()
    monkeypatch.setattr(console, "err_console", Console(file=out, highlight=False, soft_wrap=True))
    monkeypatch.setattr(console, "PIPE_INTERVAL_S", 0.4)
    monkeypatch.setattr(console, "_phases", [])
    monkeypatch.setattr(console, "_active", [])
    console.set_quiet(False)
    yield out


def test_a_silent_slow_phase_still_prints_a_line_every_interval(pipe: _Timed) -> None:
    start = time.monotonic()
    with console.phase("compression"):
        time.sleep(3.0)  # a slow step that prints nothing itself
    end = time.monotonic()
    beats = [(t, s) for t, s in pipe.lines if s.startswith("compression: still running")]
    assert len(beats) >= 5, pipe.lines
    stamps = [start] + [t for t, _ in beats] + [end]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # the bound is the interval plus the heartbeat's polling step (interval / 4) and scheduling slack
    assert max(gaps) < 0.4 + 0.1 + 0.6, gaps
    assert "elapsed" in beats[-1][1]
    assert "\r" not in pipe.getvalue()


def test_lines_from_the_phase_itself_reset_the_heartbeat(pipe: _Timed) -> None:
    with console.phase("grid"):
        for i in range(10):
            console.info(f"cell {i}: ok")
            time.sleep(0.1)  # a line every 0.1 s: no heartbeat needed
    assert not [s for _, s in pipe.lines if "still running" in s], pipe.lines


def test_training_progress_on_a_pipe_has_rate_and_eta_and_no_carriage_return(pipe: _Timed) -> None:
    with console.progress_task("train dense VGG16-FER", 40, scale=32, unit="img") as bar:
        for _ in range(40):
            time.sleep(0.05)
            bar.advance(1, loss="1.0")
    text = pipe.getvalue()
    progress = [s for _, s in pipe.lines if "ETA" in s]
    assert progress, text
    assert "/1,280 img (" in progress[0] and "img/s" in progress[0]
    assert len(progress) <= 2.0 / (0.8 * 0.4) + 1  # at most one line per 0.8 interval
    assert pipe.lines[-1][1].startswith("train dense VGG16-FER: done, 1,280 img in ")
    assert "\r" not in text


def test_inside_a_phase_slow_steps_give_one_progress_line_per_interval(pipe: _Timed) -> None:
    start = time.monotonic()
    with console.phase("training"), console.progress_task("train dense VGG16-FER", 10, scale=32, unit="img") as bar:
        for _ in range(10):
            time.sleep(0.3)  # steps shorter than the interval, but not by much (as training on 2 busy cores)
            bar.advance(1)
    lines = [(t, s) for t, s in pipe.lines if t <= pipe.lines[-1][0]]
    progress = [(t, s) for t, s in lines if "ETA" in s]
    assert progress, lines
    assert not [s for _, s in lines if "still running" in s]  # the heartbeat reports the task instead
    stamps = [start] + [t for t, _ in progress]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 0.4 + 0.1 + 0.6, gaps
    assert min(gaps) >= 0.4 - 0.05, gaps  # never more than one line per interval
    assert "\r" not in pipe.getvalue()


def test_phase_summary_names_each_phase_and_the_total(pipe: _Timed) -> None:
    with console.phase("data"):
        time.sleep(0.05)
    with console.phase("training"):
        time.sleep(0.1)
    names = [n for n, _ in console.phase_times()]
    assert names == ["data", "training"]
    assert console.phase_summary().startswith("time per phase: data 0 s, training 0 s (total ")


@pytest.mark.parametrize(("seconds", "text"), [(5, "5 s"), (65, "1 min 5 s"), (3725, "1 h 2 min")])
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert console.duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(3, "~10 s"), (44, "~40 s"), (430, "~7 min"), (9000, "~2.5 h")])
def test_estimates_are_rounded(seconds: float, text: str) -> None:
    assert console.about(seconds) == text
