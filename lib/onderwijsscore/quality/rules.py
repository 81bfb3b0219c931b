"""conf/quality.yaml: the gates' choices, and the population shares the input gates measure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onderwijsscore.contract import CONTRACT
from onderwijsscore.errors import ConfigFileError

# Tables of dated rows, not years: the rows that count for a teldatum year (`_rows_per_year`).
DATED_TABLES = ("wsnp", "asylum")
SEVERITIES = ("warn", "stop")


@dataclass(frozen=True)
class Share:
    """A per-year share of population students that must lie within configured bounds."""

    table: str  # the input table a broken extract of which moves the share
    column: str
    students: str  # completes "share of population students ..."


SHARES = {
    "unknown_parent_education": Share(
        "education", "education_level", "with a parent in the register whose education is unknown"
    ),
    "not_in_register": Share("persons", "person_id", "who, or one of whose parents, is not in the register"),
    "asylum": Share("asylum", "registration_date", "on the asylum path"),
}


@dataclass(frozen=True)
class QualityRules:
    """conf/quality.yaml, plus the rules of other files the gates must agree with."""

    tables_with_every_year: tuple[str, ...]
    asylum_recent_months: int
    share_population_models: tuple[str, ...]
    share_bands: dict[str, dict[str, tuple[float, float]]]  # share -> severity (warn, stop) -> (min, max)
    tie_warning_bands: dict[str, float]  # band -> realised_share above target_share, in points; ascending

    @classmethod
    def from_yaml(cls, raw: dict, file: str, model_names: set[str]) -> QualityRules:
        """conf/quality.yaml, checked against the model files (`model_names`)."""
        inputs = raw["input"]
        yearly_tables = [name for name, table in CONTRACT.items() if "year" in {c.name for c in table.columns}]
        yearly_tables += list(DATED_TABLES)
        tables_with_every_year = tuple(inputs["tables_with_every_year"])
        if not tables_with_every_year or not set(tables_with_every_year) <= set(yearly_tables):
            raise ConfigFileError(file, "input.tables_with_every_year", f"must be some of {yearly_tables}")
        recent = inputs["asylum_recent_months"]
        if isinstance(recent, bool) or not isinstance(recent, int) or recent < 1:
            raise ConfigFileError(file, "input.asylum_recent_months", "must be a whole number of months >= 1")
        models = tuple(inputs["share_population_models"])
        if not models or not set(models) <= model_names:
            raise ConfigFileError(file, "input.share_population_models", "must name model files of conf/models/")
        share_bands = _share_bands(inputs["share_bands"], file)
        bands = raw["output"]["tie_warning_bands"]
        if (
            not isinstance(bands, dict)
            or not bands
            or not all(
                isinstance(points, int | float) and not isinstance(points, bool) and points > 0
                for points in bands.values()
            )
        ):
            raise ConfigFileError(file, "output.tie_warning_bands", "must map band names to points > 0")
        return cls(
            tables_with_every_year=tables_with_every_year,
            asylum_recent_months=recent,
            share_population_models=models,
            share_bands=share_bands,
            tie_warning_bands=dict(
                sorted(((name, float(points)) for name, points in bands.items()), key=lambda b: b[1])
            ),
        )


def _share_bands(raw: Any, file: str) -> dict[str, dict[str, tuple[float, float]]]:
    """Each share's warning band lies within its stop band, both within [0, 1]."""
    problem = f"needs {list(SHARES)}, each {{warn: {{min, max}}, stop: {{min, max}}}}, 0 <= stop.min <= warn.min"
    problem += " <= warn.max <= stop.max <= 1"
    try:
        bands = {
            name: {severity: (float(band[severity]["min"]), float(band[severity]["max"])) for severity in SEVERITIES}
            for name, band in raw.items()
        }
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ConfigFileError(file, "input.share_bands", problem) from None
    nested = all(0 <= b["stop"][0] <= b["warn"][0] <= b["warn"][1] <= b["stop"][1] <= 1 for b in bands.values())
    if set(bands) != set(SHARES) or not nested:
        raise ConfigFileError(file, "input.share_bands", problem)
    return bands
