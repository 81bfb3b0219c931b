"""Readers of the published outputs: every table as of the last succeeded run.

A run publishes its tables one after the other; its `succeeded` row in `export/runs`,
written after the last table, is the commit point and records each table's new Delta
version (`lib/onderwijsscore/publication.py`). Reading each table at the version the succeeded runs
recorded (the latest run that wrote it) therefore never mixes two runs: a run still
publishing, or killed while publishing, is invisible until its succeeded row exists.

Two readers share that rule: Spark (`read_published`) and delta-rs with pyarrow
(`PublishedTables`, for the report and BI tools without Spark). Time travel to a
recorded version needs its files: keep `VACUUM` retention longer than the time between
runs (Delta's default is 7 days).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from pyarrow import fs
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from onderwijsscore.errors import PipelineError

RUNS_TABLE = "runs"


@dataclass(frozen=True)
class Snapshot:
    """What the last succeeded run left published."""

    run_id: str  # the last succeeded run
    ended_at: datetime
    versions: dict[str, int]  # "zone/table" -> Delta version

    @classmethod
    def from_runs(cls, runs: Iterable[Mapping[str, Any]]) -> Snapshot:
        """From `export/runs` rows (status, run_id, ended_at, delta_versions): each table
        at the version of the latest succeeded run that wrote it."""
        succeeded = sorted((row for row in runs if row["status"] == "succeeded"), key=lambda row: row["ended_at"])
        if not succeeded:
            raise PipelineError("no succeeded run in export/runs: nothing is published yet")
        versions: dict[str, int] = {}
        for row in succeeded:
            versions.update(dict(row["delta_versions"]))  # a map arrives as pairs from pyarrow
        last = succeeded[-1]
        return cls(last["run_id"], last["ended_at"], versions)

    def tables(self, zone: str) -> list[str]:
        return sorted(name.split("/", 1)[1] for name in self.versions if name.startswith(f"{zone}/"))

    def version(self, zone: str, table: str) -> int:
        name = f"{zone}/{table}"
        if name not in self.versions:
            raise PipelineError(f"no succeeded run published {name}")
        return self.versions[name]


def _runs_rows(spark: SparkSession, output_root: Path, zone: str) -> list[dict[str, Any]]:
    runs = spark.read.format("delta").load(str(output_root / zone / RUNS_TABLE))
    columns = ("run_id", "status", "ended_at", "delta_versions")
    # One row per run: small, whatever the number of students.
    return [row.asDict() for row in runs.where(F.col("status") == "succeeded").select(*columns).collect()]


def read_published(
    spark: SparkSession, output_root: str | Path, zone: str = "export"
) -> tuple[Snapshot, dict[str, DataFrame]]:
    """Every table of `zone` as of the last succeeded run, as Spark frames."""
    root = Path(output_root)
    snapshot = Snapshot.from_runs(_runs_rows(spark, root, zone))
    return snapshot, {table: _read_at(spark, root, zone, table, snapshot) for table in snapshot.tables(zone)}


def _read_at(spark: SparkSession, root: Path, zone: str, table: str, snapshot: Snapshot) -> DataFrame:
    """`zone/table` at the version `snapshot` publishes."""
    return (
        spark.read.format("delta").option("versionAsOf", snapshot.version(zone, table)).load(str(root / zone / table))
    )


def published_years(
    spark: SparkSession, output_root: str | Path, zone: str, tables: Iterable[str]
) -> dict[str, set[int]]:
    """The years published of each of `tables` as of the last succeeded run; empty when
    nothing is published yet. Reads partition values only."""
    root = Path(output_root)
    runs = root / zone / RUNS_TABLE
    if not (runs / "_delta_log").is_dir():
        return {}
    rows = _runs_rows(spark, root, zone)
    if not rows:
        return {}
    snapshot = Snapshot.from_runs(rows)
    return {
        table: {row.year for row in _read_at(spark, root, zone, table, snapshot).select("year").distinct().collect()}
        for table in tables
        if f"{zone}/{table}" in snapshot.versions
    }


class PublishedTables:
    """The tables of `zone` as of the last succeeded run when opened, read with delta-rs."""

    def __init__(self, output_root: str | Path, zone: str = "export"):
        self.root, self.zone = Path(output_root), zone
        self.snapshot = Snapshot.from_runs(read_arrow(self.root / zone / RUNS_TABLE).to_pylist())

    def read(self, table: str) -> pa.Table:
        return read_arrow(self.root / self.zone / table, self.snapshot.version(self.zone, table))


def read_arrow(path: Path, version: int | None = None) -> pa.Table:
    """A Delta table read by delta-rs, its files by pyarrow's own local file system.

    delta-rs's default reads the files through a file system written in Python; pyarrow
    may free those Python buffers on its I/O threads after the interpreter began to exit,
    which aborts the process (exit 134; apache/arrow#36389, #49942). A native file
    system keeps Python out of the reads.
    """
    table = DeltaTable(str(path), version=version)
    return table.to_pyarrow_table(filesystem=fs.SubTreeFileSystem(str(path.resolve()), fs.LocalFileSystem()))
