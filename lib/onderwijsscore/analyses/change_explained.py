"""change_explained (domain.md §7): each SWV's year-on-year change of `total` split into
drivers that sum to it, the score-source groups' drivers checked for disclosure."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.analyses.rules import AnalysisRules
from onderwijsscore.contract import MONEY
from onderwijsscore.runtime import literal_frame

RATE = T.DecimalType(24, 12)  # EUR per net-score point: exact enough that drivers lose < 1 cent
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
