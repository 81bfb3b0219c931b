"""Student scores (domain.md §2-3): population, register joins, coefficients, imputation.

Per teldatum year and model, every population student gets one row with one
`score_source` — the first path that applies:

1. `imputed_asylum`        registered with COA/IND in the configured period; score null
                           (the scenario stage sets it)
2. `imputed_donor_school`  not in the population register: a donor's score, same school first
3. `imputed_donor_parent`  a parent not in the register, or no origin group: the most
                           similar donor's score, same school first
4. `imputed_education`     a parent's education unknown: its expected coefficient
5. `computed`              everything known

`D = start(track) + c_father_education + c_mother_education + c_origin_group
+ c_mother_duration + c_wsnp`, with the coefficients joined from the model file as
broadcast lookups and everything in DECIMAL, so ties and cutoffs are engine-independent.
The functions are DataFrame -> DataFrame steps for `.transform`; `score_students` chains them.
None of them keeps a frame: the orchestrator (`pipeline.compute`) decides that.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import add, or_
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.errors import ConfigFileError
from onderwijsscore.imputation import (
    DONOR_MATCH_KEYS,
    FEATURES,
    EducationFit,
    EducationModelSettings,
    donor_recipients,
    donor_scores,
    education_counts,
    fit_education_models,
    with_imputed_education,
)
from onderwijsscore.models import ScoreModel, coefficient_lookup, start_lookup
from onderwijsscore.vocabulary import (
    CHARACTERISTICS,
    DONOR_PARENT_SOURCE,
    DONOR_SCHOOL_SOURCE,
    DONOR_SOURCES,
    DURATION_CLASSES,
    EDUCATION_CHARACTERISTICS,
    IMPUTED,
    PARENT_ROLES,
    SCORE_SOURCES,
    WSNP_CATEGORIES,
)

_SCORE_INTEGER_DIGITS = 6
# conf/scoring.yaml `donors` section -> the path whose recipients it serves.
_DONOR_PATHS = {"not_in_register": DONOR_SCHOOL_SOURCE, "parent_not_in_register": DONOR_PARENT_SOURCE}
_PATH_2_KEY = "track"
# A score adds six terms of 6 integer digits (11 in the sum) and at most this many
# decimals: within Spark's 38 digits, so no intermediate sum is rounded.
_MAX_DECIMALS = 27

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


@dataclass(frozen=True)
class ScoringRules:
    """conf/scoring.yaml: the choices domain.md §2-3 leaves open."""

    teldatum_month: int
    teldatum_day: int
    score_decimals: int
    expected_coefficient_decimals: int
    wsnp_window_months: int
    asylum_min_registration_date: datetime.date
    missing_mother_duration: str
    donor_levels: dict[str, tuple[tuple[str, ...], ...]]  # score_source -> match-key levels, preferred first
    education_model: EducationModelSettings

    @property
    def score_type(self) -> T.DecimalType:
        return T.DecimalType(_SCORE_INTEGER_DIGITS + self.score_decimals, self.score_decimals)

    @property
    def expected_coefficient_type(self) -> T.DecimalType:
        """An imputed parent's expected coefficient, unrounded for the score's one rounding."""
        decimals = self.expected_coefficient_decimals
        return T.DecimalType(_SCORE_INTEGER_DIGITS + decimals, decimals)


def parse_scoring_rules(raw: Any, file: str) -> ScoringRules:
    """Validate conf/scoring.yaml; any problem raises `ConfigFileError` naming file and key."""

    def value(path: str, *kinds: type) -> Any:
        node = raw
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                raise ConfigFileError(file, path, "missing")
            node = node[key]
        # bool is an int in Python, but `true` is never meant as a number here.
        if isinstance(node, bool) or not isinstance(node, kinds):
            raise ConfigFileError(file, path, f"expected {' or '.join(k.__name__ for k in kinds)}, found {node!r}")
        return node

    teldatum = datetime.date(2000, value("teldatum.month", int), value("teldatum.day", int))  # validates the day
    missing_duration = value("missing_mother_duration", str)
    if missing_duration not in DURATION_CLASSES:
        raise ConfigFileError(file, "missing_mother_duration", f"not in {list(DURATION_CLASSES)}")

    donor_levels = {}
    for section, source in _DONOR_PATHS.items():
        levels = value(f"donors.{section}", list)
        if not levels or not all(isinstance(level, list) and set(level) <= set(DONOR_MATCH_KEYS) for level in levels):
            raise ConfigFileError(
                file, f"donors.{section}", f"must be a non-empty list of key lists from {list(DONOR_MATCH_KEYS)}"
            )
        donor_levels[source] = tuple(tuple(level) for level in levels)
    # domain.md §3: a path-2 donor has the recipient's track (its score holds the track's start value).
    if not all(_PATH_2_KEY in level for level in donor_levels[_DONOR_PATHS["not_in_register"]]):
        raise ConfigFileError(file, "donors.not_in_register", f"every level must include {_PATH_2_KEY}")
    decimals = {name: value(name, int) for name in ("score_decimals", "expected_coefficient_decimals")}
    if not 0 <= decimals["score_decimals"] <= decimals["expected_coefficient_decimals"] <= _MAX_DECIMALS:
        raise ConfigFileError(
            file, "expected_coefficient_decimals", f"must be at least score_decimals and at most {_MAX_DECIMALS}"
        )

    features = value("education_imputation.features", list)
    if not features or not set(features) <= set(FEATURES):
        raise ConfigFileError(file, "education_imputation.features", f"must be a non-empty subset of {list(FEATURES)}")
    if value("education_imputation.elastic_net_param", int, float) != 0:
        raise ConfigFileError(file, "education_imputation.elastic_net_param", "only 0 (L2 regularisation) is supported")
    held_out_fraction = value("education_imputation.held_out_fraction", int, float)
    if not 0 <= held_out_fraction < 1:
        raise ConfigFileError(file, "education_imputation.held_out_fraction", "must be in [0, 1)")

    return ScoringRules(
        teldatum_month=teldatum.month,
        teldatum_day=teldatum.day,
        score_decimals=decimals["score_decimals"],
        expected_coefficient_decimals=decimals["expected_coefficient_decimals"],
        wsnp_window_months=value("wsnp_window_months", int),
        asylum_min_registration_date=value("asylum_min_registration_date", datetime.date),
        missing_mother_duration=missing_duration,
        donor_levels=donor_levels,
        education_model=EducationModelSettings(
            features=tuple(features),
            held_out_fraction=held_out_fraction,
            max_iter=value("education_imputation.max_iter", int),
            reg_param=value("education_imputation.reg_param", int, float),
            tolerance=value("education_imputation.tolerance", int, float),
            concurrent_fits=value("education_imputation.concurrent_fits", int),
        ),
    )


def select_populations(enrolment: DataFrame, models: list[ScoreModel], years: list[int]) -> DataFrame:
    """Every model's students on each teldatum: (year, model, student_id, school_id, track, grade)."""
    return reduce(
        DataFrame.unionByName,
        [select_population(enrolment, model, years).withColumn("model", F.lit(model.name)) for model in models],
    )


def select_population(enrolment: DataFrame, model: ScoreModel, years: list[int]) -> DataFrame:
    """The model's students on each teldatum: (year, student_id, school_id, track, grade)."""
    selected = enrolment.where(
        F.col("year").isin(*years) & F.col("programme").isin(*model.programmes) & F.col("grade").isin(*model.grades)
    )
    if model.funded_only:
        selected = selected.where(F.col("funded"))
    return selected.select("year", "student_id", "school_id", F.col("programme").alias("track"), "grade")


def with_teldatum(students: DataFrame, rules: ScoringRules) -> DataFrame:
    return students.withColumn(
        "teldatum", F.make_date(F.col("year"), F.lit(rules.teldatum_month), F.lit(rules.teldatum_day))
    )


def family_members(students: DataFrame, parents: DataFrame) -> DataFrame:
    """One row per (student, family member) with `role` (student/father/mother) and
    `person_id`, so each register table is joined once for the whole family. A parent id
    that `parents` does not give has no row."""
    with_parent_ids = students.join(
        parents.select(F.col("child_id").alias("student_id"), "father_id", "mother_id"), "student_id", "left"
    )
    member_ids = {"student": F.col("student_id"), **{role: F.col(f"{role}_id") for role in PARENT_ROLES}}
    members = F.array(
        *[F.struct(F.lit(role).alias("role"), id_.alias("person_id")) for role, id_ in member_ids.items()]
    )
    return with_parent_ids.select(*students.columns, F.inline(members)).where(F.col("person_id").isNotNull())


def with_register_data(
    members: DataFrame, inputs: dict[str, DataFrame], models: list[ScoreModel], rules: ScoringRules, years: list[int]
) -> DataFrame:
    """Each member's register data on the teldatum of its year (one of `years`), one row per member.

    Adds `in_register` (in `persons`), `birth_year`, `origin_group`, `education` (null =
    unknown or not in the register; codes outside the categories recoded by the education
    mapping of the member's `model`), `income_percentile`, `duration_class`, `in_asylum_period`
    (registered on or after the configured date and on or before the teldatum) and
    `in_wsnp_window` (one of the member's WSNP periods overlaps [teldatum - window,
    teldatum], both ends included, a null end date ongoing).
    """
    persons = inputs["persons"].select("person_id", F.lit(True).alias("in_register"), "birth_year", "origin_group")
    # A person's WSNP periods as one array: a member keeps one row.
    wsnp = inputs["wsnp"].groupBy("person_id").agg(F.collect_list(F.struct("start_date", "end_date")).alias("periods"))
    in_years = F.col("year").isin(*years)
    in_register = F.coalesce(F.col("in_register"), F.lit(False))
    level = F.col("education_level")
    first, *rest = models
    mapped = F.when(F.col("model") == first.name, _education_mapping(first)[level])
    for model in rest:
        mapped = mapped.when(F.col("model") == model.name, _education_mapping(model)[level])
    overlapping = F.exists(
        F.col("periods"), lambda period: in_wsnp_window(period["start_date"], period["end_date"], rules)
    )
    # The members (a few per student) are the smaller side of each register join: hashing
    # them and streaming the register tables sorts neither.
    joined = members
    for table, keys in (
        (persons, ["person_id"]),
        (inputs["asylum"], ["person_id"]),
        (wsnp, ["person_id"]),
        (inputs["education"].where(in_years), ["year", "person_id"]),
        (inputs["income"].where(in_years), ["year", "person_id"]),
        (inputs["residence_duration"].where(in_years), ["year", "person_id"]),
    ):
        joined = joined.hint("shuffle_hash").join(table, keys, "left")
    return joined.select(
        *members.columns,
        in_register.alias("in_register"),
        "birth_year",
        "origin_group",
        F.when(in_register, F.coalesce(mapped, level)).alias("education"),
        "income_percentile",
        "duration_class",
        F.col("registration_date")
        .between(F.lit(rules.asylum_min_registration_date), F.col("teldatum"))
        .alias("in_asylum_period"),
        F.coalesce(overlapping, F.lit(False)).alias("in_wsnp_window"),
    )


def in_wsnp_window(start_date: Column, end_date: Column, rules: ScoringRules) -> Column:
    """A WSNP period overlaps [teldatum - window, teldatum], both ends included; a null end
    date is ongoing. Needs a `teldatum` column."""
    window_start = F.add_months(F.col("teldatum"), -rules.wsnp_window_months)
    return (start_date <= F.col("teldatum")) & (end_date.isNull() | (end_date >= window_start))


def _education_mapping(model: ScoreModel) -> Column:
    pairs = [F.lit(code) for pair in model.education_mapping.items() for code in pair]
    return F.create_map(*pairs).cast("map<string,string>")


def per_student(members: DataFrame, missing_mother_duration: str) -> DataFrame:
    """Back to one row per student, each member's data in `<role>_...` columns.

    The members are gathered per student as one list (a hash aggregation) and each role's
    row picked from it. A registered mother without a duration row gets
    `missing_mother_duration`; WSNP counts either parent.
    """
    fields = ["person_id", "in_register", "birth_year", "origin_group", "education", "income_percentile"]
    fields += ["duration_class", "in_asylum_period", "in_wsnp_window"]
    keys = ["year", "model", "student_id"]
    roles = ("student", *PARENT_ROLES)
    gathered = (
        members.groupBy(*keys)
        .agg(F.collect_list(F.struct("role", *fields)).alias("_members"))
        .select(
            *keys,
            *[_member(role).alias(f"_{role}") for role in roles],
        )
    )

    def of(role: str, field: str) -> Column:
        return F.col(f"_{role}")[field]

    def flag(role: str, field: str) -> Column:
        return F.coalesce(of(role, field), F.lit(False))

    parent_columns = [
        column
        for role in PARENT_ROLES
        for column in (
            of(role, "person_id").alias(f"{role}_id"),
            flag(role, "in_register").alias(f"{role}_in_register"),
            of(role, "birth_year").alias(f"{role}_birth_year"),
            of(role, "education").alias(f"{role}_education_observed"),
            of(role, "income_percentile").alias(f"{role}_income_percentile"),
        )
    ]
    no, yes = WSNP_CATEGORIES
    in_wsnp = reduce(or_, [flag(role, "in_wsnp_window") for role in PARENT_ROLES])
    return gathered.select(
        *keys,
        flag("student", "in_register").alias("student_in_register"),
        of("student", "origin_group").alias("origin_group_observed"),
        flag("student", "in_asylum_period").alias("is_asylum"),
        *parent_columns,
        F.when(
            F.col("mother_in_register"), F.coalesce(of("mother", "duration_class"), F.lit(missing_mother_duration))
        ).alias("mother_duration_observed"),
        F.when(in_wsnp, F.lit(yes)).otherwise(F.lit(no)).alias("wsnp_observed"),
    )


def _member(role: str) -> Column:
    """The gathered member of `role` (null when the student has none)."""
    return F.get(F.filter("_members", lambda member: member["role"] == role), 0)


def with_score_source(students: DataFrame) -> DataFrame:
    """The first path of domain.md §3 that applies."""
    asylum, donor_school, donor_parent, education, computed = SCORE_SOURCES
    parent_missing = (
        ~F.col("father_in_register") | ~F.col("mother_in_register") | F.col("origin_group_observed").isNull()
    )
    education_unknown = F.col("father_education_observed").isNull() | F.col("mother_education_observed").isNull()
    return students.withColumn(
        "score_source",
        F.when(F.col("is_asylum"), asylum)
        .when(~F.col("student_in_register"), donor_school)
        .when(parent_missing, donor_parent)
        .when(education_unknown, education)
        .otherwise(computed),
    )


def student_facts(
    inputs: dict[str, DataFrame], models: list[ScoreModel], rules: ScoringRules, years: list[int]
) -> DataFrame:
    """The populations with what the registers say about each student and its parents, and
    its path: every register table is joined once for all models."""
    population = select_populations(inputs["enrolment"], models, years).transform(with_teldatum, rules)
    # The members carry only their keys through the register joins; the rest is joined back.
    registered = (
        population.select("year", "model", "student_id", "teldatum")
        .transform(family_members, inputs["parents"])
        .transform(with_register_data, inputs, models, rules, years)
        .transform(per_student, rules.missing_mother_duration)
    )
    return population.join(registered, ["year", "model", "student_id"], "left").transform(with_score_source)


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
    `c_<characteristic>_imputed` (`imputation.with_imputed_education`)."""
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


def score_students(
    inputs: dict[str, DataFrame], models: list[ScoreModel], rules: ScoringRules, years: list[int], seed: int
) -> tuple[DataFrame, dict[str, dict[int, dict[str, float | int | bool | None]]]]:
    """Every step of domain.md §2-3 in one, lazily: the scores (`OUTPUT_COLUMNS`) and fit
    metrics of `inputs`. The pipeline runs the same steps itself, keeping the frames that
    later steps read again (`pipeline.compute`)."""
    facts = student_facts(inputs, models, rules, years)
    fits = fit_education(education_counts(facts, rules.education_model, seed).toArrow(), models, rules, years)
    own = own_scores(facts, fits, models, rules)
    donated = donor_scores(own, donor_recipients(own, rules.donor_levels), rules.donor_levels, seed)
    return with_donor_scores(own, donated, rules), fit_metrics(fits)


def fit_education(
    counts: pa.Table, models: list[ScoreModel], rules: ScoringRules, years: list[int]
) -> list[EducationFit]:
    """The education model of every (model, year), fitted on the driver from the collected
    `imputation.education_counts` of the facts."""
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
