"""Student scores: the brochure's worked examples, the register rules and the paths' precedence.

Inputs are built from hand-written students (`Student`, `Parent`, `make_inputs`, shared
with test_imputation.py); all of them are scored in one run of the pro model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from helpers import contract_schema, physical_plan, score_students
from onderwijsscore.models import coefficient_lookup, start_lookup
from onderwijsscore.runtime import literal_frame
from onderwijsscore.scoring.score import OUTPUT_COLUMNS, with_coefficients, with_score
from onderwijsscore.vocabulary import CHARACTERISTICS

YEAR = 2022
SEED = 7
_SCORED_TABLES = ("enrolment", "persons", "parents", "education", "income", "residence_duration", "wsnp", "asylum")


@dataclass(frozen=True)
class Parent:
    education: str | None = "mbo23"  # None: no education row (unknown)
    in_register: bool = True
    income: int | None = 50
    birth_year: int = 1980
    wsnp_periods: tuple[tuple[date, date | None], ...] = ()


@dataclass(frozen=True)
class Student:
    student_id: str
    school_id: str = "school_a"
    programme: str = "pro"
    grade: int = 1
    funded: bool = True
    in_register: bool = True
    origin: str | None = "nl"
    father: Parent | None = Parent()  # None: no father id in `parents`
    mother: Parent | None = Parent()
    mother_duration: str | None = None  # None: no residence-duration row
    asylum_registration: date | None = None


def make_inputs(spark: SparkSession, students: list[Student], year: int = YEAR) -> dict[str, DataFrame]:
    """The contract tables the scoring stage reads, holding exactly these students and parents."""
    rows: dict[str, list[tuple]] = {table: [] for table in _SCORED_TABLES}
    for student in students:
        rows["enrolment"].append(
            (year, student.student_id, student.school_id, student.programme, student.grade, student.funded)
        )
        if student.in_register:
            rows["persons"].append((student.student_id, year - 14, "f", student.origin))
        parent_ids = {}
        for role, parent in (("father", student.father), ("mother", student.mother)):
            if parent is None:
                parent_ids[role] = None
                continue
            parent_id = parent_ids[role] = f"{student.student_id}_{role}"
            if parent.in_register:
                rows["persons"].append((parent_id, parent.birth_year, "m" if role == "father" else "f", student.origin))
            if parent.education is not None:
                rows["education"].append((year, parent_id, parent.education))
            if parent.income is not None:
                rows["income"].append((year, parent_id, parent.income))
            rows["wsnp"].extend((parent_id, start, end) for start, end in parent.wsnp_periods)
        rows["parents"].append((student.student_id, parent_ids["father"], parent_ids["mother"]))
        if student.mother_duration is not None:
            rows["residence_duration"].append((year, parent_ids["mother"], student.mother_duration))
        if student.asylum_registration is not None:
            rows["asylum"].append((student.student_id, student.asylum_registration))
    return {table: literal_frame(spark, rows[table], contract_schema(table)) for table in _SCORED_TABLES}


def scores_by_student(frame: DataFrame) -> dict[str, dict]:
    return {row["student_id"]: row.asDict() for row in frame.collect()}


# --- Students of the brochure's worked examples (figure 1, examples 1-3) -----------------

ONGOING_WSNP = ((date(2020, 1, 1), None),)


def brochure_student(student_id, school, father, origin, mother, duration, wsnp) -> Student:
    return Student(
        student_id,
        school_id=school,
        origin=origin,
        father=Parent(education=father, wsnp_periods=ONGOING_WSNP if wsnp else ()),
        mother=Parent(education=mother),
        mother_duration=duration,
    )


# (id, father's education, origin, mother's education, mother's duration, wsnp, D), read
# off the brochure's tables; a duration of None (no row) must count as 10_plus.
BROCHURE_EXAMPLES = {
    "example_1": [
        ("e1_s1", "vmbo_bk_mbo1", "north_africa", "mbo23", "0_5", True, "-1.21"),
        ("e1_s2", "basis", "sur_ant", "mbo4", "10_plus", True, "-1.22"),
        ("e1_s3", "mbo23", "turkey", "mbo23", "0_5", False, "-0.55"),
        ("e1_s4", "vmbo_bk_mbo1", "nl", "mbo23", None, True, "-0.99"),
        ("e1_s5", "vmbo_bk_mbo1", "nl", "basis", "0_5", False, "-0.54"),
    ],
    "example_2": [
        ("e2_s1", "vmbo_bk_mbo1", "north_africa", "vmbo_bk_mbo1", "10_plus", False, "-0.61"),
        ("e2_s2", "mbo23", "sur_ant", "basis", None, False, "-0.82"),
        ("e2_s3", "mbo23", "turkey", "mbo23", "0_5", False, "-0.55"),
        ("e2_s4", "basis", "other", "vmbo_bk_mbo1", "10_plus", False, "-0.54"),
        ("e2_s5", "vmbo_bk_mbo1", "nl", "basis", "0_5", False, "-0.54"),
    ],
    "example_3": [
        ("e3_s1", "vmbo_bk_mbo1", "north_africa", "mbo23", "0_5", True, "-1.21"),
        ("e3_s2", "mbo23", "turkey", "mbo23", "0_5", False, "-0.55"),
    ],
}
BROCHURE_GROSS_SCORES = {"example_1": Decimal("4.31"), "example_2": Decimal("2.86"), "example_3": Decimal("1.68")}
BROCHURE_C = Decimal("-0.04")  # the brochure's fictitious national mean


BROCHURE_STUDENTS = [
    brochure_student(student_id, school, *characteristics)
    for school, rows in BROCHURE_EXAMPLES.items()
    for student_id, *characteristics, _ in rows
]


# --- Students for the register rules and paths, teldatum 2022-10-01 ----------------------


def wsnp_father(*periods) -> Parent:
    return Parent(wsnp_periods=tuple(periods))


RULE_STUDENTS = [
    # WSNP window [2021-10-01, 2022-10-01], both ends included.
    Student("wsnp_ends_on_window_start", father=wsnp_father((date(2020, 1, 1), date(2021, 10, 1)))),
    Student("wsnp_ends_day_before_window", father=wsnp_father((date(2020, 1, 1), date(2021, 9, 30)))),
    Student("wsnp_starts_on_teldatum", father=wsnp_father((date(2022, 10, 1), None))),
    Student("wsnp_starts_day_after_teldatum", father=wsnp_father((date(2022, 10, 2), None))),
    Student("wsnp_ongoing_since_long", father=wsnp_father((date(2012, 3, 1), None))),
    Student("wsnp_of_mother", mother=Parent(wsnp_periods=((date(2022, 1, 1), date(2022, 6, 30)),))),
    Student("no_wsnp"),
    # Residence duration of the mother.
    Student("duration_row_5_10", mother_duration="5_10"),
    Student("duration_no_row"),
    # Asylum registration window [2014-01-01, teldatum].
    Student("asylum_2013_12_31", asylum_registration=date(2013, 12, 31)),
    Student("asylum_2014_01_01", asylum_registration=date(2014, 1, 1)),
    Student("asylum_on_teldatum", asylum_registration=date(2022, 10, 1)),
    Student("asylum_after_teldatum", asylum_registration=date(2022, 10, 2)),
    # Paths and their precedence.
    Student("asylum_not_in_register", in_register=False, father=None, asylum_registration=date(2016, 5, 1)),
    Student("asylum_with_unknown_education", mother=Parent(education=None), asylum_registration=date(2016, 5, 1)),
    Student("not_in_register", in_register=False),
    Student("not_in_register_no_father", in_register=False, father=None),
    Student("father_id_null", father=None),
    Student("father_not_in_register", father=Parent(in_register=False)),
    Student("mother_not_in_register", mother=Parent(in_register=False)),
    Student("origin_null", origin=None),
    Student("father_null_mother_unknown_education", father=None, mother=Parent(education=None)),
    Student("mother_education_unknown", mother=Parent(education=None)),
    Student("both_educations_unknown", father=Parent(education=None), mother=Parent(education=None, income=None)),
    # The model file's education mapping: praktijkonderwijs counts as vmbo_bk_mbo1.
    Student("father_praktijkonderwijs", father=Parent(education="praktijkonderwijs")),
    # Outside the pro population.
    Student("unfunded", funded=False),
    Student("vmbo_student", programme="vmbo_bk", grade=3),
]
RULE_SOURCES = {
    "asylum_2013_12_31": "computed",
    "asylum_2014_01_01": "imputed_asylum",
    "asylum_on_teldatum": "imputed_asylum",
    "asylum_after_teldatum": "computed",
    "asylum_not_in_register": "imputed_asylum",
    "asylum_with_unknown_education": "imputed_asylum",
    "not_in_register": "imputed_donor_school",
    "not_in_register_no_father": "imputed_donor_school",
    "father_id_null": "imputed_donor_parent",
    "father_not_in_register": "imputed_donor_parent",
    "mother_not_in_register": "imputed_donor_parent",
    "origin_null": "imputed_donor_parent",
    "father_null_mother_unknown_education": "imputed_donor_parent",
    "mother_education_unknown": "imputed_education",
    "both_educations_unknown": "imputed_education",
}


# --- One run of the pro model over both sets of students -----------------------------------


@pytest.fixture(scope="module")
def pro_run(spark, pro_model, scoring_rules):
    """The brochure's students (one school per example) and the rule cases, scored together."""
    frame, metrics = score_students(
        make_inputs(spark, BROCHURE_STUDENTS + RULE_STUDENTS), [pro_model], scoring_rules, [YEAR], SEED
    )
    return frame, metrics["pro"]


@pytest.fixture(scope="module")
def scores(pro_run):
    frame, _ = pro_run
    return scores_by_student(frame)


# --- Tests: the brochure's examples ---------------------------------------------------------


def test_brochure_scores_are_exact(scores):
    for rows in BROCHURE_EXAMPLES.values():
        for student_id, *_, expected in rows:
            row = scores[student_id]
            assert row["score_source"] == "computed"
            assert row["score"] == Decimal(expected), student_id


def test_brochure_gross_scores(scores):
    for example, rows in BROCHURE_EXAMPLES.items():
        gross = sum(BROCHURE_C - scores[student_id]["score"] for student_id, *_ in rows)
        assert gross == BROCHURE_GROSS_SCORES[example], example


def test_score_is_the_sum_of_its_coefficients(scores):
    row = scores["e1_s1"]
    assert (row["father_education"], row["origin_group"], row["mother_duration"], row["wsnp"]) == (
        "vmbo_bk_mbo1",
        "north_africa",
        "0_5",
        "yes",
    )
    coefficients = ["c_start", "c_father_education", "c_mother_education", "c_origin_group"]
    coefficients += ["c_mother_duration", "c_wsnp"]
    assert [row[c] for c in coefficients] == [Decimal(v) for v in ("0", "-0.15", "0", "-0.16", "-0.06", "-0.84")]
    assert sum(row[c] for c in coefficients) == row["score"]


def test_the_score_is_rounded_once_half_away_from_zero(spark, scoring_rules):
    # domain.md §2: unrounded expectations add up before the one rounding of the score.
    terms = {
        "sum_of_small": ("0.0000004", "0.0000004"),  # 0.0000008: each rounded first would give 0
        "positive_tie": ("0.0000002", "0.0000003"),
        "negative_tie": ("-0.0000002", "-0.0000003"),
        "below_tie": ("0.000000499999999999", "0"),
    }
    columns = ["c_start", *[f"c_{c}" for c in CHARACTERISTICS]]
    schema = T.StructType(
        [T.StructField("student_id", T.StringType())]
        + [
            T.StructField(
                c, scoring_rules.expected_coefficient_type if c.endswith("_education") else scoring_rules.score_type
            )
            for c in columns
        ]
    )
    rows = [
        (name, Decimal(0), Decimal(f), Decimal(m), Decimal(0), Decimal(0), Decimal(0)) for name, (f, m) in terms.items()
    ]
    scored = with_score(literal_frame(spark, rows, schema), scoring_rules.score_type)
    assert {row.student_id: row.score for row in scored.collect()} == {
        "sum_of_small": Decimal("0.000001"),
        "positive_tie": Decimal("0.000001"),
        "negative_tie": Decimal("-0.000001"),
        "below_tie": Decimal("0.000000"),
    }


def test_missing_duration_row_counts_as_ten_plus(scores):
    assert scores["e1_s4"]["mother_duration"] == "10_plus"
    assert scores["e1_s4"]["c_mother_duration"] == Decimal("0")


# --- Tests: the rules -----------------------------------------------------------------------


def test_population_is_funded_students_of_the_models_programmes(scores):
    enrolled = {student.student_id for student in BROCHURE_STUDENTS + RULE_STUDENTS}
    assert set(scores) == enrolled - {"unfunded", "vmbo_student"}


def test_wsnp_window_edges(scores):
    expected = {
        "wsnp_ends_on_window_start": "yes",
        "wsnp_ends_day_before_window": "no",
        "wsnp_starts_on_teldatum": "yes",
        "wsnp_starts_day_after_teldatum": "no",
        "wsnp_ongoing_since_long": "yes",
        "wsnp_of_mother": "yes",
        "no_wsnp": "no",
    }
    assert {student: scores[student]["wsnp"] for student in expected} == expected
    assert scores["wsnp_starts_on_teldatum"]["score"] == Decimal("-0.84")
    assert scores["no_wsnp"]["score"] == Decimal("0")


def test_mother_duration(scores):
    assert scores["duration_row_5_10"]["mother_duration"] == "5_10"
    assert scores["duration_row_5_10"]["score"] == Decimal("0.29")
    assert scores["duration_no_row"]["mother_duration"] == "10_plus"


def test_paths_and_precedence(scores):
    assert {student: scores[student]["score_source"] for student in RULE_SOURCES} == RULE_SOURCES
    others = set(scores) - set(RULE_SOURCES)
    assert {scores[student]["score_source"] for student in others} == {"computed"}


def test_asylum_and_donor_rows_carry_no_own_categories(scores):
    own_columns = [c for c in OUTPUT_COLUMNS if c.startswith("c_")]
    own_columns += ["father_education", "mother_education", "origin_group", "mother_duration", "wsnp"]
    for student, source in RULE_SOURCES.items():
        if source.startswith(("imputed_asylum", "imputed_donor")):
            assert all(scores[student][c] is None for c in own_columns), student
            assert (scores[student]["score"] is None) == (source == "imputed_asylum"), student


def test_donor_scores_come_from_own_score_students(scores):
    own_scores = {row["score"] for row in scores.values() if row["score_source"] in ("computed", "imputed_education")}
    donated = [row["score"] for row in scores.values() if row["score_source"].startswith("imputed_donor")]
    assert donated and all(score in own_scores for score in donated)


def test_imputed_education_uses_the_expected_coefficient(pro_run, scores, pro_model):
    _, metrics = pro_run
    row = scores["mother_education_unknown"]
    mother_levels = pro_model.coefficients["mother_education"].values()
    assert (row["father_education"], row["mother_education"]) == ("mbo23", "imputed")
    assert min(mother_levels) <= row["c_mother_education"] <= max(mother_levels)
    assert row["c_mother_education"] != row["c_mother_education"].quantize(Decimal("0.000001"))  # unrounded
    # Every other coefficient is 0 for this student: the score is the expectation, rounded once.
    assert row["score"] == row["c_mother_education"].quantize(Decimal("0.000001"), ROUND_HALF_UP)
    assert metrics[YEAR]["n_imputed_parents"] == 3


def test_education_mapping_of_the_model_file(scores):
    assert scores["father_praktijkonderwijs"]["father_education"] == "vmbo_bk_mbo1"
    assert scores["father_praktijkonderwijs"]["score"] == Decimal("-0.15")


def test_output_schema(pro_run):
    frame, _ = pro_run
    score, expected = "decimal(12,6)", "decimal(24,18)"  # an expected coefficient is not rounded
    assert frame.dtypes == [
        ("year", "int"),
        ("model", "string"),
        *[(column, "string") for column in ("student_id", "school_id", "track")],
        ("grade", "int"),
        ("score", score),
        *[(column, "string") for column in ("score_source", *CHARACTERISTICS)],
        *[(f"c_{c}", expected if c.endswith("_education") else score) for c in ("start", *CHARACTERISTICS)],
    ]
    assert tuple(frame.columns) == OUTPUT_COLUMNS


def test_models_scored_together_keep_their_own_population_and_coefficients(spark, settings, scoring_rules, pro_model):
    lwoo = settings.models["lwoo"]
    students = [
        Student("bk", programme="vmbo_bk", grade=3),
        Student("gt", programme="vmbo_gt", grade=4),
        Student("grade_2", programme="vmbo_gt", grade=2),
        Student("pro", programme="pro", grade=3),
    ]
    frame, metrics = score_students(make_inputs(spark, students), [lwoo, pro_model], scoring_rules, [YEAR], SEED)
    scores = scores_by_student(frame)
    assert set(scores) == {"bk", "gt", "pro"} and set(metrics) == {"lwoo", "pro"}
    assert (scores["bk"]["track"], scores["bk"]["model"]) == ("vmbo_bk", "lwoo")
    assert (scores["pro"]["track"], scores["pro"]["model"]) == ("pro", "pro")
    # The students' parents are mbo23 with origin nl, whose coefficients are 0 in both models:
    # the score is the start value of the student's own model and track.
    assert scores["bk"]["score"] == lwoo.start["vmbo_bk"] and scores["gt"]["score"] == lwoo.start["vmbo_gt"]
    assert scores["pro"]["score"] == pro_model.start["pro"]


def test_coefficient_lookups_are_broadcast_joins(spark, settings, scoring_rules, pro_model):
    """Every category lookup (five characteristics and the start value) is a broadcast hash
    join of the small coefficient tables, for two models at once, and no Python runs."""
    models = [settings.models["lwoo"], pro_model]
    score_type = scoring_rules.score_type
    characteristics = {"father_education": "mbo4", "mother_education": "imputed", "origin_group": "turkey"}
    characteristics |= {"mother_duration": "0_5", "wsnp": "no"}
    student_schema = T.StructType(
        [
            T.StructField(name, T.IntegerType() if name == "year" else T.StringType())
            for name in ("year", "model", "student_id", "track", "score_source", *characteristics)
        ]
        + [T.StructField(f"c_{role}_education_imputed", score_type) for role in ("father", "mother")]
    )
    students = literal_frame(
        spark,
        [(YEAR, "pro", "s", "pro", "imputed_education", *characteristics.values(), None, Decimal("0.125"))],
        student_schema,
    )

    def per_model(lookup) -> DataFrame:
        frames = [lookup(spark, model, score_type).withColumn("model", F.lit(model.name)) for model in models]
        return frames[0].unionByName(frames[1])

    frame = with_coefficients(students, per_model(coefficient_lookup), per_model(start_lookup))
    row = frame.first()
    assert row["c_father_education"] == pro_model.coefficients["father_education"]["mbo4"]
    assert row["c_origin_group"] == pro_model.coefficients["origin_group"]["turkey"]
    assert row["c_mother_education"] == Decimal("0.125") and row["c_start"] == pro_model.start["pro"]
    plan = physical_plan(frame)
    assert len(re.findall(r"BroadcastHashJoin \[model#\d+, \w+#\d+\]", plan)) == len(CHARACTERISTICS) + 1
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan
