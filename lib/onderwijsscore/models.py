"""Score models: the versioned coefficient files under `conf/models/` (domain.md §2).

A model file is data: loading validates it against the input contract's category codes
and turns it into a frozen `ScoreModel`; the scoring stage joins its coefficients as small
broadcast lookup frames, so no coefficient lives in a transformation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from onderwijsscore.errors import ConfigFileError
from onderwijsscore.runtime import literal_frame
from onderwijsscore.vocabulary import CHARACTERISTICS, EDUCATION_LEVELS, PROGRAMMES

STATUSES = ("official", "illustrative")


@dataclass(frozen=True)
class ScoreModel:
    name: str
    status: str
    source: str
    programmes: tuple[str, ...]
    grades: tuple[int, ...]
    funded_only: bool
    start: dict[str, Decimal]  # track (enrolment programme) -> start value
    coefficients: dict[str, dict[str, Decimal]]  # characteristic -> category -> coefficient
    education_mapping: dict[str, str]  # parent education code -> category it counts as


def mapped_register_codes(models: list[ScoreModel]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Per input table and column, the register codes outside the categories that every
    model's mapping recodes: the contract accepts them (a code only some models map would
    leave the others without a coefficient)."""
    codes = set.intersection(*[set(model.education_mapping) for model in models]) if models else set()
    return {"education": {"education_level": tuple(sorted(codes))}}


def parse_model(raw: Any, file: str, expected_name: str | None = None) -> ScoreModel:
    """Validate a parsed model file; any problem raises `ConfigFileError` naming file and key."""

    def fail(key: str, problem: str) -> ConfigFileError:
        return ConfigFileError(file, key, problem)

    def section(parent: Any, key: str, path: str) -> Any:
        if not isinstance(parent, dict) or key not in parent:
            raise fail(path, "missing")
        return parent[key]

    def number(value: Any, path: str) -> Decimal:
        # bool is an int in Python, but `yes: true` in a coefficient table is a typo.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise fail(path, f"not a number: {value!r}")
        return Decimal(str(value))  # str() keeps -0.22 exact instead of its binary expansion

    def category_table(value: Any, allowed: tuple[str, ...], path: str) -> dict[str, Decimal]:
        if not isinstance(value, dict):
            raise fail(path, "must be a mapping category -> number")
        found = [str(k) if isinstance(k, str) else repr(k) for k in value]
        missing = [c for c in allowed if c not in value]
        unknown = [k for k in found if k not in allowed]
        if missing or unknown:
            hint = " (quote yes/no: YAML reads them as booleans)" if any(isinstance(k, bool) for k in value) else ""
            raise fail(path, f"categories must be exactly {list(allowed)}; missing {missing}, unknown {unknown}{hint}")
        return {category: number(value[category], f"{path}.{category}") for category in allowed}

    name = section(raw, "model", "model")
    if expected_name is not None and name != expected_name:
        raise fail("model", f"is {name!r} but the file is the {expected_name!r} model")
    status = section(raw, "status", "status")
    if status not in STATUSES:
        raise fail("status", f"{status!r} not in {list(STATUSES)}")
    source = section(raw, "source", "source")

    population = section(raw, "population", "population")
    programmes = section(population, "programmes", "population.programmes")
    if not isinstance(programmes, list) or not programmes or not set(programmes) <= set(PROGRAMMES):
        raise fail("population.programmes", f"must be a non-empty list of {list(PROGRAMMES)}")
    grades = section(population, "grades", "population.grades")
    if not isinstance(grades, list) or not grades or not all(type(g) is int and 1 <= g <= 6 for g in grades):
        raise fail("population.grades", "must be a non-empty list of integers 1-6")
    funded_only = section(population, "funded_only", "population.funded_only")
    if not isinstance(funded_only, bool):
        raise fail("population.funded_only", "must be true or false")

    start_raw = section(raw, "start", "start")
    if not isinstance(start_raw, dict) or set(start_raw) != set(programmes):
        raise fail("start", f"must give exactly one start value per population programme {programmes}")
    start = {track: number(value, f"start.{track}") for track, value in start_raw.items()}

    coefficients_raw = section(raw, "coefficients", "coefficients")
    if not isinstance(coefficients_raw, dict) or set(coefficients_raw) != set(CHARACTERISTICS):
        raise fail("coefficients", f"must have exactly the characteristics {list(CHARACTERISTICS)}")
    coefficients = {
        characteristic: category_table(coefficients_raw[characteristic], allowed, f"coefficients.{characteristic}")
        for characteristic, allowed in CHARACTERISTICS.items()
    }

    mapping = raw.get("education_mapping") or {}
    if not isinstance(mapping, dict) or any(
        code in EDUCATION_LEVELS or target not in EDUCATION_LEVELS for code, target in mapping.items()
    ):
        raise fail("education_mapping", f"must map codes outside the categories to one of {list(EDUCATION_LEVELS)}")

    return ScoreModel(
        name=name,
        status=status,
        source=str(source),
        programmes=tuple(programmes),
        grades=tuple(grades),
        funded_only=funded_only,
        start=start,
        coefficients=coefficients,
        education_mapping=dict(mapping),
    )


def coefficient_lookup(spark: SparkSession, model: ScoreModel, score_type: T.DecimalType) -> DataFrame:
    """(characteristic, category, coefficient): a few dozen rows, meant for `F.broadcast` joins."""
    rows = [
        (characteristic, category, value)
        for characteristic, table in model.coefficients.items()
        for category, value in table.items()
    ]
    schema = T.StructType(
        [
            T.StructField("characteristic", T.StringType(), False),
            T.StructField("category", T.StringType(), False),
            T.StructField("coefficient", score_type, False),
        ]
    )
    return literal_frame(spark, rows, schema)


def start_lookup(spark: SparkSession, model: ScoreModel, score_type: T.DecimalType) -> DataFrame:
    """(track, c_start): one row per population programme, meant for `F.broadcast` joins."""
    schema = T.StructType([T.StructField("track", T.StringType(), False), T.StructField("c_start", score_type, False)])
    return literal_frame(spark, list(model.start.items()), schema)
