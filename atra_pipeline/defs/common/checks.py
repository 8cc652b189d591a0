"""Dagster side of the data-quality registry: check specs and results generated from
:data:`atra_pipeline.core.quality.rules.SQL_CHECKS` and the GE suites, for every stage to reuse."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from atra_pipeline.core.features.checks import FEATURE_CHECKS, FeatureCheckOutcome
from atra_pipeline.core.quality.blocking import describe, failed_blocking_checks
from atra_pipeline.core.quality.expectations import DistributionOutcome
from atra_pipeline.core.quality.rules import CheckOutcome, checks_for


def sql_check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    """One ``AssetCheckSpec`` per declared SQL rule of ``asset``."""
    return [dg.AssetCheckSpec(c.name, asset=asset, description=c.description, blocking=c.blocking)
            for c in checks_for(asset)]


def markdown_table(frame: pd.DataFrame, max_rows: int = 10) -> str:
    if frame.empty:
        return "(none)"
    return frame.head(max_rows).astype(str).to_markdown(index=False)


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """The Dagster result of one SQL rule: offending-row count, a sample of them, the thresholds."""
    check = outcome.check
    metadata = {
        "offending_rows": dg.MetadataValue.int(outcome.n_offending),
        **{k: v for k, v in outcome.summary.items()},
        **{f"param_{k}": v for k, v in outcome.params.items()},
    }
    if not outcome.passed:
        metadata["first_offending_rows"] = dg.MetadataValue.md(markdown_table(outcome.sample))
    return dg.AssetCheckResult(
        asset_key=check.asset,
        check_name=check.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        description=outcome.message(),
        metadata=metadata,
    )


def checks_summary_markdown(outcomes: list[CheckOutcome]) -> str:
    rows = pd.DataFrame([{"check": o.check.name, "blocking": o.check.blocking,
                          "passed": o.passed, "offending rows": o.n_offending} for o in outcomes])
    return markdown_table(rows, max_rows=len(rows))


def feature_check_specs(asset: str = "features") -> list[dg.AssetCheckSpec]:
    """One blocking ``AssetCheckSpec`` per feature rule of :data:`FEATURE_CHECKS`."""
    return [dg.AssetCheckSpec(name, asset=asset, description=text, blocking=True)
            for name, text in FEATURE_CHECKS.items()]


def feature_check_result(outcome: FeatureCheckOutcome) -> dg.AssetCheckResult:
    """The Dagster result of one feature rule: the columns at fault and its figures."""
    figures = {k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v for k, v in outcome.figures.items()}
    return dg.AssetCheckResult(check_name=outcome.name, passed=outcome.passed, description=outcome.message(),
                               metadata={"columns": ", ".join(outcome.columns) or "-", **figures})


def audit_result(check_name: str, audit: dict) -> dg.AssetCheckResult:
    """The result of a check from a core audit: its ``passed`` and, as metadata, the rest."""
    return dg.AssetCheckResult(check_name=check_name, passed=bool(audit["passed"]),
                               metadata={k: v for k, v in audit.items() if k != "passed"})


def distribution_result(outcome: DistributionOutcome) -> dg.AssetCheckResult:
    """The Dagster result of a distribution suite: a warning naming the shifted columns, with
    every band and what was left unjudged as metadata."""
    metadata = {
        "reference": outcome.reference or "-",
        "shifted": ", ".join(outcome.shifted) or "-",
        "bands": dg.MetadataValue.md(markdown_table(outcome.bands, max_rows=len(outcome.bands))),
        "not_judged": dg.MetadataValue.json(outcome.skipped),
        **{k: dg.MetadataValue.json(v) if isinstance(v, list) else v for k, v in outcome.suite.defaults.items()},
    }
    return dg.AssetCheckResult(passed=outcome.passed, severity=dg.AssetCheckSeverity.WARN,
                               description=outcome.message(), metadata=metadata)


def registered_model(conn, missing: str, status: str | None = None, requested: str = "") -> str:
    """``requested`` or the registry's newest model (of ``status``); a step without one fails
    with ``missing`` (what to do about it)."""
    from atra_pipeline.core.models.registry import latest

    model_id = requested or latest(conn, status)
    if model_id is None:
        raise dg.Failure(missing)
    return model_id


def _upstream_keys(context: dg.AssetExecutionContext, asset: str) -> list[str]:
    """The partitions of ``asset`` this step reads, by the asset's own partition mapping for it."""
    own = context.assets_def
    partitions = own.partitions_def
    # no mapping declared: Dagster's default between two assets of the same partitions, identity
    mapping = own.get_partition_mapping(dg.AssetKey(asset)) or dg.IdentityPartitionMapping()
    mapped = mapping.get_upstream_mapped_partitions_result_for_partitions(
        partitions.subset_with_partition_keys([context.partition_key]), partitions, partitions)
    return sorted(str(k) for k in mapped.partitions_subset.get_partition_keys())


def refuse_failed_upstream(context: dg.AssetExecutionContext, conn, upstream: list[str]) -> None:
    """Fail the step, before it reads anything, when a partition it reads (by its deps' partition
    mappings: the same day, the previous one, the peers' books) failed a blocking check in a
    stored evaluation: a blocking check stops downstream work however the run was launched."""
    reads = {asset: _upstream_keys(context, asset) for asset in upstream}
    failures = failed_blocking_checks(conn, reads)
    if not failures.empty:
        raise dg.Failure(
            description=f"{context.asset_key.to_user_string()} {context.partition_key} not built: it reads partitions "
                        f"that failed a blocking check ({describe(failures)}). Fix that data and materialise it "
                        "again; this step then runs.",
            metadata={"failed_upstream_checks": dg.MetadataValue.md(markdown_table(failures, max_rows=20))})
