"""`conf/` loaded once into frozen, typed, validated settings.

A job reads its config directory with `load_settings` at its start; every rule file is
parsed and checked there, so a bad value stops the job before it touches an output. Each
module receives its own settings object (`ScenarioGrid`, `BudgetRules`, ...), never the
raw YAML. Every problem is a `ConfigFileError` naming the file and the key, including a
missing key or a value of the wrong type. The run record's config hash comes from here.

Spark session settings (`conf/spark.yaml`) stay with `runtime.build_session`; the other
jobs' own files (`sample_data`, `serve`, the report's section) are parsed by those jobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from onderwijsscore.analyses.rules import AnalysisRules
from onderwijsscore.assignment import AssignmentRules
from onderwijsscore.budgets import BudgetRules
from onderwijsscore.catalogue import ZONES, Catalogue
from onderwijsscore.config import Config, load_config
from onderwijsscore.disclosure import DisclosureRules
from onderwijsscore.errors import ConfigFileError, PipelineError
from onderwijsscore.lease import LeaseSettings
from onderwijsscore.models import ScoreModel, parse_model
from onderwijsscore.quality.rules import QualityRules
from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.scoring.rules import ScoringRules, parse_scoring_rules

T = TypeVar("T")
MODELS_DIR = "models"


@dataclass(frozen=True)
class PipelineSettings:
    """conf/pipeline.yaml: the run's defaults and how it publishes."""

    years: tuple[int, ...]  # teldatum years a run computes unless told otherwise
    seed: int  # drives every random choice: same seed, same output
    input_format: str
    zones: dict[str, str]  # zone (catalogue.ZONES) -> its folder under the output root
    concurrency: int  # independent Spark jobs (disclosure checks, writes) run side by side
    lease: LeaseSettings  # one run at a time per output root

    @classmethod
    def from_yaml(cls, raw: dict, file: str) -> PipelineSettings:
        zones = {zone: raw["zones"][zone] for zone in ZONES}
        restricted, export = (Path(zones[zone]) for zone in ("restricted", "export"))
        if restricted == export or restricted in export.parents or export in restricted.parents:
            raise ConfigFileError(file, "zones", "restricted and export must be separate, not nested, folders")
        concurrency = int(raw["concurrent_jobs"])
        if concurrency < 1:
            raise ConfigFileError(file, "concurrent_jobs", "at least 1")
        return cls(
            years=tuple(sorted(int(year) for year in raw["years"])),
            seed=int(raw["seed"]),
            input_format=raw["input_format"],
            zones=zones,
            concurrency=concurrency,
            lease=LeaseSettings(
                heartbeat_seconds=float(raw["lease"]["heartbeat_seconds"]),
                stale_after_seconds=float(raw["lease"]["stale_after_seconds"]),
            ),
        )


@dataclass(frozen=True)
class Settings:
    """Every rule file of a config directory, parsed."""

    config: Config  # the files as read: their hash identifies the run's configuration
    pipeline: PipelineSettings
    scenarios: ScenarioGrid
    models: dict[str, ScoreModel]  # every file of conf/models/, by name
    scoring: ScoringRules
    budgets: BudgetRules
    assignment: AssignmentRules
    quality: QualityRules
    analyses: AnalysisRules
    disclosure: DisclosureRules
    outputs: Catalogue

    @property
    def config_hash(self) -> str:
        return self.config.hash

    @property
    def scored_models(self) -> list[ScoreModel]:
        """The score models the scenario grid uses, by name."""
        return [self.models[name] for name in sorted({scenario.model for scenario in self.scenarios.scenarios})]

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        def parse(name: str, parser: Callable[[Any, str], T]) -> T:
            file = str(config.conf_dir / f"{name}.yaml")
            if name not in config.files:
                raise ConfigFileError(file, "(file)", "missing")
            try:
                return parser(config.files[name], file)
            except PipelineError:
                raise
            except KeyError as error:
                raise ConfigFileError(file, str(error.args[0]), "missing") from None
            except (AttributeError, TypeError, ValueError, ArithmeticError) as error:
                raise ConfigFileError(file, "(a value)", f"malformed: {type(error).__name__}: {error}") from None

        model_files = sorted(name for name in config.files if name.startswith(f"{MODELS_DIR}/"))
        models = {
            name.removeprefix(f"{MODELS_DIR}/"): parse(
                name, lambda raw, file, name=name: parse_model(raw, file, name.removeprefix(f"{MODELS_DIR}/"))
            )
            for name in model_files
        }
        scenarios = parse("scenarios", ScenarioGrid.from_yaml)
        unknown = sorted({s.model for s in scenarios.scenarios} - set(models))
        if unknown:
            raise ConfigFileError(str(config.conf_dir / "scenarios.yaml"), "models", f"no model file for {unknown}")
        return cls(
            config=config,
            pipeline=parse("pipeline", PipelineSettings.from_yaml),
            scenarios=scenarios,
            models=models,
            scoring=parse("scoring", parse_scoring_rules),
            budgets=parse("budgets", BudgetRules.from_yaml),
            assignment=parse("budgets", lambda raw, _: AssignmentRules.from_yaml(raw["swv_assignment"])),
            quality=parse("quality", lambda raw, file: QualityRules.from_yaml(raw, file, set(models))),
            analyses=parse("analyses", lambda raw, file: AnalysisRules.from_yaml(raw, file, scenarios)),
            disclosure=parse("disclosure", DisclosureRules.from_yaml),
            outputs=parse("outputs", Catalogue.from_yaml),
        )


def load_settings(conf_dir: str | os.PathLike) -> Settings:
    """Read and check a config directory; a problem raises `ConfigFileError`."""
    return Settings.from_config(load_config(conf_dir))
