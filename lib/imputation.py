"""Imputation of missing data (domain.md §3, paths 2-4), all in Spark.

- Path 4: a parent's unknown education level is predicted by a multinomial logistic
  regression fitted per teldatum on the population's parents with a known level; the
  parent's coefficient is the expected value `sum_k P(level k) * c_k`, so it is
  deterministic.
- Paths 2 and 3: the student takes the score of a donor (a student on path 4 or 5),
  found with joins over configured levels of match keys and ranked by a hash of
  (seed, recipient, donor), so the choice is deterministic given the seed.

The functions take and return DataFrames; only per-year counts and fit metrics reach the
driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from itertools import product

from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lib.contract import EDUCATION_LEVELS, ORIGIN_GROUPS
from lib.errors import PipelineError
from lib.models import literal_frame
from lib.runtime import concurrently

PARENT_ROLES = ("father", "mother")
EDUCATION_CHARACTERISTICS = tuple(f"{role}_education" for role in PARENT_ROLES)
DONOR_SOURCES = ("imputed_education", "computed")  # paths 4 and 5: scores of their own

# Match keys a donor level may use, and the student-frame column each one compares.
DONOR_MATCH_COLUMNS = {
    "school_id": "school_id",
    "track": "track",
    "origin_group": "origin_group_observed",
    "father_education": "father_education_observed",
    "mother_education": "mother_education_observed",
}
# Keys a recipient may not know (no origin group, parent not in the register, unknown
# education): an unknown recipient value matches every donor.
_KEYS_UNKNOWN_MATCHES_ANY = ("origin_group", "father_education", "mother_education")
_ANY = "*"  # a recipient's unknown value
_NO_VALUE = "?"  # a donor's unknown value: matched only by _ANY

_LABEL = "label"
_HELD_OUT_BUCKETS = 10_000
_MIN_PROBABILITY = 1e-15  # log-loss clipping, so one confident miss does not make it infinite

FIT_METRIC_KEYS = (
    "n_imputed_parents",
    "n_train",
    "n_held_out",
    "held_out_log_loss",
    "held_out_accuracy",
    "majority_class_accuracy",
)


@dataclass(frozen=True)
class EducationModelSettings:
    features: tuple[str, ...]
    held_out_fraction: float
    max_iter: int
    reg_param: float
    elastic_net_param: float
    tolerance: float
    concurrent_fits: int  # years fitted at once; each fit runs on one core


def _one_hot(column: str, categories: tuple[str, ...], prefix: str) -> dict[str, Column]:
    """One 0/1 column per category and one for unknown (null)."""
    flags = {f"{prefix}_{c}": F.coalesce((F.col(column) == c).cast("double"), F.lit(0.0)) for c in categories}
    return {**flags, f"{prefix}_unknown": F.col(column).isNull().cast("double")}


# Each configurable feature -> the numeric columns it adds to a parent record.
FEATURE_COLUMNS: dict[str, Callable[[], dict[str, Column]]] = {
    "income_percentile": lambda: {
        "income_percentile_value": F.coalesce(F.col("income_percentile"), F.lit(0)).cast("double"),
        "income_percentile_missing": F.col("income_percentile").isNull().cast("double"),
    },
    "age": lambda: {"age": (F.col("year") - F.col("birth_year")).cast("double")},
    "sex": lambda: {"is_mother": (F.col("characteristic") == "mother_education").cast("double")},
    "partner_education": lambda: _one_hot("partner_education", EDUCATION_LEVELS, "partner_education"),
    "child_origin_group": lambda: _one_hot("child_origin_group", ORIGIN_GROUPS, "child_origin_group"),
}


def parent_records(students: DataFrame) -> DataFrame:
    """One row per (year, student, parent in the register) with the model's inputs.

    `characteristic` is `father_education` or `mother_education`; `education` the parent's
    known level (null = unknown); `partner_education` the other parent's (null = unknown
    or not in the register); `child_origin_group` the student's.
    """

    def record(role: str, partner: str) -> Column:
        return F.struct(
            F.lit(f"{role}_education").alias("characteristic"),
            F.col(f"{role}_id").alias("parent_id"),
            F.col(f"{role}_in_register").alias("in_register"),
            F.col(f"{role}_birth_year").alias("birth_year"),
            F.col(f"{role}_income_percentile").alias("income_percentile"),
            F.col(f"{role}_education_observed").alias("education"),
            F.col(f"{partner}_education_observed").alias("partner_education"),
        )

    return (
        students.select(
            "year",
            "student_id",
            "score_source",
            F.col("origin_group_observed").alias("child_origin_group"),
            F.inline(F.array(record("father", "mother"), record("mother", "father"))),
        )
        .where("in_register")
        .drop("in_register")
    )


def with_features(records: DataFrame, feature_names: tuple[str, ...]) -> DataFrame:
    """Add the `features` vector (JVM VectorAssembler) built from the configured features."""
    columns = {name: column for feature in feature_names for name, column in FEATURE_COLUMNS[feature]().items()}
    assembler = VectorAssembler(inputCols=list(columns), outputCol="features")
    return assembler.transform(records.select("*", *[c.alias(n) for n, c in columns.items()])).drop(*columns)


def with_label(records: DataFrame) -> DataFrame:
    """The known education level as class index 0-7 (the contract's order)."""
    position = F.array_position(F.array(*[F.lit(level) for level in EDUCATION_LEVELS]), F.col("education"))
    return records.withColumn(_LABEL, (position - 1).cast("double"))


def fit_education_model(
    training: DataFrame, settings: EducationModelSettings, seed: int
) -> tuple[LogisticRegressionModel, dict[str, float | int | None]]:
    """Fit on the parents outside the held-out share; measure fit quality on the held-out share.

    The held-out share is chosen by a hash of (seed, parent id), so it does not depend on
    partitioning and a parent with several children is on one side only.
    """
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col("parent_id")), F.lit(_HELD_OUT_BUCKETS))
    held_out = bucket < F.lit(int(settings.held_out_fraction * _HELD_OUT_BUCKETS))
    fit_part, test_part = training.where(~held_out), training.where(held_out)

    label_counts = {row[_LABEL]: row["count"] for row in fit_part.groupBy(_LABEL).count().collect()}  # <= 8 rows
    if not label_counts:
        raise PipelineError("education imputation: no parent with a known education level to fit the model on")
    majority = min(label_counts, key=lambda label: (-label_counts[label], label))

    model = LogisticRegression(
        family="multinomial",
        maxIter=settings.max_iter,
        regParam=settings.reg_param,
        elasticNetParam=settings.elastic_net_param,
        tol=settings.tolerance,
    ).fit(
        # One partition in a fixed row order (a row per year, student and parent): the optimiser's
        # floating-point sums then run in the same order on every engine and cluster, so the fit
        # and every score are identical run to run.
        fit_part.repartition(1).sortWithinPartitions("year", "student_id", "characteristic")
    )

    probabilities = vector_to_array(F.col("probability"))
    true_class_probability = F.coalesce(F.get(probabilities, F.col(_LABEL).cast("int")), F.lit(0.0))
    quality = (
        model.transform(test_part)
        .agg(
            F.count(F.lit(1)).alias("n"),
            (-F.avg(F.ln(F.greatest(true_class_probability, F.lit(_MIN_PROBABILITY))))).alias("log_loss"),
            F.avg((F.col("prediction") == F.col(_LABEL)).cast("double")).alias("accuracy"),
            F.avg((F.col(_LABEL) == F.lit(majority)).cast("double")).alias("majority"),
        )
        .first()
    )
    return model, {
        "n_train": sum(label_counts.values()),
        "n_held_out": quality["n"],
        "held_out_log_loss": quality["log_loss"],
        "held_out_accuracy": quality["accuracy"],
        "majority_class_accuracy": quality["majority"],
    }


def expected_education_coefficients(
    probabilities: DataFrame, coefficients: DataFrame, score_type: T.DecimalType
) -> DataFrame:
    """(year, student_id, characteristic, expected_coefficient) = sum_k P(level k) * c_k.

    `probabilities` holds one array per parent in the contract's level order (shorter when
    the top levels never occurred in training: the missing ones count as 0). The model's
    coefficients arrive as a broadcast lookup, one array per parent role.
    """
    by_level = (
        coefficients.where(F.col("characteristic").isin(*EDUCATION_CHARACTERISTICS))
        .groupBy("characteristic")
        .agg(F.map_from_entries(F.collect_list(F.struct("category", "coefficient"))).alias("by_category"))
        .select(
            "characteristic",
            F.transform(
                F.array(*[F.lit(level) for level in EDUCATION_LEVELS]),
                lambda level: F.col("by_category")[level].cast("double"),
            ).alias("level_coefficients"),
        )
    )
    products = F.zip_with(
        F.col("probabilities"), F.col("level_coefficients"), lambda p, c: F.coalesce(p, F.lit(0.0)) * c
    )
    return probabilities.join(F.broadcast(by_level), "characteristic").select(
        "year",
        "student_id",
        "characteristic",
        F.aggregate(products, F.lit(0.0), lambda total, x: total + x).cast(score_type).alias("expected_coefficient"),
    )


def impute_parent_education(
    students: DataFrame,
    coefficients: DataFrame,
    settings: EducationModelSettings,
    years: list[int],
    seed: int,
    score_type: T.DecimalType,
) -> tuple[DataFrame, dict[int, dict[str, float | int | None]]]:
    """Expected education coefficients of the parents of path-4 students, and fit metrics per year.

    Returns (year, student_id, c_father_education_imputed, c_mother_education_imputed), null
    where that parent's level is known. A year without parents to impute fits no model.
    """
    records = parent_records(students).transform(with_features, settings.features)
    to_impute = records.where(F.col("education").isNull() & (F.col("score_source") == "imputed_education"))
    training = records.where(F.col("education").isNotNull()).transform(with_label)

    n_to_impute = {row["year"]: row["count"] for row in to_impute.groupBy("year").count().collect()}
    metrics: dict[int, dict[str, float | int | None]] = {
        year: dict.fromkeys(FIT_METRIC_KEYS) | {"n_imputed_parents": n_to_impute.get(year, 0)} for year in sorted(years)
    }
    fit_years = [year for year in sorted(years) if n_to_impute.get(year)]

    def fit(year: int) -> tuple[LogisticRegressionModel, dict[str, float | int | None]]:
        return fit_education_model(training.where(F.col("year") == year), settings, seed)

    # Each fit is one-partition (deterministic) work: fitting years side by side uses the cores.
    fitted = dict(zip(fit_years, concurrently(fit, fit_years, settings.concurrent_fits), strict=True))
    predicted = []
    for year, (model, quality) in fitted.items():
        metrics[year] |= quality
        predicted.append(
            model.transform(to_impute.where(F.col("year") == year)).select(
                "year", "student_id", "characteristic", vector_to_array(F.col("probability")).alias("probabilities")
            )
        )

    columns = {f"c_{c}_imputed": c for c in EDUCATION_CHARACTERISTICS}
    if not predicted:
        schema = T.StructType(
            [T.StructField("year", T.IntegerType()), T.StructField("student_id", T.StringType())]
            + [T.StructField(name, score_type) for name in columns]
        )
        return literal_frame(students.sparkSession, [], schema), metrics
    expected = reduce(DataFrame.unionByName, predicted).transform(
        expected_education_coefficients, coefficients, score_type
    )
    wide = expected.groupBy("year", "student_id").agg(
        *[
            F.max(F.when(F.col("characteristic") == characteristic, F.col("expected_coefficient"))).alias(name)
            for name, characteristic in columns.items()
        ]
    )
    return wide, metrics


def _key_value(key: str, unknown: str) -> Column:
    column = F.col(DONOR_MATCH_COLUMNS[key])
    return F.coalesce(column, F.lit(unknown)) if key in _KEYS_UNKNOWN_MATCHES_ANY else column


def _level_entry(source: str, level: int, values: tuple[Column, ...]) -> Column:
    """One level of one path: its number and its key values as one array, the equi-join key."""
    return F.struct(
        F.lit(source).alias("source"),
        F.lit(level).alias("level"),
        F.array(*values).cast("array<string>").alias("match_key"),
    )


def _donor_entries(levels_by_source: dict[str, tuple[tuple[str, ...], ...]]) -> Column:
    """A donor's entries for every level of every path. A key that a recipient may not know
    gets an extra entry with _ANY in its place, so that "an unknown value matches every
    donor" stays an equi-join."""
    entries = []
    for source, levels in levels_by_source.items():
        for number, keys in enumerate(levels):
            choices = [
                (_key_value(key, _NO_VALUE), *([F.lit(_ANY)] if key in _KEYS_UNKNOWN_MATCHES_ANY else []))
                for key in keys
            ]
            entries += [_level_entry(source, number, values) for values in product(*choices)]
    return F.array(*entries)


def _recipient_entries(levels_by_source: dict[str, tuple[tuple[str, ...], ...]]) -> Column:
    """A recipient's entries for the levels of its own path; an unknown value is _ANY."""
    return F.coalesce(
        *[
            F.when(
                F.col("score_source") == source,
                F.array(
                    *[
                        _level_entry(source, number, tuple(_key_value(key, _ANY) for key in keys))
                        for number, keys in enumerate(levels)
                    ]
                ),
            )
            for source, levels in levels_by_source.items()
        ]
    )


def donor_scores(students: DataFrame, levels_by_source: dict[str, tuple[tuple[str, ...], ...]], seed: int) -> DataFrame:
    """(year, model, student_id, donor_score) for the recipients of each donor path.

    `levels_by_source` maps a score_source to its levels of match keys, preferred first.
    Donors are the students on paths 4 and 5 of the same year and model. A recipient takes a donor
    from the first level that has one; there the candidate with the smallest hash of (seed,
    recipient id, donor id) wins. All levels are matched in one pass: a level is a number
    and its key values one array column. Donor ids never leave this function; a recipient
    without a candidate at any level (no donor at all in its year and model) gets no row.
    """
    recipient_keys = students.where(F.col("score_source").isin(*levels_by_source)).select(
        "year", "model", "student_id", F.inline(_recipient_entries(levels_by_source))
    )
    level_columns = ["year", "model", "source", "level", "match_key"]
    # Recipients are a few percent of the students: only donor entries some recipient asks
    # for go on to the joins (a broadcast filter instead of shuffling every donor entry).
    donor_keys = (
        students.where(F.col("score_source").isin(*DONOR_SOURCES))
        .select(
            "year",
            "model",
            F.col("student_id").alias("donor_id"),
            F.col("score").alias("donor_score"),
            F.inline(_donor_entries(levels_by_source)),
        )
        .join(F.broadcast(recipient_keys.select(*level_columns).distinct()), level_columns, "left_semi")
    )
    first_level = (
        recipient_keys.join(donor_keys.select(*level_columns).distinct(), level_columns)
        .groupBy("year", "model", "student_id")
        .agg(F.min("level").alias("level"))
    )
    preference = Window.partitionBy("year", "model", "student_id").orderBy(
        F.xxhash64(F.lit(seed), F.col("student_id"), F.col("donor_id")), "donor_id"
    )
    return (
        recipient_keys.join(first_level, ["year", "model", "student_id", "level"])
        .join(donor_keys, level_columns)
        .withColumn("_rank", F.row_number().over(preference))
        .where(F.col("_rank") == 1)
        .select("year", "model", "student_id", "donor_score")
    )
