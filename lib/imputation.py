"""Imputation of missing data (domain.md §3, paths 2-4).

- Path 4: a parent's unknown education level is predicted by a multinomial logistic
  regression fitted per model and teldatum on the population's parents with a known
  level; the parent's coefficient is the expected value `sum_k P(level k) * c_k`, so it
  is deterministic. Every feature is categorical or a small integer, so Spark reduces
  the parents to a count table per (model, year, feature vector, level), whose size is
  bounded by the feature domains; all models are fitted from it on the driver in one
  pass (`lib.logistic`, Spark ML's algorithm), and the expected coefficients are column
  expressions of each student's row with the fitted parameters as a broadcast lookup.
- Paths 2 and 3: the student takes the score of a donor (a student on path 4 or 5),
  found with joins over configured levels of match keys and chosen by the smallest hash
  of (seed, recipient, donor), so the choice is deterministic given the seed.

Only count tables, fitted parameters and metrics reach the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import product

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lib.contract import EDUCATION_LEVELS, ORIGIN_GROUPS
from lib.errors import PipelineError
from lib.logistic import MultinomialFit, fit_multinomial, probabilities
from lib.models import ScoreModel, literal_frame
from lib.runtime import materialize, stage

PARENT_ROLES = ("father", "mother")
EDUCATION_CHARACTERISTICS = tuple(f"{role}_education" for role in PARENT_ROLES)
DONOR_SOURCES = ("imputed_education", "computed")  # paths 4 and 5: scores of their own
EDUCATION_SOURCE = "imputed_education"  # path 4

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

_HELD_OUT_BUCKETS = 10_000
_MIN_PROBABILITY = 1e-15  # log-loss clipping, so one confident miss does not make it infinite

FIT_METRIC_KEYS = (
    "n_imputed_parents",
    "n_train",
    "n_held_out",
    "held_out_log_loss",
    "held_out_accuracy",
    "majority_class_accuracy",
    "iterations",
    "converged",
)


@dataclass(frozen=True)
class EducationModelSettings:
    features: tuple[str, ...]
    held_out_fraction: float
    max_iter: int
    reg_param: float
    tolerance: float


# A parent record's field by name: a column of `parent_records`, or of a student's row.
Field = Callable[[str], Column]


def _one_hot(value: Column, categories: tuple[str, ...]) -> list[Column]:
    """One 0/1 value per category and one for unknown (null)."""
    return [F.coalesce((value == c).cast("double"), F.lit(0.0)) for c in categories] + [value.isNull().cast("double")]


# Each configurable feature: the record fields it reads, and the numbers it adds to the
# feature vector (in Spark ML's VectorAssembler order of earlier versions).
FEATURES: dict[str, tuple[tuple[str, ...], Callable[[Field], list[Column]]]] = {
    "income_percentile": (
        ("income_percentile",),
        lambda r: [
            F.coalesce(r("income_percentile"), F.lit(0)).cast("double"),
            r("income_percentile").isNull().cast("double"),
        ],
    ),
    "age": (("year", "birth_year"), lambda r: [(r("year") - r("birth_year")).cast("double")]),
    "sex": (("characteristic",), lambda r: [r("characteristic").isin("mother_education").cast("double")]),
    "partner_education": (("partner_education",), lambda r: _one_hot(r("partner_education"), EDUCATION_LEVELS)),
    "child_origin_group": (("child_origin_group",), lambda r: _one_hot(r("child_origin_group"), ORIGIN_GROUPS)),
}


def feature_vector(features: tuple[str, ...], field: Field = F.col) -> Column:
    """The configured features of a parent record as one array<double>."""
    return F.array(*[value for name in features for value in FEATURES[name][1](field)])


def parent_records(students: DataFrame) -> DataFrame:
    """One row per (model, year, student, parent in the register) with the model's inputs.

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
            "model",
            "year",
            "student_id",
            "score_source",
            F.col("origin_group_observed").alias("child_origin_group"),
            F.inline(F.array(record("father", "mother"), record("mother", "father"))),
        )
        .where("in_register")
        .drop("in_register")
    )


def education_counts(students: DataFrame, settings: EducationModelSettings, seed: int) -> DataFrame:
    """The education models' data as counts: per (model, year, held_out, label, features).

    `label` is the known level's index in the contract's order; null marks the parents
    to impute (of path-4 students), whose `held_out` is null too. The held-out share is
    chosen by a hash of (seed, parent id), so it does not depend on partitioning and a
    parent with several children is on one side only.
    """
    records = parent_records(students)
    known = F.col("education").isNotNull()
    to_impute = ~known & (F.col("score_source") == EDUCATION_SOURCE)
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col("parent_id")), F.lit(_HELD_OUT_BUCKETS))
    held_out = F.when(known, bucket < F.lit(int(settings.held_out_fraction * _HELD_OUT_BUCKETS)))
    label = F.array_position(F.array(*[F.lit(level) for level in EDUCATION_LEVELS]), F.col("education")) - 1
    inputs = sorted({field for name in settings.features for field in FEATURES[name][0]} - {"year"})
    return (
        records.where(known | to_impute)
        .groupBy("model", "year", held_out.alias("held_out"), F.when(known, label).cast("int").alias("label"), *inputs)
        .agg(F.count(F.lit(1)).alias("n"))
        .select("model", "year", "held_out", "label", feature_vector(settings.features).alias("features"), "n")
    )


@dataclass(frozen=True)
class EducationFit:
    """One (model, year)'s fitted education model and its fit metrics (FIT_METRIC_KEYS)."""

    model: str
    year: int
    fit: MultinomialFit | None  # None: no parent to impute, so nothing was fitted
    metrics: dict[str, float | int | bool | None]


def fit_education_models(
    counts: DataFrame, settings: EducationModelSettings, groups: list[tuple[str, int]]
) -> list[EducationFit]:
    """Fit every (model, year) group of `education_counts` on the driver: groups without a
    parent to impute fit no model. The count table is collected once (Arrow)."""
    table = counts.toArrow()
    models = np.array(table.column("model").to_pylist(), dtype=object)
    years = table.column("year").to_numpy(zero_copy_only=False)
    held_out = np.array(table.column("held_out").to_pylist(), dtype=object)
    labels = table.column("label").to_numpy(zero_copy_only=False)  # NaN: to impute
    n = table.column("n").to_numpy(zero_copy_only=False).astype(np.float64)
    vectors = table.column("features").combine_chunks()
    width = len(vectors[0]) if len(vectors) else 0
    features = vectors.flatten().to_numpy(zero_copy_only=False).reshape(len(vectors), width)
    fits = []
    for model, year in groups:
        group = (models == model) & (years == year)
        impute = group & np.isnan(labels)
        metrics = dict.fromkeys(FIT_METRIC_KEYS) | {"n_imputed_parents": int(n[impute].sum())}
        if not impute.any():
            fits.append(EducationFit(model, year, None, metrics))
            continue
        fit_rows, test_rows = group & (held_out == False), group & (held_out == True)  # noqa: E712
        if not fit_rows.any():
            raise PipelineError(
                f"education imputation: no parent with a known education level to fit the {model} model of {year} on"
            )
        with stage(f"education fit {model} {year}") as logged:
            fit = fit_multinomial(
                features[fit_rows],
                _label_counts(labels[fit_rows], n[fit_rows]),
                settings.max_iter,
                settings.reg_param,
                settings.tolerance,
            )
            metrics |= {"n_train": int(n[fit_rows].sum()), "iterations": fit.iterations, "converged": fit.converged}
            metrics |= _held_out_quality(
                fit, labels[fit_rows], n[fit_rows], features[test_rows], labels[test_rows], n[test_rows]
            )
            logged.update({"feature_vectors": int(fit_rows.sum()), "iterations": fit.iterations})
        fits.append(EducationFit(model, year, fit, metrics))
    return fits


def _label_counts(labels: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(rows, levels): row i counts n[i] instances of labels[i]."""
    counts = np.zeros((len(labels), len(EDUCATION_LEVELS)))
    counts[np.arange(len(labels)), labels.astype(int)] = n
    return counts


def _held_out_quality(
    fit: MultinomialFit,
    fit_labels: np.ndarray,
    fit_n: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    n: np.ndarray,
) -> dict[str, float | int | None]:
    """Log loss and accuracy on the held-out parents, and the accuracy of always guessing
    the fit part's most frequent level (ties: the lower level)."""
    per_level = np.bincount(fit_labels.astype(int), weights=fit_n, minlength=len(EDUCATION_LEVELS))
    majority = int(np.argmax(per_level))
    total = n.sum()
    if not total:
        return {"n_held_out": 0, "held_out_log_loss": None, "held_out_accuracy": None, "majority_class_accuracy": None}
    p = probabilities(fit, features)
    label_index = labels.astype(int)
    in_model = label_index < p.shape[1]
    p_true = np.where(in_model, p[np.arange(len(p)), np.minimum(label_index, p.shape[1] - 1)], 0.0)
    return {
        "n_held_out": int(total),
        "held_out_log_loss": float(-(n * np.log(np.maximum(p_true, _MIN_PROBABILITY))).sum() / total),
        "held_out_accuracy": float((n * (np.argmax(p, axis=1) == label_index)).sum() / total),
        "majority_class_accuracy": float((n * (label_index == majority)).sum() / total),
    }


_PARAMETERS = T.StructType(
    [
        T.StructField("model", T.StringType(), False),
        T.StructField("year", T.IntegerType(), False),
        T.StructField("intercepts", T.ArrayType(T.DoubleType(), False), False),
        T.StructField("weights", T.ArrayType(T.ArrayType(T.DoubleType(), False), False), False),
        *[T.StructField(f"{c}_levels", T.ArrayType(T.DoubleType(), False), False) for c in EDUCATION_CHARACTERISTICS],
    ]
)


def with_imputed_education(
    students: DataFrame,
    fits: list[EducationFit],
    models: Mapping[str, ScoreModel],
    features: tuple[str, ...],
    score_type: T.DecimalType,
) -> DataFrame:
    """`students` plus `c_father_education_imputed` and `c_mother_education_imputed`: for a
    path-4 student's parent with unknown education, the expected coefficient
    `sum_k P(level k) * c_k` as a `score_type` decimal; else null. The fitted parameters and the models'
    level coefficients are one broadcast row per (model, year)."""
    rows = [
        (
            fitted.model,
            fitted.year,
            [float(b) for b in fitted.fit.intercepts],
            [[float(w) for w in row] for row in fitted.fit.coefficients],
            *[
                [float(models[fitted.model].coefficients[c][level]) for level in EDUCATION_LEVELS]
                for c in EDUCATION_CHARACTERISTICS
            ],
        )
        for fitted in fits
        if fitted.fit is not None
    ]
    parameters = literal_frame(students.sparkSession, rows, _PARAMETERS)
    frame = students.join(F.broadcast(parameters), ["model", "year"], "left")
    for role, partner in (PARENT_ROLES, PARENT_ROLES[::-1]):
        fields = {
            "year": F.col("year"),
            "birth_year": F.col(f"{role}_birth_year"),
            "income_percentile": F.col(f"{role}_income_percentile"),
            "characteristic": F.lit(f"{role}_education"),
            "partner_education": F.col(f"{partner}_education_observed"),
            "child_origin_group": F.col("origin_group_observed"),
        }
        imputed = (F.col("score_source") == EDUCATION_SOURCE) & F.col(f"{role}_education_observed").isNull()
        x = feature_vector(features, fields.__getitem__)
        # Step by step, so each array is computed once per row.
        frame = (
            frame.withColumn("_margins", F.when(imputed, _margins(x)))
            .withColumn("_exponentials", _shifted_exponentials(F.col("_margins")))
            .withColumn(
                f"c_{role}_education_imputed",
                _expected(F.col("_exponentials"), F.col(f"{role}_education_levels")).cast(score_type),
            )
        )
    return frame.select(*students.columns, *[f"c_{role}_education_imputed" for role in PARENT_ROLES])


def _sum(values: Column, start: Column) -> Column:
    return F.aggregate(values, start, lambda total, value: total + value)


def _margins(x: Column) -> Column:
    """Per level k: b_k + sum_j w_kj x_j, added up in j order from b_k (as BLAS gemv does
    for Spark ML's margins)."""
    return F.zip_with("weights", "intercepts", lambda w, b: _sum(F.zip_with(w, x, lambda w_j, x_j: w_j * x_j), b))


def _shifted_exponentials(margins: Column) -> Column:
    """exp(m_k − max m) when the largest margin is positive, else exp(m_k); an infinite margin
    (a model fitted on one level) takes all the mass (Spark ML's softmax)."""
    top = F.array_max(margins)
    shift = F.when(top > 0, top).otherwise(F.lit(0.0))
    infinite = F.lit(float("inf"))
    return F.when(top == infinite, F.transform(margins, lambda m: (m == infinite).cast("double"))).otherwise(
        F.transform(margins, lambda m: F.exp(m - shift))
    )


def _expected(exponentials: Column, level_coefficients: Column) -> Column:
    """sum_k P_k c_k with P_k = e_k · (1 / sum e); levels the model never saw count 0."""
    scale = F.lit(1.0) / _sum(exponentials, F.lit(0.0))
    terms = F.zip_with(exponentials, level_coefficients, lambda e, c: F.coalesce(e * scale, F.lit(0.0)) * c)
    return _sum(terms, F.lit(0.0))


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
    recipient id, donor id) wins (ties: the smaller donor id), an aggregate rather than a
    ranking. All levels are matched in one pass: a level is a number and its key values one
    array column. Donor ids never leave this function; a recipient without a candidate at
    any level (no donor at all in its year and model) gets no row.
    """
    recipient_keys = students.where(F.col("score_source").isin(*levels_by_source)).select(
        "year", "model", "student_id", F.inline(_recipient_entries(levels_by_source))
    )
    level_columns = ["year", "model", "source", "level", "match_key"]
    # Recipients are a few percent of the students: only donor entries some recipient asks
    # for go on to the joins (a broadcast filter instead of shuffling every donor entry),
    # built once for both joins.
    donor_keys = materialize(
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
    preference = F.struct(
        F.xxhash64(F.lit(seed), F.col("student_id"), F.col("donor_id")).alias("hash"), "donor_id", "donor_score"
    )
    return (
        recipient_keys.join(first_level, ["year", "model", "student_id", "level"])
        .join(donor_keys, level_columns)
        .groupBy("year", "model", "student_id")
        .agg(F.min(preference).alias("chosen"))
        .select("year", "model", "student_id", F.col("chosen.donor_score").alias("donor_score"))
    )
