"""The scenario grid (conf/scenarios.yaml): every scenario a run computes, as model ×
target share × principle × threshold F, and how a principle picks a student's unit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import product

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from onderwijsscore.errors import ConfigFileError
from onderwijsscore.runtime import literal_frame

OWN_TARGET_SHARE = "target_share"  # asylum_share value: the scenario's own target share
THRESHOLD_SHARE = T.DecimalType(9, 6)  # F as a fraction (config gives percent)


@dataclass(frozen=True)
class Principle:
    """How a scenario picks a student's unit: a column of the assigned student frame."""

    name: str
    unit_column: str
    unit_type: str


@dataclass(frozen=True)
class Scenario:
    scenario_id: str
    model: str
    target_share: int  # p, whole percentage
    asylum_share: int  # the target group whose mean is the asylum score, whole percentage
    principle: Principle
    threshold_share: Decimal  # F as a fraction


@dataclass(frozen=True)
class ScenarioGrid:
    scenarios: tuple[Scenario, ...]
    principles: dict[str, Principle]  # by name
    percentile_accuracy: int
    bracket_errors: int
    small_unit_max_students: int

    @classmethod
    def from_yaml(cls, raw: dict, file: str) -> ScenarioGrid:
        """conf/scenarios.yaml; a value out of range raises `ConfigFileError`."""
        principles = {name: Principle(name, **spec) for name, spec in raw["principles"].items()}
        scenarios = []
        for model, spec in raw["models"].items():
            grid = product(spec["target_shares"], spec["principles"], spec["thresholds"])
            for share, principle, threshold in grid:
                asylum_share = share if spec["asylum_share"] == OWN_TARGET_SHARE else spec["asylum_share"]
                scenario_id = raw["scenario_id"].format(
                    model=model, target_share=share, principle=principle, threshold=threshold
                )
                scenarios.append(
                    Scenario(
                        scenario_id,
                        model,
                        _whole_percentage(share, file, f"models.{model}.target_shares"),
                        _whole_percentage(asylum_share, file, f"models.{model}.asylum_share"),
                        principles[principle],
                        _threshold(threshold, file, f"models.{model}.thresholds"),
                    )
                )
        ids = [s.scenario_id for s in scenarios]
        if len(set(ids)) != len(ids):
            raise ConfigFileError(file, "scenario_id", "scenario ids not unique; extend the pattern")
        percentiles = raw["percentiles"]
        return cls(
            tuple(scenarios),
            principles,
            int(percentiles["accuracy"]),
            int(percentiles["bracket_errors"]),
            int(raw["small_unit_max_students"]),
        )

    def scenario_ids(self, model: str) -> list[str]:
        return [s.scenario_id for s in self.scenarios if s.model == model]

    def shares(self) -> dict[str, list[int]]:
        """Per model, every share a cutoff is needed for: target and asylum shares."""
        needed: dict[str, set[int]] = {}
        for s in self.scenarios:
            needed.setdefault(s.model, set()).update((s.target_share, s.asylum_share))
        return {model: sorted(shares) for model, shares in needed.items()}

    def frame(self, spark: SparkSession) -> DataFrame:
        """One row per scenario: its parameters, for broadcast joins."""
        schema = T.StructType.fromDDL(
            "scenario string not null, model string not null, target_share int not null, "
            "asylum_share int not null, principle string not null, unit_type string not null, "
            f"threshold_share {THRESHOLD_SHARE.simpleString()} not null"
        )
        rows = [
            (
                s.scenario_id,
                s.model,
                s.target_share,
                s.asylum_share,
                s.principle.name,
                s.principle.unit_type,
                s.threshold_share,
            )
            for s in self.scenarios
        ]
        return literal_frame(spark, rows, schema)


def _whole_percentage(value: object, file: str, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 100:
        raise ConfigFileError(file, key, "shares are whole percentages in 1..99")
    return value


def _threshold(value: object, file: str, key: str) -> Decimal:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 100:
        raise ConfigFileError(file, key, "thresholds F are percentages in [0, 100]")
    return Decimal(str(value)) / 100
