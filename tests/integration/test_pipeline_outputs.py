"""Invariants of a whole local run on the sample data (SCALE=0.01)."""

import json
from collections import Counter
from decimal import Decimal

from pyspark.sql import functions as F

from helpers import RUN_YEARS, UNSET_PRO_BUDGET_YEAR
from onderwijsscore.delta_io import read_table
from onderwijsscore.vocabulary import SCORE_SOURCES

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


def test_budgets_and_pro_amounts_sum_to_their_budget_to_the_cent(spark, local_run):
    settings, _ = local_run
    national = {row.year: row for row in spark.read.parquet(str(settings.input_root / "budgets")).collect()}
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
    # The funding year without a pro budget is skipped (domain.md §6); the other one is paid.
    assert sorted(row.year for row in amounts) == [
        year + 2 for year in settings.years if year + 2 != UNSET_PRO_BUDGET_YEAR
    ]
    for row in amounts:
        assert row[2] == national[row.year].pro_onderwijskansen_budget
    boards = output(spark, settings, "export/pro_board_amounts").groupBy("year").agg(F.sum("amount")).collect()
    assert {row.year: row[1] for row in boards} == {row.year: row[2] for row in amounts}


def test_cross_tables_count_every_swv_in_exactly_one_cell(spark, local_run):
    settings, _ = local_run
    budgets = output(spark, settings, "export/budgets")
    previous = budgets.select((F.col("year") + 1).alias("year"), "scenario", "swv_id", F.col("total").alias("prev"))
    expected = {
        "stability": budgets.join(previous, ["year", "scenario", "swv_id"]).where(F.col("prev") != 0),
        "redistribution": budgets.where(F.col("current_total") != 0),
    }
    for table, swvs in expected.items():
        n_swvs = {(r.year, r.scenario): r["count"] for r in swvs.groupBy("year", "scenario").count().collect()}
        cells = output(spark, settings, f"export/{table}").collect()
        grand = {(r.year, r.scenario): r.n_units for r in cells if r.absolute_bin == r.relative_bin == "total"}
        assert grand == n_swvs, table
        years = {year for year, _ in grand}
        assert years == ({settings.years[-1]} if table == "stability" else set(settings.years))
        for key in grand:
            interior = [
                r for r in cells if (r.year, r.scenario) == key and "total" not in (r.absolute_bin, r.relative_bin)
            ]
            if not any(r.suppressed for r in interior):
                assert sum(r.n_units for r in interior) == grand[key], (table, key)


def test_change_explained_drivers_sum_to_each_published_change(spark, local_run):
    settings, record = local_run
    explained = output(spark, settings, "export/change_explained").collect()
    budgets = {(r.year, r.scenario, r.swv_id): r.total for r in output(spark, settings, "export/budgets").collect()}
    assert {r.year for r in explained} == {settings.years[-1]} and len(explained) >= 12 * 70
    drivers = ["fixed_parts", "se_part", "iq_computed", "iq_imputed", "iq_asylum", "iq_threshold", "iq_national_rate"]
    for r in explained:
        assert r.total == budgets[(r.year, r.scenario, r.swv_id)]
        assert r.total_prev == budgets[(r.year - 1, r.scenario, r.swv_id)]
        assert abs(r.rounding) <= Decimal("0.05")
        if not r.suppressed:
            assert sum(r[d] for d in drivers) + r.rounding == r.total - r.total_prev, r.swv_id
    assert sum(r.suppressed for r in explained) < len(explained)


def test_profiles_and_disclosure_are_recorded(spark, local_run):
    settings, record = local_run
    profiles = output(spark, settings, "export/profiles")
    cutoffs = {(r.year, r.scenario): r for r in output(spark, settings, "export/cutoffs").collect()}
    lines = profiles.groupBy("year", "scenario", "group", "characteristic").agg(
        F.sum("n_students").alias("n"), F.sum("share").alias("share"), F.max("suppressed").alias("suppressed")
    )
    for line in lines.where(~F.col("suppressed")).collect():
        cutoff = cutoffs[(line.year, line.scenario)]
        assert line.n == (cutoff.n_population if line.group == "population" else cutoff.n_target), line
        assert abs(line.share - 1) <= Decimal("0.00001") * 20
    assert profiles.where(F.col("suppressed") & F.col("n_students").isNotNull()).count() == 0
    assert set(record.disclosure) >= {"profiles", "stability", "change_explained", "budgets"}
    assert record.disclosure["profiles"]["min_students"] == 10
    runs = output(spark, settings, "export/runs").where(F.col("run_id") == record.run_id).first()
    assert runs.status == "succeeded" and '"profiles"' in runs.disclosure


def test_skipped_slices_and_tie_overshoots_are_warnings_in_the_run_record(spark, settings, local_run):
    run_settings, record = local_run
    runs = output(spark, run_settings, "export/runs").where(F.col("run_id") == record.run_id).first()
    warnings = json.loads(runs.warnings)
    skipped = [(w["table"], w["year"], w["reason"]) for w in warnings if w["rule"] == "no pro budget"]
    reason = f"pro_onderwijskansen_budget is null for funding year {UNSET_PRO_BUDGET_YEAR} (teldatum {RUN_YEARS[0]})"
    assert skipped == [
        ("pro_amounts", UNSET_PRO_BUDGET_YEAR, reason),
        ("pro_board_amounts", UNSET_PRO_BUDGET_YEAR, reason),
    ]
    cutoffs = output(spark, run_settings, "export/cutoffs").collect()
    lowest_band = min(settings.quality.tie_warning_bands.values())
    overshoots = {(r.year, r.scenario) for r in cutoffs if r.realised_share - r.target_share >= lowest_band}
    ties = {(w["year"], w["scenario"]) for w in warnings if w["rule"] == "ties at the cutoff"}
    assert ties == overshoots
