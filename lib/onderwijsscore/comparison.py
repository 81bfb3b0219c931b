"""Compare the published tables of two output roots row for row (e.g. the outputs of two
code versions on the same input and config): `jobs/compare_outputs.py`.

Every Delta table under `restricted/` and `export/` is compared as a multiset of rows,
without `run_id`; `export/runs` (one row per run: ids, times, versions) is left out.
Equal means every value equal: decimals (money to the cent, scores to the sixth
decimal) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from onderwijsscore.delta_io import read_table

RUN_SPECIFIC_TABLES = ("export/runs",)
RUN_SPECIFIC_COLUMNS = ("run_id",)


@dataclass(frozen=True)
class TableComparison:
    table: str
    rows: tuple[int | None, int | None]  # rows left and right (None: no such table)
    only_left: int  # rows of the left table that the right one lacks (counting duplicates)
    only_right: int
    ignored: tuple[str, ...] = ()  # columns left out

    @property
    def equal(self) -> bool:
        return None not in self.rows and self.only_left == self.only_right == 0

    def __str__(self) -> str:
        verdict = "equal" if self.equal else f"DIFFERENT: {self.only_left} rows only left, {self.only_right} only right"
        without = f" (without {', '.join(self.ignored)})" if self.ignored else ""
        return f"{self.table}: {self.rows[0]} / {self.rows[1]} rows, {verdict}{without}"


def delta_tables(root: Path) -> set[str]:
    """The tables under an output root, as `zone/table`."""
    return {str(log.parent.relative_to(root)) for log in root.glob("*/*/_delta_log")}


def compare_outputs(
    spark: SparkSession, left: Path, right: Path, ignored: dict[str, tuple[str, ...]] | None = None
) -> list[TableComparison]:
    """Every table of either root, compared; sorted by table. `ignored` leaves columns of a
    table out of the comparison (`zone/table` -> columns)."""
    tables = (delta_tables(left) | delta_tables(right)) - set(RUN_SPECIFIC_TABLES)
    results = []
    for table in sorted(tables):
        left_out = (ignored or {}).get(table, ())
        frames = []
        for root in (left, right):
            path = root / table
            exists = (path / "_delta_log").is_dir()
            frames.append(read_table(spark, path).drop(*RUN_SPECIFIC_COLUMNS, *left_out) if exists else None)
        if None in frames:
            rows = tuple(None if frame is None else frame.count() for frame in frames)
            results.append(TableComparison(table, rows, 0, 0, left_out))
            continue
        one, other = frames
        other = other.select(*one.columns)
        results.append(
            TableComparison(
                table,
                (one.count(), other.count()),
                one.exceptAll(other).count(),
                other.exceptAll(one).count(),
                left_out,
            )
        )
    return results
