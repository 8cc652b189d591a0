"""Gate stage: the approval gate that promotes a candidate to the live model, or keeps the live one."""

import dagster as dg

from atra_pipeline.core.gate.rules import GATE_RULES, evaluate_gate, gate_table
from atra_pipeline.core.models.registry import decide, latest, load_model
from atra_pipeline.defs.common.checks import markdown_table
from atra_pipeline.defs.common.resources import DUCKDB_POOL, AtraDuckDB


@dg.asset(
    deps=["risk_report"],
    group_name="gate",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    check_specs=[dg.AssetCheckSpec(r.name, asset="approved_model", description=r.description, blocking=False)
                 for r in GATE_RULES],
)
def approved_model(context: dg.AssetExecutionContext, duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """The gate: the newest candidate replaces the live model only if every gate rule passes;
    a rejected candidate stays in the registry with its reasons and the live model stays."""
    with duckdb.get_connection() as conn:
        candidate = latest(conn, "candidate")
        if candidate is None:
            live = latest(conn, "approved")
            return dg.MaterializeResult(metadata={"decision": "no pending candidate", "live_model": str(live)})
        record = load_model(conn, candidate)
        outcomes = evaluate_gate(conn, record)
        approve = all(o.passed for o in outcomes)
        # an approval keeps its evidence too: every rule with its figure
        reasons = ("every gate rule passed: " + "; ".join(o.message() for o in outcomes)) if approve else \
            "; ".join(o.message() for o in outcomes if not o.passed)
        live = decide(conn, candidate, approve, reasons)
    context.log.info(f"candidate {candidate}: {'approved' if approve else 'rejected'} ({reasons}); live model {live}")
    return dg.MaterializeResult(
        metadata={"candidate": candidate, "decision": "approved" if approve else "rejected", "reasons": reasons,
                  "live_model": str(live), "gate": dg.MetadataValue.md(markdown_table(gate_table(outcomes)))},
        check_results=[dg.AssetCheckResult(check_name=o.rule.name, passed=o.passed, severity=dg.AssetCheckSeverity.WARN,
                                            description=o.message(),
                                            metadata={"figure": str(o.figure), "threshold": str(o.threshold)})
                       for o in outcomes],
    )
