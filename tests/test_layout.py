"""The layout of docs/architecture.md, checked: no import cycles between modules, every
subpackage says its job, no module much past 400 lines, and one way out (no module but the
CLI's handler ends the process). The layer arrows themselves are checked by ``lint-imports``
(.importlinter, run by ``make lint``)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "fakemta")
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_import_cycles() -> None:
    graph = grimp.build_graph(*PACKAGES)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(imported, module):
                cycles.append(f"{module} -> {imported} -> ... -> {module}")
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    "pkg", sorted(p.parent.name for p in (ROOT / "bench").glob("*/__init__.py"))
)
def test_every_subpackage_says_its_job(pkg: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "bench" / pkg / "__init__.py").read_text()))
    assert doc and len(doc) > 40, f"bench/{pkg}/__init__.py needs a docstring saying its job"


def test_modules_stay_small() -> None:
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not big, "split these (one job per module):\n" + "\n".join(big)


def test_only_the_cli_handler_exits() -> None:
    offenders = []
    for p in _modules():
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and node.attr in ("exit", "_exit"):
                if isinstance(node.value, ast.Name) and node.value.id in ("sys", "os"):
                    name = f"{node.value.id}.{node.attr}"
            elif isinstance(node, ast.Name) and node.id == "SystemExit":
                name = "SystemExit"
            if name:
                offenders.append(f"{p.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not offenders, "exit through bench.cli.handler only:\n" + "\n".join(offenders)


def test_every_exclusive_entry_names_a_real_test() -> None:
    """A stale entry in tests/conftest.py EXCLUSIVE would let a timing test run in parallel."""
    from tests.conftest import EXCLUSIVE

    for entry in EXCLUSIVE:
        path, _, name = entry.partition("::")
        file = ROOT / path
        assert file.is_file(), entry
        if name:
            assert f"def {name}(" in file.read_text(), entry
