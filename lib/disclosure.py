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

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from lib.errors import PipelineError
from lib.runtime import Config

MIN_STUDENTS_FLOOR = 5  # no configuration may publish cells of fewer students

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
        if int(raw["min_students"]) < MIN_STUDENTS_FLOOR:
            raise PipelineError(
                f"conf/disclosure.yaml min_students: at least {MIN_STUDENTS_FLOOR} (a cell of fewer students "
                "singles them out)"
            )
        return cls(
            min_students=int(raw["min_students"]),
            tables={
                name: TableRule(tuple(spec["cells"]), tuple(tuple(line) for line in spec["lines"]))
                for name, spec in raw["suppressed_tables"].items()
            },
            allocation_tables=tuple(raw["allocation_tables"]),
        )

    def is_small_count(self, students: int) -> bool:
        return 0 < students < self.min_students


def suppress(frame: DataFrame, table: str, rules: DisclosureRules, cell_key: list[str]) -> tuple[DataFrame, dict]:
    """`frame` with `suppressed` and the table's cells nulled where suppressed, without
    `n_students` unless it is a cell; and the check's outcome (cell counts only) for the run record.

    `cell_key` orders the cells of a line, so the secondary choice is deterministic. The
    cells (bounded by units, scenarios and categories, not by students) are collected once
    and checked on the driver; the published frame is built from them.
    """
    rule = rules.tables[table]
    cells = frame.toArrow()
    students = cells.column(STUDENTS).to_pylist()
    primary = [n is not None and rules.is_small_count(n) for n in students]
    suppressed = list(primary)
    order = [_ascending(values) for values in zip(*[cells.column(c).to_pylist() for c in cell_key], strict=True)]
    lines = [_line_members(cells, line) for line in rule.lines]
    changed = bool(lines)
    while changed:
        before = sum(suppressed)
        for members in lines:
            # One line definition at a time, every line of it at once (as a window would).
            suppressed = _with_lone_complements(suppressed, members, students, order)
        changed = sum(suppressed) != before
    outcome = {
        "min_students": rules.min_students,
        "cells": len(students),
        "primary": sum(primary),
        "secondary": sum(s and not p for s, p in zip(suppressed, primary, strict=True)),
    }
    mask = pa.array(suppressed, pa.bool_())
    published = cells.append_column("suppressed", mask)
    for column in rule.cells:
        values = published.column(column)
        nulled = pc.if_else(mask, pa.nulls(len(mask), values.type), values)
        published = published.set_column(published.schema.get_field_index(column), column, nulled)
    if STUDENTS not in rule.cells:
        published = published.drop_columns([STUDENTS])
    schema = T.StructType(
        [field for field in frame.schema.fields if field.name in published.column_names]
        + [T.StructField("suppressed", T.BooleanType(), False)]
    )
    return frame.sparkSession.createDataFrame(published.select(schema.fieldNames()), schema), outcome


def _ascending(values: tuple) -> tuple:
    """A sort key ordering as Spark's ascending order does: nulls first."""
    return tuple((value is not None, value) for value in values)


def _line_members(cells: pa.Table, line: tuple[str, ...]) -> list[list[int]]:
    """The cell indices of each line: the cells sharing the line's key values."""
    members: dict[tuple, list[int]] = {}
    for index, key in enumerate(zip(*[cells.column(c).to_pylist() for c in line], strict=True)):
        members.setdefault(key, []).append(index)
    return list(members.values())


def _with_lone_complements(
    suppressed: list[bool], lines: list[list[int]], students: list[int], order: list[tuple]
) -> list[bool]:
    """In each line with exactly one suppressed cell, suppress its smallest other cell on
    at least one student (an empty one only when nothing else is left)."""
    updated = list(suppressed)
    for members in lines:
        if sum(suppressed[i] for i in members) != 1:
            continue
        others = [i for i in members if not suppressed[i]]
        if others:
            updated[min(others, key=lambda i: (students[i] == 0, students[i], order[i]))] = True
    return updated
