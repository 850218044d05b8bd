"""The library packages never import the application layer (`trainlab.run`), nor what sits on
top of it (`trainlab.study`, `trainlab.cli`): each is imported alone in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import trainlab

PACKAGE = Path(trainlab.__file__).parent
LIBRARY = (
    "data", "nn", "init", "optim", "schedules", "train", "stack", "diagnose", "landscape", "report",
)  # fmt: skip
ROOT_LEAVES = ("durable", "names")
APP = ("trainlab.run", "trainlab.study", "trainlab.cli")


def _modules_of(package: str) -> list[str]:
    """Every module of one library package, as dotted names."""
    root = PACKAGE / package
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        found.append(".".join(("trainlab", *parts)))
    return found


@pytest.mark.parametrize("package", LIBRARY + ROOT_LEAVES)
def test_library_package_does_not_load_the_app_layer(package: str) -> None:
    modules = _modules_of(package) if (PACKAGE / package).is_dir() else [f"trainlab.{package}"]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({APP!r}))\n"
        "print('\\n'.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) >= 1
    assert out.stdout.split() == [], f"{package} imported {out.stdout.split()}"


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", LIBRARY)
def test_no_lazy_import_of_the_app_layer(package: str) -> None:
    """Imports inside functions do not show in sys.modules until called: read the source."""
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in _imported_names(path)
        if name.startswith(APP)
    ]
    assert offenders == []


def test_report_modules_do_not_import_each_other_in_a_cycle() -> None:
    analysis = _imported_names(PACKAGE / "report" / "analysis.py")
    assert not any(name.startswith("trainlab.report") for name in analysis)
