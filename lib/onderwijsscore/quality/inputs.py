"""The input gates: what the contract cannot check, per requested teldatum year
(tables with rows, the lwoo budget, enrolments' schools and vestigingen's SWVs present,
population shares within their bands), in one Spark query."""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce
from operator import or_

import great_expectations.expectations as gxe
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from onderwijsscore.assignment import AssignmentRules, vestiging_swv
from onderwijsscore.quality.expectations import Check, GateReport, collected, validate, zero_sum
from onderwijsscore.quality.rules import DATED_TABLES, SHARES, QualityRules
from onderwijsscore.scoring.facts import in_wsnp_window, with_teldatum
from onderwijsscore.scoring.rules import ScoringRules
from onderwijsscore.vocabulary import PARENT_ROLES

# The columns that place a row of a table in a teldatum year.
_YEAR_COLUMNS = {"wsnp": ("start_date", "end_date"), "asylum": ("registration_date",)}


def _no_rows_rule(table: str, rules: QualityRules) -> str:
    if table == "wsnp":
        return "no WSNP period overlapping a requested teldatum year's WSNP window"
    if table == "asylum":
        return f"no registration in the {rules.asylum_recent_months} months up to a requested teldatum"
    return "no rows for a requested teldatum year"


def _per_year_checks(rules: QualityRules) -> list[Check]:
    checks = [
        Check(
            table,
            _YEAR_COLUMNS.get(table, ("year",)),
            _no_rows_rule(table, rules),
            "years",
            gxe.ExpectColumnValuesToBeBetween(column=f"{table}_rows", min_value=1),
        )
        for table in rules.tables_with_every_year
    ]
    checks.append(
        Check(
            "budgets",
            ("lwoo_budget",),
            "no lwoo_budget for a requested teldatum year",
            "years",
            gxe.ExpectColumnValuesToNotBeNull(column="lwoo_budget"),
        )
    )
    checks += [
        zero_sum(
            "enrolment",
            ("school_id",),
            "no schools row for the enrolment's (year, school_id)",
            "rows",
            "enrolment_without_school",
        ),
        zero_sum(
            "schools",
            ("rsvo", "swv_override", "postcode"),
            "SWV undeterminable: vestiging not rsvo, without swv_override, postcode not in swv_postcodes",
            "vestigingen",
            "vestigingen_without_swv",
        ),
    ]
    for name, bands in rules.share_bands.items():
        share = SHARES[name]
        checks += [
            Check(
                share.table,
                (share.column,),
                f"share of population students {share.students} outside [{low}, {high}]",
                "years",
                gxe.ExpectColumnValuesToBeBetween(column=f"share_{name}", min_value=low, max_value=high),
                severity,
            )
            for severity, (low, high) in bands.items()
        ]
    return checks


def check_inputs(
    frames: Mapping[str, DataFrame],
    facts: DataFrame,
    rules: QualityRules,
    scoring_rules: ScoringRules,
    assignment_rules: AssignmentRules,
    years: list[int],
) -> GateReport:
    """Gate the contract's typed input frames (`Inputs.frames`) for the requested teldatum
    years, with the population shares measured on the scoring's `student_facts`.

    Per requested year: the configured tables have rows, the lwoo budget is there, every
    enrolment's school and every vestiging's SWV exist, and the population shares lie
    within their stop bands (outside a warning band: a warning). One Spark query gives
    every count: one row per requested year of counts, budgets and shares, no ids.
    """
    in_years = F.col("year").isin(*years)
    tables = rules.tables_with_every_year
    requested = frames["enrolment"].sparkSession.range(1).select(F.explode(F.array(*map(F.lit, years))).alias("year"))
    # One aggregation counts the rows of every table.
    tagged = [
        _rows_of_years(frames[table], table, requested, rules, scoring_rules).select(
            "year", F.lit(table).alias("table")
        )
        for table in tables
    ]
    rows_per_year = (
        reduce(DataFrame.unionByName, tagged)
        .groupBy("year")
        .pivot("table", list(tables))
        .count()
        .select("year", *[F.col(table).alias(f"{table}_rows") for table in tables])
    )
    counts = [
        rows_per_year,
        _enrolment_without_school(frames["enrolment"].where(in_years), frames["schools"]),
        _vestigingen_without_swv(frames["schools"].where(in_years), frames["swv_postcodes"], assignment_rules),
    ]
    with_counts = reduce(lambda left, right: left.join(right, "year", "left"), counts, requested)
    count_columns = [column for frame in counts for column in frame.columns if column != "year"]
    per_year = (
        with_counts.fillna(0, count_columns)
        .join(frames["budgets"].select("year", "lwoo_budget"), "year", "left")
        .join(_population_shares(facts, rules), "year", "left")
        .orderBy("year")
    )
    return validate("input", collected(per_year), _per_year_checks(rules))


def _rows_of_years(
    table: DataFrame, name: str, requested: DataFrame, rules: QualityRules, scoring_rules: ScoringRules
) -> DataFrame:
    """The rows of an input table that count for each requested teldatum year, with `year`.

    A WSNP period counts when it overlaps the year's WSNP window (the score's rule), an
    asylum registration when it lies in the configured months up to the teldatum: the
    asylum rule's window reaches back years, so only recent registrations show a truncated
    extract.
    """
    if name not in DATED_TABLES:
        return table.join(F.broadcast(requested), "year")
    years = F.broadcast(with_teldatum(requested, scoring_rules))
    if name == "wsnp":
        return table.crossJoin(years).where(in_wsnp_window(F.col("start_date"), F.col("end_date"), scoring_rules))
    recent = F.col("registration_date") > F.add_months(F.col("teldatum"), -rules.asylum_recent_months)
    return table.crossJoin(years).where(recent & (F.col("registration_date") <= F.col("teldatum")))


def _enrolment_without_school(enrolment: DataFrame, schools: DataFrame) -> DataFrame:
    listed = schools.select("year", "school_id", F.lit(True).alias("listed"))
    return (
        enrolment.join(F.broadcast(listed), ["year", "school_id"], "left")
        .groupBy("year")
        .agg(F.count_if(F.col("listed").isNull()).alias("enrolment_without_school"))
    )


def _vestigingen_without_swv(
    schools: DataFrame, swv_postcodes: DataFrame, assignment_rules: AssignmentRules
) -> DataFrame:
    """Vestigingen whose SWV `assignment.vestiging_swv` cannot determine."""
    return (
        vestiging_swv(schools, swv_postcodes, assignment_rules)
        .where(F.col("swv_school").isNull())
        .groupBy("year")
        .agg(F.count(F.lit(1)).alias("vestigingen_without_swv"))
    )


def _population_shares(facts: DataFrame, rules: QualityRules) -> DataFrame:
    """Per year: the population students of the configured models (each student once)
    and the share of each kind of SHARES, from the scoring's register facts."""
    parents_registered = F.col("father_in_register") & F.col("mother_in_register")
    unknown_education = reduce(
        or_, [F.col(f"{role}_in_register") & F.col(f"{role}_education_observed").isNull() for role in PARENT_ROLES]
    )
    per_student = (
        facts.where(F.col("model").isin(*rules.share_population_models))
        .groupBy("year", "student_id")
        .agg(
            F.bool_or(~(F.col("student_in_register") & parents_registered)).alias("not_in_register"),
            F.bool_or(unknown_education).alias("unknown_parent_education"),
            F.bool_or("is_asylum").alias("asylum"),
        )
    )
    return per_student.groupBy("year").agg(
        F.count(F.lit(1)).alias("population_students"),
        *[F.avg(F.col(kind).cast("double")).alias(f"share_{kind}") for kind in SHARES],
    )
