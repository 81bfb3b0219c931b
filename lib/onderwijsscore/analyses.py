"""Policy analyses of domain.md §7 (report chapters 3-6), from the run's staged outputs.

Every table is in long or per-unit form that BI tools pivot, and carries `n_students`
(the students behind each cell) for the disclosure check of `onderwijsscore.disclosure`, which
removes it again unless it is a published count.

- profiles: the population and target group by characteristic and category (ch. 3);
- stability: SWVs by change of `total` from the previous year (tables 4.1.3/4.1.4);
- redistribution: SWVs by `total − current_total` (tables 5.1.2/5.2.2);
- regional, regional_rollup: per-student budgets per SWV and per shrink-region type (ch. 6);
- scenario_comparison: two scenarios SWV by SWV (fig. 5.2.3, 6.3.3);
- change_explained: each SWV's year-on-year change split into drivers that sum to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.contract import MONEY
from onderwijsscore.errors import ConfigFileError
from onderwijsscore.runtime import literal_frame
from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.vocabulary import ASYLUM_SOURCE, CHARACTERISTICS

SHARE = T.DecimalType(7, 6)
RATE = T.DecimalType(24, 12)  # EUR per net-score point: exact enough that drivers lose < 1 cent
TOTAL_BIN = "total"
YES, NO = "yes", "no"
DERIVED_CHARACTERISTICS = ("dutch_parent", "asylum")


@dataclass(frozen=True)
class Bins:
    """[lower, upper) bins between ascending edges, open at both ends."""

    edges: tuple[Decimal, ...]

    @classmethod
    def from_yaml(cls, edges: list, file: str, key: str) -> Bins:
        values = tuple(Decimal(str(edge)) for edge in edges)
        if list(values) != sorted(set(values)):
            raise ConfigFileError(file, key, "edges must be strictly ascending")
        return cls(values)

    def order(self, value: Column) -> Column:
        """0-based bin of `value`: the number of edges at or below it."""
        return reduce(lambda n, edge: n + (value >= F.lit(edge)).cast("int"), self.edges, F.lit(0))

    @property
    def labels(self) -> list[str]:
        bounds = ["-inf", *(format(edge, "f") for edge in self.edges), "inf"]
        return [f"[{lower}, {upper})" for lower, upper in zip(bounds, bounds[1:], strict=False)]


@dataclass(frozen=True)
class AnalysisRules:
    characteristics: tuple[str, ...]
    unknown_category: str
    dutch_parent_origin_groups: tuple[str, ...]
    stability: tuple[Bins, Bins]  # absolute (EUR), relative
    redistribution: tuple[Bins, Bins]
    scenario_pairs: tuple[tuple[str, str], ...]
    rest_shrink_type: str
    no_area_swvs: tuple[str, ...]
    source_groups: dict[str, tuple[str, ...]]  # driver group -> score_sources

    @classmethod
    def from_yaml(cls, raw: dict, file: str, grid: ScenarioGrid) -> AnalysisRules:
        """conf/analyses.yaml, checked against the scenario grid; problems raise `ConfigFileError`."""
        profiles = raw["profiles"]
        unsupported = set(profiles["characteristics"]) - {*CHARACTERISTICS, *DERIVED_CHARACTERISTICS}
        if unsupported:
            raise ConfigFileError(file, "profiles.characteristics", f"unknown {sorted(unsupported)}")
        known = {s.scenario_id for s in grid.scenarios}
        pairs = tuple((a, b) for a, b in raw["scenario_pairs"])
        if not {s for pair in pairs for s in pair} <= known:
            raise ConfigFileError(file, "scenario_pairs", "a scenario is not in conf/scenarios.yaml")
        return cls(
            characteristics=tuple(profiles["characteristics"]),
            unknown_category=profiles["unknown_category"],
            dutch_parent_origin_groups=tuple(profiles["dutch_parent_origin_groups"]),
            stability=_bin_pair(raw["stability"], file, "stability"),
            redistribution=_bin_pair(raw["redistribution"], file, "redistribution"),
            scenario_pairs=pairs,
            rest_shrink_type=raw["regional"]["rest_shrink_type"],
            no_area_swvs=tuple(raw["regional"]["no_area_swvs"]),
            source_groups={g: tuple(s) for g, s in raw["change_explained"]["source_groups"].items()},
        )


def _bin_pair(raw: dict, file: str, key: str) -> tuple[Bins, Bins]:
    return (
        Bins.from_yaml(raw["absolute_edges"], file, f"{key}.absolute_edges"),
        Bins.from_yaml(raw["relative_edges"], file, f"{key}.relative_edges"),
    )


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


# --- change explained -----------------------------------------------------------------

FIXED_DRIVERS = ("fixed_parts", "se_part", "iq_threshold", "iq_national_rate")


def driver_column(group: str) -> str:
    return f"iq_{group}"


def score_group_gross(unit_sums: DataFrame, budgets: DataFrame, rules: AnalysisRules) -> DataFrame:
    """Per (year, scenario, swv_id, source_group): gross score and target-group students of
    the `score_source` group, every configured group present (0 when empty); from the
    `aggregation.scenario_unit_sums` of the scenarios with budgets (lwoo)."""
    unit_sums = unit_sums.join(F.broadcast(budgets.select("scenario").distinct()), "scenario")
    group = F.lit(None)
    for name, sources in reversed(rules.source_groups.items()):
        group = F.when(F.col("score_source").isin(*sources), name).otherwise(group)
    sums = unit_sums.groupBy("year", "scenario", F.col("unit_id").alias("swv_id"), group.alias("source_group")).agg(
        F.sum("gross").alias("gross"), F.sum("n_target").alias("n_target")
    )
    groups = literal_frame(
        unit_sums.sparkSession, [(g,) for g in rules.source_groups], T.StructType.fromDDL("source_group string")
    )
    every_group = sums.select("year", "scenario", "swv_id").distinct().crossJoin(F.broadcast(groups))
    return every_group.join(sums, ["year", "scenario", "swv_id", "source_group"], "left").fillna(
        0, ["gross", "n_target"]
    )


def change_drivers(budgets: DataFrame, units: DataFrame, group_gross: DataFrame) -> DataFrame:
    """Per (year t, scenario, swv_id) with year t − 1 in the frames: the change of `total`
    and its drivers (domain.md §7) but the groups' and `rounding` (`group_drivers`,
    `with_rounding`), with the previous year's rate `rate_prev` they need.

    With r the amount per net-score point (lwoo_iq pot / Σ net scores), N the net score and
    A_g the gross score of score-source group g: lwoo_iq ≈ r·N, so
        Δ(r·N) = Σ_g r_{t−1}·ΔA_g  +  r_{t−1}·Δ(N − ΣA_g)  +  N_t·Δr
    (groups, threshold incl. the floor at 0, national rate); `rounding` is the rest:
    largest-remainder cents and the rounding of the drivers to cents. An SWV missing in
    one of the years counts as 0 there.
    """
    net = units.select("year", "scenario", F.col("unit_id").alias("swv_id"), "net_score")
    per_swv = (
        budgets.join(net, ["year", "scenario", "swv_id"], "left")
        .join(
            group_gross.groupBy("year", "scenario", "swv_id").agg(F.sum("gross").alias("gross")),
            ["year", "scenario", "swv_id"],
            "left",
        )
        .fillna(0, ["net_score", "gross"])
    )
    rate = (
        per_swv.groupBy("year", "scenario")
        .agg((F.sum("lwoo_iq").cast(MONEY) / F.sum("net_score").cast(T.DecimalType(18, 6))).alias("rate"))
        .select("year", "scenario", F.coalesce(F.col("rate").cast(RATE), F.lit(0).cast(RATE)).alias("rate"))
    )
    state = per_swv.select(
        "year",
        "scenario",
        "swv_id",
        "total",
        (F.col("regional") + F.col("pro")).alias("fixed"),
        "lwoo_se",
        "net_score",
        (F.col("net_score") - F.col("gross")).alias("net_less_gross"),
    )
    rates = rate.join(
        rate.select((F.col("year") + 1).alias("year"), "scenario", F.col("rate").alias("rate_prev")),
        ["year", "scenario"],
    )
    previous = state.select(
        (F.col("year") + 1).alias("year"),
        "scenario",
        "swv_id",
        *[F.col(c).alias(f"{c}_prev") for c in ("total", "fixed", "lwoo_se", "net_score", "net_less_gross")],
    )
    both = (
        state.join(previous, ["year", "scenario", "swv_id"], "full")
        .join(F.broadcast(rates), ["year", "scenario"])
        .fillna(0)
    )
    r_prev = F.col("rate_prev")
    money = {
        "fixed_parts": F.col("fixed") - F.col("fixed_prev"),
        "se_part": F.col("lwoo_se") - F.col("lwoo_se_prev"),
        "iq_threshold": r_prev * (F.col("net_less_gross") - F.col("net_less_gross_prev")),
        "iq_national_rate": F.col("net_score") * (F.col("rate") - r_prev),
    }
    return both.select(
        "year",
        "scenario",
        "swv_id",
        "rate_prev",
        F.col("total_prev").cast(MONEY).alias("total_prev"),
        F.col("total").cast(MONEY).alias("total"),
        *[value.cast(MONEY).alias(name) for name, value in money.items()],
    )


def group_drivers(group_gross: DataFrame, drivers: DataFrame) -> DataFrame:
    """Per (year, scenario, swv_id, source_group) of `change_drivers`: the group's driver
    `iq_group` (r_{t−1}·ΔA_g) and the students behind it, for the disclosure check."""
    previous_groups = group_gross.select(
        (F.col("year") + 1).alias("year"),
        "scenario",
        "swv_id",
        "source_group",
        F.col("gross").alias("gross_prev"),
        F.col("n_target").alias("n_target_prev"),
    )
    return (
        group_gross.join(previous_groups, ["year", "scenario", "swv_id", "source_group"], "full")
        .fillna(0, ["gross", "n_target", "gross_prev", "n_target_prev"])
        .join(drivers.select("year", "scenario", "swv_id", "rate_prev"), ["year", "scenario", "swv_id"])
        .select(
            "year",
            "scenario",
            "swv_id",
            "source_group",
            (F.col("rate_prev") * (F.col("gross") - F.col("gross_prev"))).cast(MONEY).alias("iq_group"),
            # A year's group on 1-9 students is small even beside a large other year: the
            # driver is that group's gross score when the other year's group is empty.
            F.coalesce(
                F.least(F.nullif(F.col("n_target"), F.lit(0)), F.nullif(F.col("n_target_prev"), F.lit(0))), F.lit(0)
            ).alias("n_students"),
        )
    )


def with_rounding(drivers: DataFrame, groups: DataFrame) -> DataFrame:
    """`change_drivers` plus `rounding`: the change of `total` the drivers and the group
    drivers (`group_drivers`) leave unexplained."""
    explained = reduce(lambda total, name: total + F.col(name), FIXED_DRIVERS, F.col("groups_total"))
    rounding = (F.col("total") - F.col("total_prev") - explained).cast(MONEY)
    return (
        drivers.join(
            groups.groupBy("year", "scenario", "swv_id").agg(F.sum("iq_group").alias("groups_total")),
            ["year", "scenario", "swv_id"],
            "left",
        )
        .fillna(0, ["groups_total"])
        .withColumn("rounding", rounding)
        .drop("rate_prev", "groups_total")
    )


def change_explained(drivers: DataFrame, groups: DataFrame, rules: AnalysisRules) -> DataFrame:
    """One row per (year, scenario, swv_id): `drivers` plus the group drivers of `groups`
    (after the disclosure check: null where suppressed) as `iq_<group>` columns, and
    `suppressed` when any of them is."""
    key = ["year", "scenario", "swv_id"]
    per_swv = groups.groupBy(*key).agg(
        *[
            F.max(F.when(F.col("source_group") == g, F.col("iq_group"))).alias(driver_column(g))
            for g in rules.source_groups
        ],
        F.max("suppressed").alias("suppressed"),
    )
    group_drivers = [driver_column(g) for g in rules.source_groups]
    return drivers.join(per_swv, key, "left").select(
        *key,
        "total_prev",
        "total",
        "fixed_parts",
        "se_part",
        *group_drivers,
        "iq_threshold",
        "iq_national_rate",
        "rounding",
        F.coalesce("suppressed", F.lit(False)).alias("suppressed"),
    )


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
