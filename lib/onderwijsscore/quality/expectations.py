"""The great-expectations adapter: checks on a small collected frame, run as one suite
per gate through one ephemeral GE context per process, reported by names, rules and
counts only (result format BASIC, no unexpected values kept)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.data_context.types.base import ProgressBarsConfig
from pyspark.sql import DataFrame

from onderwijsscore.errors import PipelineError

# Counts only: GE keeps no unexpected values.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}


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
class Check:
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


def collected(frame: DataFrame) -> pd.DataFrame:
    """A small Spark frame (counts, sums, output rows per unit) on the driver; decimals
    arrive as exact Python decimals."""
    return frame.toArrow().to_pandas()


def validate(gate: str, frame: pd.DataFrame, checks: list[Check]) -> GateReport:
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


def zero_sum(table: str, columns: tuple[str, ...], rule: str, unit: str, column: str) -> Check:
    """A rule counted in Spark: the summed count in `column` must be 0."""
    return Check(table, columns, rule, unit, gxe.ExpectColumnSumToBeBetween(column=column, min_value=0, max_value=0))
