from decimal import Decimal

from pyspark.sql import functions as F

from helpers import assert_same_rows, physical_plan
from onderwijsscore.aggregation import scenario_unit_sums, unit_band_sums, unit_scores, with_band
from onderwijsscore.cutoffs import scenario_cutoffs
from onderwijsscore.runtime import literal_frame
from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.vocabulary import ASYLUM_SOURCE

STUDENTS = (
    "year int, model string, student_id string, school_id string, score decimal(12,6), score_source string, "
    "swv_school string, swv_residence string"
)
# student: score (None = asylum), SWV by school, SWV by residence, vestiging. N = 10.
POPULATION = {
    "s0": (-1, "A", "A", "V1"),
    "s1": (-0.5, "A", "B", "V1"),
    "s2": (0, "B", "B", "V1"),
    "s3": (0.5, "B", "B", "V1"),
    "s4": (1, "B", "B", "V1"),
    "s5": (1.5, "B", "C", "V2"),
    "s6": (2, "C", "C", "V2"),
    "s7": (2.5, "D", "C", "V2"),
    "a0": (None, "A", "A", "V1"),
    "a1": (None, "C", "C", "V2"),
}


def population(spark):
    rows = [
        (2020, model, student, school, None if score is None else Decimal(str(score)))
        + (ASYLUM_SOURCE if score is None else "computed", by_school, by_residence)
        for model in ("lwoo", "pro")
        for student, (score, by_school, by_residence, school) in POPULATION.items()
    ]
    return literal_frame(spark, rows, STUDENTS)


def scenario(shares, principles, thresholds=(0,)):
    return {"target_shares": shares, "principles": principles, "thresholds": list(thresholds), "asylum_share": 50}


def computed_unit_scores(spark, config):
    grid = ScenarioGrid.from_yaml(
        config.with_overrides(
            "scenarios",
            scenario_id="{model}_p{target_share}_{principle}_f{threshold}",
            models={"lwoo": scenario([50], ["school", "residence"], (0, 10)), "pro": scenario([50], ["vestiging"])},
            small_unit_max_students=3,
        )["scenarios"],
        "conf/scenarios.yaml",
    )
    students = population(spark)
    cutoffs = scenario_cutoffs(students, grid)
    band_sums = unit_band_sums(with_band(students, cutoffs, grid), grid)
    return unit_scores(scenario_unit_sums(band_sums, cutoffs, grid), grid)


def test_unit_scores_by_principle_threshold_and_vestiging(spark, config):
    # 50 %: k = 5 − 2 = 3, q = 0, asylum score −0.5, C = 0.5, G = −0.5. Target group and
    # C − D: s0 1.5, s1 1.0, s2 0.5, a0 1.0, a1 1.0.
    frame = computed_unit_scores(spark, config)
    got = {
        (r.scenario, r.unit_id): (r.unit_type, r.n_students, r.n_target, r.gross_score, r.threshold, r.net_score)
        + (r.small_unit,)
        for r in frame.collect()
    }

    def expected(scenario, unit_type, units):
        return {(scenario, unit): (unit_type, *(Decimal(str(v)) for v in values)) for unit, values in units.items()}

    want = {}
    want |= expected("lwoo_p50_school_f0", "swv", {"A": (3, 3, 3.5, 0, 3.5), "B": (4, 1, 0.5, 0, 0.5)})
    # D has no target-group student: it still appears, with gross score 0.
    want |= expected("lwoo_p50_school_f0", "swv", {"C": (2, 1, 1.0, 0, 1.0), "D": (1, 0, 0, 0, 0)})
    want |= expected("lwoo_p50_residence_f0", "swv", {"A": (2, 2, 2.5, 0, 2.5), "B": (4, 2, 1.5, 0, 1.5)})
    want |= expected("lwoo_p50_residence_f0", "swv", {"C": (4, 1, 1.0, 0, 1.0)})
    # F = 10 %: B = E · 0.1 · (C − G) = 0.1 · E; the net score is floored at 0 (unit D).
    want |= expected("lwoo_p50_school_f10", "swv", {"A": (3, 3, 3.5, 0.3, 3.2), "B": (4, 1, 0.5, 0.4, 0.1)})
    want |= expected("lwoo_p50_school_f10", "swv", {"C": (2, 1, 1.0, 0.2, 0.8), "D": (1, 0, 0, 0.1, 0)})
    want |= expected("lwoo_p50_residence_f10", "swv", {"A": (2, 2, 2.5, 0.2, 2.3), "B": (4, 2, 1.5, 0.4, 1.1)})
    want |= expected("lwoo_p50_residence_f10", "swv", {"C": (4, 1, 1.0, 0.4, 0.6)})
    want |= expected("pro_p50_vestiging_f0", "vestiging", {"V1": (6, 4, 4.0, 0, 4.0), "V2": (4, 1, 1.0, 0, 1.0)})
    assert {key: value[:-1] for key, value in got.items()} == want
    assert {key: value[-1] for key, value in got.items() if key[0] == "lwoo_p50_school_f0"} == {
        ("lwoo_p50_school_f0", "A"): True,  # E = 3 ≤ 3
        ("lwoo_p50_school_f0", "B"): False,
        ("lwoo_p50_school_f0", "C"): True,
        ("lwoo_p50_school_f0", "D"): True,
    }
    assert frame.columns == [
        "year",
        "scenario",
        "unit_id",
        "unit_type",
        "n_students",
        "n_target",
        "gross_score",
        "threshold",
        "net_score",
        "small_unit",
    ]
    plan = physical_plan(frame)
    assert "BroadcastHashJoin" in plan and "BroadcastExchange" in plan
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan


def test_band_sums_equal_expanding_every_student_per_scenario(spark, config):
    """Nested target groups: unit scores from per-band sums equal the direct definition —
    each scenario's target group, C − D per student, summed per unit — for several shares
    (one cutoff on a tie) and both principles."""
    grid = ScenarioGrid.from_yaml(
        config.with_overrides(
            "scenarios",
            models={
                "lwoo": {**scenario([20, 50, 70], ["school", "residence"]), "asylum_share": "target_share"},
                "pro": scenario([30], ["vestiging"]),
            },
        )["scenarios"],
        "conf/scenarios.yaml",
    )
    rows = [(2020, "lwoo", f"t{i}", "V1", Decimal("0.5"), "computed", "A", "B") for i in range(3)]  # a tie block
    students = population(spark).unionByName(literal_frame(spark, rows, STUDENTS))
    cutoffs = scenario_cutoffs(students, grid)
    band_sums = unit_band_sums(with_band(students, cutoffs, grid), grid)
    by_band = unit_scores(scenario_unit_sums(band_sums, cutoffs, grid), grid)

    parameters = cutoffs.join(grid.frame(spark), ["scenario", "target_share"])
    unit = F.when(F.col("principle") == "school", F.col("swv_school"))
    unit = unit.when(F.col("principle") == "residence", F.col("swv_residence")).otherwise(F.col("school_id"))
    asylum = F.col("score_source") == ASYLUM_SOURCE
    in_target = asylum | (F.col("score") <= F.col("cutoff"))
    score = F.when(asylum, F.col("asylum_score")).otherwise(F.col("score"))
    direct = (
        students.join(parameters, ["year", "model"])
        .groupBy("year", "scenario", unit.alias("unit_id"))
        .agg(
            F.count(F.lit(1)).alias("n_students"),
            F.count_if(in_target).alias("n_target"),
            F.sum(F.when(in_target, F.col("mean_population") - score).otherwise(0))
            .cast("decimal(18,6)")
            .alias("gross"),
        )
    )
    got = by_band.select("year", "scenario", "unit_id", "n_students", "n_target", F.col("gross_score").alias("gross"))
    assert_same_rows(got, direct)
    got = {(r.scenario, r.unit_id): (r.n_students, r.n_target, r.gross) for r in got.collect()}
    assert len({scenario for scenario, _ in got}) == 7
    targets = {scenario: sum(n for (s, _), (_, n, _) in got.items() if s == scenario) for scenario, _ in got}
    assert targets["lwoo_p20_school"] < targets["lwoo_p50_school"] < targets["lwoo_p70_school"]
