import math
import re
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from helpers import assert_same_rows, physical_plan
from onderwijsscore.cutoffs import approximate_cutoffs, exact_cutoffs, scenario_cutoffs
from onderwijsscore.errors import PipelineError
from onderwijsscore.runtime import literal_frame
from onderwijsscore.scenarios import ScenarioGrid
from onderwijsscore.vocabulary import ASYLUM_SOURCE

STUDENTS = "year int, model string, student_id string, score decimal(12,6), score_source string"


def students(spark, scores, asylum=0, year=2020, model="lwoo"):
    scored = [(year, model, f"s{i}", Decimal(str(s)), "computed") for i, s in enumerate(scores)]
    return literal_frame(spark, scored + [(year, model, f"a{i}", None, ASYLUM_SOURCE) for i in range(asylum)], STUDENTS)


def grid(config, **models):
    """A grid from the project's scenarios.yaml with other models: a config change only."""
    return ScenarioGrid.from_yaml(config.with_overrides("scenarios", models=models)["scenarios"], "conf/scenarios.yaml")


def lwoo(*shares, asylum_share="target_share"):
    return {"target_shares": list(shares), "principles": ["school"], "thresholds": [0], "asylum_share": asylum_share}


def rows_by_scenario(frame):
    return {row.scenario: row for row in frame.collect()}


def test_the_configured_grid_has_twelve_lwoo_scenarios_and_the_pro_scenario(settings):
    scenarios = {s.scenario_id: s for s in settings.scenarios.scenarios}
    assert len(scenarios) == 13
    assert {"lwoo_p5_school", "lwoo_p15_school", "lwoo_p20_residence", "lwoo_p30_residence"} <= scenarios.keys()
    assert scenarios["lwoo_p20_residence"].asylum_share == 20
    pro = scenarios["pro_p30_vestiging"]
    assert (pro.target_share, pro.asylum_share, pro.principle.unit_column, pro.threshold_share) == (
        30,
        15,
        "school_id",
        0,
    )


def test_adding_a_share_or_threshold_is_a_config_change(config):
    extended = grid(config, lwoo=lwoo(5, 7), pro={**lwoo(30, asylum_share=15), "principles": ["vestiging"]})
    assert [s.scenario_id for s in extended.scenarios] == ["lwoo_p5_school", "lwoo_p7_school", "pro_p30_vestiging"]
    assert extended.shares() == {"lwoo": [5, 7], "pro": [15, 30]}
    with pytest.raises(PipelineError, match="scenario ids not unique"):
        grid(config, lwoo={**lwoo(5), "thresholds": [0, 5]})


@pytest.fixture(scope="module")
def cutoffs_without_asylum(spark, config):
    """One run over two hand-made years: 2020 with ties, 2021 with 100 distinct scores."""
    ties = students(spark, [1, 2, 3, 3, 3, 4, 5, 6, 7, 8], year=2020)
    distinct = students(spark, range(1, 101), year=2021)
    frame = scenario_cutoffs(ties.unionByName(distinct), grid(config, lwoo=lwoo(7, 29, 30)))
    return {(row.year, row.scenario): row for row in frame.collect()}


def test_ties_at_the_cutoff_are_all_in_the_target_group(cutoffs_without_asylum):
    # 30 % of 10 is k = 3: the third score is 3, shared by three students, all of them in.
    row = cutoffs_without_asylum[2020, "lwoo_p30_school"]
    assert (row.cutoff, row.n_target, row.realised_share) == (Decimal(3), 5, 50.0)


def test_a_share_landing_on_a_whole_number_takes_exactly_that_many(cutoffs_without_asylum):
    # In floating point ⌈0.07 · 100⌉ is 8; in integers it is 7.
    for share in (7, 29):
        row = cutoffs_without_asylum[2021, f"lwoo_p{share}_school"]
        assert (row.cutoff, row.n_target, row.realised_share) == (Decimal(share), share, float(share))


def test_asylum_students_carry_the_mean_of_the_non_asylum_target_group(spark, config):
    scores = [-1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5]  # sum 6.0, plus two asylum students: N = 10
    population = students(spark, scores, asylum=2).unionByName(students(spark, scores, asylum=2, model="pro"))
    pro = {**lwoo(50, asylum_share=30), "principles": ["vestiging"]}
    cutoffs = rows_by_scenario(scenario_cutoffs(population, grid(config, lwoo=lwoo(50), pro=pro)))

    # lwoo, 50 %: k = 5 − 2 = 3, q = 0; asylum score = mean(−1, −0.5, 0) = −0.5;
    # C = (6 + 2·−0.5) / 10 = 0.5; G = (−1.5 + 2·−0.5) / 5 = −0.5.
    own = cutoffs["lwoo_p50_school"]
    assert (own.cutoff, own.asylum_score, own.n_target, own.n_population) == (0, Decimal("-0.5"), 5, 10)
    assert (own.mean_population, own.mean_target) == (Decimal("0.5"), Decimal("-0.5"))
    # pro, asylum score from the 30 % group: k = 3 − 2 = 1, so −1; C = (6 − 2) / 10 = 0.4;
    # G of the 50 % group = (−1.5 − 2) / 5 = −0.7.
    fixed = cutoffs["pro_p50_vestiging"]
    assert (fixed.cutoff, fixed.asylum_score, fixed.n_target) == (0, Decimal(-1), 5)
    assert (fixed.mean_population, fixed.mean_target) == (Decimal("0.4"), Decimal("-0.7"))


def test_asylum_score_and_means_are_rounded_once_half_away_from_zero_and_feed_each_other(spark, config):
    # domain.md §2. 50 % of 10 with 2 asylum students: k = 3, the three lowest scores.
    scores = ["-1", "-0.5", "0.000001", "0.5", "0.5", "0.5", "0.5", "0.499994"]  # sum 0.999995
    cutoffs = rows_by_scenario(scenario_cutoffs(students(spark, scores, asylum=2), grid(config, lwoo=lwoo(50))))
    row = cutoffs["lwoo_p50_school"]
    # The asylum score: −1.499999 / 3 = −0.4999996666… does not terminate: −0.500000.
    assert row.asylum_score == Decimal("-0.500000")
    # C from the rounded asylum score: (0.999995 + 2·−0.5) / 10 = −0.0000005, a tie: away from
    # zero. (The unrounded asylum score would give −0.00000043…, rounded to 0.)
    assert row.mean_population == Decimal("-0.000001")
    # G = (−1.499999 + 2·−0.5) / 5 = −0.4999998.
    assert row.mean_target == Decimal("-0.500000")


def test_more_asylum_students_than_target_places_stops_the_run(spark, config):
    # 20 % of 10 is 2 places, 3 asylum students: k = −1.
    with pytest.raises(PipelineError, match=r"more asylum students than target places.*1 \(year, model, share\)"):
        scenario_cutoffs(students(spark, range(7), asylum=3), grid(config, lwoo=lwoo(20)))


def random_population(spark, rows=4000, distinct_scores=3001):
    """Two years of hash-generated scores (many ties by default) and about 2 % asylum students."""
    asylum = F.pmod(F.xxhash64("id", F.lit("asylum")), 50) == 0
    score = ((F.pmod(F.xxhash64("id"), distinct_scores) - distinct_scores // 2) / 1000).cast("decimal(12,6)")
    return spark.range(rows).select(
        (2019 + F.col("id") % 2).cast("int").alias("year"),
        F.lit("lwoo").alias("model"),
        F.col("id").cast("string").alias("student_id"),
        F.when(~asylum, score).alias("score"),
        F.when(asylum, ASYLUM_SOURCE).otherwise("computed").alias("score_source"),
    )


def test_exact_cutoffs_equal_a_brute_force_sort_and_the_candidates_stay_within_bound(spark, config):
    accuracy = 100  # coarse on purpose, so the candidates are off and the exact pass has work to do
    shares = [5, 10, 15, 20, 25, 30]
    coarse = ScenarioGrid.from_yaml(
        config.with_overrides(
            "scenarios", models={"lwoo": lwoo(*shares)}, percentiles={"accuracy": accuracy, "bracket_errors": 2}
        )["scenarios"],
        "conf/scenarios.yaml",
    )
    population = random_population(spark)
    cutoffs = scenario_cutoffs(population, coarse).collect()

    by_year = {}
    for row in population.collect():
        by_year.setdefault(row.year, []).append(row.score)
    rank_errors = []
    for row in cutoffs:
        scores = by_year[row.year]
        scored = sorted(s for s in scores if s is not None)
        k = math.ceil(row.target_share * len(scores) / 100) - (len(scores) - len(scored))
        assert row.cutoff == scored[k - 1]
        assert row.n_target == sum(s is None or s <= row.cutoff for s in scores)
        first, last = scored.index(row.cutoff_approx) + 1, len(scored) - scored[::-1].index(row.cutoff_approx)
        assert row.approx_rank_error == max(first - k, k - last, 0)
        assert row.approx_rank_error <= math.ceil(len(scores) / accuracy)
        rank_errors.append(row.approx_rank_error)
    assert len(cutoffs) == 2 * len(shares) and any(rank_errors)


def test_candidates_do_not_depend_on_partitioning_or_row_order(spark, config):
    """A sketch's candidates depend on the order its values arrive in; the cutoffs, the
    candidates included, are the same however the students are partitioned and ordered."""
    coarse = ScenarioGrid.from_yaml(
        config.with_overrides(
            "scenarios", models={"lwoo": lwoo(5, 20, 30)}, percentiles={"accuracy": 100, "bracket_errors": 2}
        )["scenarios"],
        "conf/scenarios.yaml",
    )
    population = random_population(spark, rows=60_000, distinct_scores=10**6)  # the sketches compress
    one_partition = population.repartition(1)
    shuffled = population.repartition(16, F.xxhash64("student_id", F.lit("shuffle")))
    first, second = (scenario_cutoffs(frame, coarse) for frame in (one_partition, shuffled))
    assert_same_rows(first, second)  # exactly, to the last bit
    assert first.where("cutoff_approx != cutoff").count() > 0  # the sketch had work to do


def test_one_percentile_aggregation_locates_every_share_and_the_exact_pass_broadcasts(spark, settings):
    population = random_population(spark, rows=100)
    configured = settings.scenarios
    located = approximate_cutoffs(population, configured)
    located_plan = physical_plan(located)
    assert len(re.findall(r"(?<!partial_)percentile_approx\(", located_plan)) == 1
    exact_plan = physical_plan(exact_cutoffs(population, located))
    assert "BroadcastHashJoin" in exact_plan and "BroadcastExchange" in exact_plan
    for text in (located_plan, exact_plan):
        assert "BatchEvalPython" not in text and "ArrowEvalPython" not in text
