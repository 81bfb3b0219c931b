"""The output gates (one score per student, realised target shares, pots adding up,
no negative amounts) and the warnings for ties at the cutoff."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import great_expectations.expectations as gxe
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from onderwijsscore.quality.expectations import Check, GateReport, collected, validate, zero_sum
from onderwijsscore.quality.rules import QualityRules
from onderwijsscore.vocabulary import ASYLUM_SOURCE, SCORE_SOURCES

NON_NEGATIVE_BUDGET_COLUMNS = ("lwoo_se", "lwoo_iq", "regional", "pro", "total")


def check_outputs(outputs: Mapping[str, DataFrame], national_budgets: DataFrame) -> GateReport:
    """Gate the output tables present in `outputs` (keyed by table name: student_scores,
    cutoffs, budgets, pro_amounts); `national_budgets` is the input table `budgets`."""
    gates = {
        "student_scores": check_student_scores,
        "cutoffs": check_cutoffs,
        "budgets": lambda frame: check_budgets(frame, national_budgets),
        "pro_amounts": lambda frame: check_pro_amounts(frame, national_budgets),
    }
    return sum((gate(outputs[table]) for table, gate in gates.items() if table in outputs), GateReport())


def check_student_scores(student_scores: DataFrame) -> GateReport:
    """`restricted/student_scores`: one row per (year, model, student_id); a score unless
    the student is on the asylum path; a known score_source. Counted per (year, model)."""
    table, key = "student_scores", ("year", "model", "student_id")
    source = F.col("score_source")
    per_student = student_scores.groupBy(*key).agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.col("score").isNull() & ~F.coalesce(source == ASYLUM_SOURCE, F.lit(False))).alias("no_score"),
        F.count_if(source.isNull()).alias("no_source"),
        F.count_if(source.isNotNull() & ~source.isin(*SCORE_SOURCES)).alias("unknown_source"),
    )
    counts = per_student.groupBy("year", "model").agg(
        F.coalesce(F.sum(F.when(F.col("rows") > 1, F.col("rows"))), F.lit(0)).alias("shared_key"),
        *[F.sum(c).alias(c) for c in ("no_score", "no_source", "unknown_source")],
    )
    return validate(
        "output",
        collected(counts),
        [
            zero_sum(table, key, "key not unique (rows sharing a key)", "rows", "shared_key"),
            zero_sum(table, ("score",), f"score is null while score_source is not {ASYLUM_SOURCE}", "rows", "no_score"),
            zero_sum(table, ("score_source",), "score_source is null", "rows", "no_source"),
            zero_sum(table, ("score_source",), f"score_source not in {list(SCORE_SOURCES)}", "rows", "unknown_source"),
        ],
    )


def check_cutoffs(cutoffs: DataFrame) -> GateReport:
    """`export/cutoffs`: realised_share >= target_share (ties may push it above: see
    `tie_warnings`)."""
    return validate(
        "output",
        collected(cutoffs.select("realised_share", "target_share")),
        [
            Check(
                "cutoffs",
                ("realised_share", "target_share"),
                "realised_share below target_share",
                "rows",
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="realised_share", column_B="target_share", or_equal=True
                ),
            )
        ],
    )


def tie_warnings(cutoffs: DataFrame, rules: QualityRules) -> list[dict[str, Any]]:
    """For the run record: the (year, scenario) cutoffs whose ties put realised_share at least
    a band's points above target_share, each with the highest band it reaches (domain.md
    §4: ties never stop a run). `cutoffs` is the small local frame of `export/cutoffs`."""
    warnings = []
    for row in cutoffs.select("year", "scenario", "target_share", "realised_share").collect():
        above = row.realised_share - row.target_share
        reached = [band for band, points in rules.tie_warning_bands.items() if above >= points]
        if reached:
            warnings.append(
                {
                    "rule": "ties at the cutoff",
                    "band": reached[-1],
                    "table": "cutoffs",
                    "year": row.year,
                    "scenario": row.scenario,
                    "target_share": row.target_share,
                    "realised_share": round(row.realised_share, 6),
                }
            )
    return sorted(warnings, key=lambda warning: (warning["year"], warning["scenario"]))


def check_budgets(budgets: DataFrame, national_budgets: DataFrame) -> GateReport:
    """`export/budgets`: no negative amount, and per (year, scenario) lwoo_se + lwoo_iq add
    up to the year's lwoo budget to the cent."""
    amounts = [
        Check(
            "budgets",
            (column,),
            "negative amount",
            "rows",
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0),
        )
        for column in NON_NEGATIVE_BUDGET_COLUMNS
    ]
    pots = budgets.groupBy("year", "scenario").agg((F.sum("lwoo_se") + F.sum("lwoo_iq")).alias("paid"))
    pot_sums = Check(
        "budgets",
        ("lwoo_se", "lwoo_iq"),
        "lwoo_se + lwoo_iq of a (year, scenario) differ from the year's budgets.lwoo_budget",
        "pots",
        gxe.ExpectColumnPairValuesToBeEqual(column_A="paid", column_B="lwoo_budget"),
    )
    return validate("output", collected(budgets.select(*NON_NEGATIVE_BUDGET_COLUMNS)), amounts) + validate(
        "output", collected(pots.join(national_budgets.select("year", "lwoo_budget"), "year", "left")), [pot_sums]
    )


def check_pro_amounts(pro_amounts: DataFrame, national_budgets: DataFrame) -> GateReport:
    """`export/pro_amounts`: no negative amount, and per (funding year, scenario) the amounts
    add up to the year's pro budget to the cent."""
    amounts = Check(
        "pro_amounts",
        ("amount",),
        "negative amount",
        "rows",
        gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
    )
    pots = pro_amounts.groupBy("year", "scenario").agg(F.sum("amount").alias("paid"))
    budget = national_budgets.select("year", F.col("pro_onderwijskansen_budget").alias("budget"))
    pot_sums = Check(
        "pro_amounts",
        ("amount",),
        "amounts of a (funding year, scenario) differ from the year's budgets.pro_onderwijskansen_budget",
        "pots",
        gxe.ExpectColumnPairValuesToBeEqual(column_A="paid", column_B="budget"),
    )
    return validate("output", collected(pro_amounts.select("amount")), [amounts]) + validate(
        "output", collected(pots.join(budget, "year", "left")), [pot_sums]
    )
