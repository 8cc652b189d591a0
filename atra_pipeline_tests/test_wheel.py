"""The package as a wheel, installed elsewhere: it holds every SQL file of the checkout and no test,
and installed into a fresh virtual environment outside the checkout it materialises a raw
partition from there, with nothing read from the checkout.

The fresh environment takes its dependencies from the project's venv without reinstalling them:
a ``.pth`` file lists the project venv's site-packages. A directory a ``.pth`` file adds is not
scanned for ``.pth`` files of its own, so the project's editable install (its
``__editable__*.pth`` and the import finder it starts) stays out; the test checks that too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import duckdb
import pytest

from atra_pipeline.core.storage.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow  # builds a wheel and a virtual environment, and runs Dagster in it

DATE, SYMBOL = "2024-08-08", "BTCUSDT"
# What a build of the checkout never reads, or must not see: build/ and *.egg-info left by earlier
# builds would put stale files into the wheel; the rest is data, caches and the environment.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "data", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".hypothesis", ".dagster_home", ".dagster_service", "test-artifacts")

# Run by the fresh environment's Python in a directory outside the checkout.
MATERIALISE = f"""
import json, os, sys
import dagster as dg
import atra_pipeline
from atra_pipeline.core.storage.paths import PROJECT_ROOT, SQL_DIR
from atra_pipeline.definitions import defs
from atra_pipeline.defs import raw
from atra_pipeline.defs.common.partitions import partition_key

instance = dg.DagsterInstance.get()  # $DAGSTER_HOME
result = dg.materialize([*raw.assets, *raw.asset_checks], partition_key=partition_key({DATE!r}, {SYMBOL!r}),
                        resources=defs.resources, instance=instance, raise_on_error=False)
print(json.dumps({{
    "package": atra_pipeline.__file__, "sql_dir": str(SQL_DIR), "project_root": str(PROJECT_ROOT),
    "success": result.success, "run_status": instance.get_run_by_id(result.run_id).status.value,
    "checks_failed": [e.check_name for e in result.get_asset_check_evaluations() if not e.passed],
    "editable_finder": [m for m in sys.modules if "__editable__" in m]
                       + [repr(f) for f in sys.meta_path if "Editable" in repr(f)],
    "sys_path": sys.path,
}}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the checkout as it is on disk, built from a copy (a build in place writes
    build/ and the egg-info into the checkout, which the editable install and other runs share)."""
    import setuptools

    assert tuple(int(p) for p in setuptools.__version__.split(".")[:2]) >= (70, 1), \
        f"setuptools {setuptools.__version__}: the dev extra asks for >= 70.1 (bdist_wheel built in)"
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=NOT_SOURCES, symlinks=True)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "-w", str(tmp / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (tmp / "dist").glob("atra_pipeline-*.whl")
    return built


def test_the_wheel_holds_every_sql_file_and_module_and_no_test(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = PROJECT_ROOT / "atra_pipeline"
    sql = {p.relative_to(PROJECT_ROOT).as_posix() for p in (package / "sql").rglob("*.sql")}
    modules = {p.relative_to(PROJECT_ROOT).as_posix() for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    assert len(sql) > 50 and len(modules) > 50  # the checkout's own files, found
    assert sorted(sql - names) == []
    assert sorted(modules - names) == []
    assert sorted(n for n in names if n.startswith("atra_pipeline_tests")) == []
    assert sorted(n for n in names if not n.startswith(("atra_pipeline/", "atra_pipeline-"))) == []


def test_the_installed_wheel_materialises_a_raw_partition_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    project_site = Path(sysconfig.get_path("purelib"))
    assert any(project_site.glob("__editable__*atra_pipeline*.pth")), "expected the project's editable install"
    (site / "project_dependencies.pth").write_text(f"{project_site}\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (venv / "bin" / "atra").is_file()  # the console script

    work = tmp_path / "work"
    (home := tmp_path / "home").mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    work.mkdir()
    db = tmp_path / "atra.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATRA_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"ATRA_DUCKDB_PATH": str(db), "DAGSTER_HOME": str(home)})
    done = subprocess.run([str(python), "-c", MATERIALISE], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    installed = site / "atra_pipeline"
    assert Path(report["package"]).parent == installed, report["package"]  # not /work/main's
    assert Path(report["sql_dir"]) == installed / "sql"
    assert Path(report["project_root"]) == work  # no checkout around: data belong where it is run
    assert report["editable_finder"] == []
    assert not any(Path(p).resolve() == PROJECT_ROOT.resolve() for p in report["sys_path"] if p)
    assert report["success"] and report["run_status"] == "SUCCESS", report
    assert report["checks_failed"] == []
    assert not (work / "data").exists()  # the database went where ATRA_DUCKDB_PATH says
    with duckdb.connect(str(db), read_only=True) as conn:
        for table in ("raw_l2_snapshots", "raw_trades"):
            rows = conn.execute(f"SELECT count(*) FROM {table} WHERE symbol = ? AND ts >= ?::TIMESTAMP "
                                "AND ts < ?::TIMESTAMP + INTERVAL 1 DAY", [SYMBOL, DATE, DATE]).fetchone()[0]
            assert rows > 1000, (table, rows)
