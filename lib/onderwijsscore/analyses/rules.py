"""conf/analyses.yaml: the profiles' characteristics, the cross-tables' bins, the scenario
pairs, the regional and change-explained choices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import reduce

from pyspark.sql import Column
from pyspark.sql import functions as F

from onderwijsscore.errors import ConfigFileError
from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.vocabulary import CHARACTERISTICS

DERIVED_CHARACTERISTICS = ("dutch_parent", "asylum")


@dataclass(frozen=True)
class Bins:
    """[lower, upper) bins between ascending edges, open at both ends."""

    edges: tuple[Decimal, ...]

    @classmethod
    def from_yaml(cls, edges: list, file: str, key: str) -> Bins:
        values = tuple(Decimal(str(edge)) for edge in edges)
        if list(values) != sorted(set(values)):
            raise ConfigFileError(file, key, "edges must be strictly ascending")
        return cls(values)

    def order(self, value: Column) -> Column:
        """0-based bin of `value`: the number of edges at or below it."""
        return reduce(lambda n, edge: n + (value >= F.lit(edge)).cast("int"), self.edges, F.lit(0))

    @property
    def labels(self) -> list[str]:
        bounds = ["-inf", *(format(edge, "f") for edge in self.edges), "inf"]
        return [f"[{lower}, {upper})" for lower, upper in zip(bounds, bounds[1:], strict=False)]


@dataclass(frozen=True)
class AnalysisRules:
    characteristics: tuple[str, ...]
    unknown_category: str
    dutch_parent_origin_groups: tuple[str, ...]
    stability: tuple[Bins, Bins]  # absolute (EUR), relative
    redistribution: tuple[Bins, Bins]
    scenario_pairs: tuple[tuple[str, str], ...]
    rest_shrink_type: str
    no_area_swvs: tuple[str, ...]
    source_groups: dict[str, tuple[str, ...]]  # driver group -> score_sources

    @classmethod
    def from_yaml(cls, raw: dict, file: str, grid: ScenarioGrid) -> AnalysisRules:
        """conf/analyses.yaml, checked against the scenario grid; problems raise `ConfigFileError`."""
        profiles = raw["profiles"]
        unsupported = set(profiles["characteristics"]) - {*CHARACTERISTICS, *DERIVED_CHARACTERISTICS}
        if unsupported:
            raise ConfigFileError(file, "profiles.characteristics", f"unknown {sorted(unsupported)}")
        known = {s.scenario_id for s in grid.scenarios}
        pairs = tuple((a, b) for a, b in raw["scenario_pairs"])
        if not {s for pair in pairs for s in pair} <= known:
            raise ConfigFileError(file, "scenario_pairs", "a scenario is not in conf/scenarios.yaml")
        return cls(
            characteristics=tuple(profiles["characteristics"]),
            unknown_category=profiles["unknown_category"],
            dutch_parent_origin_groups=tuple(profiles["dutch_parent_origin_groups"]),
            stability=_bin_pair(raw["stability"], file, "stability"),
            redistribution=_bin_pair(raw["redistribution"], file, "redistribution"),
            scenario_pairs=pairs,
            rest_shrink_type=raw["regional"]["rest_shrink_type"],
            no_area_swvs=tuple(raw["regional"]["no_area_swvs"]),
            source_groups={g: tuple(s) for g, s in raw["change_explained"]["source_groups"].items()},
        )


def _bin_pair(raw: dict, file: str, key: str) -> tuple[Bins, Bins]:
    return (
        Bins.from_yaml(raw["absolute_edges"], file, f"{key}.absolute_edges"),
        Bins.from_yaml(raw["relative_edges"], file, f"{key}.relative_edges"),
    )
