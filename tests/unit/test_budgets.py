from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from pyspark.sql import functions as F

from onderwijsscore.budgets import (
    lwoo_budgets,
    pro_amounts,
    pro_board_amounts,
    pro_funding_years,
    split_largest_remainder,
)
from onderwijsscore.contract import ContractError
from onderwijsscore.runtime import literal_frame

UNITS = "year int, scenario string, unit_id string, n_students long, net_score decimal(18,6)"
BUDGETS = "year int, lwoo_budget decimal(18,2), pro_onderwijskansen_budget decimal(18,2)"
SWV_BUDGETS = (
    "year int, swv_id string, regional_support decimal(18,2), pro_budget decimal(18,2), "
    "current_lwoo_budget decimal(18,2)"
)
STUDENTS = "year int, model string, swv_school string, swv_residence string"


@pytest.fixture(scope="module")
def grid(settings):
    return settings.scenarios


@pytest.fixture(scope="module")
def rules(settings):
    return settings.budgets


def amounts(frame, key="unit"):
    return {row[key]: row.amount for row in frame.collect()}


def test_largest_remainder_gives_leftover_cents_to_the_largest_remainders_ties_by_unit_id(spark):
    # 1.00 over three equal weights: 33 cents each, the leftover cent to the smallest unit id.
    # 10.00 over 1:2:4: 142.86 / 285.71 / 571.43 cents, floors leave 2 cents for .86 and .71.
    rows = [("equal", unit, Decimal(1), Decimal("1.00")) for unit in ("c", "a", "b")]
    rows += [("weighted", unit, Decimal(w), Decimal("10.00")) for unit, w in (("x", 1), ("y", 2), ("z", 4))]
    frame = literal_frame(spark, rows, "pot string, unit string, weight decimal(18,6), budget decimal(18,2)")
    split = amounts(split_largest_remainder(frame, ["pot"], "unit", "weight", "budget", "amount"))
    assert split == {
        "a": Decimal("0.34"),
        "b": Decimal("0.33"),
        "c": Decimal("0.33"),
        "x": Decimal("1.43"),
        "y": Decimal("2.86"),
        "z": Decimal("5.71"),
    }


def test_largest_remainder_matches_exact_arithmetic_and_sums_to_each_pot(spark):
    weight = (F.pmod(F.xxhash64("id"), 5_000_000_000) / 1_000_000).cast("decimal(18,6)")
    frame = spark.range(600).select(
        (F.col("id") % 3).alias("pot"),
        F.format_string("u%04d", "id").alias("unit"),
        weight.alias("weight"),
        (F.lit(Decimal("123456789.01")) + F.col("id") % 3).cast("decimal(18,2)").alias("budget"),
    )
    rows = split_largest_remainder(frame, ["pot"], "unit", "weight", "budget", "amount").collect()
    for pot in range(3):
        units = sorted((r for r in rows if r.pot == pot), key=lambda r: r.unit)
        budget_cents = int(units[0].budget * 100)
        total = sum(Fraction(r.weight) for r in units)
        shares = {r.unit: budget_cents * Fraction(r.weight) / total for r in units}
        floors = {unit: share.numerator // share.denominator for unit, share in shares.items()}
        leftover = budget_cents - sum(floors.values())
        by_remainder = sorted(shares, key=lambda unit: (-(shares[unit] - floors[unit]), unit))
        expected = {unit: floors[unit] + (unit in by_remainder[:leftover]) for unit in shares}
        assert {r.unit: int(r.amount * 100) for r in units} == expected
        assert sum(r.amount for r in units) == units[0].budget


def lwoo_inputs(spark, budget_years=(2020,)):
    units = [
        (2020, "lwoo_p15_school", "SWV1", 2, Decimal(3)),
        (2020, "lwoo_p15_school", "SWV2", 1, Decimal(1)),
        (2020, "lwoo_p15_residence", "SWV1", 1, Decimal(1)),
        (2020, "lwoo_p15_residence", "SWV2", 2, Decimal(2)),
        (2020, "pro_p30_vestiging", "V1", 5, Decimal(9)),  # not lwoo: ignored here
    ]
    students = [(2020, "lwoo", "SWV1", "SWV1"), (2020, "lwoo", "SWV1", "SWV2"), (2020, "lwoo", "SWV2", "SWV2")]
    students += [(2020, "pro", "SWV3", "SWV3")]
    fixed = [("SWV1", 100, 10, 500), ("SWV2", 200, 20, 300), ("SWV3", 50, 5, 0)]
    return (
        literal_frame(spark, units, UNITS),
        literal_frame(spark, students, STUDENTS),
        literal_frame(spark, [(y, Decimal("1001.50"), None) for y in budget_years], BUDGETS),
        literal_frame(spark, [(2020, swv, *(Decimal(v) for v in money)) for swv, *money in fixed], SWV_BUDGETS),
    )


def test_lwoo_budgets_split_both_pots_exactly(spark, grid, rules):
    frame = lwoo_budgets(*lwoo_inputs(spark), grid, rules)
    got = {(r.scenario, r.swv_id): r for r in frame.collect()}
    # lwoo_se = 0.23 · 1001.50 = 230.345 → 230.34 (half-even), split 2:1:0 by school in both scenarios.
    # lwoo_iq = 771.16: school 3:1 → 578.37 / 192.79; residence 1:2 → 257.05 / 514.11 (leftover cent).
    expected = {
        ("lwoo_p15_school", "SWV1"): (2, "153.56", "578.37", "100", "10", "841.93", "420.97", "610"),
        ("lwoo_p15_school", "SWV2"): (1, "76.78", "192.79", "200", "20", "489.57", "489.57", "520"),
        ("lwoo_p15_school", "SWV3"): (0, "0", "0", "50", "5", "55", None, "55"),
        ("lwoo_p15_residence", "SWV1"): (1, "153.56", "257.05", "100", "10", "520.61", "520.61", "610"),
        ("lwoo_p15_residence", "SWV2"): (2, "76.78", "514.11", "200", "20", "810.89", "405.45", "520"),
        ("lwoo_p15_residence", "SWV3"): (0, "0", "0", "50", "5", "55", None, "55"),
    }
    columns = ["n_students", "lwoo_se", "lwoo_iq", "regional", "pro", "total", "per_student", "current_total"]
    assert {key: tuple(row[c] for c in columns) for key, row in got.items()} == {
        key: (n, *(None if v is None else Decimal(v) for v in money)) for key, (n, *money) in expected.items()
    }
    for scenario in ("lwoo_p15_school", "lwoo_p15_residence"):
        rows = [row for (s, _), row in got.items() if s == scenario]
        assert sum(r.lwoo_se for r in rows) + sum(r.lwoo_iq for r in rows) == Decimal("1001.50")
    assert frame.columns == ["year", "scenario", "swv_id", *columns]
    assert dict(frame.dtypes)["total"] == "decimal(18,2)"


def test_a_missing_swv_budget_stops_the_run(spark, grid, rules):
    # A year without lwoo budget stops the run earlier, at the input gates (tests/unit/test_quality.py).
    units, students, budgets, swv_budgets = lwoo_inputs(spark)
    with pytest.raises(ContractError) as stopped:
        lwoo_budgets(units, students, budgets, swv_budgets.where("swv_id != 'SWV2'"), grid, rules)
    message = str(stopped.value)
    rule = "no row for an SWV with lwoo students in a teldatum year"
    assert f"table swv_budgets, column swv_id: {rule} (1 rows)" in message


def pro_inputs(spark, teldatum_years=(2018,), schools=None):
    nets = {"V1": 1, "V2": 2, "V3": 0}
    units = [(y, "pro_p30_vestiging", school, 0, Decimal(net)) for y in teldatum_years for school, net in nets.items()]
    schools = schools or [(2018, "V1", "B1"), (2018, "V2", "B1"), (2018, "V3", "B2")]
    return (
        literal_frame(spark, units, UNITS),
        literal_frame(spark, schools, "year int, school_id string, board_id string"),
        literal_frame(spark, [(2020, None, Decimal("100.00"))], BUDGETS),
    )


def test_pro_amounts_use_the_net_scores_two_years_back_and_sum_to_the_budget(spark, grid, rules):
    frame = pro_amounts(*pro_inputs(spark), grid, rules, [2020])
    rows = {r.school_id: r for r in frame.collect()}
    assert {school: (r.year, r.teldatum_year, r.board_id, r.amount) for school, r in rows.items()} == {
        "V1": (2020, 2018, "B1", Decimal("33.33")),
        "V2": (2020, 2018, "B1", Decimal("66.67")),  # 66.666… has the larger remainder: the leftover cent
        "V3": (2020, 2018, "B2", Decimal("0.00")),
    }
    assert sum(r.amount for r in rows.values()) == Decimal("100.00")
    assert rows["V1"].amount_per_unit.quantize(Decimal("0.000001")) == Decimal("33.333333")
    boards = {r.board_id: (r.n_vestigingen, r.amount) for r in pro_board_amounts(frame).collect()}
    assert boards == {"B1": (2, Decimal("100.00")), "B2": (1, Decimal("0.00"))}
    assert frame.columns == [
        "year",
        "scenario",
        "school_id",
        "board_id",
        "teldatum_year",
        "net_score",
        "amount_per_unit",
        "amount",
    ]


def test_the_board_paid_is_the_vestigings_board_in_the_funding_year_or_the_latest_before(spark, grid, rules):
    # domain.md §6. V1 changes board in the funding year 2020; V2 in 2019 and is not listed
    # in 2020 (its latest board before 2020 is paid); V3's listing of 2021 is after the
    # funding year, and in 2020 it has no board at all.
    schools = [
        (2018, "V1", "B1"),
        (2019, "V1", "B1"),
        (2020, "V1", "B3"),
        (2018, "V2", "B1"),
        (2019, "V2", "B4"),
        (2018, "V3", "B2"),
        (2020, "V3", None),
        (2021, "V3", "B5"),
    ]
    frame = pro_amounts(*pro_inputs(spark, schools=schools), grid, rules, [2020])
    assert {r.school_id: (r.teldatum_year, r.board_id) for r in frame.collect()} == {
        "V1": (2018, "B3"),
        "V2": (2018, "B4"),
        "V3": (2018, None),
    }
    boards = {r.board_id: (r.n_vestigingen, r.amount) for r in pro_board_amounts(frame).collect()}
    assert boards == {"B3": (1, Decimal("33.33")), "B4": (1, Decimal("66.67")), None: (1, Decimal("0.00"))}


def test_a_funding_year_without_pro_budget_is_skipped_with_its_reason(spark, grid, rules):
    budgets = literal_frame(spark, [(2020, None, Decimal("100.00")), (2021, Decimal(5), None)], BUDGETS)
    funding = pro_funding_years(budgets, [2018, 2019, 2020], rules)
    assert funding.paid == [2020]
    assert funding.skipped == {
        2021: "pro_onderwijskansen_budget is null for funding year 2021 (teldatum 2019)",
        2022: "no budgets row for funding year 2022 (teldatum 2020)",
    }
    units, schools, _ = pro_inputs(spark, teldatum_years=(2018, 2019, 2020))
    frame = pro_amounts(units, schools, budgets, grid, rules, funding.paid)
    assert {(r.year, r.teldatum_year) for r in frame.collect()} == {(2020, 2018)}
    assert sum(r.amount for r in frame.collect()) == Decimal("100.00")


def test_configuration_can_demand_a_pro_budget_for_every_funding_year(spark, rules):
    budgets = literal_frame(spark, [(2020, None, Decimal("100.00"))], BUDGETS)
    demanding = replace(rules, missing_pro_budget="stop")
    assert pro_funding_years(budgets, [2018], demanding).paid == [2020]
    with pytest.raises(ContractError, match=r"pro_onderwijskansen_budget: no pro budget .* t − 2 \(2 rows\)"):
        pro_funding_years(budgets, [2018, 2019, 2020], demanding)
