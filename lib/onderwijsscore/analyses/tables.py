"""The analysis tables of domain.md §7 but change_explained, before the disclosure check:
profiles (ch. 3), stability and redistribution cross-tables (ch. 4-5), regional tables
(ch. 6) and the scenario comparison."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.analyses.rules import AnalysisRules, Bins
from onderwijsscore.contract import MONEY
from onderwijsscore.runtime import literal_frame
from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.vocabulary import ASYLUM_SOURCE

SHARE = T.DecimalType(7, 6)
TOTAL_BIN = "total"
YES, NO = "yes", "no"
# --- profiles -------------------------------------------------------------------------


def profile_counts(banded: DataFrame, rules: AnalysisRules) -> DataFrame:
    """Per (year, model, band, one column per characteristic: its category): `n` students.

    `banded` is the student frame with `aggregation.with_band`. A student without own data
    (asylum or donor-imputed) counts as the unknown category.
    """
    categories = [_category(c, rules).alias(c) for c in rules.characteristics]
    return banded.groupBy("year", "model", "band", *categories).agg(F.count(F.lit(1)).alias("n"))


def profiles(counts: DataFrame, cutoffs: DataFrame, grid: ScenarioGrid, rules: AnalysisRules) -> DataFrame:
    """Per (year, scenario, group, characteristic, category): n_students and share of the group.

    Students are counted once per group: `population` (all) and `target` (the scenario's
    target group: band at most its share).
    """
    scenarios = cutoffs.join(grid.frame(cutoffs.sparkSession).select("scenario", "model"), "scenario").select(
        "year", "model", "scenario", "target_share"
    )
    in_target = F.coalesce(F.col("band") <= F.col("target_share"), F.lit(False))
    groups = F.array(F.lit("population"), F.when(in_target, F.lit("target")))
    per_characteristic = F.array(
        *[
            F.struct(F.lit(name).alias("characteristic"), F.col(name).alias("category"))
            for name in rules.characteristics
        ]
    )
    long = (
        counts.join(F.broadcast(scenarios), ["year", "model"])
        .withColumn("group", F.explode(groups))
        .where(F.col("group").isNotNull())
        .withColumn("cell", F.explode(per_characteristic))
        .groupBy("year", "scenario", "group", "cell.characteristic", "cell.category")
        .agg(F.sum("n").alias("n_students"))
    )
    group_size = F.sum("n_students").over(Window.partitionBy("year", "scenario", "group", "characteristic"))
    return long.withColumn("share", (F.col("n_students") / group_size).cast(SHARE))


def _category(characteristic: str, rules: AnalysisRules) -> Column:
    unknown = F.lit(rules.unknown_category)
    if characteristic == "asylum":
        return F.when(F.col("score_source") == ASYLUM_SOURCE, YES).otherwise(NO)
    if characteristic == "dutch_parent":
        origin = F.col("origin_group")
        return F.when(origin.isNull(), unknown).when(origin.isin(*rules.dutch_parent_origin_groups), YES).otherwise(NO)
    return F.coalesce(F.col(characteristic), unknown)


# --- cross-tables ---------------------------------------------------------------------


def cross_table(changes: DataFrame, bins: tuple[Bins, Bins]) -> DataFrame:
    """SWVs per (year, scenario, absolute_bin, relative_bin) in long form: every cell of the
    grid (empty ones with 0), the row and column totals and the grand total (bin `total`).

    `changes`: year, scenario, swv_id, absolute, relative, n_students; rows without a
    relative change (zero base) are not counted. Columns: the bins' labels and orders
    (totals last), n_units and n_students.
    """
    absolute, relative = bins
    counted = (
        changes.where(F.col("relative").isNotNull())
        .groupBy(
            "year",
            "scenario",
            absolute.order(F.col("absolute")).alias("absolute_order"),
            relative.order(F.col("relative")).alias("relative_order"),
        )
        .agg(F.count(F.lit(1)).alias("n_units"), F.sum("n_students").alias("n_students"))
    )
    spark = changes.sparkSession
    grid = (
        changes.select("year", "scenario")
        .distinct()
        .crossJoin(F.broadcast(_bin_frame(spark, absolute, "absolute")))
        .crossJoin(F.broadcast(_bin_frame(spark, relative, "relative")))
    )
    interior = grid.join(counted, ["year", "scenario", "absolute_order", "relative_order"], "left").fillna(
        0, ["n_units", "n_students"]
    )
    # The cells and their margins in one aggregate (grouping sets), so the grid is built once.
    dimensions = {name: [f"{name}_bin", f"{name}_order"] for name in ("absolute", "relative")}
    by_cell = ["year", "scenario", *dimensions["absolute"], *dimensions["relative"]]
    sets = [by_cell, ["year", "scenario", *dimensions["absolute"]], ["year", "scenario", *dimensions["relative"]]]
    summed = interior.groupingSets([*sets, ["year", "scenario"]], *by_cell).agg(
        F.sum("n_units").alias("n_units"),
        F.sum("n_students").alias("n_students"),
        *[F.grouping(f"{name}_bin").alias(f"{name}_total") for name in dimensions],
    )
    # A dimension summed over gets bin `total`, ordered after the last bin.
    totals = {
        column: F.when(F.col(f"{name}_total") == 1, F.lit(value)).otherwise(F.col(column))
        for name, dimension in zip(dimensions, bins, strict=True)
        for column, value in zip(dimensions[name], (TOTAL_BIN, len(dimension.labels)), strict=True)
    }
    return summed.withColumns(totals).select(*by_cell, "n_units", "n_students")


def _bin_frame(spark, bins: Bins, name: str) -> DataFrame:
    schema = T.StructType.fromDDL(f"{name}_order int, {name}_bin string")
    return literal_frame(spark, list(enumerate(bins.labels)), schema)


def year_on_year(budgets: DataFrame) -> DataFrame:
    """Per (year, scenario, swv_id) with a budget in the previous year too: the change of
    `total` (absolute, relative to the previous total) and the year's n_students."""
    previous = budgets.select(
        (F.col("year") + 1).alias("year"), "scenario", "swv_id", F.col("total").alias("total_previous")
    )
    change = F.col("total") - F.col("total_previous")
    return budgets.join(previous, ["year", "scenario", "swv_id"]).select(
        "year",
        "scenario",
        "swv_id",
        change.alias("absolute"),
        F.try_divide(change, F.nullif(F.col("total_previous"), F.lit(0))).alias("relative"),
        "n_students",
    )


def against_current(budgets: DataFrame) -> DataFrame:
    """Per (year, scenario, swv_id): the gain over the current regulation, absolute and relative."""
    gain = F.col("total") - F.col("current_total")
    return budgets.select(
        "year",
        "scenario",
        "swv_id",
        gain.alias("absolute"),
        F.try_divide(gain, F.nullif(F.col("current_total"), F.lit(0))).alias("relative"),
        "n_students",
    )


# --- regional -------------------------------------------------------------------------


def regional(budgets: DataFrame, swv: DataFrame, rules: AnalysisRules) -> DataFrame:
    """Per (year, scenario, swv_id): the budget per vmbo grade 3-4 student under the current
    regulation and the scenario (both over the scenario's n_students) and the difference.
    An SWV without area has no shrink type."""
    regions = swv.select(
        "swv_id",
        "shrink_region",
        F.when(
            ~F.col("swv_id").isin(*rules.no_area_swvs), F.coalesce("shrink_type", F.lit(rules.rest_shrink_type))
        ).alias("shrink_type"),
    )
    current = F.try_divide(F.col("current_total"), F.col("n_students")).cast(MONEY)
    return (
        budgets.join(F.broadcast(regions), "swv_id", "left")
        .withColumns({"per_student_current": current, "per_student_scenario": F.col("per_student")})
        .select(
            "year",
            "scenario",
            "swv_id",
            "shrink_region",
            "shrink_type",
            "n_students",
            "per_student_current",
            "per_student_scenario",
            (F.col("per_student_scenario") - F.col("per_student_current")).cast(MONEY).alias("difference"),
        )
    )


def regional_rollup(budgets: DataFrame, regional_rows: DataFrame) -> DataFrame:
    """Per (year, scenario, shrink_type), SWVs without area left out: n_swvs and the
    budget per student under the current regulation and the scenario, and the difference."""
    per_type = (
        budgets.join(regional_rows.select("year", "scenario", "swv_id", "shrink_type"), ["year", "scenario", "swv_id"])
        .where(F.col("shrink_type").isNotNull())
        .groupBy("year", "scenario", "shrink_type")
        .agg(
            F.count(F.lit(1)).alias("n_swvs"),
            F.sum("n_students").alias("n_students"),
            F.sum("current_total").alias("current_total"),
            F.sum("total").alias("total"),
        )
    )
    current = F.try_divide(F.col("current_total"), F.col("n_students")).cast(MONEY)
    scenario = F.try_divide(F.col("total"), F.col("n_students")).cast(MONEY)
    return per_type.select(
        "year",
        "scenario",
        "shrink_type",
        "n_swvs",
        "n_students",
        current.alias("per_student_current"),
        scenario.alias("per_student_scenario"),
        (scenario - current).cast(MONEY).alias("difference"),
    )


# --- scenario comparison --------------------------------------------------------------


def pair_id(a: str, b: str) -> str:
    return f"{a}__vs__{b}"


def scenario_comparison(budgets: DataFrame, rules: AnalysisRules) -> DataFrame:
    """Per (year, pair, swv_id) of the configured pairs [a, b]: both totals and budgets per
    student, and difference = total_b − total_a; n_students is the smaller of the two."""

    def side(scenario: str, suffix: str) -> DataFrame:
        return budgets.where(F.col("scenario") == scenario).select(
            "year",
            "swv_id",
            F.col("total").alias(f"total_{suffix}"),
            F.col("per_student").alias(f"per_student_{suffix}"),
            F.col("n_students").alias(f"n_students_{suffix}"),
        )

    pairs = [
        side(a, "a")
        .join(side(b, "b"), ["year", "swv_id"], "full")
        .select(
            "year",
            F.lit(pair_id(a, b)).alias("pair"),
            F.lit(a).alias("scenario_a"),
            F.lit(b).alias("scenario_b"),
            "swv_id",
            "total_a",
            "total_b",
            "per_student_a",
            "per_student_b",
            (F.coalesce("total_b", F.lit(0)) - F.coalesce("total_a", F.lit(0))).cast(MONEY).alias("difference"),
            F.least(F.coalesce("n_students_a", F.lit(0)), F.coalesce("n_students_b", F.lit(0))).alias("n_students"),
        )
        for a, b in rules.scenario_pairs
    ]
    return reduce(DataFrame.unionByName, pairs)


# --- all tables -----------------------------------------------------------------------


def analysis_tables(
    computed: dict[str, DataFrame], swv: DataFrame, grid: ScenarioGrid, rules: AnalysisRules
) -> dict[str, tuple[DataFrame, list[str]]]:
    """Every analysis table but `change_explained` (`change_drivers` and the functions after
    it), from the run's outputs (`cutoffs`, `unit_scores`, `budgets`) and student sums
    (`profile_counts`), before the disclosure check: table -> (frame, the key that orders
    the cells of a line).

    Tables of year pairs (stability) have rows only for years whose previous year is in
    the run.
    """
    budgets = computed["budgets"]
    regional_rows = regional(budgets, swv, rules)
    cross_key = ["absolute_order", "relative_order"]
    return {
        "profiles": (
            profiles(computed["profile_counts"], computed["cutoffs"], grid, rules),
            ["characteristic", "category"],
        ),
        "stability": (cross_table(year_on_year(budgets), rules.stability), cross_key),
        "redistribution": (cross_table(against_current(budgets), rules.redistribution), cross_key),
        "regional": (regional_rows, ["swv_id"]),
        "regional_rollup": (regional_rollup(budgets, regional_rows), ["shrink_type"]),
        "scenario_comparison": (scenario_comparison(budgets, rules), ["swv_id"]),
    }
