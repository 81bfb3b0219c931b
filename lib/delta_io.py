"""Delta writing shared by every job: partitioned slices replaced with `replaceWhere`.

A slice is the set of partition values a run writes (e.g. years × scenarios). Writing
it replaces exactly those partitions, so a rerun is idempotent and other slices are
untouched. Tables stay readable by delta-rs: deletion vectors are off (session default
in conf/spark.yaml), no column mapping, and timestamps are written as TIMESTAMP (LTZ).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

READER_SAFE_PROPERTIES = {
    "delta.enableDeletionVectors": "false",
    "delta.columnMapping.mode": "none",
}


def _literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool | int):
        return str(value).lower() if isinstance(value, bool) else str(value)
    raise TypeError(f"unsupported partition value type {type(value).__name__}")


def slice_predicate(slice_values: Mapping[str, Sequence[object]]) -> str:
    """`year IN (2019, 2020) AND scenario IN ('a', 'b')` for the partitions being written."""
    if not slice_values or any(len(values) == 0 for values in slice_values.values()):
        raise ValueError("a slice needs at least one value for every partition column")
    return " AND ".join(
        f"`{column}` IN ({', '.join(_literal(v) for v in sorted(set(values)))})"
        for column, values in slice_values.items()
    )


def _check_reader_safe(df: DataFrame, table: str) -> None:
    ntz = [f.name for f in df.schema.fields if isinstance(f.dataType, T.TimestampNTZType)]
    if ntz:
        raise TypeError(f"table {table}: TIMESTAMP_NTZ columns {ntz} are not readable by every Delta reader")


@dataclass(frozen=True)
class Commit:
    version: int
    rows: int  # rows written, from the commit's metrics


def write_slice(df: DataFrame, path: str | Path, slice_values: Mapping[str, Sequence[object]], run_id: str) -> Commit:
    """Replace the slice `slice_values` of the Delta table at `path` with `df`.

    The partition columns are the slice's keys, in order. Delta checks that every row
    of `df` lies inside the slice, so a bug cannot overwrite a neighbouring slice. Rows
    are grouped by partition first, so each partition gets one file.
    """
    path = str(path)
    _check_reader_safe(df, path)
    writer = (
        df.repartition(*slice_values.keys())
        .write.format("delta")
        .mode("overwrite")
        .partitionBy(*slice_values.keys())
        .option("replaceWhere", slice_predicate(slice_values))
        .option("mergeSchema", "true")  # a release that adds a column writes over older tables
        .option("userMetadata", run_id)  # recovery undoes only commits of the run it recovers
    )
    for key, value in READER_SAFE_PROPERTIES.items():
        writer = writer.option(key, value)
    writer.save(path)
    last = DeltaTable.forPath(df.sparkSession, path).history(1).select("version", "operationMetrics").first()
    return Commit(last.version, int(last.operationMetrics.get("numOutputRows", 0)))


def append(df: DataFrame, path: str | Path, run_id: str) -> int:
    """Append rows to an unpartitioned Delta table (the run record); return the new version.
    New nullable columns are added to the table (a run record of an older release)."""
    path = str(path)
    _check_reader_safe(df, path)
    writer = df.write.format("delta").mode("append").option("mergeSchema", "true").option("userMetadata", run_id)
    for key, value in READER_SAFE_PROPERTIES.items():
        writer = writer.option(key, value)
    writer.save(path)
    return table_version(df.sparkSession, path)


def table_version(spark: SparkSession, path: str | Path) -> int:
    return DeltaTable.forPath(spark, str(path)).history(1).select("version").first()[0]


def existing_version(spark: SparkSession, path: str | Path) -> int | None:
    """The table's current version, or None when there is no table yet."""
    return table_version(spark, path) if DeltaTable.isDeltaTable(spark, str(path)) else None


def commits_after(spark: SparkSession, path: str | Path, version: int | None) -> list[tuple[int, str | None]]:
    """(version, user metadata) of the table's commits after `version` (None: all of them)."""
    if not DeltaTable.isDeltaTable(spark, str(path)):
        return []
    history = DeltaTable.forPath(spark, str(path)).history().select("version", "userMetadata")
    if version is not None:
        history = history.where(history.version > version)
    return sorted((row.version, row.userMetadata) for row in history.collect())


def restore(spark: SparkSession, path: str | Path, version: int | None) -> None:
    """Put a table back at `version`; None means it did not exist, so it is removed."""
    if version is None:
        shutil.rmtree(path, ignore_errors=True)
    elif existing_version(spark, path) != version:
        DeltaTable.forPath(spark, str(path)).restoreToVersion(version)


def read_table(spark: SparkSession, path: str | Path) -> DataFrame:
    return spark.read.format("delta").load(str(path))
