"""The population and what the registers say about each student and its parents
(domain.md §2): every register table joined once for all models, one gathered row per
student, and the student's path (`score_source`, the first path of domain.md §3 that
applies)."""

from __future__ import annotations

from functools import reduce
from operator import or_

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from onderwijsscore.models import ScoreModel
from onderwijsscore.scoring.rules import ScoringRules
from onderwijsscore.vocabulary import PARENT_ROLES, SCORE_SOURCES, WSNP_CATEGORIES


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
