from decimal import Decimal

from lib.aggregation import scenario_scores, unit_scores
from lib.cutoffs import ASYLUM_SOURCE, ScenarioGrid, scenario_cutoffs

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
    return spark.createDataFrame(rows, STUDENTS)


def scenario(shares, principles, thresholds=(0,)):
    return {"target_shares": shares, "principles": principles, "thresholds": list(thresholds), "asylum_share": 50}


def computed_unit_scores(spark, config):
    grid = ScenarioGrid.from_config(
        config.with_overrides(
            "scenarios",
            scenario_id="{model}_p{target_share}_{principle}_f{threshold}",
            models={"lwoo": scenario([50], ["school", "residence"], (0, 10)), "pro": scenario([50], ["vestiging"])},
            small_unit_max_students=3,
        )
    )
    students = population(spark)
    scored = scenario_scores(students, scenario_cutoffs(students, grid), grid)
    return unit_scores(scored, grid)


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
    plan = frame._jdf.queryExecution().executedPlan().toString()
    assert "BroadcastHashJoin" in plan and "BroadcastExchange" in plan
    assert "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan
