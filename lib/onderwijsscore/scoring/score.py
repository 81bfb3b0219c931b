"""The score (domain.md §2): `D = start(track) + c_father_education + c_mother_education
+ c_origin_group + c_mother_duration + c_wsnp`, with the coefficients joined from the
model file as broadcast lookups and everything in DECIMAL, so ties and cutoffs are
engine-independent; the donor paths take their donor's score."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from operator import add

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.models import ScoreModel, coefficient_lookup, start_lookup
from onderwijsscore.scoring.education import (
    EducationFit,
    fit_education_models,
    with_imputed_education,
)
from onderwijsscore.scoring.rules import ScoringRules
from onderwijsscore.vocabulary import CHARACTERISTICS, DONOR_SOURCES, EDUCATION_CHARACTERISTICS, IMPUTED

OUTPUT_COLUMNS = (
    "year",
    "model",
    "student_id",
    "school_id",
    "track",
    "grade",
    "score",
    "score_source",
    *CHARACTERISTICS,
    "c_start",
    *[f"c_{characteristic}" for characteristic in CHARACTERISTICS],
)


def with_categories(students: DataFrame) -> DataFrame:
    """The five category codes for students scored on their own data (paths 4 and 5), with
    `imputed` for an unknown parent education; null on the donor and asylum paths."""
    own_score = F.col("score_source").isin(*DONOR_SOURCES)

    def category(characteristic: str) -> Column:
        observed = F.col(f"{characteristic}_observed")
        return F.coalesce(observed, F.lit(IMPUTED)) if characteristic in EDUCATION_CHARACTERISTICS else observed

    return students.withColumns({c: F.when(own_score, category(c)) for c in CHARACTERISTICS})


def with_coefficients(students: DataFrame, coefficients: DataFrame, starts: DataFrame) -> DataFrame:
    """`c_start` and `c_<characteristic>` by broadcast lookup of the student's model and
    categories; an imputed parent education takes its expected coefficient from
    `c_<characteristic>_imputed` (`education.with_imputed_education`)."""
    for characteristic in CHARACTERISTICS:
        lookup = coefficients.where(F.col("characteristic") == characteristic).select(
            "model", F.col("category").alias(characteristic), F.col("coefficient").alias(f"c_{characteristic}")
        )
        students = students.join(F.broadcast(lookup), ["model", characteristic], "left")
    imputed = {
        f"c_{c}": F.when(F.col(c) == IMPUTED, F.col(f"c_{c}_imputed")).otherwise(F.col(f"c_{c}"))
        for c in EDUCATION_CHARACTERISTICS
    }
    own_score = F.col("score_source").isin(*DONOR_SOURCES)
    return (
        students.join(F.broadcast(starts), ["model", "track"], "left")
        .withColumns({**imputed, "c_start": F.when(own_score, F.col("c_start"))})
        .drop(*[f"c_{c}_imputed" for c in EDUCATION_CHARACTERISTICS])
    )


def with_score(students: DataFrame, score_type: T.DecimalType) -> DataFrame:
    """D = start + the five coefficients, in DECIMAL (null where the student has no own score):
    summed exactly, then rounded once to `score_type`, half away from zero (Spark's decimal
    cast rounds HALF_UP, which is away from zero on a tie)."""
    terms = [F.col("c_start"), *[F.col(f"c_{characteristic}") for characteristic in CHARACTERISTICS]]
    return students.withColumn("score", reduce(add, terms).cast(score_type))


def with_donor_scores(own: DataFrame, donated: DataFrame, rules: ScoringRules) -> DataFrame:
    """Every population student's row of `restricted/student_scores` (`OUTPUT_COLUMNS`): the
    `own_scores`, the donor paths' score filled with their donor's (`imputation.donor_scores`)."""
    donor_paths = tuple(rules.donor_levels)
    return (
        own.join(donated, ["year", "model", "student_id"], "left")
        .withColumn(
            "score", F.when(F.col("score_source").isin(*donor_paths), F.col("donor_score")).otherwise(F.col("score"))
        )
        .select(*OUTPUT_COLUMNS)
    )


def fit_education(
    counts: pa.Table, models: list[ScoreModel], rules: ScoringRules, years: list[int]
) -> list[EducationFit]:
    """The education model of every (model, year), fitted on the driver from the collected
    `education.education_counts` of the facts."""
    groups = [(model.name, year) for model in models for year in years]
    return fit_education_models(counts, rules.education_model, groups)


def own_scores(facts: DataFrame, fits: list[EducationFit], models: list[ScoreModel], rules: ScoringRules) -> DataFrame:
    """The facts with categories, coefficients and score for the students scored on their
    own data (paths 4 and 5; null on the donor and asylum paths), the expected coefficient
    of an unknown parent education from the fitted education models."""
    spark = facts.sparkSession
    score_type = rules.score_type

    def per_model(lookup: Callable[[SparkSession, ScoreModel, T.DecimalType], DataFrame]) -> DataFrame:
        frames = [lookup(spark, model, score_type).withColumn("model", F.lit(model.name)) for model in models]
        return reduce(DataFrame.unionByName, frames)

    return (
        facts.transform(
            with_imputed_education,
            fits,
            {model.name: model for model in models},
            rules.education_model.features,
            rules.expected_coefficient_type,
        )
        .transform(with_categories)
        .transform(with_coefficients, per_model(coefficient_lookup), per_model(start_lookup))
        .transform(with_score, score_type)
    )


def fit_metrics(fits: list[EducationFit]) -> dict[str, dict[int, dict[str, float | int | bool | None]]]:
    """The fit metrics per model and teldatum year (the run record's `model_fit`)."""
    metrics: dict[str, dict[int, dict[str, float | int | bool | None]]] = {}
    for fitted in fits:
        metrics.setdefault(fitted.model, {})[fitted.year] = fitted.metrics
    return metrics
