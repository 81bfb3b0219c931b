"""The attacker test (domain.md §8): from the published export tables, recompute every
count the tables give by difference — population minus target, nested target shares,
a share times a count, a total divided by a per-student figure — and fail when one of
them counts 1-9 students, or when a score of a protected unit is still published.

Played on crafted allocation tables (a vestiging with 3 students, 1 of them in the
target group; an SWV whose nested target groups differ by one student; one whose
population exceeds its largest target group by 8) and on the shared local run."""

from decimal import Decimal as D
from itertools import combinations

import pandas as pd
import pytest

from onderwijsscore.disclosure import (
    allocation_outcomes,
    protect_allocations,
    suppress,
    with_profile_protection,
    with_withheld_per_student,
)
from onderwijsscore.runtime import literal_frame
from onderwijsscore.snapshot import read_published

SMALL = range(1, 10)


@pytest.fixture(scope="module")
def disclosure_rules(settings):
    return settings.disclosure


@pytest.fixture(scope="module")
def scenarios(spark, settings):
    return settings.scenarios.frame(spark)


def pandas(frame):
    return frame.toArrow().to_pandas()


def nested_differences(counts, family, label):
    """Every count of a family and every difference between two of them (nested groups)."""
    found = []
    for key, rows in counts.dropna(subset=["n"]).groupby(family):
        values = sorted(set(rows["n"].astype(int)))
        for value in values:
            if value in SMALL:
                found.append(f"{label} {key}: a count of {value}")
        for low, high in combinations(values, 2):
            if high - low in SMALL:
                found.append(f"{label} {key}: {high} - {low}")
    return found


def attack(published, scenarios):
    """Every small count an attacker recomputes from the published tables."""
    grid = pandas(scenarios)[["scenario", "model", "principle", "target_share"]]
    found = []
    units = published["unit_scores"].merge(grid, on="scenario")
    unit_family = ["year", "model", "principle", "unit_type", "unit_id"]
    population = units[[*unit_family, "n_students"]].rename(columns={"n_students": "n"})
    targets = units[[*unit_family, "n_target"]].rename(columns={"n_target": "n"})
    found += nested_differences(pd.concat([population, targets]), unit_family, "unit_scores")
    # A score of a unit whose target count is withheld; E back from its threshold.
    leaks = units[units.n_target.isna() & (units.gross_score.notna() | units.net_score.notna())]
    found += [f"unit_scores {row.unit_id}: score without its count" for row in leaks.itertuples()]
    found += [
        f"unit_scores {r.unit_id}: threshold"
        for r in units[units.n_students.isna() & units.threshold.notna()].itertuples()
    ]

    withheld = units[units.n_target.isna()][["year", "scenario", "unit_id"]]
    pro = published["pro_amounts"].merge(
        withheld.rename(columns={"year": "teldatum_year", "unit_id": "school_id"}),
        on=["teldatum_year", "scenario", "school_id"],
    )
    found += [
        f"pro_amounts {row.school_id}: net score of a withheld unit" for row in pro[pro.net_score.notna()].itertuples()
    ]

    national = published["cutoffs"].merge(grid, on="scenario")
    from_share = national.assign(n=(national.realised_share * national.n_population / 100).round())
    counts = pd.concat(
        [
            national[["year", "model", "n_population"]].rename(columns={"n_population": "n"}),
            national[["year", "model", "n_target"]].rename(columns={"n_target": "n"}),
            from_share[["year", "model", "n"]],
        ]
    )
    found += nested_differences(counts, ["year", "model"], "cutoffs")

    if "profiles" in published:
        found += attack_profiles(published["profiles"], scenarios)

    budgets = published["budgets"]
    per_student = budgets[budgets.per_student.notna() & (budgets.per_student != 0)]
    students = (per_student.total / per_student.per_student).astype(float).round()
    found += [
        f"budgets {row.swv_id}: total / per_student"
        for row, n in zip(per_student.itertuples(), students, strict=True)
        if n in SMALL
    ]
    found += [f"budgets {row.swv_id}: n_students" for row in budgets.itertuples() if row.n_students in SMALL]
    return found


def attack_profiles(profiles, scenarios):
    """A category's population and target groups are nested by share; a share times its
    group's size gives a withheld count back."""
    grid = pandas(scenarios)[["scenario", "model"]]
    rows = profiles.merge(grid, on="scenario")
    category = ["year", "model", "characteristic", "category"]
    found = nested_differences(
        rows[[*category, "n_students"]].rename(columns={"n_students": "n"}), category, "profiles"
    )
    shared = rows[rows.n_students.isna() & rows.share.notna()]
    return found + [
        f"profiles {row.characteristic}/{row.category}: share of a withheld count" for row in shared.itertuples()
    ]


def crafted_tables(spark):
    lwoo_shares = [5, 10, 15, 20, 25, 30]
    units = [
        (2020, "pro_p30_vestiging", "V1", "vestiging", 3, 1),
        (2020, "pro_p30_vestiging", "V2", "vestiging", 40, 20),
    ]
    swv_targets = {
        ("S1", "school"): (500, [25, 50, 75, 76, 125, 150]),  # 20 % holds one student more than 15 %
        ("S2", "school"): (500, [25, 50, 75, 100, 125, 150]),
        ("S3", "residence"): (160, [20, 40, 60, 80, 100, 152]),  # 8 students above the 30 % group
    }
    for (swv, principle), (n, targets) in swv_targets.items():
        units += [(2020, f"lwoo_p{p}_{principle}", swv, "swv", n, t) for p, t in zip(lwoo_shares, targets, strict=True)]
    unit_scores = literal_frame(
        spark,
        [(*u, D(u[5]) * 2, D(u[4]) / 100, D(u[5])) for u in units],
        "year int, scenario string, unit_id string, unit_type string, n_students long, n_target long, "
        "gross_score decimal(18,6), threshold decimal(18,6), net_score decimal(18,6)",
    )
    national = [(2020, f"lwoo_p{p}_school", p, 1160, None, None) for p in lwoo_shares]
    cutoffs = literal_frame(
        spark,
        [(y, s, p, n, round(n * p / 100), round(n * p / 100) / n * 100) for y, s, p, n, _, _ in national]
        + [(2020, "pro_p30_vestiging", 30, 43, 21, 21 / 43 * 100)],
        "year int, scenario string, target_share int, n_population long, n_target long, realised_share double",
    )
    pro_amounts = literal_frame(
        spark,
        [
            (2022, "pro_p30_vestiging", "V1", 2020, D(2), D("100.00")),
            (2022, "pro_p30_vestiging", "V2", 2020, D(40), D("2000.00")),
        ],
        "year int, scenario string, school_id string, teldatum_year int, net_score decimal(18,6), amount decimal(18,2)",
    )
    budgets = literal_frame(
        spark,
        [
            (2020, "lwoo_p20_school", "S1", 500, D("50000.00"), D("100.00")),
            (2020, "lwoo_p20_school", "S2", 500, D("60000.00"), D("120.00")),
            (2020, "lwoo_p20_residence", "S3", 8, D("800.00"), D("100.00")),
        ],
        "year int, scenario string, swv_id string, n_students long, total decimal(18,2), per_student decimal(18,2)",
    )
    return {"unit_scores": unit_scores, "cutoffs": cutoffs, "pro_amounts": pro_amounts, "budgets": budgets}


def test_the_attacker_finds_the_crafted_small_counts_in_unprotected_tables(spark, scenarios):
    found = attack({t: pandas(f) for t, f in crafted_tables(spark).items()}, scenarios)
    assert any("V1" in f and "a count of 1" in f for f in found)
    assert any("S1" in f and "76 - 75" in f for f in found)
    assert any("S3" in f and "160 - 152" in f for f in found)
    assert any("S3" in f and "total / per_student" in f for f in found)


def test_no_small_count_can_be_recomputed_from_protected_allocation_tables(spark, scenarios, disclosure_rules):
    tables = crafted_tables(spark)
    regional_suppressed = literal_frame(
        spark, [(2020, "lwoo_p20_residence", "S3")], "year int, scenario string, swv_id string"
    )
    published = protect_allocations(tables, scenarios, regional_suppressed, disclosure_rules)
    outcomes = allocation_outcomes(published)
    frames = {table: pandas(frame) for table, frame in published.items()}
    assert attack(frames, scenarios) == []
    units = frames["unit_scores"].set_index(["scenario", "unit_id"])
    assert units.loc[("pro_p30_vestiging", "V1")][["n_students", "n_target", "gross_score", "threshold"]].isna().all()
    assert units.loc[("pro_p30_vestiging", "V2")].n_target == 20  # 20 and 20 more: nothing small
    assert (
        units.xs("S1", level="unit_id").n_target.isna().all()
        and units.xs("S1", level="unit_id").n_students.eq(500).all()
    )
    assert units.xs("S2", level="unit_id").n_target.notna().all()
    assert units.xs("S3", level="unit_id").n_target.isna().all()
    # Money is paid whole; the net score of a withheld unit is not published.
    pro = frames["pro_amounts"].set_index("school_id")
    assert pro.amount.tolist() == [D("100.00"), D("2000.00")] and pro.net_score.isna().tolist() == [True, False]
    assert outcomes["unit_scores"]["suppressed_rows"] == 1 + 6 + 6
    assert outcomes["budgets"]["suppressed_rows"] == 1


def test_the_comparison_withholds_what_regional_withholds(spark):
    comparison = literal_frame(
        spark,
        [(2020, "p", "lwoo_p15_school", "lwoo_p20_school", "S1", D(1), D(2), False)],
        "year int, pair string, scenario_a string, scenario_b string, swv_id string, per_student_a decimal(18,2), "
        "per_student_b decimal(18,2), suppressed boolean",
    )
    regional_suppressed = literal_frame(
        spark, [(2020, "lwoo_p20_school", "S1")], "year int, scenario string, swv_id string"
    )
    row = with_withheld_per_student(comparison, regional_suppressed).first()
    assert (row.per_student_a, row.per_student_b, row.suppressed) == (D(1), None, True)


def test_no_small_count_can_be_recomputed_from_the_published_run(spark, local_run, scenarios):
    settings, _ = local_run
    _, frames = read_published(spark, settings.output_root)
    tables = ("unit_scores", "cutoffs", "pro_amounts", "budgets", "profiles")
    published = {table: pandas(frames[table]) for table in tables}
    units = published["unit_scores"]
    # Else the test would prove nothing: units withheld for a small population, and for a
    # small band under a population of 10 or more.
    assert units[units.suppressed].n_students.isna().any()
    assert (units[units.suppressed].n_students >= 10).any()
    assert attack(published, scenarios) == []


def test_nested_target_groups_of_a_profile_category_give_no_small_count(spark, scenarios, disclosure_rules):
    """One category of one characteristic whose 10 % target group holds one student more
    than its 5 % group; another category makes the lines' totals."""
    rows = []
    for share, (mbo, other) in zip(
        [5, 10, 15, 20, 25, 30], [(25, 40), (26, 90), (75, 100), (100, 130), (125, 150), (150, 180)], strict=True
    ):
        for principle in ("school", "residence"):
            scenario = f"lwoo_p{share}_{principle}"
            rows += [
                (2020, scenario, "population", "parents_education", "mbo", 500, 0.5),
                (2020, scenario, "population", "parents_education", "other", 600, 0.5),
                (2020, scenario, "target", "parents_education", "mbo", mbo, 0.5),
                (2020, scenario, "target", "parents_education", "other", other, 0.5),
            ]
    profiles = literal_frame(
        spark,
        rows,
        "year int, scenario string, group string, characteristic string, category string, n_students long, "
        "share double",
    )
    cell_key = ["characteristic", "category"]
    unprotected, _ = suppress(profiles, "profiles", disclosure_rules, cell_key)
    assert any("26 - 25" in f for f in attack_profiles(pandas(unprotected), scenarios))
    published, outcome = suppress(
        with_profile_protection(profiles, scenarios, disclosure_rules), "profiles", disclosure_rules, cell_key
    )
    assert attack_profiles(pandas(published), scenarios) == []
    # The mbo target cells at every share are withheld; the secondary suppression then
    # withholds the other category's target cells, or each line's total would give them back.
    frame = pandas(published)
    assert frame[frame.group == "target"].n_students.isna().all()
    assert frame[frame.group == "population"].n_students.notna().all()
