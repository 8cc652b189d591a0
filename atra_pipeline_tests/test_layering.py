"""The layers' imports point one way: core is plain Python (no Dagster, no test code, nothing of the
Dagster layer or the command line); the Dagster layer does not reach into the command line."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import atra_pipeline
import atra_pipeline.core
from atra_pipeline.core.storage.paths import PROJECT_ROOT

PACKAGE_DIR = Path(atra_pipeline.__file__).parent


def _modules(package) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (a lazy import counts too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _offenders(layer: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for path in sorted((PACKAGE_DIR / layer).rglob("*.py")):
        bad = sorted(m for m in _imports(path) if m.split(".")[0] in forbidden or m.startswith(forbidden))
        if bad:
            out[str(path.relative_to(PACKAGE_DIR))] = bad
    return out


def test_every_core_folder_is_a_package_the_walk_sees():
    folders = {p.parent for p in (PACKAGE_DIR / "core").rglob("*.py")}
    assert not [str(f) for f in folders if not (f / "__init__.py").is_file()]
    walked = _modules(atra_pipeline.core)
    files = [p for p in (PACKAGE_DIR / "core").rglob("*.py") if p.name != "__init__.py"]
    assert len([m for m in walked if not m.endswith("__init__")]) >= len(files)


@pytest.mark.slow  # a Python process importing every core module
def test_no_core_module_imports_dagster():
    modules = _modules(atra_pipeline.core)
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dagster_duckdb'}); "
            "print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("core", ("dagster", "dagster_duckdb", "atra_pipeline.defs", "atra_pipeline.definitions", "atra_pipeline.testing",
              "atra_pipeline.cli", "atra_pipeline.runner", "atra_pipeline_tests")),
    ("defs", ("atra_pipeline.cli", "atra_pipeline.testing", "atra_pipeline_tests")),
])
def test_imports_point_one_way(layer, forbidden):
    assert _offenders(layer, forbidden) == {}


def test_the_rule_sees_a_lazy_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from atra_pipeline.testing.fake_binance import FakeBinance\n")
    assert "atra_pipeline.testing.fake_binance" in _imports(sample)


def _siblings_alike(names: list[str]) -> list[tuple[str, str]]:
    """Pairs of names in one folder that differ only by a suffix (``backtest`` / ``backtesting``,
    ``model`` / ``model_registry``, ``labels`` / ``labelling``)."""
    alike = []
    for i, a in enumerate(sorted(names)):
        for b in sorted(names)[i + 1:]:
            shorter = min(a, b, key=len)
            common = len(os.path.commonprefix([a, b]))
            if common >= max(4, len(shorter) - 1):  # four letters: `defs` beside `definitions` is Dagster's pair
                alike.append((a, b))
    return alike


def test_no_two_modules_in_a_folder_differ_only_by_a_suffix():
    found = {}
    for folder in [PACKAGE_DIR, *(p for p in PACKAGE_DIR.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        names = [p.stem for p in folder.iterdir() if (p.suffix == ".py" and p.stem != "__init__")
                 or (p.is_dir() and (p / "__init__.py").is_file())]
        if pairs := _siblings_alike(names):
            found[str(folder.relative_to(PACKAGE_DIR))] = pairs
    assert found == {}
    assert _siblings_alike(["backtest", "backtesting", "labels", "labelling", "model", "model_registry", "cv"]) == [
        ("backtest", "backtesting"), ("labelling", "labels"), ("model", "model_registry")]


def test_every_module_says_its_job_in_its_first_line():
    missing = [str(p.relative_to(PACKAGE_DIR)) for p in sorted(PACKAGE_DIR.rglob("*.py"))
               if not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()]
    assert missing == []
