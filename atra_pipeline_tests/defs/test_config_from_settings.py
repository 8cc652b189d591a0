"""Run config from one source: each stage's Dagster config is generated from its core settings
dataclass, so the launchpad shows every setting with the dataclass's default and docstring, and a
config converts back to the dataclass. Read from the run-config schema the launchpad shows."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg
import pytest
import yaml

from atra_pipeline import cli
from atra_pipeline.core.backtest.engine import BacktestSettings
from atra_pipeline.core.execution.rails import RiskLimits
from atra_pipeline.core.features.checks import FeatureSettings
from atra_pipeline.core.labels.partition import LabelSettings
from atra_pipeline.core.models.training import TrainingSettings
from atra_pipeline.core.raw.collector import CollectorSettings
from atra_pipeline.core.storage.paths import PROJECT_ROOT
from atra_pipeline.core.strategy.rules import StrategySettings
from atra_pipeline.definitions import defs
from atra_pipeline.defs.common.config import SettingsConfig, settings_config

# (op, path to a config inside the op's config) -> the settings dataclass it is generated from
SOURCES = {
    ("features", ()): FeatureSettings,
    ("labels", ()): LabelSettings,
    ("model_candidate", ()): TrainingSettings,
    ("model_candidate", ("strategy",)): StrategySettings,
    ("backtest", ()): BacktestSettings,
    ("collect_market_data", ()): CollectorSettings,
    ("execution", ()): RiskLimits,
}


def _jobs() -> list[dg.JobDefinition]:
    return [*defs.resolve_all_job_defs(), defs.resolve_implicit_global_asset_job_def()]


def launchpad_config(op: str, path: tuple[str, ...] = ()) -> dg.Field:
    """The ``config`` field of ``op`` in the run-config schema of a job that runs it (what the
    launchpad shows and validates), then down ``path``."""
    for job in _jobs():
        ops = job.run_config_schema.config_type.fields["ops"].config_type.fields
        if op in ops:
            found = ops[op].config_type.fields["config"]
            for name in path:
                found = found.config_type.fields[name]
            return found
    raise AssertionError(f"no job runs {op}")


def settings_fields(cls, default, skip=()) -> dict[str, tuple[typing.Any, typing.Any]]:
    """Every field of the dataclass but ``skip``, a nested dataclass's fields in its place: (type, default)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(settings_fields(hints[f.name], value))
        else:
            out[f.name] = (hints[f.name], value)
    return out


def _config_class(op: str, path: tuple[str, ...]) -> type[SettingsConfig]:
    """The config class the op's function takes (or the nested one at ``path``)."""
    assets_or_op = next(node for job in _jobs() for node in job.graph.node_defs if node.name == op)
    cls = typing.get_type_hints(assets_or_op.compute_fn.decorated_fn)["config"]
    for name in path:
        cls = cls.model_fields[name].annotation
    return cls


@pytest.mark.parametrize("op, path", list(SOURCES), ids=[" ".join((op, *path)) for op, path in SOURCES])
def test_every_setting_is_in_the_launchpad_with_its_default_and_description(op, path):
    settings = SOURCES[(op, path)]
    cls = _config_class(op, path)
    assert issubclass(cls, SettingsConfig) and cls.settings_class is settings
    shown = launchpad_config(op, path).config_type.fields
    expected = settings_fields(settings, settings(), skip=cls.derived)
    assert set(cls.derived) <= {f.name for f in dataclasses.fields(settings)}
    assert not set(cls.derived) & set(shown)
    for name, (_, default) in expected.items():
        assert name in shown, f"{settings.__name__}.{name} is not in {op}'s config"
        assert shown[name].default_value == (list(default) if isinstance(default, tuple) else default), name
        assert shown[name].description, f"{op}.{name} shows no description"


@pytest.mark.parametrize("op, path", list(SOURCES), ids=[" ".join((op, *path)) for op, path in SOURCES])
def test_a_default_config_converts_back_to_the_settings_default(op, path):
    settings, cls = SOURCES[(op, path)], _config_class(op, path)
    base = settings() if cls.derived else None
    assert cls().settings(base=base) == settings()


def test_a_config_sets_nested_and_tuple_settings():
    from atra_pipeline.defs.labels.assets import LabelsConfig
    from atra_pipeline.defs.models.assets import ModelCandidateConfig

    assert LabelsConfig(pt_sl=[2.0, 0.0], max_holding_s=120).settings() == LabelSettings(pt_sl=(2.0, 0.0),
                                                                                        max_holding_s=120)
    config = ModelCandidateConfig(trials=3, min_periods=2, strategy={"taker_fee_bps": 1.5, "kelly_multiplier": 0.5})
    assert config.settings() == TrainingSettings(trials=3, min_periods=2)
    strategy = config.strategy.settings()
    assert (strategy.costs.taker_fee_bps, strategy.sizing.kelly_multiplier) == (1.5, 0.5)
    assert strategy.costs.latency_ms == StrategySettings().costs.latency_ms


def test_every_config_field_of_every_job_shows_a_description():
    missing, checked = [], set()

    def walk(where: str, config_field: dg.Field) -> None:
        if not config_field.description:
            missing.append(where)
        fields = getattr(config_field.config_type, "fields", None)
        if fields and config_field.config_type.kind.name in ("STRICT_SHAPE", "SHAPE"):
            for name, inner in fields.items():
                walk(f"{where}.{name}", inner)

    for job in _jobs():
        for op, node in job.run_config_schema.config_type.fields["ops"].config_type.fields.items():
            config = node.config_type.fields.get("config")
            for name, config_field in getattr(config and config.config_type, "fields", {}).items():
                walk(f"{job.name}: {op}.{name}", config_field)
                checked.add(op)
    assert not missing
    assert checked >= {op for op, _ in SOURCES} | {"live_signals"}


@pytest.mark.parametrize("source", ["demo/strong_signal.yaml", "README.md"])
def test_the_documented_run_configs_are_valid(source):
    text = (PROJECT_ROOT / source).read_text()
    blocks = [text] if source.endswith(".yaml") else \
        [b.split("```")[0] for b in text.split("```yaml\n")[1:]]
    configs = [c for c in map(yaml.safe_load, blocks) if isinstance(c, dict) and "ops" in c]
    assert configs, f"no run config with ops in {source}"
    job = defs.resolve_job_def("main")
    for config in configs:
        dg.validate_run_config(job, {"ops": config["ops"]})


def test_trials_has_one_default():
    from argparse import Namespace

    assert launchpad_config("model_candidate").config_type.fields["trials"].default_value == TrainingSettings.trials
    train = Namespace(command="train", trials=None, start=None, end=None, cv=None, n_splits=None)
    assert "trials" not in cli.candidate_config(train, {})  # `atra train`: the config's default
    assert cli.candidate_config(Namespace(command="run", trials=None), {}) == {"trials": cli.QUICK_RUN_TRIALS}


# A throwaway settings dataclass: what a stage's settings may hold.
@dataclass(frozen=True)
class _Inner:
    fee_bps: float = 4.0
    """A nested setting."""


@dataclass(frozen=True)
class _Settings:
    count: int = 3
    """A count."""
    kind: Literal["a", "b"] = "a"
    """One of two kinds."""
    pair: tuple[float, float] = (1.0, 2.0)
    """Two numbers (a list in the config)."""
    inner: _Inner = field(default_factory=lambda: _Inner(fee_bps=5.0))
    """Flattened into the config."""
    fixed: str = "code"
    """Not in the config: the code sets it."""


@dataclass(frozen=True)
class _MoreSettings(_Settings):
    added: float = 0.5
    """A field added later: in the config without an edit to it."""


def test_a_field_added_to_the_settings_is_in_the_config():
    config = settings_config(_MoreSettings, name="MoreConfig", doc="Throwaway.", derived={"fixed": "the code's"})
    shown = config.to_config_schema().as_field().config_type.fields
    assert list(shown) == ["count", "kind", "pair", "fee_bps", "added"]
    assert {k: f.default_value for k, f in shown.items()} == {"count": 3, "kind": "a", "pair": [1.0, 2.0],
                                                            "fee_bps": 5.0, "added": 0.5}
    assert shown["added"].description == "A field added later: in the config without an edit to it."
    assert shown["fee_bps"].description == "A nested setting."
    assert config.__module__ == __name__ and config.__name__ == "MoreConfig"
    base = _MoreSettings(fixed="from the run")
    assert config().settings(base=base) == base
    assert config(pair=[3.0, 4.0], fee_bps=1.0, added=2.0).settings(base=base) == \
        _MoreSettings(pair=(3.0, 4.0), inner=_Inner(1.0), fixed="from the run", added=2.0)
    with pytest.raises(TypeError, match="fixed"):
        config().settings()  # a derived field is never silently the dataclass default


def test_a_setting_without_a_docstring_or_with_a_taken_name_is_refused():
    @dataclass(frozen=True)
    class Undocumented:
        count: int = 3

    with pytest.raises(TypeError, match="Undocumented.count has no docstring"):
        settings_config(Undocumented, name="X", doc="x")

    class Taken(SettingsConfig):
        count: int = 1
        """Declared on the base."""

    with pytest.raises(TypeError, match="already a field"):
        settings_config(_Settings, name="Y", doc="y", base=Taken)
    with pytest.raises(TypeError, match="derived names no field"):
        settings_config(_Settings, name="Z", doc="z", derived={"nope": "?"})
