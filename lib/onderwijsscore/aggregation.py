"""Per (year, scenario, unit): the achterstandsscore of domain.md §5.

    A = Σ_{target-group students in the unit} (C − D)     gross score
    B = E · F · (C − G)                                    threshold
    net = max(0, A − B)

with C, G and the asylum score from `onderwijsscore.cutoffs.scenario_cutoffs`, E the unit's
population students and F the scenario's threshold share.

Target groups are nested (§4): a non-asylum student is in the group of share p when
D ≤ q_p, and the cutoff q_p grows with p; asylum students are in every group. So one
pass gives each student its *band*, the smallest target share of its model whose group
holds it, and sums the students once per (year, model, principle, unit, band,
score_source). Every scenario's unit scores then follow from those small sums — A is
Σ over the bands up to p of (n·C − ΣD), asylum students counted at the scenario's
asylum score — without expanding the students per scenario.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.vocabulary import ASYLUM_SOURCE

UNIT_SCORE = T.DecimalType(18, 6)
SCENARIO_PARAMETERS = ("mean_population", "mean_target", "threshold_share")


def with_band(students: DataFrame, cutoffs: DataFrame, grid: ScenarioGrid) -> DataFrame:
    """`students` plus `band`: the smallest target share of the student's model whose
    target group holds it (`score` ≤ that share's cutoff; asylum students: the smallest
    share); null when it is in none."""
    scenarios = grid.frame(students.sparkSession).select("scenario", "model")
    bounds = (
        cutoffs.join(scenarios, "scenario")
        .select("year", "model", "target_share", "cutoff")
        .distinct()
        .groupBy("year", "model")
        .agg(F.sort_array(F.collect_list(F.struct("target_share", "cutoff"))).alias("_bounds"))
    )
    holding = F.filter(F.col("_bounds"), lambda bound: F.col("score") <= bound["cutoff"])
    band = F.when(F.col("score_source") == ASYLUM_SOURCE, F.get(F.col("_bounds"), 0)["target_share"]).otherwise(
        F.get(holding, 0)["target_share"]
    )
    return students.join(F.broadcast(bounds), ["year", "model"], "left").withColumn("band", band).drop("_bounds")


def unit_band_sums(banded: DataFrame, grid: ScenarioGrid) -> DataFrame:
    """Per (year, model, principle, unit_type, unit_id, band, score_source): `n_students`
    and `score_total` (Σ score; asylum students have none), for every principle the
    model's scenarios use."""
    principles: dict[str, dict[str, None]] = {}
    for scenario in grid.scenarios:
        principles.setdefault(scenario.model, {})[scenario.principle.name] = None
    units = None
    for model, names in principles.items():
        entries = F.array(
            *[
                F.struct(
                    F.lit(name).alias("principle"),
                    F.lit(grid.principles[name].unit_type).alias("unit_type"),
                    F.col(grid.principles[name].unit_column).alias("unit_id"),
                )
                for name in names
            ]
        )
        units = (units if units is not None else F).when(F.col("model") == model, entries)
    keys = ["year", "model", "principle", "unit_type", "unit_id", "band", "score_source"]
    return (
        banded.select("year", "model", "band", "score_source", "score", F.inline(units))
        .groupBy(*keys)
        .agg(F.count(F.lit(1)).alias("n_students"), F.sum("score").alias("score_total"))
    )


def scenario_unit_sums(band_sums: DataFrame, cutoffs: DataFrame, grid: ScenarioGrid) -> DataFrame:
    """Per (year, scenario, unit, score_source): `n_students`, `n_target` and `gross` (Σ C − D
    over its target-group students), with the unit's `unit_type` and the scenario's
    `SCENARIO_PARAMETERS`. Exact decimals: n·C − ΣD equals the sum of the C − D."""
    parameters = cutoffs.join(grid.frame(cutoffs.sparkSession), ["scenario", "target_share"]).select(
        "year", "model", "principle", "scenario", "target_share", "asylum_score", *SCENARIO_PARAMETERS
    )
    n, mean = F.col("n_students"), F.col("mean_population")
    in_target = F.coalesce(F.col("band") <= F.col("target_share"), F.lit(False))
    gross = F.when(F.col("score_source") == ASYLUM_SOURCE, n * (mean - F.col("asylum_score"))).otherwise(
        n * mean - F.col("score_total")
    )
    return (
        band_sums.join(F.broadcast(parameters), ["year", "model", "principle"])
        .groupBy("year", "scenario", "unit_type", "unit_id", "score_source", *SCENARIO_PARAMETERS)
        .agg(
            F.sum(n).alias("n_students"),
            F.sum(F.when(in_target, n).otherwise(0)).alias("n_target"),
            F.sum(F.when(in_target, gross).otherwise(0)).alias("gross"),
        )
    )


def unit_scores(unit_sums: DataFrame, grid: ScenarioGrid) -> DataFrame:
    """Per (year, scenario, unit) from `scenario_unit_sums`: the columns of `export/unit_scores`.

    Every unit with population students appears, also when none of them is in the target
    group (gross score 0).
    """
    n_students = F.col("n_students")
    gap = F.col("mean_population") - F.col("mean_target")  # C − G
    threshold = (n_students * F.col("threshold_share") * gap).cast(UNIT_SCORE)
    return (
        unit_sums.groupBy("year", "scenario", "unit_type", "unit_id", *SCENARIO_PARAMETERS)
        .agg(
            F.sum("n_students").alias("n_students"),
            F.sum("n_target").alias("n_target"),
            F.sum("gross").cast(UNIT_SCORE).alias("gross_score"),
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
