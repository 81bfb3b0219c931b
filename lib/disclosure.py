"""Disclosure control for what leaves the secure environment (domain.md §8).

A cell built on at least one and fewer than `min_students` students is suppressed
(primary). A set of cells whose sum is published — a row or column of a cross-table, the
categories of one characteristic, the drivers of one change — must then not have exactly
one suppressed cell, or the total would give it away: while a line has exactly one, its
smallest other cell is suppressed as well (secondary). Suppressed cells are null, with
`suppressed = true`, never a small number. Only counts of cells reach the run record.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lib.runtime import Config, materialize

STUDENTS = "n_students"  # the column every checked frame carries: students behind the cell


@dataclass(frozen=True)
class TableRule:
    cells: tuple[str, ...]  # value columns nulled when the cell is suppressed
    lines: tuple[tuple[str, ...], ...]  # key columns of each set of cells with a published sum


@dataclass(frozen=True)
class DisclosureRules:
    min_students: int
    tables: dict[str, TableRule]
    allocation_tables: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Config) -> DisclosureRules:
        raw = config["disclosure"]
        return cls(
            min_students=int(raw["min_students"]),
            tables={
                name: TableRule(tuple(spec["cells"]), tuple(tuple(line) for line in spec["lines"]))
                for name, spec in raw["suppressed_tables"].items()
            },
            allocation_tables=tuple(raw["allocation_tables"]),
        )

    def is_small(self, students: Column) -> Column:
        return (students > 0) & (students < self.min_students)


def suppress(frame: DataFrame, table: str, rules: DisclosureRules, cell_key: list[str]) -> tuple[DataFrame, dict]:
    """`frame` with `suppressed` and the table's cells nulled where suppressed, without
    `n_students` unless it is a cell; and the check's outcome (cell counts only) for the run record.

    `cell_key` orders the cells of a line, so the secondary choice is deterministic. Runs a
    few small Spark jobs: one per round of secondary suppression (usually none or one).
    """
    rule = rules.tables[table]
    students = F.col(STUDENTS)
    checked = frame.withColumn("primary", rules.is_small(students)).withColumn("suppressed", F.col("primary"))
    checked = materialize(checked)
    n_suppressed = checked.where("suppressed").count()
    while rule.lines:
        for line in rule.lines:
            checked = checked.withColumn("suppressed", F.col("suppressed") | _lone_complement(line, cell_key))
        checked = materialize(checked)
        n_before, n_suppressed = n_suppressed, checked.where("suppressed").count()
        if n_suppressed == n_before:
            break
    outcome = checked.agg(
        F.count(F.lit(1)).alias("cells"),
        F.count_if("primary").alias("primary"),
        F.count_if(F.col("suppressed") & ~F.col("primary")).alias("secondary"),
    ).first()
    published = checked.withColumns({c: F.when(~F.col("suppressed"), F.col(c)) for c in rule.cells}).drop(
        "primary", *([] if STUDENTS in rule.cells else [STUDENTS])
    )
    return published, {"min_students": rules.min_students, **outcome.asDict()}


def _lone_complement(line: tuple[str, ...], cell_key: list[str]) -> Column:
    """True for the cell to suppress next in a line with exactly one suppressed cell: the
    smallest other cell on at least one student (an empty one only when nothing else is left)."""
    cells = Window.partitionBy(*line)
    smallest_first = cells.orderBy(F.col("suppressed"), F.col(STUDENTS) == 0, F.col(STUDENTS), *cell_key)
    lone = F.sum(F.col("suppressed").cast("int")).over(cells) == 1
    return lone & ~F.col("suppressed") & (F.row_number().over(smallest_first) == 1)
