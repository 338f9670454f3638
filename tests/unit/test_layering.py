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


def imported_packages(path: Path) -> set[str]:
    """Our top-level packages that `path` imports anywhere in its body."""
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
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in OURS}
    return found


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
    f.write_text("def f():\n    from harness.store import ResultsStore\n    import reports.tables\n"
                 "import importlib\nimportlib.import_module('backends.openvino.backend')\n", encoding="utf-8")
    assert imported_packages(f) == {"harness", "reports", "backends"}
