"""The modes strip: slow processes are the ones drawn red, and a figure is drawn only when there is something."""

from __future__ import annotations

from reports.modes_figure import FAST_COLOUR, REFERENCE_COLOUR, SLOW_COLOUR, ModeStrip, modes_figure, strip_colours


def test_processes_above_the_threshold_are_slow() -> None:
    s = ModeStrip("openvino l1-int8", [0.112, 0.113, 0.18, 0.23, 0.111], fast_ms=0.112, threshold_ms=0.13)
    assert strip_colours(s) == [FAST_COLOUR, FAST_COLOUR, SLOW_COLOUR, SLOW_COLOUR, FAST_COLOUR]
    ref = ModeStrip("ref", [0.112, 0.2], fast_ms=0.112, threshold_ms=0.13, reference=True)
    assert strip_colours(ref) == [REFERENCE_COLOUR, REFERENCE_COLOUR]
    assert strip_colours(ModeStrip("no mix", [0.1, 0.3])) == [FAST_COLOUR, FAST_COLOUR]


def test_figure_only_when_a_cell_has_processes() -> None:
    assert modes_figure([]) is None
    assert modes_figure([ModeStrip("empty", [])]) is None
    png = modes_figure([ModeStrip("a", [0.1, 0.11, 0.2], 0.1, 0.12), ModeStrip("b", [0.3], None, None)])
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
