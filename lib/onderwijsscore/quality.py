"""Data-quality gates (great-expectations 1.x) on the checked input and on the outputs.

The input contract (`onderwijsscore.contract`) owns keys, nulls and codes of every table. The gates
check what it cannot: rules across tables (referential integrity, years and budgets
present), plausibility (population shares) and the outputs (one score per student,
realised target shares, pots adding up, no negative amounts). Spark first reduces each
rule to a small frame of counts, sums or shares per year, pot or output row (never one
row per student), which is collected once; GE suites then run on it with the pandas
engine, through one ephemeral GE context per process. So a gate costs one Spark query
per frame, however many expectations it has.

Results keep names, rules and counts only. GE runs with result format BASIC and
`partial_unexpected_count` 0, so it keeps no unexpected values, and the messages of
expectations GE could not evaluate are never kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache, reduce
from operator import or_
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.data_context.types.base import ProgressBarsConfig
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from onderwijsscore.assignment import AssignmentRules, vestiging_swv
from onderwijsscore.contract import CONTRACT
from onderwijsscore.errors import ConfigFileError, PipelineError
from onderwijsscore.scores import ScoringRules, in_wsnp_window, with_teldatum
from onderwijsscore.vocabulary import ASYLUM_SOURCE, PARENT_ROLES, SCORE_SOURCES

# Tables of dated rows, not years: the rows that count for a teldatum year (`_rows_per_year`).
DATED_TABLES = ("wsnp", "asylum")
SEVERITIES = ("warn", "stop")
# Counts only: GE keeps no unexpected values.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
NON_NEGATIVE_BUDGET_COLUMNS = ("lwoo_se", "lwoo_iq", "regional", "pro", "total")


@dataclass(frozen=True)
class Share:
    """A per-year share of population students that must lie within configured bounds."""

    table: str  # the input table a broken extract of which moves the share
    column: str
    students: str  # completes "share of population students ..."


SHARES = {
    "unknown_parent_education": Share(
        "education", "education_level", "with a parent in the register whose education is unknown"
    ),
    "not_in_register": Share("persons", "person_id", "who, or one of whose parents, is not in the register"),
    "asylum": Share("asylum", "registration_date", "on the asylum path"),
}


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result: names, the rule and a count, never a row value."""

    gate: str  # input | output
    table: str
    columns: tuple[str, ...]
    expectation: str  # GE expectation type
    rule: str
    unit: str  # what unexpected_count counts
    success: bool
    unexpected_count: int | None  # None: GE could not evaluate the expectation
    severity: str = "stop"  # stop: a failure stops the run | warn: a failure is a warning in export/runs

    def __str__(self) -> str:
        found = self.unexpected_count
        count = "not evaluated, see the driver log" if found is None else f"{found} {self.unit}"
        columns = ", ".join(self.columns)
        return f"{self.gate} table {self.table}, column {columns}: {self.rule} ({count}) [{self.expectation}]"

    def as_warning(self) -> dict[str, Any]:
        """For `export/runs.warnings`: names, rule and count, like the failure message."""
        return {
            "rule": self.rule,
            "band": self.severity,
            "table": self.table,
            "columns": list(self.columns),
            "count": self.unexpected_count,
            "unit": self.unit,
        }


@dataclass(frozen=True)
class GateReport:
    outcomes: tuple[ExpectationOutcome, ...] = ()

    @property
    def success(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """Failed expectations that stop the run."""
        return tuple(outcome for outcome in self.outcomes if not outcome.success and outcome.severity == "stop")

    @property
    def warnings(self) -> tuple[ExpectationOutcome, ...]:
        """Failed expectations of a warning band: recorded and logged, the run goes on."""
        return tuple(outcome for outcome in self.outcomes if not outcome.success and outcome.severity == "warn")

    def __add__(self, other: GateReport) -> GateReport:
        return GateReport(self.outcomes + other.outcomes)

    def to_dict(self) -> dict[str, Any]:
        """For the run record (`export/runs.data_quality`)."""
        return {"success": self.success, "expectations": [asdict(outcome) for outcome in self.outcomes]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class QualityGateError(PipelineError):
    """Failed expectations; the message names gate, table, column, rule and count."""

    def __init__(self, failures: tuple[ExpectationOutcome, ...]):
        self.failures = failures
        lines = "\n".join(f"  - {failure}" for failure in failures)
        super().__init__(f"data-quality gates failed ({len(failures)} expectations):\n{lines}")


def raise_if_failed(report: GateReport) -> None:
    if report.failures:
        raise QualityGateError(report.failures)


@dataclass(frozen=True)
class QualityRules:
    """conf/quality.yaml, plus the rules of other files the gates must agree with."""

    tables_with_every_year: tuple[str, ...]
    asylum_recent_months: int
    share_population_models: tuple[str, ...]
    share_bands: dict[str, dict[str, tuple[float, float]]]  # share -> severity (warn, stop) -> (min, max)
    tie_warning_bands: dict[str, float]  # band -> realised_share above target_share, in points; ascending

    @classmethod
    def from_yaml(cls, raw: dict, file: str, model_names: set[str]) -> QualityRules:
        """conf/quality.yaml, checked against the model files (`model_names`)."""
        inputs = raw["input"]
        yearly_tables = [name for name, table in CONTRACT.items() if "year" in {c.name for c in table.columns}]
        yearly_tables += list(DATED_TABLES)
        tables_with_every_year = tuple(inputs["tables_with_every_year"])
        if not tables_with_every_year or not set(tables_with_every_year) <= set(yearly_tables):
            raise ConfigFileError(file, "input.tables_with_every_year", f"must be some of {yearly_tables}")
        recent = inputs["asylum_recent_months"]
        if isinstance(recent, bool) or not isinstance(recent, int) or recent < 1:
            raise ConfigFileError(file, "input.asylum_recent_months", "must be a whole number of months >= 1")
        models = tuple(inputs["share_population_models"])
        if not models or not set(models) <= model_names:
            raise ConfigFileError(file, "input.share_population_models", "must name model files of conf/models/")
        share_bands = _share_bands(inputs["share_bands"], file)
        bands = raw["output"]["tie_warning_bands"]
        if (
            not isinstance(bands, dict)
            or not bands
            or not all(
                isinstance(points, int | float) and not isinstance(points, bool) and points > 0
                for points in bands.values()
            )
        ):
            raise ConfigFileError(file, "output.tie_warning_bands", "must map band names to points > 0")
        return cls(
            tables_with_every_year=tables_with_every_year,
            asylum_recent_months=recent,
            share_population_models=models,
            share_bands=share_bands,
            tie_warning_bands=dict(
                sorted(((name, float(points)) for name, points in bands.items()), key=lambda b: b[1])
            ),
        )


def _share_bands(raw: Any, file: str) -> dict[str, dict[str, tuple[float, float]]]:
    """Each share's warning band lies within its stop band, both within [0, 1]."""
    problem = f"needs {list(SHARES)}, each {{warn: {{min, max}}, stop: {{min, max}}}}, 0 <= stop.min <= warn.min"
    problem += " <= warn.max <= stop.max <= 1"
    try:
        bands = {
            name: {severity: (float(band[severity]["min"]), float(band[severity]["max"])) for severity in SEVERITIES}
            for name, band in raw.items()
        }
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ConfigFileError(file, "input.share_bands", problem) from None
    nested = all(0 <= b["stop"][0] <= b["warn"][0] <= b["warn"][1] <= b["stop"][1] <= 1 for b in bands.values())
    if set(bands) != set(SHARES) or not nested:
        raise ConfigFileError(file, "input.share_bands", problem)
    return bands


# ---------------------------------------------------------------------------------------
# Running suites


@dataclass(frozen=True)
class _Check:
    """An expectation with the names and rule its outcome is reported under."""

    table: str
    columns: tuple[str, ...]
    rule: str
    unit: str
    expectation: gxe.Expectation
    severity: str = "stop"


@cache
def _whole_frame_batches() -> BatchDefinition:
    """The process's one GE context: an ephemeral one, quiet, with one pandas data source."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("pipeline_frames")
    return source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole_frame")


def _collected(frame: DataFrame) -> pd.DataFrame:
    """A small Spark frame (counts, sums, output rows per unit) on the driver; decimals
    arrive as exact Python decimals."""
    return frame.toArrow().to_pandas()


def _validate(gate: str, frame: pd.DataFrame, checks: list[_Check]) -> GateReport:
    if not checks:
        return GateReport()
    # meta carries each check's index: GE returns results in its own order.
    suite = gx.ExpectationSuite(
        name=f"{gate}.{checks[0].table}",
        expectations=[check.expectation.copy(update={"meta": {"check": i}}) for i, check in enumerate(checks)],
    )
    batch = _whole_frame_batches().get_batch(batch_parameters={"dataframe": frame})
    outcomes = [None] * len(checks)
    for result in batch.validate(suite, result_format=RESULT_FORMAT).results:
        index = result.expectation_config.meta["check"]
        check = checks[index]
        outcomes[index] = ExpectationOutcome(
            gate=gate,
            table=check.table,
            columns=check.columns,
            expectation=result.expectation_config.type,
            rule=check.rule,
            unit=check.unit,
            success=bool(result.success),
            unexpected_count=_count(result.result),
            severity=check.severity,
        )
    return GateReport(tuple(outcomes))


def _count(result: dict[str, Any]) -> int | None:
    """Rows (or years, pots) breaking a row-level rule, or the checked sum of an aggregate one."""
    found = result.get("unexpected_count", result.get("observed_value"))
    return None if found is None else int(found)


def _zero_sum(table: str, columns: tuple[str, ...], rule: str, unit: str, column: str) -> _Check:
    """A rule counted in Spark: the summed count in `column` must be 0."""
    return _Check(table, columns, rule, unit, gxe.ExpectColumnSumToBeBetween(column=column, min_value=0, max_value=0))


# ---------------------------------------------------------------------------------------
# Input gates


def check_inputs(
    frames: Mapping[str, DataFrame],
    facts: DataFrame,
    rules: QualityRules,
    scoring_rules: ScoringRules,
    assignment_rules: AssignmentRules,
    years: list[int],
) -> GateReport:
    """Gate the contract's typed input frames (`Inputs.frames`) for the requested teldatum
    years, with the population shares measured on the scoring's `student_facts`.

    Per requested year: the configured tables have rows, the lwoo budget is there, every
    enrolment's school and every vestiging's SWV exist, and the population shares lie
    within their stop bands (outside a warning band: a warning). One Spark query gives
    every count.
    """
    per_year = _per_requested_year(frames, facts, rules, scoring_rules, assignment_rules, years)
    return _validate("input", _collected(per_year), _per_year_checks(rules))


# The columns that place a row of a table in a teldatum year.
_YEAR_COLUMNS = {"wsnp": ("start_date", "end_date"), "asylum": ("registration_date",)}


def _no_rows_rule(table: str, rules: QualityRules) -> str:
    if table == "wsnp":
        return "no WSNP period overlapping a requested teldatum year's WSNP window"
    if table == "asylum":
        return f"no registration in the {rules.asylum_recent_months} months up to a requested teldatum"
    return "no rows for a requested teldatum year"


def _per_year_checks(rules: QualityRules) -> list[_Check]:
    checks = [
        _Check(
            table,
            _YEAR_COLUMNS.get(table, ("year",)),
            _no_rows_rule(table, rules),
            "years",
            gxe.ExpectColumnValuesToBeBetween(column=f"{table}_rows", min_value=1),
        )
        for table in rules.tables_with_every_year
    ]
    checks.append(
        _Check(
            "budgets",
            ("lwoo_budget",),
            "no lwoo_budget for a requested teldatum year",
            "years",
            gxe.ExpectColumnValuesToNotBeNull(column="lwoo_budget"),
        )
    )
    checks += [
        _zero_sum(
            "enrolment",
            ("school_id",),
            "no schools row for the enrolment's (year, school_id)",
            "rows",
            "enrolment_without_school",
        ),
        _zero_sum(
            "schools",
            ("rsvo", "swv_override", "postcode"),
            "SWV undeterminable: vestiging not rsvo, without swv_override, postcode not in swv_postcodes",
            "vestigingen",
            "vestigingen_without_swv",
        ),
    ]
    for name, bands in rules.share_bands.items():
        share = SHARES[name]
        checks += [
            _Check(
                share.table,
                (share.column,),
                f"share of population students {share.students} outside [{low}, {high}]",
                "years",
                gxe.ExpectColumnValuesToBeBetween(column=f"share_{name}", min_value=low, max_value=high),
                severity,
            )
            for severity, (low, high) in bands.items()
        ]
    return checks


def _per_requested_year(
    frames: Mapping[str, DataFrame],
    facts: DataFrame,
    rules: QualityRules,
    scoring_rules: ScoringRules,
    assignment_rules: AssignmentRules,
    years: list[int],
) -> DataFrame:
    """One row per requested year: counts, budgets and shares; no ids."""
    in_years = F.col("year").isin(*years)
    tables = rules.tables_with_every_year
    requested = frames["enrolment"].sparkSession.range(1).select(F.explode(F.array(*map(F.lit, years))).alias("year"))
    # One aggregation counts the rows of every table.
    tagged = [
        _rows_of_years(frames[table], table, requested, rules, scoring_rules).select(
            "year", F.lit(table).alias("table")
        )
        for table in tables
    ]
    rows_per_year = (
        reduce(DataFrame.unionByName, tagged)
        .groupBy("year")
        .pivot("table", list(tables))
        .count()
        .select("year", *[F.col(table).alias(f"{table}_rows") for table in tables])
    )
    counts = [
        rows_per_year,
        _enrolment_without_school(frames["enrolment"].where(in_years), frames["schools"]),
        _vestigingen_without_swv(frames["schools"].where(in_years), frames["swv_postcodes"], assignment_rules),
    ]
    with_counts = reduce(lambda left, right: left.join(right, "year", "left"), counts, requested)
    count_columns = [column for frame in counts for column in frame.columns if column != "year"]
    return (
        with_counts.fillna(0, count_columns)
        .join(frames["budgets"].select("year", "lwoo_budget"), "year", "left")
        .join(_population_shares(facts, rules), "year", "left")
        .orderBy("year")
    )


def _rows_of_years(
    table: DataFrame, name: str, requested: DataFrame, rules: QualityRules, scoring_rules: ScoringRules
) -> DataFrame:
    """The rows of an input table that count for each requested teldatum year, with `year`.

    A WSNP period counts when it overlaps the year's WSNP window (the score's rule), an
    asylum registration when it lies in the configured months up to the teldatum: the
    asylum rule's window reaches back years, so only recent registrations show a truncated
    extract.
    """
    if name not in DATED_TABLES:
        return table.join(F.broadcast(requested), "year")
    years = F.broadcast(with_teldatum(requested, scoring_rules))
    if name == "wsnp":
        return table.crossJoin(years).where(in_wsnp_window(F.col("start_date"), F.col("end_date"), scoring_rules))
    recent = F.col("registration_date") > F.add_months(F.col("teldatum"), -rules.asylum_recent_months)
    return table.crossJoin(years).where(recent & (F.col("registration_date") <= F.col("teldatum")))


def _enrolment_without_school(enrolment: DataFrame, schools: DataFrame) -> DataFrame:
    listed = schools.select("year", "school_id", F.lit(True).alias("listed"))
    return (
        enrolment.join(F.broadcast(listed), ["year", "school_id"], "left")
        .groupBy("year")
        .agg(F.count_if(F.col("listed").isNull()).alias("enrolment_without_school"))
    )


def _vestigingen_without_swv(
    schools: DataFrame, swv_postcodes: DataFrame, assignment_rules: AssignmentRules
) -> DataFrame:
    """Vestigingen whose SWV `assignment.vestiging_swv` cannot determine."""
    return (
        vestiging_swv(schools, swv_postcodes, assignment_rules)
        .where(F.col("swv_school").isNull())
        .groupBy("year")
        .agg(F.count(F.lit(1)).alias("vestigingen_without_swv"))
    )


def _population_shares(facts: DataFrame, rules: QualityRules) -> DataFrame:
    """Per year: the population students of the configured models (each student once)
    and the share of each kind of SHARES, from the scoring's register facts."""
    parents_registered = F.col("father_in_register") & F.col("mother_in_register")
    unknown_education = reduce(
        or_, [F.col(f"{role}_in_register") & F.col(f"{role}_education_observed").isNull() for role in PARENT_ROLES]
    )
    per_student = (
        facts.where(F.col("model").isin(*rules.share_population_models))
        .groupBy("year", "student_id")
        .agg(
            F.bool_or(~(F.col("student_in_register") & parents_registered)).alias("not_in_register"),
            F.bool_or(unknown_education).alias("unknown_parent_education"),
            F.bool_or("is_asylum").alias("asylum"),
        )
    )
    return per_student.groupBy("year").agg(
        F.count(F.lit(1)).alias("population_students"),
        *[F.avg(F.col(kind).cast("double")).alias(f"share_{kind}") for kind in SHARES],
    )


# ---------------------------------------------------------------------------------------
# Output gates


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
    return _validate(
        "output",
        _collected(counts),
        [
            _zero_sum(table, key, "key not unique (rows sharing a key)", "rows", "shared_key"),
            _zero_sum(
                table, ("score",), f"score is null while score_source is not {ASYLUM_SOURCE}", "rows", "no_score"
            ),
            _zero_sum(table, ("score_source",), "score_source is null", "rows", "no_source"),
            _zero_sum(table, ("score_source",), f"score_source not in {list(SCORE_SOURCES)}", "rows", "unknown_source"),
        ],
    )


def check_cutoffs(cutoffs: DataFrame) -> GateReport:
    """`export/cutoffs`: realised_share >= target_share (ties may push it above: see
    `tie_warnings`)."""
    return _validate(
        "output",
        _collected(cutoffs.select("realised_share", "target_share")),
        [
            _Check(
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
        _Check(
            "budgets",
            (column,),
            "negative amount",
            "rows",
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0),
        )
        for column in NON_NEGATIVE_BUDGET_COLUMNS
    ]
    pots = budgets.groupBy("year", "scenario").agg((F.sum("lwoo_se") + F.sum("lwoo_iq")).alias("paid"))
    pot_sums = _Check(
        "budgets",
        ("lwoo_se", "lwoo_iq"),
        "lwoo_se + lwoo_iq of a (year, scenario) differ from the year's budgets.lwoo_budget",
        "pots",
        gxe.ExpectColumnPairValuesToBeEqual(column_A="paid", column_B="lwoo_budget"),
    )
    return _validate("output", _collected(budgets.select(*NON_NEGATIVE_BUDGET_COLUMNS)), amounts) + _validate(
        "output", _collected(pots.join(national_budgets.select("year", "lwoo_budget"), "year", "left")), [pot_sums]
    )


def check_pro_amounts(pro_amounts: DataFrame, national_budgets: DataFrame) -> GateReport:
    """`export/pro_amounts`: no negative amount, and per (funding year, scenario) the amounts
    add up to the year's pro budget to the cent."""
    amounts = _Check(
        "pro_amounts",
        ("amount",),
        "negative amount",
        "rows",
        gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
    )
    pots = pro_amounts.groupBy("year", "scenario").agg(F.sum("amount").alias("paid"))
    budget = national_budgets.select("year", F.col("pro_onderwijskansen_budget").alias("budget"))
    pot_sums = _Check(
        "pro_amounts",
        ("amount",),
        "amounts of a (funding year, scenario) differ from the year's budgets.pro_onderwijskansen_budget",
        "pots",
        gxe.ExpectColumnPairValuesToBeEqual(column_A="paid", column_B="budget"),
    )
    return _validate("output", _collected(pro_amounts.select("amount")), [amounts]) + _validate(
        "output", _collected(pots.join(budget, "year", "left")), [pot_sums]
    )
