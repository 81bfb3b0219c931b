"""Invariants of a whole local run on the sample data (SCALE=0.01)."""

from collections import Counter
from decimal import Decimal

from pyspark.sql import functions as F

from lib.delta_io import read_table
from lib.scores import SCORE_SOURCES

POPULATIONS = {
    "lwoo": "funded and programme in ('vmbo_bk', 'vmbo_gt') and grade in (3, 4)",
    "pro": "funded and programme = 'pro'",
}


def output(spark, settings, name):
    return read_table(spark, settings.output_root / name)


def test_every_population_student_has_exactly_one_score(spark, sample_input, local_run):
    settings, _ = local_run
    scores = output(spark, settings, "restricted/student_scores")
    enrolment = spark.read.parquet(str(sample_input / "enrolment")).where(F.col("year").isin(settings.years))
    for model, population in POPULATIONS.items():
        expected = enrolment.where(population).select("year", "student_id")
        got = scores.where(F.col("model") == model).select("year", "student_id")
        assert got.count() == got.distinct().count(), f"{model}: a student has two scores"
        assert expected.exceptAll(got).count() == 0 and got.exceptAll(expected).count() == 0, model
    assert scores.where(~F.col("score_source").isin(*SCORE_SOURCES)).count() == 0
    assert scores.where((F.col("score").isNull()) != (F.col("score_source") == "imputed_asylum")).count() == 0


def test_score_source_shares_are_near_the_input_shares(spark, local_run):
    settings, _ = local_run
    rows = output(spark, settings, "restricted/student_scores").groupBy("score_source").count().collect()
    counts = Counter({row.score_source: row["count"] for row in rows})
    total = sum(counts.values())
    shares = {source: counts[source] / total for source in SCORE_SOURCES}
    print("score_source shares:", {source: round(share, 4) for source, share in shares.items()})
    # Input shares (docs/input-contract.md): ≈2 % asylum, ≈6 % student or parent not in
    # BRP, ≈58 % with a parent of unknown education (among the rest).
    assert 0.01 <= shares["imputed_asylum"] <= 0.04
    assert 0.03 <= shares["imputed_donor_school"] + shares["imputed_donor_parent"] <= 0.10
    assert 0.40 <= shares["imputed_education"] <= 0.70
    assert shares["computed"] >= 0.2


def test_exact_cutoffs_equal_a_brute_force_sort(spark, config, local_run):
    settings, _ = local_run
    accuracy = config["scenarios"]["percentiles"]["accuracy"]
    scores = output(spark, settings, "restricted/student_scores").select("year", "model", "score").collect()
    by_group: dict[tuple, list] = {}
    for row in scores:
        by_group.setdefault((row.year, row.model), []).append(row.score)
    cutoffs = output(spark, settings, "export/cutoffs").collect()
    assert len(cutoffs) == len(settings.years) * 13
    for row in cutoffs:
        model = row.scenario.split("_")[0]
        group = by_group[(row.year, model)]
        ranked = sorted(score for score in group if score is not None)
        n_population, n_asylum = len(group), len(group) - len(ranked)
        k = (row.target_share * n_population + 99) // 100 - n_asylum
        assert row.cutoff == ranked[k - 1], (row.year, row.scenario)
        assert row.n_population == n_population
        assert row.n_target == sum(score <= row.cutoff for score in ranked) + n_asylum
        assert row.realised_share >= row.target_share
        assert 0 <= row.approx_rank_error <= -(-n_population // accuracy)


def test_budgets_and_pro_amounts_sum_to_their_budget_to_the_cent(spark, sample_input, local_run):
    settings, _ = local_run
    national = {row.year: row for row in spark.read.parquet(str(sample_input / "budgets")).collect()}
    budgets = (
        output(spark, settings, "export/budgets")
        .groupBy("year", "scenario")
        .agg(F.sum("lwoo_se").alias("se"), F.sum("lwoo_iq").alias("iq"), F.min("total").alias("min_total"))
        .collect()
    )
    assert len(budgets) == len(settings.years) * 12
    for row in budgets:
        assert row.se + row.iq == national[row.year].lwoo_budget, (row.year, row.scenario)
        assert row.se == (national[row.year].lwoo_budget * Decimal("0.23")).quantize(Decimal("0.01"))
        assert row.min_total >= 0
    amounts = output(spark, settings, "export/pro_amounts").groupBy("year", "scenario").agg(F.sum("amount")).collect()
    assert sorted(row.year for row in amounts) == [year + 2 for year in settings.years]
    for row in amounts:
        assert row[2] == national[row.year].pro_onderwijskansen_budget
    boards = output(spark, settings, "export/pro_board_amounts").groupBy("year").agg(F.sum("amount")).collect()
    assert {row.year: row[1] for row in boards} == {row.year: row[2] for row in amounts}
