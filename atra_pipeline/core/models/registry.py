"""The model registry in DuckDB (``model_registry``, ``oof_predictions``, ``trial_predictions``): register a trained
candidate with its provenance, load a model back, and record the gate's decision.

Status moves ``candidate`` -> ``approved`` or ``rejected``; approving a model retires the one
approved before, so exactly one model is live. A rejected candidate keeps its reasons.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from dataclasses import asdict, dataclass

import duckdb
import lightgbm as lgb
import pandas as pd

from atra_pipeline.core.errors import DataError
from atra_pipeline.core.models.spec import ModelSpec, SpecError
from atra_pipeline.core.models.training import TrainingResult, TrainingSettings
from atra_pipeline.core.settings import get
from atra_pipeline.core.storage.database import transaction
from atra_pipeline.core.storage.paths import PROJECT_ROOT

OOF_COLUMNS = ["model_id", "ts", "symbol", "fold", "probability", "label", "weight", "ret"]


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    created_at: pd.Timestamp
    train_start: str
    train_end: str
    partitions: list[str]
    code_version: str | None
    params: dict
    features: list[str]
    metrics: dict
    model_text: str
    status: str
    reason: str
    spec_json: str | None = None
    model_sha256: str | None = None

    def booster(self) -> lgb.Booster:
        """The LightGBM model, once its stored text is shown intact: LightGBM terminates the whole
        process on a malformed model string, so a damaged one is refused here with an error."""
        verify_model_text(self.model_id, self.model_text, self.model_sha256)
        return lgb.Booster(model_str=self.model_text)

    def require_spec(self) -> ModelSpec:
        """The model's registered configuration; a model without one cannot be traded or backtested."""
        if not self.spec_json:
            raise SpecError(f"model {self.model_id} has no registered configuration (trained before specs were "
                            "recorded): train it again")
        return ModelSpec.from_json(self.spec_json, self.model_id)


# how LightGBM ends a model string: its trees, then its parameters, then one last line
_SECTION_ENDS = ("end of trees", "end of parameters")
_LAST_LINE = "pandas_categorical:"


def model_digest(model_text: str) -> str:
    return hashlib.sha256(model_text.encode()).hexdigest()


def verify_model_text(model_id: str, model_text: str | None, sha256: str | None) -> None:
    """Raise :class:`DataError` naming the model when its stored text is not what was registered
    (digest differs) or, for a model registered without a digest, is cut before its last tree."""
    where = f"model_registry, model {model_id}"
    if not model_text:
        raise DataError(where, "no stored model text", column="model_text")
    if sha256 is not None and model_digest(model_text) != sha256:
        raise DataError(where, f"the stored model text is damaged: its SHA-256 differs from the one registered "
                               f"({len(model_text)} characters now); train the model again", column="model_text")
    last_line = model_text.rstrip().rsplit("\n", 1)[-1]
    if any(end not in model_text for end in _SECTION_ENDS) or not last_line.startswith(_LAST_LINE):
        raise DataError(where, f"the stored model text is cut short ({len(model_text)} characters, not ending "
                               f"as LightGBM ends a model); train the model again", column="model_text")


def code_version() -> str | None:
    """``$ATRA_CODE_VERSION`` or the git commit of the project, when it is a git checkout."""
    if configured := get("ATRA_CODE_VERSION"):
        return configured
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=lambda v: v.item() if hasattr(v, "item") else str(v))


def register_candidate(conn: duckdb.DuckDBPyConnection, result: TrainingResult, settings: TrainingSettings,
                       train_start: str, train_end: str, partitions: list[str], spec: ModelSpec) -> str:
    """Store ``result`` as a candidate with its whole configuration ``spec``, its walk-forward
    predictions and its trials' out-of-fold scores (one transaction); return its id."""
    created = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
    model_text = result.booster.model_to_string()
    # time of creation, then a random part: two trainings in one second (a re-run) stay distinct
    model_id = f"m{created:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"
    row = {
        "model_id": model_id, "created_at": created, "train_start": train_start, "train_end": train_end,
        "partitions": _json(partitions), "code_version": code_version(),
        "params": _json({"lightgbm": result.best_params, "training": asdict(settings)}),
        "features": _json(list(result.booster.feature_name())),
        "metrics": _json({**result.metrics, "study": result.study_summary,
                          "folds": result.fold_metrics.to_dict(orient="records"),
                          "shap_top": result.importance.head(20).round(6).to_dict()}),
        "model_text": model_text, "model_sha256": model_digest(model_text), "status": "candidate", "reason": "",
        "spec": spec.to_json(),
    }
    oof = result.oof.assign(model_id=model_id)[OOF_COLUMNS]  # noqa: F841 (read by name in the SQL below)
    trials = result.trial_scores.assign(model_id=model_id)  # noqa: F841 (read by name in the SQL below)
    with transaction(conn):
        conn.execute(f"INSERT INTO model_registry ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
        conn.execute("INSERT INTO oof_predictions SELECT * FROM oof")
        conn.execute("INSERT INTO trial_predictions BY NAME SELECT * FROM trials")
        if len(result.cpcv_paths):
            paths = result.cpcv_paths.assign(model_id=model_id)  # noqa: F841 (read by name in the SQL below)
            conn.execute("INSERT INTO cpcv_path_predictions BY NAME SELECT * FROM paths")
    return model_id


def load_model(conn: duckdb.DuckDBPyConnection, model_id: str) -> ModelRecord:
    rows = conn.execute("SELECT * FROM model_registry WHERE model_id = ?", [model_id]).fetchdf()
    if rows.empty:
        raise KeyError(f"model {model_id!r} is not in the registry")
    r = rows.iloc[0]
    return ModelRecord(r["model_id"], pd.Timestamp(r["created_at"]), str(r["train_start"]), str(r["train_end"]),
                       json.loads(r["partitions"]), r["code_version"], json.loads(r["params"]),
                       json.loads(r["features"]), json.loads(r["metrics"]), r["model_text"], r["status"], r["reason"],
                       r["spec"] if isinstance(r["spec"], str) else None,
                       r["model_sha256"] if isinstance(r["model_sha256"], str) else None)


def latest(conn: duckdb.DuckDBPyConnection, status: str | None = None) -> str | None:
    """The id of the most recently created model (with ``status``, if given); None if there is none."""
    where, args = ("WHERE status = ? ", [status]) if status else ("", [])
    row = conn.execute(f"SELECT model_id FROM model_registry {where}ORDER BY created_at DESC, model_id DESC LIMIT 1",
                       args).fetchall()
    return row[0][0] if row else None


def decide(conn: duckdb.DuckDBPyConnection, model_id: str, approve: bool, reason: str) -> str | None:
    """Approve ``model_id`` (retiring the previously approved model) or reject it, with ``reason``.
    Returns the id of the model live afterwards."""
    previous = latest(conn, "approved")
    with transaction(conn):
        if approve:
            conn.execute("UPDATE model_registry SET status = 'retired', reason = ? WHERE status = 'approved'",
                         [f"replaced by {model_id}"])
        conn.execute("UPDATE model_registry SET status = ?, reason = ? WHERE model_id = ?",
                     ["approved" if approve else "rejected", reason, model_id])
    return model_id if approve else previous


def oof_audit(conn: duckdb.DuckDBPyConnection, record: ModelRecord) -> tuple[int, dict]:
    """The rows of ``record``'s out-of-fold predictions, and whether every event it expected
    (``oof_events_expected``) has one, with a probability in [0, 1]."""
    rows, events, low, high = conn.execute(
        "SELECT count(*), count(DISTINCT (ts, symbol)), min(probability), max(probability) "
        "FROM oof_predictions WHERE model_id = ?", [record.model_id]).fetchall()[0]
    expected = record.metrics["oof_events_expected"]
    passed = events == expected and low is not None and 0 <= low and high <= 1
    return int(rows), {"passed": bool(passed), "events_expected": int(expected), "events_predicted": int(events),
                       "min_probability": float(low or 0), "max_probability": float(high or 0)}
