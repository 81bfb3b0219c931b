"""Per (year, scenario) the exact national cutoff and means (domain.md §4).

Per (year, model), every share the grid needs is located in ONE `percentile_approx`
aggregation; a second pass over only the scores between the candidates at p ± a few
error bounds makes each cutoff exact (percentile_disc). Only per-(year, model, share)
rows ever reach the driver.

Shares are whole percentages. For share p of a population of N students of whom n_a are
asylum students (no score: theirs is set per scenario):

- k = ⌈p·N/100⌉ − n_a, in integers; k ≤ 0 stops the run.
- cutoff q = the smallest non-asylum score s with #{non-asylum D ≤ s} ≥ k.
- target group = non-asylum students with D ≤ q (ties all in) + every asylum student.
- approx_rank_error = how many places of the sorted non-asylum scores lie between place k
  and the nearest place the candidate's value occupies (0 when the candidate is exact).
  The sketch guarantees approx_rank_error ≤ ⌈N / accuracy⌉.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from pyspark.sql import DataFrame, Row, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.errors import PipelineError
from onderwijsscore.runtime import literal_frame
from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.vocabulary import ASYLUM_SOURCE

KEYS = ["year", "model", "share"]


def approximate_cutoffs(students: DataFrame, grid: ScenarioGrid) -> DataFrame:
    """Per (year, model, share): population counts, k, and the percentile_approx candidate with its bracket.

    One aggregation per (year, model) locates all shares. Asylum students enter the sketch
    below every representable score, so the ⌈p·N/100⌉-th value of all N is the k-th
    non-asylum score and the fractions are constants shared by every group. A sketch's
    candidates depend on the order its values arrive in, so each group's values reach one
    sketch in score order: the candidates are the same on every engine and partitioning.
    """
    score_type: T.DecimalType = students.schema["score"].dataType
    below_every_score = F.lit(-(Decimal(10) ** (score_type.precision - score_type.scale) - 1)).cast(score_type)
    all_shares = sorted({share for shares in grid.shares().values() for share in shares})
    margin = grid.bracket_errors / grid.percentile_accuracy
    # Three fractions per share, in this order: bracket low, candidate, bracket high.
    fractions = [
        f for share in all_shares for f in (max(0.0, share / 100 - margin), share / 100, min(1.0, share / 100 + margin))
    ]
    positions = literal_frame(
        students.sparkSession,
        [
            (model, share, 3 * all_shares.index(share) + 1)
            for model, shares in grid.shares().items()
            for share in shares
        ],
        T.StructType.fromDDL("model string, share int, position int"),
    )
    is_asylum = F.col("score_source") == ASYLUM_SOURCE
    ordered = (
        students.select(
            "year",
            "model",
            "score",
            is_asylum.alias("is_asylum"),
            F.when(is_asylum, below_every_score).otherwise(F.col("score")).alias("sketched"),
        )
        .repartition("year", "model")
        .sortWithinPartitions("year", "model", "sketched")
    )
    located = ordered.groupBy("year", "model").agg(
        F.count(F.lit(1)).alias("n_population"),
        F.count_if("is_asylum").alias("n_asylum"),
        F.sum("score").alias("score_sum"),
        F.percentile_approx("sketched", fractions, grid.percentile_accuracy).alias("located"),
    )
    place = F.expr("(share * n_population + 99) div 100").cast("int")  # ⌈p·N/100⌉ in integers
    return located.join(F.broadcast(positions), "model").select(
        *KEYS,
        "n_population",
        "n_asylum",
        "score_sum",
        (place - F.col("n_asylum")).alias("k"),
        F.element_at("located", F.col("position")).alias("bracket_low"),
        F.element_at("located", F.col("position") + 1).alias("cutoff_approx"),
        F.element_at("located", F.col("position") + 2).alias("bracket_high"),
    )


def exact_cutoffs(students: DataFrame, located: DataFrame) -> DataFrame:
    """Per (year, model, share): the exact cutoff and its non-asylum target group, from the bracket.

    Non-asylum scores below the bracket are counted as one block; those inside it are
    counted per distinct value and ranked with a running sum, so only the few rows near
    each candidate are sorted. `bracket_held` is false if the exact cutoff lay outside.
    """
    bracket = located.select(*KEYS, "k", "cutoff_approx", "bracket_low", "bracket_high")
    score = F.col("score")
    banded = (
        students.where(F.col("score_source") != ASYLUM_SOURCE)
        .select("year", "model", "score")
        .join(F.broadcast(bracket), ["year", "model"])
        .where(score <= F.col("bracket_high"))
        .withColumn("band_score", F.when(score >= F.col("bracket_low"), score))  # null: below the bracket
        .groupBy(*KEYS, "k", "cutoff_approx", "band_score")
        .agg(F.count(F.lit(1)).alias("n"), F.sum("score").alias("score_total"))
    )
    running = (
        Window.partitionBy(*KEYS)
        .orderBy(F.col("band_score").asc_nulls_first())
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    ranked = banded.withColumn("n_at_or_below", F.sum("n").over(running)).withColumn(
        "sum_at_or_below", F.sum("score_total").over(running)
    )
    band, k, candidate, n_at_or_below = F.col("band_score"), F.col("k"), F.col("cutoff_approx"), F.col("n_at_or_below")
    reaches_k = band.isNotNull() & (n_at_or_below >= k)
    # The smallest band value whose running count reaches k, with its running count and sum.
    at_cutoff = F.min(F.when(reaches_k, F.struct(band.alias("value"), "n_at_or_below", "sum_at_or_below")))
    n_before_candidate = F.coalesce(F.max(F.when(band.isNull() | (band < candidate), n_at_or_below)), F.lit(0))
    n_through_candidate = F.coalesce(F.max(F.when(band.isNull() | (band <= candidate), n_at_or_below)), F.lit(0))
    n_below_bracket = F.coalesce(F.max(F.when(band.isNull(), n_at_or_below)), F.lit(0))
    exact = ranked.groupBy(*KEYS, "k").agg(
        at_cutoff.alias("at_cutoff"),
        F.greatest(n_before_candidate + 1 - k, k - n_through_candidate, F.lit(0)).alias("approx_rank_error"),
        (n_below_bracket < k).alias("below_bracket_short_of_k"),
    )
    return located.join(exact, [*KEYS, "k"], "left").select(
        *KEYS,
        "n_population",
        "n_asylum",
        "score_sum",
        "k",
        F.col("at_cutoff.value").alias("cutoff"),
        "cutoff_approx",
        F.col("approx_rank_error").cast("int"),
        F.col("at_cutoff.n_at_or_below").alias("n_target_scored"),
        F.col("at_cutoff.sum_at_or_below").alias("target_score_sum"),
        (F.col("at_cutoff").isNotNull() & F.col("below_bracket_short_of_k")).alias("bracket_held"),
    )


def scenario_cutoffs(students: DataFrame, grid: ScenarioGrid) -> DataFrame:
    """Per (year, scenario): the `export/cutoffs` row (cutoff, target group, C, G, asylum score).

    Runs the two passes eagerly and returns a small local frame: every later stage joins
    it by broadcast, and the percentile pass runs once however often it is used.
    """
    located = _checked_rows(
        approximate_cutoffs(students, grid),
        lambda row: row.k > 0,
        "more asylum students than target places (k = ⌈p·N/100⌉ − n_asylum ≤ 0)",
    )
    exact = _checked_rows(
        exact_cutoffs(students, located),
        lambda row: row.bracket_held,
        "exact cutoff outside the percentile_approx bracket; raise percentiles.bracket_errors in conf/scenarios.yaml",
    )
    return _local(_scenario_rows(exact, grid.frame(students.sparkSession)))


def _scenario_rows(exact: DataFrame, scenarios: DataFrame) -> DataFrame:
    score_type = exact.schema["cutoff"].dataType
    # Fixpoint: asylum students carry the mean of the non-asylum part of the asylum-share group.
    asylum = exact.select(
        "year",
        "model",
        F.col("share").alias("asylum_share"),
        (F.col("target_score_sum") / F.col("n_target_scored")).cast(score_type).alias("asylum_score"),
    )
    target = exact.withColumnRenamed("share", "target_share")
    rows = scenarios.join(target, ["model", "target_share"]).join(asylum, ["year", "model", "asylum_share"])
    n_asylum, asylum_score = F.col("n_asylum"), F.col("asylum_score")
    n_target = F.col("n_target_scored") + n_asylum
    return rows.select(
        "year",
        "scenario",
        "target_share",
        "cutoff",
        "cutoff_approx",
        "approx_rank_error",
        "n_population",
        n_target.alias("n_target"),
        (n_target * 100.0 / F.col("n_population")).alias("realised_share"),
        ((F.col("score_sum") + n_asylum * asylum_score) / F.col("n_population"))
        .cast(score_type)
        .alias("mean_population"),
        ((F.col("target_score_sum") + n_asylum * asylum_score) / n_target).cast(score_type).alias("mean_target"),
        "asylum_score",
    )


def _checked_rows(frame: DataFrame, holds: Callable[[Row], bool], rule: str) -> DataFrame:
    """A per-(year, model, share) frame computed once, checked, and held as a local relation."""
    rows = frame.collect()
    failing = sorted((row.year, row.model, row.share) for row in rows if not holds(row))
    if failing:
        groups = ", ".join(f"{year} {model} {share} %" for year, model, share in failing)
        raise PipelineError(f"cutoffs: {rule}: {len(failing)} (year, model, share) groups: {groups}")
    return _literal(frame, rows)


def _local(frame: DataFrame) -> DataFrame:
    """A small frame computed once and held as literal rows: later stages read it freely."""
    return _literal(frame, frame.collect())


def _literal(frame: DataFrame, rows: list[Row]) -> DataFrame:
    return literal_frame(frame.sparkSession, [tuple(row) for row in rows], frame.schema)
