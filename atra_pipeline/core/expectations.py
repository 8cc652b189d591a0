"""Great Expectations (1.x) suites for the raw tables, declared once and run on a DataFrame.

Column-wise rules read well as expectations (schema, not-null, positive, sets, uniqueness,
monotone time); the cross-column book rules live in SQL (:mod:`atra_pipeline.core.quality`).
"""

from __future__ import annotations

import logging
import os

import pandas as pd

from atra_pipeline.core.schema import L2_COLUMNS, L2_LEVEL_COLUMNS, TRADE_COLUMNS, TRADE_SIDES

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def declarations(asset: str, min_rows: int, max_rows: int) -> list[tuple[str, dict]]:
    """``(expectation class name, arguments)`` for ``asset``: the suite's single source."""
    if asset == "raw_l2_snapshots":
        return [
            ("ExpectTableColumnsToMatchOrderedList", {"column_list": L2_COLUMNS}),
            ("ExpectTableRowCountToBeBetween", {"min_value": min_rows, "max_value": max_rows}),
            *[("ExpectColumnValuesToNotBeNull", {"column": c})
              for c in ("ts", "symbol", "exchange", "bid_px_0", "bid_sz_0", "ask_px_0", "ask_sz_0")],
            ("ExpectColumnUniqueValueCountToBeBetween", {"column": "exchange", "min_value": 1, "max_value": 1}),
            ("ExpectColumnValuesToBeUnique", {"column": "ts"}),
            *[("ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0, "strict_min": True})
              for c in L2_LEVEL_COLUMNS],
            ("ExpectColumnPairValuesAToBeGreaterThanB",
             {"column_A": "ask_px_0", "column_B": "bid_px_0", "or_equal": False}),
        ]
    if asset == "raw_trades":
        return [
            ("ExpectTableColumnsToMatchOrderedList", {"column_list": TRADE_COLUMNS}),
            *[("ExpectColumnValuesToNotBeNull", {"column": c}) for c in TRADE_COLUMNS],
            ("ExpectColumnValuesToBeBetween", {"column": "price", "min_value": 0, "strict_min": True}),
            ("ExpectColumnValuesToBeBetween", {"column": "amount", "min_value": 0, "strict_min": True}),
            ("ExpectColumnValuesToBeInSet", {"column": "side", "value_set": list(TRADE_SIDES)}),
            # Ids are unique per exchange and symbol, and a partition holds one of each.
            ("ExpectColumnUniqueValueCountToBeBetween", {"column": "exchange", "min_value": 1, "max_value": 1}),
            ("ExpectColumnValuesToBeUnique", {"column": "trade_id"}),
        ]
    raise KeyError(f"no expectation suite for asset {asset!r}")


def build_suite(asset: str, min_rows: int = 1, max_rows: int | None = None):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"{asset}_suite")
    for name, kwargs in declarations(asset, min_rows, max_rows):
        suite.add_expectation(getattr(gx.expectations, name)(**kwargs))
    return suite


def validate_frame(asset: str, frame: pd.DataFrame, min_rows: int = 1, max_rows: int | None = None) -> dict:
    """Run ``asset``'s suite on ``frame`` (rows in time order); return a JSON-able summary.

    The summary has ``success``, ``evaluated``, ``failed`` and per failed expectation its type,
    column, unexpected count and the first unexpected row positions and values.
    """
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
    batch_def = (context.data_sources.add_pandas("atra").add_dataframe_asset(asset)
                 .add_batch_definition_whole_dataframe("partition"))
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame.reset_index(drop=True)})
    result = batch.validate(build_suite(asset, min_rows, max_rows))
    failed = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        details = r.result or {}
        failed.append({
            "expectation": cfg.type,
            "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_A"),
            "unexpected_count": details.get("unexpected_count", details.get("observed_value")),
            "first_rows": details.get("partial_unexpected_index_list", [])[:5],
            "first_values": [str(v) for v in details.get("partial_unexpected_list", [])[:5]],
        })
    return {"success": bool(result.success), "evaluated": len(result.results), "failed": failed}
