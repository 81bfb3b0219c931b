"""Money: lwoo budgets per SWV and pro amounts per vestiging and board (domain.md §6).

Every pot is split over its units by largest remainder in cents: each unit gets the floor
of its exact share, and the cents left over go one each to the largest remainders (ties:
the smaller unit id first), so every pot is paid out to the cent. Shares are computed in
exact decimal arithmetic: the floor is an exact integer quotient, never a rounded one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.contract import MONEY, ContractError, Violation
from onderwijsscore.errors import ConfigFileError
from onderwijsscore.scenarios import ScenarioGrid

CENTS = T.DecimalType(20, 0)
SE_POT_ROUNDING = {"half_even": F.bround, "half_up": F.round}
SPLIT_RULE = "largest_remainder"
TIE_RULE = "unit_id"
MISSING_PRO_BUDGET = ("skip", "stop")


@dataclass(frozen=True)
class BudgetRules:
    lwoo_model: str
    se_share: Decimal  # of the lwoo budget; lwoo_iq gets the rest
    se_principle: str  # counts the lwoo_se students in every scenario
    se_pot_rounding: str
    pro_model: str
    teldatum_lag_years: int  # funding year t pays on teldatum t − lag
    missing_pro_budget: str  # one of MISSING_PRO_BUDGET: what a funding year without a pro budget does

    @classmethod
    def from_yaml(cls, raw: dict, file: str) -> BudgetRules:
        """conf/budgets.yaml; a value out of range raises `ConfigFileError`."""
        rounding = raw["rounding"]
        if (
            rounding["se_pot"] not in SE_POT_ROUNDING
            or rounding["split"] != SPLIT_RULE
            or rounding["largest_remainder_ties"] != TIE_RULE
        ):
            raise ConfigFileError(
                file,
                "rounding",
                f"supported are se_pot {'|'.join(SE_POT_ROUNDING)}, split {SPLIT_RULE}, "
                f"largest_remainder_ties {TIE_RULE}",
            )
        if not 0 <= Decimal(str(raw["lwoo"]["se_share"])) <= 1:
            raise ConfigFileError(file, "lwoo.se_share", "a share in [0, 1]")
        if int(raw["pro"]["teldatum_lag_years"]) < 0:
            raise ConfigFileError(file, "pro.teldatum_lag_years", "not negative")
        if raw["pro"]["missing_budget"] not in MISSING_PRO_BUDGET:
            raise ConfigFileError(file, "pro.missing_budget", f"must be one of {list(MISSING_PRO_BUDGET)}")
        return cls(
            lwoo_model=raw["lwoo"]["model"],
            se_share=Decimal(str(raw["lwoo"]["se_share"])),
            se_principle=raw["lwoo"]["se_principle"],
            se_pot_rounding=rounding["se_pot"],
            pro_model=raw["pro"]["model"],
            teldatum_lag_years=int(raw["pro"]["teldatum_lag_years"]),
            missing_pro_budget=raw["pro"]["missing_budget"],
        )


def split_largest_remainder(
    frame: DataFrame, pot_keys: list[str], unit: str, weight: str, pot: str, amount: str
) -> DataFrame:
    """`frame` plus `amount`: the pot (equal on every row of a pot) split over units pro rata `weight`.

    The amounts of a pot sum to the pot exactly. Weights must be non-negative decimals or integers.
    """
    pot_rows = Window.partitionBy(*pot_keys)
    by_remainder = pot_rows.orderBy(F.col("_lr_remainder").desc(), F.col(unit).asc())
    cents = (F.col(pot) * 100).cast(CENTS)
    # exact share in cents = numerator / total weight; its floor is an exact integer quotient.
    numerator, total = F.col("_lr_numerator"), F.col("_lr_total")
    extra_cent = F.when(F.row_number().over(by_remainder) <= F.col("_lr_leftover"), 1).otherwise(0)
    return (
        frame.withColumn("_lr_numerator", cents * F.col(weight))
        .withColumn("_lr_total", F.sum(weight).over(pot_rows))
        .withColumn("_lr_remainder", numerator % total)
        .withColumn("_lr_floor", ((numerator - F.col("_lr_remainder")) / total).cast(CENTS))
        .withColumn("_lr_leftover", cents - F.sum("_lr_floor").over(pot_rows))
        .withColumn(amount, ((F.col("_lr_floor") + extra_cent) / 100).cast(MONEY))
        .drop("_lr_numerator", "_lr_total", "_lr_remainder", "_lr_floor", "_lr_leftover")
    )


def lwoo_budgets(
    unit_scores: DataFrame,
    students: DataFrame,
    budgets: DataFrame,
    swv_budgets: DataFrame,
    grid: ScenarioGrid,
    rules: BudgetRules,
) -> DataFrame:
    """Per (year, scenario, swv_id) of the lwoo scenarios: the columns of `export/budgets`.

    Every SWV with students or a `swv_budgets` row in the year appears. Stops when a
    teldatum year has no lwoo budget or an SWV with students has no `swv_budgets` row.
    """
    units = unit_scores.where(F.col("scenario").isin(grid.scenario_ids(rules.lwoo_model))).select(
        "year", "scenario", F.col("unit_id").alias("swv_id"), "n_students", "net_score"
    )
    se_unit = grid.principles[rules.se_principle].unit_column
    se_students = (
        students.where(F.col("model") == rules.lwoo_model)
        .groupBy("year", F.col(se_unit).alias("swv_id"))
        .agg(F.count(F.lit(1)).alias("se_students"))
    )
    fixed = swv_budgets.select(
        "year",
        "swv_id",
        F.col("regional_support").alias("regional"),
        F.col("pro_budget").alias("pro"),
        "current_lwoo_budget",
    )
    scenario_years = units.select("year", "scenario").distinct()
    swvs = (
        units.select("year", "scenario", "swv_id")
        .unionByName(scenario_years.join(se_students, "year").select("year", "scenario", "swv_id"))
        .unionByName(scenario_years.join(fixed, "year").select("year", "scenario", "swv_id"))
        .distinct()
    )
    lwoo_budget = F.col("lwoo_budget")
    se_pot = SE_POT_ROUNDING[rules.se_pot_rounding](lwoo_budget * F.lit(rules.se_share), 2).cast(MONEY)
    pots = budgets.select("year", lwoo_budget, se_pot.alias("se_pot")).withColumn(
        "iq_pot", (lwoo_budget - F.col("se_pot")).cast(MONEY)
    )
    per_swv = (
        swvs.join(units, ["year", "scenario", "swv_id"], "left")
        .join(se_students, ["year", "swv_id"], "left")
        .join(fixed, ["year", "swv_id"], "left")
        .join(F.broadcast(pots), "year", "left")
    )
    # A requested year without lwoo budget has stopped the run at the input gates (quality).
    _stop_on_missing(
        per_swv,
        [
            (
                "swv_budgets",
                "swv_id",
                "no row for an SWV with lwoo students in a teldatum year",
                "regional",
                ("year", "swv_id"),
            ),
        ],
    )
    regional, pro = F.col("regional"), F.col("pro")
    return (
        per_swv.fillna(0, ["n_students", "net_score", "se_students"])
        .transform(split_largest_remainder, ["year", "scenario"], "swv_id", "se_students", "se_pot", "lwoo_se")
        .transform(split_largest_remainder, ["year", "scenario"], "swv_id", "net_score", "iq_pot", "lwoo_iq")
        .withColumn("total", (F.col("lwoo_se") + F.col("lwoo_iq") + regional + pro).cast(MONEY))
        .select(
            "year",
            "scenario",
            "swv_id",
            "n_students",
            "lwoo_se",
            "lwoo_iq",
            "regional",
            "pro",
            "total",
            F.try_divide(F.col("total"), F.col("n_students")).cast(MONEY).alias("per_student"),
            (regional + pro + F.col("current_lwoo_budget")).cast(MONEY).alias("current_total"),
        )
    )


@dataclass(frozen=True)
class ProFundingYears:
    """The funding years a run's teldatum years pay for: with a pro budget, or skipped."""

    paid: list[int]
    skipped: dict[int, str]  # funding year -> why it has no pro_amounts slice


def pro_funding_years(budgets: DataFrame, teldatum_years: list[int], rules: BudgetRules) -> ProFundingYears:
    """Funding year t + lag of each teldatum year t, paid when `budgets` has its pro budget.

    A pro budget may not be set yet: its funding year is skipped with the reason, and the
    run goes on (domain.md §6), unless `missing_pro_budget` is `stop`.
    """
    funding_years = [year + rules.teldatum_lag_years for year in teldatum_years]
    listed = {
        row.year: row.budget
        for row in budgets.where(F.col("year").isin(*funding_years))
        .select("year", F.col("pro_onderwijskansen_budget").alias("budget"))
        .collect()
    }
    skipped = {
        year: ("pro_onderwijskansen_budget is null" if year in listed else "no budgets row")
        + f" for funding year {year} (teldatum {year - rules.teldatum_lag_years})"
        for year in funding_years
        if listed.get(year) is None
    }
    if skipped and rules.missing_pro_budget == "stop":
        raise ContractError(
            [
                Violation(
                    "budgets",
                    "pro_onderwijskansen_budget",
                    f"no pro budget for a funding year t with pro scores at teldatum t − {rules.teldatum_lag_years}",
                    len(skipped),
                )
            ]
        )
    return ProFundingYears([year for year in funding_years if year not in skipped], skipped)


def pro_amounts(
    unit_scores: DataFrame,
    schools: DataFrame,
    budgets: DataFrame,
    grid: ScenarioGrid,
    rules: BudgetRules,
    funding_years: list[int],
) -> DataFrame:
    """Per (paid funding year, pro scenario, vestiging): the columns of `export/pro_amounts`.

    Funding year t (one of `funding_years`, which have a pro budget: `pro_funding_years`)
    is paid on the net scores of teldatum t − lag; `amount_per_unit` = budget(t) / Σ net
    scores, unrounded. `board_id` is the board that is paid: the vestiging's board in
    `schools` in year t, or in the latest year before t that `schools` has (domain.md §6).
    """
    lag = rules.teldatum_lag_years
    units = unit_scores.where(
        F.col("scenario").isin(grid.scenario_ids(rules.pro_model)) & (F.col("year") + lag).isin(*funding_years)
    ).select(
        (F.col("year") + lag).alias("year"),
        "scenario",
        F.col("unit_id").alias("school_id"),
        F.col("year").alias("teldatum_year"),
        "net_score",
    )
    funding = budgets.select("year", F.col("pro_onderwijskansen_budget").alias("budget"))
    per_unit = F.col("budget") / F.sum("net_score").over(Window.partitionBy("year", "scenario"))
    return (
        units.join(F.broadcast(funding), "year")
        .join(_paid_boards(units, schools), ["year", "school_id"], "left")
        .withColumn("amount_per_unit", per_unit)
        .transform(split_largest_remainder, ["year", "scenario"], "school_id", "net_score", "budget", "amount")
        .select("year", "scenario", "school_id", "board_id", "teldatum_year", "net_score", "amount_per_unit", "amount")
    )


def _paid_boards(units: DataFrame, schools: DataFrame) -> DataFrame:
    """(year, school_id, board_id): the vestiging's board in funding year `year`, else in the
    latest year before it that `schools` lists (a null board there stays null)."""
    listed = schools.select(F.col("year").alias("listed_year"), "school_id", "board_id")
    paid = units.select("year", "school_id").distinct()
    return (
        paid.join(F.broadcast(listed), (paid.school_id == listed.school_id) & (F.col("listed_year") <= F.col("year")))
        .groupBy("year", paid.school_id)
        .agg(F.max_by("board_id", "listed_year").alias("board_id"))
    )


def pro_board_amounts(amounts: DataFrame) -> DataFrame:
    """Per (funding year, scenario, board_id): `n_vestigingen` and the summed `amount`."""
    return amounts.groupBy("year", "scenario", "board_id").agg(
        F.count(F.lit(1)).alias("n_vestigingen"), F.sum("amount").cast(MONEY).alias("amount")
    )


def _stop_on_missing(frame: DataFrame, checks: list[tuple[str, str, str, str, tuple[str, ...]]]) -> None:
    """One ContractError for the checks (table, column, rule, value column, key columns) whose
    value column is null somewhere; each counts the distinct keys it is missing for."""
    counts = frame.agg(
        *[F.count_distinct(*[F.when(F.col(value).isNull(), F.col(key)) for key in keys]) for *_, value, keys in checks]
    ).first()
    violations = [
        Violation(table, column, rule, missing)
        for (table, column, rule, _, _), missing in zip(checks, counts, strict=True)
        if missing
    ]
    if violations:
        raise ContractError(violations)
