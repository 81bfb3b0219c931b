"""Disclosure control for what leaves the secure environment (domain.md §8).

A cell built on at least one and fewer than `min_students` students is suppressed
(primary). A set of cells whose sum is published — a row or column of a cross-table, the
categories of one characteristic, the drivers of one change — must then not have exactly
one suppressed cell, or the total would give it away: while a line has exactly one, its
smallest other cell is suppressed as well (secondary). Suppressed cells are null, with
`suppressed = true`, never a small number. Only counts of cells reach the run record.

Differences between published figures must not give a small count back either: one list
of protected families applies across tables (`protected_families`): a unit's, the
nation's or a category's nested target groups and population, whose bands of 1 to
`min_students` - 1 students withhold every target count and score of the family, in
`unit_scores`, `pro_amounts`, `cutoffs` and `profiles`; `budgets` and
`scenario_comparison` withhold what `regional` withholds. Money is published whole.
The reasoning and what remains: docs/disclosure.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import or_

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.errors import ConfigFileError

MIN_STUDENTS_FLOOR = 5  # no configuration may publish cells of fewer students

STUDENTS = "n_students"  # the column every checked frame carries: students behind the cell
PROTECTED = "protected"  # optional column of a checked frame: the cell's family is protected


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
    def from_yaml(cls, raw: dict, file: str) -> DisclosureRules:
        """conf/disclosure.yaml; a value out of range raises `ConfigFileError`."""
        if int(raw["min_students"]) < MIN_STUDENTS_FLOOR:
            raise ConfigFileError(
                file, "min_students", f"at least {MIN_STUDENTS_FLOOR} (a cell of fewer students singles them out)"
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
    if PROTECTED in cells.column_names:  # a cell of a protected family (`protected_families`)
        primary = [
            small or bool(family) for small, family in zip(primary, cells.column(PROTECTED).to_pylist(), strict=True)
        ]
        cells = cells.drop_columns([PROTECTED])
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


# --- one list of protected families, across tables --------------------------------------
#
# A family is what one unit (or the nation, or one category of a characteristic) counts:
# its population and its target groups at every share of one model and address
# principle. The target groups are nested by share, so published counts of a family
# differ by its bands: the students between two shares, and those above the largest.


def protected_families(counts: DataFrame, family: list[str], rules: DisclosureRules) -> DataFrame:
    """`family` columns and `protected`: true when a count of the family, or a band
    between two of them (target at one share minus target at the next smaller, population
    minus the largest target), holds 1 to `min_students` - 1 students.

    `counts` has the `family` columns, `target_share`, `n_target` and `n_population`
    (rows repeated per scenario are counted once)."""
    nested = Window.partitionBy(*family).orderBy("target_share")
    bands = (
        counts.select(*family, "target_share", "n_target", "n_population")
        .distinct()
        .withColumn("band", F.col("n_target") - F.coalesce(F.lag("n_target").over(nested), F.lit(0)))
    )
    small = F.col("band").between(1, rules.min_students - 1)
    per_family = bands.groupBy(*family).agg(
        F.bool_or(small).alias("small_band"),
        (F.max("n_population") - F.max("n_target")).alias("above_largest"),
        F.max("n_population").alias("n_population"),
    )
    return per_family.select(
        *family,
        (
            F.col("small_band")
            | F.col("above_largest").between(1, rules.min_students - 1)
            | F.col("n_population").between(1, rules.min_students - 1)
        ).alias("protected"),
    )


def with_family_protection(frame: DataFrame, protected: DataFrame, family: list[str]) -> DataFrame:
    """`frame` with `protected` (false where its family is not protected)."""
    return frame.join(F.broadcast(protected), family, "left").withColumn(
        PROTECTED, F.coalesce(F.col(PROTECTED), F.lit(False))
    )


def with_profile_protection(profiles: DataFrame, scenarios: DataFrame, rules: DisclosureRules) -> DataFrame:
    """`profiles` with `protected` on the target cells of protected families: one category
    of one characteristic, its population and its target groups at every share of a model."""
    family = ["year", "model", "characteristic", "category"]
    rows = profiles.join(F.broadcast(scenarios.select("scenario", "model", "target_share")), "scenario")
    population = (
        rows.where(F.col("group") == "population").select(*family, F.col(STUDENTS).alias("n_population")).distinct()
    )
    counts = rows.where(F.col("group") == "target").select(*family, "target_share", F.col(STUDENTS).alias("n_target"))
    protection = protected_families(counts.join(population, family), family, rules)
    return (
        with_family_protection(rows, protection, family)
        .withColumn(PROTECTED, F.col(PROTECTED) & (F.col("group") == "target"))
        .select(*profiles.columns, PROTECTED)
    )


def protect_allocations(
    tables: dict[str, DataFrame], scenarios: DataFrame, per_student_suppressed: DataFrame, rules: DisclosureRules
) -> dict[str, DataFrame]:
    """The allocation tables as published (`allocation_outcomes` counts what was withheld).

    Money stays whole: the regulation pays it. Null, with `suppressed` true: the target
    counts and scores (`n_target`, `gross_score`, `net_score`) of protected unit families
    and the national target counts of a protected model; a unit's population count (and
    its threshold, E x F x (C - G)) when it holds 1-9 students; and an SWV's `n_students`
    and `per_student` wherever `regional` suppressed its budget per student
    (`per_student_suppressed`: year, scenario, swv_id), or the total would give it back.
    `scenarios` is the scenario grid's frame (scenario -> model, principle, target_share).
    """
    grid = F.broadcast(scenarios.select("scenario", "model", "principle", "target_share"))
    unit_family = ["year", "model", "principle", "unit_type", "unit_id"]
    units = tables["unit_scores"].join(grid, "scenario")
    unit_protection = protected_families(units.withColumnRenamed("n_students", "n_population"), unit_family, rules)
    small_population = F.col("n_students").between(1, rules.min_students - 1)
    target_withheld = {column: F.col(PROTECTED) for column in ("n_target", "gross_score", "net_score")}
    unit_scores = _nulled(
        with_family_protection(units, unit_protection, unit_family),
        target_withheld | {"n_students": small_population, "threshold": small_population},
    )

    national_family = ["year", "model"]
    national = tables["cutoffs"].join(grid.select("scenario", "model"), "scenario")
    cutoffs = _nulled(
        with_family_protection(national, protected_families(national, national_family, rules), national_family),
        {"n_target": F.col(PROTECTED), "realised_share": F.col(PROTECTED)},  # share x n_population = n_target
    )

    paid_units = unit_scores.select(
        F.col("year").alias("teldatum_year"),
        "scenario",
        F.col("unit_id").alias("school_id"),
        F.col("suppressed").alias(PROTECTED),
    )
    pro_amounts = _nulled(
        tables["pro_amounts"].join(paid_units, ["teldatum_year", "scenario", "school_id"], "left"),
        {"net_score": F.col(PROTECTED)},  # the amount is paid; its net score is a score of the unit's students
    )
    per_student = per_student_suppressed.select("year", "scenario", "swv_id", F.lit(True).alias(PROTECTED))
    budgets = _nulled(
        tables["budgets"].join(per_student, ["year", "scenario", "swv_id"], "left"),
        {"n_students": F.col(PROTECTED), "per_student": F.col(PROTECTED)},  # total / per_student = n_students
    )
    return {
        table: frame.select(*tables[table].columns, "suppressed")
        for table, frame in {
            "unit_scores": unit_scores,
            "cutoffs": cutoffs,
            "pro_amounts": pro_amounts,
            "budgets": budgets,
        }.items()
    }


def allocation_outcomes(published: dict[str, DataFrame]) -> dict[str, dict]:
    """Each protected allocation table's outcome for the run record: rows, rows withheld."""
    counted = reduce(
        DataFrame.unionByName,
        [
            frame.agg(
                F.lit(table).alias("table"),
                F.count(F.lit(1)).alias("rows"),
                F.count_if("suppressed").alias("suppressed"),
            )
            for table, frame in published.items()
        ],
    )
    return {
        row.table: {"rows": row.rows, "suppressed_rows": row.suppressed, "reason": "allocation: money whole"}
        for row in counted.collect()
    }


def with_withheld_per_student(comparison: DataFrame, per_student_suppressed: DataFrame) -> DataFrame:
    """`scenario_comparison` with a side's `per_student` null wherever `regional` suppressed
    that (year, scenario, swv_id): the two tables publish the same figure."""
    cells = per_student_suppressed.select("year", "scenario", "swv_id", F.lit(True).alias("withheld"))

    def side(suffix: str) -> DataFrame:
        return cells.select(
            "year",
            F.col("scenario").alias(f"scenario_{suffix}"),
            "swv_id",
            F.col("withheld").alias(f"withheld_{suffix}"),
        )

    joined = comparison.join(side("a"), ["year", "scenario_a", "swv_id"], "left").join(
        side("b"), ["year", "scenario_b", "swv_id"], "left"
    )
    withheld = {suffix: F.coalesce(F.col(f"withheld_{suffix}"), F.lit(False)) for suffix in ("a", "b")}
    published = joined.withColumns(
        {
            "per_student_a": F.when(~withheld["a"], F.col("per_student_a")),
            "per_student_b": F.when(~withheld["b"], F.col("per_student_b")),
            "suppressed": F.col("suppressed") | withheld["a"] | withheld["b"],
        }
    )
    return published.select(*comparison.columns)


def _nulled(frame: DataFrame, withheld: dict[str, Column]) -> DataFrame:
    """`frame` with each column null where its condition holds, `suppressed` where any
    does, and without `protected`."""
    suppressed = F.coalesce(reduce(or_, withheld.values()), F.lit(False))
    return (
        frame.withColumn("suppressed", suppressed)
        .withColumns(
            {
                column: F.when(~F.coalesce(condition, F.lit(False)), F.col(column))
                for column, condition in withheld.items()
            }
        )
        .drop(PROTECTED)
    )
