"""The `dg` CLI (dagster-dg-cli) finds the project from pyproject.toml's [tool.dg] section:
`dg check defs` loads the definitions and `dg list defs --json` lists what
atra_pipeline/definitions.py defines, run from the checkout as the README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atra_pipeline.core.storage.paths import PROJECT_ROOT
from atra_pipeline.definitions import defs

pytestmark = pytest.mark.slow  # two dg processes, each loading the definitions

DG = Path(sys.executable).parent / "dg"


def dg(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(home), "ATRA_DUCKDB_PATH": str(home / "atra.duckdb"),
           # the venv dg runs in (dg warns when the active one is not the project's .venv)
           "VIRTUAL_ENV": str(Path(sys.executable).parent.parent), "NO_COLOR": "1"}
    return subprocess.run([str(DG), *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("dg_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def test_dg_check_defs_loads_the_definitions(home):
    assert DG.is_file(), f"{DG} missing: dagster-dg-cli is a dev dependency (pip install -e '.[dev]')"
    done = dg("check", "defs", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr


def test_dg_list_defs_lists_what_the_definitions_define(home):
    done = dg("list", "defs", "--json", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = json.loads(done.stdout)
    graph = defs.resolve_asset_graph()
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert {"raw_l2_snapshots", "raw_trades", "approved_model"} <= set(assets)
    assert set(assets) == {k.to_user_string() for k in graph.get_all_asset_keys()}
    for key, asset in assets.items():  # the same graph: groups and upstream assets
        node = graph.get(next(k for k in graph.get_all_asset_keys() if k.to_user_string() == key))
        assert asset["group_name"] == node.group_name, key
        assert set(asset["dependency_keys"]) == {p.to_user_string() for p in node.parent_keys}, key
    assert len(listed["asset_checks"]) == len(list(graph.asset_check_keys))
    assert {"main", "train"} <= {j["name"] for j in listed["jobs"]}
