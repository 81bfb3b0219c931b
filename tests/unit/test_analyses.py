"""Analyses (domain.md §7) and disclosure control (§8) on hand-made frames."""

from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from onderwijsscore.analyses.change_explained import (
    change_drivers,
    change_explained,
    group_drivers,
    score_group_gross,
    with_rounding,
)
from onderwijsscore.analyses.rules import Bins
from onderwijsscore.analyses.tables import cross_table, profile_counts, profiles
from onderwijsscore.disclosure import suppress
from onderwijsscore.runtime import literal_frame

D = Decimal
SCENARIO = "lwoo_p20_school"


@pytest.fixture(scope="module")
def rules(settings):
    return settings.analyses


@pytest.fixture(scope="module")
def disclosure_rules(settings):
    return settings.disclosure


def test_bins_are_lower_inclusive_upper_exclusive_at_every_edge(spark, rules):
    absolute, relative = rules.stability
    assert absolute.labels[0] == "[-inf, -1000000)" and absolute.labels[-1] == "[1000000, inf)"
    values = [D("-1000000.01"), D("-1000000"), D("-100000.01"), D("-100000"), D("99999.99"), D("100000"), D("1000000")]
    frame = literal_frame(spark, [(v,) for v in values], "value decimal(18,2)")
    orders = [row.o for row in frame.select(absolute.order(F.col("value")).alias("o")).collect()]
    assert orders == [0, 1, 2, 3, 3, 4, 6]
    rel = literal_frame(
        spark, [(D("-0.075"),), (D("-0.0749999"),), (D("0.025"),), (D("0.0249999"),)], "r decimal(20,10)"
    )
    assert [row.o for row in rel.select(relative.order(F.col("r")).alias("o")).collect()] == [1, 1, 4, 3]
    with pytest.raises(Exception, match="strictly ascending"):
        Bins.from_yaml([1, 1], "conf/analyses.yaml", "x")


def changes_frame(spark, rows):
    return literal_frame(
        spark,
        [(2020, SCENARIO, f"SWV{i:02d}", D(a), None if r is None else D(r), n) for i, (a, r, n) in enumerate(rows)],
        "year int, scenario string, swv_id string, absolute decimal(18,2), relative decimal(20,10), n_students long",
    )


def cells(frame):
    return {(r.absolute_bin, r.relative_bin): r for r in frame.collect()}


def test_cross_table_puts_every_swv_in_one_cell_with_totals(spark, rules):
    rows = [("-100000", "-0.025", 500), ("99999.99", "0.0249", 600), ("100000", "0.025", 700), ("5", None, 800)]
    table = cells(cross_table(changes_frame(spark, rows), rules.stability))
    absolute, relative = rules.stability
    assert len(table) == (len(absolute.labels) + 1) * (len(relative.labels) + 1)
    middle_abs, middle_rel = absolute.labels[3], relative.labels[3]
    assert table[(middle_abs, middle_rel)].n_units == 2  # [-100000, 100000) x [-0.025, 0.025)
    assert table[(absolute.labels[4], relative.labels[4])].n_units == 1  # edges belong to the upper bin
    assert table[("total", "total")].n_units == 3  # no relative change (zero base): not counted
    assert table[(middle_abs, "total")].n_units == 2 and table[("total", middle_rel)].n_students == 1100
    interior = [r.n_units for (a, b), r in table.items() if "total" not in (a, b)]
    assert sum(interior) == 3 and all(n in (0, 1, 2) for n in interior)


def test_small_cell_is_suppressed_and_cannot_be_recovered_from_totals(spark, rules, disclosure_rules):
    # One SWV of 4 students alone in its cell; its row and column hold other SWVs.
    rows = [("-100000", "-0.025", 4), ("-100000", "0.03", 300), ("150000", "-0.025", 200), ("150000", "0.03", 100)]
    table = cross_table(changes_frame(spark, rows), rules.stability)
    published, outcome = suppress(table, "stability", disclosure_rules, ["absolute_order", "relative_order"])
    got = cells(published)
    absolute, relative = rules.stability
    small = got[(absolute.labels[3], relative.labels[3])]
    assert small.suppressed and small.n_units is None
    assert outcome["primary"] == 1 and outcome["secondary"] >= 3
    assert "n_students" not in published.columns
    # Every row and column (totals included) with a suppressed cell has at least two.
    for dimension in ("absolute_bin", "relative_bin"):
        for line in {key[0 if dimension == "absolute_bin" else 1] for key in got}:
            members = [r for k, r in got.items() if k[0 if dimension == "absolute_bin" else 1] == line]
            n_suppressed = sum(r.suppressed for r in members)
            assert n_suppressed != 1, (dimension, line)
    # The cell's value is not the only unknown in its row: row total minus the published
    # cells leaves the sum of at least two suppressed cells.
    assert got[("total", "total")].n_units == 4


def test_profiles_count_categories_per_group_with_imputed_and_unknown(spark, settings, rules):
    rows = [
        # band (smallest target share holding the student), score_source, father, mother, origin
        (20, "computed", "basis", "basis", "turkey"),
        (15, "imputed_education", "imputed", "mbo4", "nl"),
        (5, "imputed_asylum", None, None, None),
        (None, "imputed_donor_parent", None, None, None),
        (25, "computed", "basis", "basis", "nl"),  # in the target group of 25 %, not of 20 %
    ]
    banded = literal_frame(
        spark,
        [(2020, "lwoo", b, s, f, m, o, "10_plus" if o else None, "no" if o else None) for b, s, f, m, o in rows],
        "year int, model string, band int, score_source string, father_education string, "
        "mother_education string, origin_group string, mother_duration string, wsnp string",
    )
    grid = settings.scenarios
    cutoffs = literal_frame(spark, [(2020, SCENARIO, 20)], "year int, scenario string, target_share int")
    table = profiles(profile_counts(banded, rules), cutoffs, grid, rules)
    got = {(r.group, r.characteristic, r.category): (r.n_students, r.share) for r in table.collect()}
    assert got[("population", "father_education", "unknown")] == (2, D("0.4"))
    assert got[("target", "father_education", "imputed")] == (1, D("0.333333"))
    assert got[("target", "asylum", "yes")] == (1, D("0.333333"))
    assert got[("population", "dutch_parent", "yes")] == (2, D("0.4"))
    assert got[("population", "dutch_parent", "no")] == (1, D("0.2"))
    assert got[("population", "dutch_parent", "unknown")] == (2, D("0.4"))
    assert ("target", "asylum", "no") in got and ("target", "wsnp", "unknown") in got
    assert sum(n for (g, c, _), (n, _) in got.items() if g == "target" and c == "origin_group") == 3


def test_change_drivers_sum_to_the_change_and_value_each_group_at_last_years_rate(spark, rules):
    budget_columns = (
        "year int, scenario string, swv_id string, n_students long, lwoo_se decimal(18,2), lwoo_iq decimal(18,2), "
        "regional decimal(18,2), pro decimal(18,2), total decimal(18,2), per_student decimal(18,2), "
        "current_total decimal(18,2)"
    )

    def budget(year, swv, se, iq, regional, pro):
        total = D(se) + D(iq) + D(regional) + D(pro)
        return (year, SCENARIO, swv, 100, D(se), D(iq), D(regional), D(pro), total, None, total)

    # 2019: rate 1000.00/ (6 + 4) = 100 per point; 2020: 1300.01 / (9 + 4) ≈ 100.000769 (largest-remainder cents).
    budgets = literal_frame(
        spark,
        [
            budget(2019, "A", "10.00", "600.00", "50.00", "5.00"),
            budget(2019, "B", "20.00", "400.00", "60.00", "0.00"),
            budget(2020, "A", "11.00", "900.01", "55.00", "5.00"),
            budget(2020, "B", "19.00", "400.00", "60.00", "0.00"),
        ],
        budget_columns,
    )
    units = literal_frame(
        spark,
        [
            (2019, SCENARIO, "A", D(6)),
            (2019, SCENARIO, "B", D(4)),
            (2020, SCENARIO, "A", D(9)),
            (2020, SCENARIO, "B", D(4)),
        ],
        "year int, scenario string, unit_id string, net_score decimal(18,6)",
    )
    # gross per group: A 2019 computed 5 + asylum 1; 2020 computed 6 + imputed 3; B 4 computed both years.
    # Target students per group: 2, except B's computed group, 30 in 2019 and 1 in 2020.
    contributions = [
        (2019, "A", "computed", D(5), 2),
        (2019, "A", "imputed_asylum", D(1), 2),
        (2020, "A", "computed", D(6), 2),
        (2020, "A", "imputed_education", D(3), 2),
        (2019, "B", "computed", D(4), 30),
        (2020, "B", "computed", D(4), 1),
    ]
    unit_sums = literal_frame(
        spark,
        [(y, SCENARIO, u, s, n, g) for y, u, s, g, n in contributions],
        "year int, scenario string, unit_id string, score_source string, n_target long, gross decimal(38,6)",
    )
    gross = score_group_gross(unit_sums, budgets, rules)
    drivers = change_drivers(budgets, units, gross)
    groups = group_drivers(gross, drivers)
    # A group driver is checked on the smaller non-empty year: B's 1 student of 2020 is a
    # small cell although 31 students are counted over both years.
    assert {(r.swv_id, r.source_group): r.n_students for r in groups.collect()} == {
        ("A", "computed"): 2,
        ("A", "imputed"): 2,
        ("A", "asylum"): 2,
        ("B", "computed"): 1,
        ("B", "imputed"): 0,  # empty both years: a 0 reveals nobody
        ("B", "asylum"): 0,
    }
    row = {
        r.swv_id: r
        for r in change_explained(
            with_rounding(drivers, groups), groups.withColumn("suppressed", F.lit(False)), rules
        ).collect()
    }
    a = row["A"]
    assert (a.year, a.total_prev, a.total) == (2020, D("665.00"), D("971.01"))
    assert a.fixed_parts == D("5.00") and a.se_part == D("1.00")
    assert (a.iq_computed, a.iq_imputed, a.iq_asylum) == (D("100.00"), D("300.00"), D("-100.00"))
    assert a.iq_threshold == D("0.00")
    assert a.iq_national_rate == (D(9) * (D("1300.01") / 13 - 100)).quantize(D("0.01"))
    for r in row.values():
        parts = [r.fixed_parts, r.se_part, r.iq_computed, r.iq_imputed, r.iq_asylum, r.iq_threshold]
        assert sum(parts) + r.iq_national_rate + r.rounding == r.total - r.total_prev
        assert abs(r.rounding) <= D("0.05")
