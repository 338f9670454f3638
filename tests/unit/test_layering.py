"""The import rules of the architecture, read from the code's own AST (every import, also inside functions).

common/ is the ground floor; fer/ stands on it; backends/ reads artifacts and may use fer's model; compression/
writes artifacts; reports/ reads stored results; harness/ (CLI and orchestration) sits on top. Imports go one way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("common", "fer", "backends", "compression", "reports", "harness")
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "fer": {"common"},
    "backends": {"common", "fer"},
    "compression": {"common", "fer", "backends"},
    "reports": {"common"},
    "harness": set(OURS),
}


def imported_modules(path: Path) -> set[str]:
    """Every dotted module name `path` imports anywhere in its body (also inside functions, import_module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == \
                "import_module" and node.args and isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]  # importlib.import_module("pkg.mod") counts too
        found |= set(names)
    return found


def imported_packages(path: Path) -> set[str]:
    """Our top-level packages that `path` imports anywhere in its body."""
    return {n.split(".")[0] for n in imported_modules(path) if n.split(".")[0] in OURS}


def package_imports() -> dict[str, dict[str, set[str]]]:
    """{package: {file: packages it imports}} for every .py file of ours."""
    return {pkg: {str(f.relative_to(ROOT)): imported_packages(f) - {pkg} for f in sorted((ROOT / pkg).rglob("*.py"))}
            for pkg in OURS}


@pytest.mark.parametrize("pkg", OURS)
def test_imports_go_one_way(pkg: str) -> None:
    bad = {f: sorted(deps - ALLOWED[pkg]) for f, deps in package_imports()[pkg].items() if deps - ALLOWED[pkg]}
    assert not bad, f"{pkg}/ may import only {sorted(ALLOWED[pkg]) or 'nothing of ours'}; found {bad}"


def test_no_two_packages_import_each_other() -> None:
    edges = {(pkg, dep) for pkg, files in package_imports().items() for deps in files.values() for dep in deps}
    assert not {(a, b) for a, b in edges if (b, a) in edges}


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from harness.history.store import ResultsStore\n    import reports.tables\n"
                 "import importlib\nimportlib.import_module('backends.openvino.backend')\n", encoding="utf-8")
    assert imported_packages(f) == {"harness", "reports", "backends"}


# ---- the rooms inside harness/ (each room's __init__ docstring says the same in words)
ROOMS = ("cli", "measure", "orchestrate", "fleet", "history", "gate")
LOWER = {"common", "fer", "backends", "compression"}
ROOM_ALLOWED: dict[str, set[str]] = {
    "cli": set(OURS) | {f"harness.{r}" for r in ROOMS},  # only the CLI imports everything
    "measure": {"common", "fer", "backends"},
    "orchestrate": LOWER | {"harness.measure"},
    "fleet": LOWER | {"harness.measure"},  # not orchestrate: both build on measure (rows, settings), side by side
    "history": {"common"},
    "gate": {"common"},
}
MAX_TOP_LEVEL_MODULES = 6


def _dep_of(name: str) -> str | None:
    """`harness.measure.cell` -> `harness.measure`; `backends.x` -> `backends`; not ours -> None."""
    parts = name.split(".")
    if parts[0] == "harness":
        return ".".join(parts[:2]) if len(parts) > 1 else "harness"
    return parts[0] if parts[0] in OURS else None


def room_violations(root: Path) -> dict[str, list[str]]:
    """{file: [imports its room may not make]} for every file in the rooms of `root`/harness."""
    bad: dict[str, list[str]] = {}
    for room in ROOMS:
        for f in sorted((root / "harness" / room).rglob("*.py")):
            deps = {d for d in map(_dep_of, imported_modules(f)) if d} - {f"harness.{room}"}
            wrong = sorted(deps - ROOM_ALLOWED[room])
            if wrong:
                bad[str(f.relative_to(root))] = wrong
    return bad


def test_every_room_imports_only_what_it_may() -> None:
    bad = room_violations(ROOT)
    assert not bad, f"harness rooms import across their rules (see ROOM_ALLOWED): {bad}"


def test_a_planted_room_violation_is_found(tmp_path: Path) -> None:
    for room in ROOMS:
        (tmp_path / "harness" / room).mkdir(parents=True)
    (tmp_path / "harness" / "measure" / "x.py").write_text("from harness.history.store import ResultsStore\n")
    (tmp_path / "harness" / "gate" / "y.py").write_text("def f():\n    import harness.measure.cell\n")
    (tmp_path / "harness" / "fleet" / "w.py").write_text("def f():\n    from harness.orchestrate.runner import x\n")
    (tmp_path / "harness" / "cli" / "z.py").write_text("import harness.gate.regression\n")  # allowed
    assert room_violations(tmp_path) == {"harness/measure/x.py": ["harness.history"],
                                         "harness/gate/y.py": ["harness.measure"],
                                         "harness/fleet/w.py": ["harness.orchestrate"]}


def test_harness_top_level_is_rooms_not_modules() -> None:
    modules = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
    rooms = sorted(p.name for p in (ROOT / "harness").iterdir() if p.is_dir() and p.name != "__pycache__")
    assert rooms == sorted(ROOMS)


@pytest.mark.parametrize("room", ROOMS)
def test_every_room_says_what_it_owns(room: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "harness" / room / "__init__.py").read_text(encoding="utf-8")))
    assert doc and "import" in doc, f"harness/{room}/__init__.py needs a docstring: what it owns, what it may import"


def test_statistics_have_one_home() -> None:
    """No module outside common/stats defines the statistical routines the gate and the reports share."""
    shared = {"median_ci", "ratio_ci", "robust_cov", "bimodal", "e_divisive", "bootstrap_accuracy_ci",
              "two_proportion_pvalue", "mcnemar_pvalue", "order_statistic_ci", "order_statistic_level", "mcnemar",
              "change_points", "split_test", "isolated_outliers", "robust_spread", "pack_correct", "unpack_correct",
              "percentiles_over_processes", "mcnemar_min_pvalue"}
    defined = {}
    for f in ROOT.glob("*/**/*.py"):
        if f.is_relative_to(ROOT / "common" / "stats") or f.is_relative_to(ROOT / "tests") or ".venv" in f.parts:
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name in shared:
                defined[node.name] = str(f.relative_to(ROOT))
    assert not defined, f"statistics written outside common/stats: {defined}"
