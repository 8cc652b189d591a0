"""A registered model's whole configuration: the decision grid, the symbols and cross-asset
reference its features were built with, the label settings (event filter, primary model,
barriers) and the strategy. Backtest and live read it from the registry record, never from the
environment or from defaults, so a model behaves as it was tested wherever it runs."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field

from atra_pipeline.core.features.registry import REFERENCE_SYMBOL, cross_asset_peers
from atra_pipeline.core.labels.partition import LabelSettings
from atra_pipeline.core.strategy.rules import StrategySettings


class SpecError(ValueError):
    """A model's configuration is missing, incomplete or cannot be honoured."""


@dataclass(frozen=True)
class ModelSpec:
    symbols: tuple[str, ...]
    """The universe the features were built over (the cross-asset peers come from it)."""
    step_s: int = 60
    """Decision step of the features and labels, seconds."""
    reference_symbol: str = REFERENCE_SYMBOL
    """The cross-asset reference of the features."""
    labels: LabelSettings = field(default_factory=LabelSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)

    def peers(self, symbol: str) -> list[str]:
        return cross_asset_peers(symbol, list(self.symbols), self.reference_symbol)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, model_id: str = "?") -> ModelSpec:
        """The spec stored as ``text``; every field must be there (no default fills a gap)."""
        try:
            return _build(cls, json.loads(text), "spec")
        except (KeyError, TypeError, ValueError) as error:
            raise SpecError(f"model {model_id}: its stored configuration is incomplete ({error})") from None


def _build(cls, data: dict, path: str):
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            raise KeyError(f"{path}.{f.name} missing")
        value, kind = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(kind):
            value = _build(kind, value, f"{path}.{f.name}")
        elif typing.get_origin(kind) is tuple:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def spec_for_partitions(conn, partitions: list[str], strategy: StrategySettings) -> ModelSpec:
    """The spec of a model trained on ``partitions`` (``date|symbol`` keys) with ``strategy``: the
    decision step, universe and reference the features recorded, the label settings the labels
    recorded. Partitions built with different settings, or without a record, are refused."""
    from atra_pipeline.core.storage.partition_settings import partition_settings

    found = {}
    for asset in ("features", "labels"):
        recorded = partition_settings(conn, asset, partitions)
        if missing := [p for p in partitions if p not in recorded]:
            raise SpecError(f"{asset} of {len(missing)} training partitions recorded no settings "
                            f"(first: {missing[:3]}): materialise {asset} of them again")
        distinct = {json.dumps(v, sort_keys=True) for v in recorded.values()}
        if len(distinct) > 1:
            raise SpecError(f"{asset} of the training partitions were built with {len(distinct)} different settings: "
                            f"{sorted(distinct)[:2]}; a model is trained on one setting")
        found[asset] = json.loads(distinct.pop())
    features, labels = found["features"], dict(found["labels"])
    if labels.pop("step_s") != features["step_s"]:
        raise SpecError("labels were built on a different decision step than the features")
    labels["pt_sl"] = tuple(labels["pt_sl"])
    return ModelSpec(tuple(features["universe"]), int(features["step_s"]), features["reference_symbol"],
                     LabelSettings(**labels), strategy)
