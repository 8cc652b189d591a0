"""Models stage: tune and cross-validate a candidate and keep its out-of-fold predictions."""

from pathlib import Path

import dagster as dg
import numpy as np

from atra_pipeline.core.features.registry import longest_lookback_s
from atra_pipeline.core.gate.placebo import ensure_placebos
from atra_pipeline.core.models.cv import leakage
from atra_pipeline.core.models.registry import load_model, oof_audit, register_candidate
from atra_pipeline.core.models.spec import SpecError, spec_for_partitions
from atra_pipeline.core.models.training import (
    TrainingSet,
    TrainingSettings,
    model_features,
    train_candidate,
    training_frame,
)
from atra_pipeline.core.quality.blocking import describe, leave_out_failed
from atra_pipeline.core.strategy.rules import StrategySettings
from atra_pipeline.defs.common.checks import audit_result, markdown_table, registered_model
from atra_pipeline.defs.common.config import SettingsConfig, settings_config
from atra_pipeline.defs.common.partitions import symbol_partitions
from atra_pipeline.defs.common.resources import DUCKDB_POOL, AtraDuckDB
from atra_pipeline.defs.features.assets import features
from atra_pipeline.defs.labels.assets import labels

StrategyConfig = settings_config(
    StrategySettings, name="StrategyConfig",
    doc="The strategy the model is registered with, its costs and sizing flattened beside its own fields "
        "(core StrategySettings, CostSettings, SizingSettings); the backtest and live trading trade by it.")


class _TrainingRange(SettingsConfig):
    start_date: str = ""
    """First event date (inclusive); empty: the first stored label."""
    end_date: str = ""
    """Last event date (inclusive); empty: the last stored label."""
    strategy: StrategyConfig = StrategyConfig()
    """The strategy the candidate is registered with."""


ModelCandidateConfig = settings_config(
    TrainingSettings, name="ModelCandidateConfig", base=_TrainingRange,
    doc="The events trained on, how the candidate is tuned and validated (core TrainingSettings) and the "
        "strategy it is registered with.")


@dg.asset(
    deps=[labels, features],
    group_name="models",
    kinds={"lightgbm", "duckdb"},
    pool=DUCKDB_POOL,
    op_tags={"atra/memory": "heavy"},  # keep apart from other memory-heavy steps on a shared worker
    check_specs=[
        dg.AssetCheckSpec("registry_round_trip", asset="model_candidate", blocking=True,
                          description="The model loaded back from the registry predicts exactly as trained."),
        dg.AssetCheckSpec("folds_leak_nothing", asset="model_candidate", blocking=True,
                          description="No fold of the study and no walk-forward period trains on an event it "
                                      "tests, or on one whose label overlaps a test block's span (purging audit)."),
    ],
)
def model_candidate(context: dg.AssetExecutionContext, config: ModelCandidateConfig,
                    duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """A LightGBM meta-label model: hyperparameters chosen by an Optuna study under purged CV on the
    earliest data, the rest predicted walk-forward (tables model_registry, oof_predictions for the
    walk-forward predictions, trial_predictions for the trials' out-of-fold scores)."""
    settings = config.settings()
    storage = f"sqlite:///{Path(duckdb.database).parent / 'optuna.sqlite3'}"
    # the file is held only to read the inputs and to register: never for the study's minutes
    with duckdb.get_connection() as conn:
        try:
            frame, start, end = training_frame(conn, symbol_partitions.get_partition_keys(), config.start_date,
                                               config.end_date)
        except ValueError as exc:
            raise dg.Failure(f"model_candidate: {exc}") from exc
        # a partition whose features or labels failed a blocking check is not trained on
        frame, failed = leave_out_failed(conn, frame, ["features", "labels"])
        if not failed.empty:
            context.log.warning("model_candidate leaves out partitions that failed a blocking check: "
                                f"{describe(failed)}")
            if frame.empty:
                raise dg.Failure(f"model_candidate: every partition failed a blocking check ({describe(failed)})")
        partitions = sorted({f"{d}|{s}" for d, s in zip(frame["ts"].dt.strftime("%Y-%m-%d"), frame["symbol"])})
        try:
            spec = spec_for_partitions(conn, partitions, config.strategy.settings())
        except SpecError as exc:
            raise dg.Failure(f"model_candidate: {exc}") from exc
    target = "label" if settings.objective == "binary" else "outcome"
    data = TrainingSet.from_frame(frame, model_features(), target)
    context.log.info(f"training on {len(data.y)} events {start} .. {end}, {settings.trials} trials, {settings.cv}")
    lookback_s = longest_lookback_s(spec.step_s)
    try:
        result = train_candidate(data, settings, storage=storage, label=target, lookback_s=lookback_s)
    except ValueError as exc:
        raise dg.Failure(f"model_candidate: {exc}") from exc
    keys, trained, placebo_error = ensure_placebos(duckdb.get_connection, data, settings, lookback_s,
                                                   result.metrics["trials_total"])
    result.metrics.update(placebo_keys=keys, placebo_error=placebo_error)
    context.log.info(f"placebos: {len(keys)} ({trained} trained now, the others cached)"
                     + (f"; none: {placebo_error}" if placebo_error else ""))
    with duckdb.get_connection() as conn:
        model_id = register_candidate(conn, result, settings, start, end, partitions, spec)
        record = load_model(conn, model_id)
    reloaded = record.booster().predict(data.X.iloc[:2000])
    round_trip = bool(np.array_equal(reloaded, result.booster.predict(data.X.iloc[:2000])))
    audit = leakage(data.X.index, data.t1, result.folds)
    m = result.metrics
    top = result.importance.head(15).rename("mean |SHAP|").reset_index().rename(columns={"index": "feature"})
    periods = result.fold_metrics[["period", "train_events", "test_events", "test_start", "test_end", "auc",
                                   "log_loss", "prior_log_loss", "precision", "hit_rate"]].round(4)
    return dg.MaterializeResult(metadata={
        "model_id": model_id,
        "train_range": f"{start} .. {end}",
        "events": len(data.y),
        "partitions": len(partitions),
        "left_out_failed_checks": describe(failed) or "none",
        "walk_forward": f"tuned on {m['tuning_events']} events before {m['walk_forward_first_test']}, then retrained "
                        f"every {m['walk_forward_period_s'] / 3600:g} h ({settings.window} window, embargo "
                        f"{m['walk_forward_embargo_s']:g} s) over {m['walk_forward_periods']} periods",
        "walk_forward_auc": float(m["auc"]), "walk_forward_auc_z": float(m["auc_z"]),
        "walk_forward_log_loss": float(m["log_loss"]), "prior_log_loss": float(m["prior_log_loss"]),
        "tuning_cv_auc": float(m["cv_auc"]),
        "precision_at_threshold": float(m["precision"]), "hit_rate_taken": float(m["hit_rate"]),
        "trades_taken": int(m["trades_taken"]),
        "placebos": f"{len(keys)} ({trained} trained now)" if keys else f"none: {placebo_error}",
        "study": dg.MetadataValue.json({k: (v.item() if hasattr(v, "item") else v)
                                        for k, v in result.study_summary.items()}),
        "best_params": dg.MetadataValue.json(result.best_params),
        "walk_forward_periods": dg.MetadataValue.md(markdown_table(periods, max_rows=50)),
        "top_features_shap": dg.MetadataValue.md(markdown_table(top, max_rows=15)),
        "timings_s": dg.MetadataValue.json({k: round(float(v), 3) for k, v in result.timings.items()}),
    }, check_results=[
        dg.AssetCheckResult(check_name="registry_round_trip", passed=round_trip,
                            metadata={"compared_rows": len(reloaded)}),
        dg.AssetCheckResult(check_name="folds_leak_nothing", passed=not any(audit.values()),
                            metadata={"folds": len(result.folds), **audit}),
    ])


@dg.asset(
    deps=["model_candidate"],
    group_name="models",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,
    check_specs=[dg.AssetCheckSpec(
        "every_event_predicted_out_of_fold", asset="oof_predictions", blocking=True,
        description="Every event of the newest model after its tuning window has a walk-forward probability in "
                    "[0, 1] from a model trained on earlier labels only; the backtest reads only these.")],
)
def oof_predictions(duckdb: AtraDuckDB) -> dg.MaterializeResult:
    """The newest model's walk-forward probabilities (table ``oof_predictions``; ``fold`` is the
    walk-forward period), written with the candidate by the same training and checked here before
    the backtest reads them."""
    with duckdb.get_connection() as conn:
        record = load_model(conn, registered_model(
            conn, "oof_predictions: no model in the registry; materialise model_candidate first"))
        rows, audit = oof_audit(conn, record)
    return dg.MaterializeResult(
        metadata={"model_id": record.model_id, "dagster/row_count": rows,
                  "events_predicted": audit["events_predicted"]},
        check_results=[audit_result("every_event_predicted_out_of_fold", audit)],
    )
