"""Where the project keeps its SQL (package data) and its data (a checkout's root, or the working directory)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# The SQL ships inside the package (a wheel holds it as package data); a Path, as every install
# that DuckDB can read from (a directory, not a zip) gives one.
SQL_DIR = Path(str(files("atra_pipeline") / "sql"))


def _project_root() -> Path:
    """A source checkout's root (where ``pyproject.toml`` sits beside the package), else the
    working directory: an installed wheel keeps its data where it is run, not in site-packages."""
    checkout = Path(__file__).resolve().parents[3]
    return checkout if (checkout / "pyproject.toml").is_file() and (checkout / "atra_pipeline").is_dir() else Path.cwd()


PROJECT_ROOT = _project_root()
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


def duckdb_path() -> Path:
    """The DuckDB file: ``$ATRA_DUCKDB_PATH`` or ``data/atra.duckdb`` under the project."""
    from atra_pipeline.core.settings import get

    return get("ATRA_DUCKDB_PATH")
