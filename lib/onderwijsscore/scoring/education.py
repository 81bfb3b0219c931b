"""Path 4 (domain.md §3): a parent's unknown education level predicted by a multinomial
logistic regression per model and teldatum, fitted on the driver from a count table
whose size is bounded by the feature domains (`scoring.logistic`, Spark ML's algorithm);
the parent's coefficient is the expected value `sum_k P(level k) * c_k`, computed as
column expressions with the fitted parameters as a broadcast lookup."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce
from operator import add

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from threadpoolctl import threadpool_limits

from onderwijsscore.errors import PipelineError
from onderwijsscore.models import ScoreModel
from onderwijsscore.runtime import literal_frame, stage
from onderwijsscore.scoring.logistic import MultinomialFit, fit_multinomial, probabilities
from onderwijsscore.vocabulary import (
    EDUCATION_CHARACTERISTICS,
    EDUCATION_LEVELS,
    EDUCATION_SOURCE,
    ORIGIN_GROUPS,
    PARENT_ROLES,
)

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
    concurrent_fits: int  # fitted side by side on the driver


# A parent record's field by name: a column of `parent_records`, or of a student's row.
Field = Callable[[str], Column]


@dataclass(frozen=True)
class Feature:
    """A configurable feature: the record fields it reads and its slots in the feature vector
    (in the order of Spark ML's VectorAssembler of earlier versions): numbers, or a category
    one-hot encoded with one slot per category and one for unknown (null)."""

    fields: tuple[str, ...]
    numbers: Callable[[Field], list[Column]] | None = None
    category: Callable[[Field], Column] | None = None
    categories: tuple[str, ...] = ()

    def width(self) -> int:
        return len(self.categories) + 1 if self.category else len(self.numbers(F.col))

    def values(self, field: Field) -> list[Column]:
        if self.category is None:
            return self.numbers(field)
        value = self.category(field)
        return [F.coalesce((value == c).cast("double"), F.lit(0.0)) for c in self.categories] + [
            value.isNull().cast("double")
        ]

    def slot(self, field: Field) -> Column:
        """A category's slot in its one-hot block (null: a value outside the categories)."""
        value = self.category(field)
        position = F.array_position(F.array(*[F.lit(c) for c in self.categories]), value).cast("int")
        return F.when(value.isNull(), F.lit(len(self.categories))).when(position > 0, position - 1)

    def terms(self, field: Field, slot: Column, weights: Column, offset: int) -> list[Column]:
        """The slots' w_j · x_j (weights: array<double>), for a dot product in slot order. A
        one-hot block gives only its one slot set to 1 (w_j · 1 = w_j, with `slot` from
        `self.slot`); the zero slots change no sum."""
        if self.category is None:
            return [F.get(weights, offset + j) * x for j, x in enumerate(self.numbers(field))]
        return [F.coalesce(F.get(weights, slot + offset), F.lit(0.0))]


FEATURES: dict[str, Feature] = {
    "income_percentile": Feature(
        ("income_percentile",),
        lambda r: [
            F.coalesce(r("income_percentile"), F.lit(0)).cast("double"),
            r("income_percentile").isNull().cast("double"),
        ],
    ),
    "age": Feature(("year", "birth_year"), lambda r: [(r("year") - r("birth_year")).cast("double")]),
    "sex": Feature(("characteristic",), lambda r: [r("characteristic").isin("mother_education").cast("double")]),
    "partner_education": Feature(
        ("partner_education",), category=lambda r: r("partner_education"), categories=EDUCATION_LEVELS
    ),
    "child_origin_group": Feature(
        ("child_origin_group",), category=lambda r: r("child_origin_group"), categories=ORIGIN_GROUPS
    ),
}


def feature_vector(features: tuple[str, ...]) -> Column:
    """The configured features of a parent record as one array<double>."""
    return F.array(*[value for name in features for value in FEATURES[name].values(F.col)])


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
    inputs = sorted({field for name in settings.features for field in FEATURES[name].fields} - {"year"})
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
    table: pa.Table, settings: EducationModelSettings, groups: list[tuple[str, int]]
) -> list[EducationFit]:
    """Fit every (model, year) group of the collected `education_counts` on the driver
    (no Spark job): groups without a parent to impute fit no model.

    The rows arrive in an order that depends on Spark's partitioning; they are sorted
    first, so the sums of the fit add up in one order and the fitted parameters are the
    same to the last bit on every engine, cluster layout and driver.
    """
    encoded = table.column("model").combine_chunks().dictionary_encode()
    codes, names = encoded.indices.to_numpy(), np.array(encoded.dictionary.to_pylist(), dtype=object)
    models, model_code = names[codes], np.argsort(np.argsort(names))[codes]  # model_code: in name order
    years = table.column("year").to_numpy(zero_copy_only=False)
    held_out = np.array(table.column("held_out").to_pylist(), dtype=object)
    labels = table.column("label").to_numpy(zero_copy_only=False)  # NaN: to impute
    n = table.column("n").to_numpy(zero_copy_only=False).astype(np.float64)
    vectors = table.column("features").combine_chunks()
    width = len(vectors[0]) if len(vectors) else 0
    features = vectors.flatten().to_numpy(zero_copy_only=False).reshape(len(vectors), width)
    held_out_code = np.select([held_out == True, held_out == False], [2, 1], 0)  # noqa: E712
    order = np.lexsort((n, *features.T[::-1], np.nan_to_num(labels, nan=-1.0), held_out_code, years, model_code))
    models, years, held_out, labels, n, features = (a[order] for a in (models, years, held_out, labels, n, features))

    def fit_group(group_key: tuple[str, int]) -> EducationFit:
        model, year = group_key
        group = (models == model) & (years == year)
        impute = group & np.isnan(labels)
        metrics = dict.fromkeys(FIT_METRIC_KEYS) | {"n_imputed_parents": int(n[impute].sum())}
        if not impute.any():
            return EducationFit(model, year, None, metrics)
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
        return EducationFit(model, year, fit, metrics)

    # numpy releases the interpreter lock in its matrix products: fits side by side use the
    # cores. Each product runs on one BLAS thread: OpenBLAS splits a long sum over its threads,
    # so their number (the driver's cores) would change the fit's last bits, and BLAS threads
    # beside the fit threads only compete (docs/benchmarks.md, "Round thirteen").
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(settings.concurrent_fits) as pool:
        return list(pool.map(fit_group, groups))


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
    coefficient_type: T.DecimalType,
) -> DataFrame:
    """`students` plus `c_father_education_imputed` and `c_mother_education_imputed`: for a
    path-4 student's parent with unknown education, the expected coefficient
    `sum_k P(level k) * c_k` as a `coefficient_type` decimal, wide enough to leave the
    rounding to the score (domain.md §2); else null. The fitted parameters and
    the models' level coefficients are one broadcast row per (model, year)."""
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
    levels = range(len(EDUCATION_LEVELS))
    categorical = [name for name in features if FEATURES[name].category is not None]
    # Plain arithmetic, column by column (compiled, each value computed once per row); a
    # level beyond the fitted ones is null throughout and counts 0. Each step adds its
    # columns for both parents at once: every step costs the driver an analysis of the plan.
    slots, margins, tops, exponentials, scales, expected = {}, {}, {}, {}, {}, {}
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
        own = f"_{role}_"  # this parent's working columns
        slots |= {f"{own}slot_{name}": FEATURES[name].slot(fields.__getitem__) for name in categorical}
        margins |= {f"{own}m{k}": F.when(imputed, _margin(k, features, fields, f"{own}slot_")) for k in levels}
        tops[f"{own}top"] = F.greatest(*[F.col(f"{own}m{k}") for k in levels])
        exponentials |= {f"{own}e{k}": _shifted_exponential(F.col(f"{own}m{k}"), F.col(f"{own}top")) for k in levels}
        values = [F.col(f"{own}e{k}") for k in levels]
        scales[f"{own}scale"] = F.when(imputed, F.lit(1.0) / reduce(add, [F.coalesce(e, F.lit(0.0)) for e in values]))
        coefficient = _expected(values, F.col(f"{own}scale"), F.col(f"{role}_education_levels"))
        expected[f"c_{role}_education_imputed"] = F.when(imputed, coefficient).cast(coefficient_type)
    for step in (slots, margins, tops, exponentials, scales, expected):
        frame = frame.withColumns(step)
    return frame.select(*students.columns, *[f"c_{role}_education_imputed" for role in PARENT_ROLES])


def _margin(level: int, features: tuple[str, ...], fields: dict[str, Column], slots: str) -> Column:
    """b_k + sum_j w_kj x_j, added up in j order from b_k, as BLAS gemv does for Spark ML's margins
    (`slots`: the prefix of the categorical features' slot columns)."""
    weights = F.get(F.col("weights"), level)
    terms, offset = [], 0
    for name in features:
        feature = FEATURES[name]
        terms += feature.terms(fields.__getitem__, F.col(f"{slots}{name}"), weights, offset)
        offset += feature.width()
    return reduce(add, terms, F.get(F.col("intercepts"), level))


def _shifted_exponential(margin: Column, top: Column) -> Column:
    """exp(m_k − max m) when the largest margin is positive, else exp(m_k); an infinite margin
    (a model fitted on one level) takes all the mass (Spark ML's softmax)."""
    infinite = F.lit(float("inf"))
    shift = F.when(top > 0, top).otherwise(F.lit(0.0))
    return F.when(top == infinite, (margin == infinite).cast("double")).otherwise(F.exp(margin - shift))


def _expected(exponentials: list[Column], scale: Column, level_coefficients: Column) -> Column:
    """sum_k P_k c_k with P_k = e_k · scale (1 / sum e, summed from 0 in level order), also
    summed from 0 in level order; levels the model never saw count 0."""
    terms = [F.coalesce(e * scale, F.lit(0.0)) * F.get(level_coefficients, k) for k, e in enumerate(exponentials)]
    return reduce(add, terms, F.lit(0.0))
