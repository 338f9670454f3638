"""CLI conventions a newcomer expects: --version, `--json` prints JSON on stdout, `--json-out PATH` writes a file,
the old `--json PATH` still writes it with a one-line deprecation notice, and piped status lines are not wrapped."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.cli._common import add_json_arguments, json_destinations


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("bench ") and out.split()[1][0].isdigit()


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_json_arguments(p)
    p.add_argument("--backend")
    return p.parse_args(argv)


def test_json_flag_means_stdout_and_json_out_means_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert json_destinations(_parse(["--json", "--backend", "openvino"])) == (True, None)
    assert json_destinations(_parse(["--json-out", "r.json"])) == (False, Path("r.json"))
    assert json_destinations(_parse([])) == (False, None)
    assert capsys.readouterr().err == ""


def test_old_json_path_still_writes_the_file_with_one_deprecation_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert json_destinations(_parse(["--json", "old.json"])) == (False, Path("old.json"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "deprecated" in err[0] and "--json-out" in err[0]


def test_compare_json_prints_the_comparison_on_stdout(tmp_path: Path, make_run, capsys) -> None:  # type: ignore[no-untyped-def]
    from harness.history.store import ResultsStore

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    with ResultsStore(url) as store:
        store.save_run(make_run("base"))
        store.save_run(make_run("cand"))
    code = main(["compare", "--store", url, "--baseline", "base", "--candidate", "cand", "--json",
                 "--allow-inconclusive"])  # two runs, no A/A history: inconclusive cells, allowed here
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out)  # stdout holds the JSON document and nothing else (no table)
    assert doc["candidate"] == "cand" and doc["baseline"] == ["base"] and doc["cells"]


def test_piped_status_lines_are_not_wrapped(tmp_path: Path) -> None:
    long = "x" * 300
    code = f"from common.console import info; info('{long}')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stderr.strip() == long
