"""`atra_pipeline.core` is plain Python: no module of it imports dagster."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import atra_pipeline.core
from atra_pipeline.core.paths import PROJECT_ROOT


def test_no_core_module_imports_dagster():
    modules = [f"atra_pipeline.core.{m.name}" for m in pkgutil.iter_modules(atra_pipeline.core.__path__)]
    assert len(modules) >= 10
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
            "sys.exit(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dagster_duckdb'}) != [])")
    assert subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT).returncode == 0
