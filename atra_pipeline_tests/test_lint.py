"""ruff, configured in pyproject.toml, finds nothing in the package, the tests or the benchmarks."""

from __future__ import annotations

import subprocess
import sys

from atra_pipeline.core.storage.paths import PROJECT_ROOT


def test_ruff_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
