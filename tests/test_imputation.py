"""Imputation: expected education coefficients, the education model's fit, donor choice,
and the invariants of a full run on a few thousand generated students."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from test_scores import contract_schema

from lib.contract import EDUCATION_LEVELS, ORIGIN_GROUPS
from lib.imputation import EducationFit, donor_scores, with_imputed_education
from lib.logistic import MultinomialFit, fit_multinomial
from lib.models import literal_frame
from lib.scores import SCORE_SOURCES, score_students

SEED = 11


# --- Expected coefficient of an imputed education level ---------------------------------


def fit_giving(probabilities: list[float]) -> MultinomialFit:
    """A fitted model whose probabilities are `probabilities` for every parent: no weights,
    intercepts log p (a level with p = 0 gets −1000, whose exponential is 0)."""
    intercepts = np.array([math.log(p) if p else -1000.0 for p in probabilities])
    return MultinomialFit(np.zeros((len(probabilities), 22)), intercepts, 1, True, "gradient converged", (0.0,))


def test_expected_coefficient_is_the_probability_weighted_mean(spark, pro_model, scoring_rules):
    certain_mbo4 = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    basis_or_master = [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    top_levels_never_seen = [0.25, 0.75]  # a model that never saw the higher levels
    features = scoring_rules.education_model.features
    fits = [
        EducationFit("pro", year, fit_giving(probabilities), {})
        for year, probabilities in ((2020, certain_mbo4), (2021, basis_or_master), (2022, top_levels_never_seen))
    ]
    # Every training parent at one level: Spark ML fits no model but an infinite intercept.
    only_basis = fit_multinomial(np.zeros((1, 22)), np.array([[9.0] + [0.0] * 7]), 30, 0.001, 1e-5)
    fits.append(EducationFit("pro", 2023, only_basis, {}))
    schema = T.StructType.fromDDL(
        "year int, model string, student_id string, score_source string, origin_group_observed string, "
        + ", ".join(
            f"{role}_birth_year int, {role}_income_percentile int, {role}_education_observed string"
            for role in ("father", "mother")
        )
    )
    students = literal_frame(
        spark,
        [
            (2020, "pro", "a", "imputed_education", "nl", 1980, 40, None, 1982, None, "mbo4"),
            (2021, "pro", "b", "imputed_education", "nl", 1980, None, None, 1982, 70, None),
            (2022, "pro", "d", "imputed_education", "turkey", 1980, 40, "basis", 1982, 50, None),
            (2022, "pro", "e", "computed", "turkey", 1980, 40, "basis", 1982, 50, "basis"),
            (2023, "pro", "f", "imputed_education", "nl", 1980, 40, None, 1982, 50, "basis"),
        ],
        schema,
    )
    frame = with_imputed_education(students, fits, {"pro": pro_model}, features, scoring_rules.score_type)
    assert dict(frame.dtypes)["c_father_education_imputed"] == "decimal(12,6)"
    assert frame.columns == [*students.columns, "c_father_education_imputed", "c_mother_education_imputed"]
    result = {
        row["student_id"]: (row["c_father_education_imputed"], row["c_mother_education_imputed"])
        for row in frame.collect()
    }
    assert result == {
        "a": (Decimal("0.40"), None),
        "b": (Decimal("0.505"), Decimal("0.475")),  # (-0.22 + 1.23) / 2 and (-0.33 + 1.28) / 2
        "d": (None, Decimal("-0.3075")),  # 0.25 * -0.33 + 0.75 * -0.30
        "e": (None, None),  # a computed student imputes nothing
        "f": (Decimal("-0.22"), None),  # certainly basis
    }


# --- Donor choice -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    student_id: str
    score_source: str = "computed"
    score: str | None = "0"
    school_id: str = "school_a"
    track: str = "pro"
    origin_group_observed: str | None = "nl"
    father_education_observed: str | None = "mbo23"
    mother_education_observed: str | None = "mbo23"


DONOR_FRAME_SCHEMA = T.StructType(
    [
        T.StructField("year", T.IntegerType()),
        T.StructField("model", T.StringType()),
        T.StructField("student_id", T.StringType()),
        T.StructField("score_source", T.StringType()),
        T.StructField("score", T.DecimalType(12, 6)),
        T.StructField("school_id", T.StringType()),
        T.StructField("track", T.StringType()),
        T.StructField("origin_group_observed", T.StringType()),
        T.StructField("father_education_observed", T.StringType()),
        T.StructField("mother_education_observed", T.StringType()),
    ]
)


def scored_frame(spark: SparkSession, students: list[Scored], year: int = 2022) -> DataFrame:
    rows = []
    for student in students:
        row = asdict(student)
        row["score"] = None if student.score is None else Decimal(student.score)
        rows.append((year, "pro", *row.values()))
    return literal_frame(spark, rows, DONOR_FRAME_SCHEMA)


def donated(frame: DataFrame, scoring_rules, seed: int) -> dict[str, Decimal]:
    return {
        row["student_id"]: row["donor_score"] for row in donor_scores(frame, scoring_rules.donor_levels, seed).collect()
    }


DONOR_CASES = [
    # Donors: several kinds at school a, nl ones at school b, one east_asia at school d; school c
    # has only students who may not donate.
    Scored("a_donor_nl", score="1.1"),
    Scored("a_donor_turkey", score="1.2", origin_group_observed="turkey", mother_education_observed="mbo4"),
    Scored("a_donor_educ_imputed", "imputed_education", "1.3", mother_education_observed=None),
    Scored("a_donor_father_basis", score="1.4", origin_group_observed="new_eu", father_education_observed="basis"),
    *[Scored(f"b_donor_{i}", score=f"2.{i}", school_id="school_b") for i in range(5)],
    Scored("d_donor_east_asia", score="4.4", school_id="school_d", origin_group_observed="east_asia"),
    Scored("c_asylum", "imputed_asylum", None, school_id="school_c"),
    Scored("c_other_recipient", "imputed_donor_parent", None, school_id="school_c", origin_group_observed="sur_ant"),
    # Path 2 recipients.
    Scored("not_in_register_a", "imputed_donor_school", None),
    Scored("not_in_register_c", "imputed_donor_school", None, school_id="school_c"),
    # Path 3 recipients.
    Scored(
        "turkey_mother_mbo4_no_father",
        "imputed_donor_parent",
        None,
        origin_group_observed="turkey",
        father_education_observed=None,
        mother_education_observed="mbo4",
    ),
    Scored(
        "no_origin_mother_unknown",
        "imputed_donor_parent",
        None,
        origin_group_observed=None,
        father_education_observed="basis",
        mother_education_observed=None,
    ),
    Scored("east_asia_at_b", "imputed_donor_parent", None, school_id="school_b", origin_group_observed="east_asia"),
]


OWN_SCORES = {Decimal(s.score) for s in DONOR_CASES if s.score_source in ("computed", "imputed_education")}


@pytest.fixture(scope="module")
def donor_choice(spark, scoring_rules):
    return donated(scored_frame(spark, DONOR_CASES), scoring_rules, SEED)


def test_path_2_prefers_the_same_school(donor_choice):
    assert donor_choice["not_in_register_a"] in {Decimal(s) for s in ("1.1", "1.2", "1.3", "1.4")}


def test_path_2_falls_back_to_national_donors_only(donor_choice):
    assert donor_choice["not_in_register_c"] in OWN_SCORES  # not the asylum or donor-path students at school c


def test_path_3_takes_the_most_similar_student_at_the_same_school(donor_choice):
    assert donor_choice["turkey_mother_mbo4_no_father"] == Decimal("1.2")
    # An unknown origin and mother's education match anyone: only the father's level counts.
    assert donor_choice["no_origin_mother_unknown"] == Decimal("1.4")


def test_path_3_prefers_a_similar_student_elsewhere_to_a_different_one_at_school(donor_choice):
    assert donor_choice["east_asia_at_b"] == Decimal("4.4")


def test_path_3_falls_back_to_less_similar_donors(donor_choice):
    assert donor_choice["c_other_recipient"] in OWN_SCORES  # no sur_ant donor anywhere: same track nationally


def test_donor_choice_is_deterministic_given_the_seed(spark, scoring_rules):
    school = [Scored(f"donor_{i}", score=f"{i}") for i in range(12)]
    recipients = [Scored(f"recipient_{i}", "imputed_donor_school", None) for i in range(30)]
    frame = scored_frame(spark, school + recipients)
    first = donated(frame, scoring_rules, seed=1)
    assert donated(frame, scoring_rules, seed=1) == first
    assert len(set(first.values())) > 1  # each recipient draws its own donor
    assert donated(frame, scoring_rules, seed=2) != first


# --- A full run on generated students with a planted education-income relation -----------

N_STUDENTS = 1000
YEARS = [2021, 2022]


def _draw(*salts: str, modulo: int):
    """A deterministic pseudo-random integer in [0, modulo) per family `i`."""
    return F.pmod(F.xxhash64(F.col("i"), *[F.lit(salt) for salt in salts]), F.lit(modulo))


def _pick(values: tuple[str, ...], index):
    return F.element_at(F.array(*[F.lit(value) for value in values]), (index + 1).cast("int"))


def planted_inputs(spark: SparkSession) -> dict[str, DataFrame]:
    """Pro students in two years whose parents' income percentile follows their education
    level (12 percentiles per level plus noise). About a third of the parents' levels are
    unknown, and `path` sends a few percent of the students down each other path."""
    path = _draw("path", modulo=100)
    families = spark.range(N_STUDENTS).select(
        F.col("id").alias("i"),
        F.concat(F.lit("s"), F.col("id")).alias("student_id"),
        F.concat(F.lit("school_"), F.pmod(F.col("id"), F.lit(20))).alias("school_id"),
        (F.pmod(F.col("id"), F.lit(6)) + 1).cast("int").alias("grade"),
        F.concat(F.lit("m"), F.col("id")).alias("mother_id"),
    )
    families = families.select(
        "*",
        (path >= 2).alias("student_in_register"),  # 2 % not in the register
        F.when(~path.between(2, 4), F.concat(F.lit("f"), F.col("i"))).alias("father_id"),  # 3 % no father id
        (~path.between(5, 6)).alias("father_in_register"),  # 2 % a father id absent from persons
        F.when(path != 7, _pick(ORIGIN_GROUPS, _draw("origin", modulo=8))).alias("origin_group"),  # 1 % none
        path.between(8, 9).alias("asylum"),  # 2 %
        _draw("father", modulo=8).alias("father_level"),
        _draw("mother", modulo=8).alias("mother_level"),
        (1965 + _draw("age", modulo=20)).cast("int").alias("birth_year"),
    )
    years = literal_frame(spark, [(year,) for year in YEARS], T.StructType.fromDDL("year int"))

    def person(id_column: str, sex: str, birth_year) -> list:
        return [
            F.col(id_column).alias("person_id"),
            birth_year.alias("birth_year"),
            F.lit(sex).alias("sex"),
            "origin_group",
        ]

    persons = (
        families.where("student_in_register")
        .select(*person("student_id", "f", F.lit(2009)))
        .unionByName(
            families.where("father_id IS NOT NULL AND father_in_register").select(
                *person("father_id", "m", F.col("birth_year"))
            )
        )
        .unionByName(families.select(*person("mother_id", "f", F.col("birth_year") + 2)))
    )
    parent_levels = (
        families.select(
            F.inline(
                F.array(
                    *[
                        F.struct(F.col(f"{role}_id").alias("person_id"), F.col(f"{role}_level").alias("level"))
                        for role in ("father", "mother")
                    ]
                )
            )
        )
        .where(F.col("person_id").isNotNull())
        .crossJoin(years)
    )
    known = F.pmod(F.xxhash64(F.col("person_id"), F.col("year")), F.lit(100)) >= 35
    noise = F.pmod(F.xxhash64(F.col("person_id")), F.lit(12))
    return {
        "enrolment": families.crossJoin(years).select(
            "year", "student_id", "school_id", F.lit("pro").alias("programme"), "grade", F.lit(True).alias("funded")
        ),
        "persons": persons,
        "parents": families.select(F.col("student_id").alias("child_id"), "father_id", "mother_id"),
        "education": parent_levels.where(known).select(
            "year", "person_id", _pick(EDUCATION_LEVELS, F.col("level")).alias("education_level")
        ),
        "income": parent_levels.select(
            "year", "person_id", (F.col("level") * 12 + 1 + noise).cast("int").alias("income_percentile")
        ),
        "asylum": families.where("asylum").select(
            F.col("student_id").alias("person_id"), F.lit(date(2016, 3, 1)).alias("registration_date")
        ),
        **{table: literal_frame(spark, [], contract_schema(table)) for table in ("residence_duration", "wsnp")},
    }


@pytest.fixture(scope="module")
def planted_run(spark, pro_model, scoring_rules):
    frame, metrics = score_students(planted_inputs(spark), [pro_model], scoring_rules, YEARS, SEED)
    return frame.persist(), metrics["pro"]


def test_education_model_beats_the_majority_class(planted_run):
    _, metrics = planted_run
    assert sorted(metrics) == YEARS
    for year in YEARS:
        fit = metrics[year]
        assert fit["n_imputed_parents"] > 0 and fit["n_train"] > 0 and fit["n_held_out"] > 0
        assert fit["held_out_accuracy"] > fit["majority_class_accuracy"] + 0.2, fit
        assert fit["held_out_log_loss"] < math.log(len(EDUCATION_LEVELS)), fit  # better than a uniform guess


def test_every_population_student_has_one_row_and_one_source(planted_run):
    frame, _ = planted_run
    summary = frame.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("year", "student_id").alias("students"),
        F.count_if(~F.coalesce(F.col("score_source").isin(*SCORE_SOURCES), F.lit(False))).alias("unknown_sources"),
        F.count_if(F.col("score").isNull() != (F.col("score_source") == "imputed_asylum")).alias("bad_nulls"),
    ).first()
    assert (summary["rows"], summary["students"]) == (N_STUDENTS * len(YEARS), N_STUDENTS * len(YEARS))
    assert (summary["unknown_sources"], summary["bad_nulls"]) == (0, 0)
    sources = {row["score_source"] for row in frame.select("score_source").distinct().collect()}
    assert sources == set(SCORE_SOURCES)


def test_imputed_education_coefficients_lie_between_the_levels(planted_run, pro_model):
    frame, _ = planted_run
    roles = ("father", "mother")
    imputed = frame.agg(
        *[
            aggregate(F.when(F.col(f"{role}_education") == "imputed", F.col(f"c_{role}_education"))).alias(
                f"{role}_{name}"
            )
            for role in roles
            for name, aggregate in (("low", F.min), ("high", F.max), ("distinct", F.count_distinct))
        ]
    ).first()
    for role in roles:
        levels = pro_model.coefficients[f"{role}_education"].values()
        assert min(levels) < imputed[f"{role}_low"] and imputed[f"{role}_high"] < max(levels)
        assert imputed[f"{role}_distinct"] > 1  # depends on the parent, not a constant
