"""Generate the README's reference sections from the registries they describe.

``python -m atra_pipeline.docs`` rewrites the blocks between ``<!-- BEGIN generated:NAME -->``
and ``<!-- END generated:NAME -->``; a test fails when the README is out of date.
"""

from __future__ import annotations

import re
import sys

from atra_pipeline.core.features.registry import FEATURES
from atra_pipeline.core.gate.rules import GATE_RULES
from atra_pipeline.core.quality.expectations import GE_SUITES
from atra_pipeline.core.quality.rules import SQL_CHECKS
from atra_pipeline.core.raw.schema import L2_COLUMN_DOCS, TRADE_COLUMN_DOCS
from atra_pipeline.core.settings import VARIABLES
from atra_pipeline.core.storage.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def schema_section() -> str:
    parts = []
    for table, docs in (("raw_l2_snapshots", L2_COLUMN_DOCS), ("raw_trades", TRADE_COLUMN_DOCS)):
        parts.append(f"`{table}`\n\n" + _table(["column", "meaning"], [[f"`{c}`", d] for c, d in docs.items()]))
    return "\n\n".join(parts)


def checks_section() -> str:
    rows = [[f"`{c.asset}`", f"`{c.name}`", "blocking" if c.blocking else "warning", c.description,
             ", ".join(f"{k}={v}" for k, v in c.params.items() if k != "edges") or "-"] for c in SQL_CHECKS]
    rows += [[f"`{s.asset}`", f"`{s.check}`", "warning", s.description,
              ", ".join(f"{k}={v}" for k, v in s.defaults.items())] for s in GE_SUITES]
    return _table(["asset", "check", "kind", "rule", "defaults"], rows)


def features_section() -> str:
    rows = [[f"`{f.name}`", f.family, f.window or "-",
             f.description]
            for f in FEATURES]
    return f"{len(FEATURES)} columns.\n\n" + _table(["feature", "family", "window", "description"], rows)


def gate_section() -> str:
    rows = [[f"`{r.name}`", r.description, "-" if r.threshold is None else str(r.threshold)] for r in GATE_RULES]
    return _table(["rule", "passes when", "default threshold"], rows)


def settings_section() -> str:
    default = {"ATRA_DUCKDB_PATH": "`data/atra.duckdb`"}  # the project path, not this checkout's
    rows = [[f"`{v.name}`", default.get(v.name, f"`{v.default}`" if v.default else "-"), v.description]
            for v in VARIABLES]
    return _table(["variable", "default", "meaning"], rows)


SECTIONS = {"settings": settings_section, "schema": schema_section, "checks": checks_section,
            "features": features_section, "gate": gate_section}


def render(text: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- BEGIN generated:{name} -->\n).*?(<!-- END generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no generated:{name} block")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main() -> int:
    README.write_text(render(README.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
