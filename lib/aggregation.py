"""Per (year, scenario, unit): the achterstandsscore of domain.md §5.

    A = Σ_{target-group students in the unit} (C − D)     gross score
    B = E · F · (C − G)                                    threshold
    net = max(0, A − B)

with C, G and the asylum score from `lib.cutoffs.scenario_cutoffs`, E the unit's
population students and F the scenario's threshold share.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lib.cutoffs import ASYLUM_SOURCE, ScenarioGrid

UNIT_SCORE = T.DecimalType(18, 6)


def scenario_scores(
    students: DataFrame, cutoffs: DataFrame, grid: ScenarioGrid, student_columns: tuple[str, ...] = ()
) -> DataFrame:
    """One row per (year, scenario, population student) of the scenario's model.

    Columns: year, scenario, student_id, school_id, score_source, unit_type, unit_id,
    score (asylum students carry the scenario's asylum score), in_target, contribution
    (C − D for target-group students, else 0), the scenario's mean_population,
    mean_target and threshold_share, and any `student_columns` of `students`.
    """
    parameters = cutoffs.join(grid.frame(students.sparkSession), "scenario").select(
        "year",
        "model",
        "scenario",
        "principle",
        "unit_type",
        "threshold_share",
        "cutoff",
        "asylum_score",
        "mean_population",
        "mean_target",
    )
    is_asylum = F.col("score_source") == ASYLUM_SOURCE
    score = F.when(is_asylum, F.col("asylum_score")).otherwise(F.col("score"))
    in_target = is_asylum | (F.col("score") <= F.col("cutoff"))
    return (
        students.join(F.broadcast(parameters), ["year", "model"])
        .withColumn("in_target", in_target)
        .select(
            "year",
            "scenario",
            "student_id",
            "school_id",
            "score_source",
            "unit_type",
            _unit_of_principle(grid).alias("unit_id"),
            score.alias("score"),
            "in_target",
            F.when(F.col("in_target"), F.col("mean_population") - score).otherwise(0).alias("contribution"),
            "mean_population",
            "mean_target",
            "threshold_share",
            *student_columns,
        )
    )


def unit_scores(scored: DataFrame, grid: ScenarioGrid) -> DataFrame:
    """Per (year, scenario, unit) from `scenario_scores`: the columns of `export/unit_scores`.

    Every unit with population students appears, also when none of them is in the target
    group (gross score 0).
    """
    n_students = F.col("n_students")
    gap = F.col("mean_population") - F.col("mean_target")  # C − G
    threshold = (n_students * F.col("threshold_share") * gap).cast(UNIT_SCORE)
    return (
        scored.groupBy("year", "scenario", "unit_type", "unit_id", "mean_population", "mean_target", "threshold_share")
        .agg(
            F.count(F.lit(1)).alias("n_students"),
            F.count_if("in_target").alias("n_target"),
            F.sum("contribution").cast(UNIT_SCORE).alias("gross_score"),
        )
        .withColumn("threshold", threshold)
        .select(
            "year",
            "scenario",
            "unit_id",
            "unit_type",
            "n_students",
            "n_target",
            "gross_score",
            "threshold",
            F.greatest(F.col("gross_score") - F.col("threshold"), F.lit(0)).cast(UNIT_SCORE).alias("net_score"),
            (n_students <= grid.small_unit_max_students).alias("small_unit"),
        )
    )


def _unit_of_principle(grid: ScenarioGrid) -> Column:
    """The unit column the row's scenario principle names (principles the grid uses only)."""
    first, *rest = dict.fromkeys(s.principle for s in grid.scenarios)
    start = F.when(F.col("principle") == first.name, F.col(first.unit_column))
    return reduce(lambda unit, p: unit.when(F.col("principle") == p.name, F.col(p.unit_column)), rest, start)
