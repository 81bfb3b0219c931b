"""Delta writing shared by every job: partitioned slices replaced with `replaceWhere`.

A slice is the set of partition values a run writes (e.g. years × scenarios). Writing
it replaces exactly those partitions, so a rerun is idempotent and other slices are
untouched. Tables stay readable by delta-rs: deletion vectors are off (session default
in conf/spark.yaml), no column mapping, and timestamps are written as TIMESTAMP (LTZ).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from onderwijsscore.errors import PipelineError

_DELTA_LOG = "_delta_log"
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


def write_slice(
    df: DataFrame, path: str | Path, slice_values: Mapping[str, Sequence[object]], run_id: str, one_task: bool = False
) -> Commit:
    """Replace the slice `slice_values` of the Delta table at `path` with `df`.

    The partition columns are the slice's keys, in order. Delta checks that every row
    of `df` lies inside the slice, so a bug cannot overwrite a neighbouring slice. Each
    partition gets one file: rows are grouped by partition first, or, for a small frame
    (`one_task`), all written by one task, which needs no shuffle.
    """
    path = str(path)
    _check_reader_safe(df, path)
    grouped = df.coalesce(1) if one_task else df.repartition(*slice_values.keys())
    writer = (
        grouped.write.format("delta")
        .mode("overwrite")
        .partitionBy(*slice_values.keys())
        .option("replaceWhere", slice_predicate(slice_values))
        .option("mergeSchema", "true")  # a release that adds a column writes over older tables
        .option("userMetadata", run_id)  # recovery undoes only commits of the run it recovers
    )
    for key, value in READER_SAFE_PROPERTIES.items():
        writer = writer.option(key, value)
    writer.save(path)
    version = existing_version(df.sparkSession, path)
    info = _commit_info(df.sparkSession, path, version)
    if info.get("userMetadata") != run_id:  # the output root's lease should make this impossible
        raise PipelineError(f"table {path}: version {version} is not this run's write; another writer committed")
    return Commit(version, int(info.get("operationMetrics", {}).get("numOutputRows", 0)))


def append(df: DataFrame, path: str | Path, run_id: str) -> None:
    """Append rows to an unpartitioned Delta table (the run record).
    New nullable columns are added to the table (a run record of an older release)."""
    path = str(path)
    _check_reader_safe(df, path)
    writer = df.write.format("delta").mode("append").option("mergeSchema", "true").option("userMetadata", run_id)
    for key, value in READER_SAFE_PROPERTIES.items():
        writer = writer.option(key, value)
    writer.save(path)


# The version and commit metrics are read from the table's log on the driver, with
# Hadoop's file system (local, HDFS, object stores alike): DeltaTable.history costs a
# Spark job per call. The layout is Delta's protocol: `_delta_log/<version>.json`, the
# version written with 20 digits, one JSON action per line, `commitInfo` among them.


def _log_files(spark: SparkSession, path: str | Path):
    log_dir = getattr(spark._jvm, "org.apache.hadoop.fs.Path")(f"{path}/{_DELTA_LOG}")
    return log_dir.getFileSystem(spark._jsc.hadoopConfiguration()), log_dir


def _versions(spark: SparkSession, path: str | Path) -> list[int]:
    """The versions of the table's commit files, ascending; empty when there is no table."""
    fs, log_dir = _log_files(spark, path)
    if not fs.exists(log_dir):
        return []
    pattern = getattr(spark._jvm, "org.apache.hadoop.fs.Path")(log_dir, "*.json")
    return sorted(int(status.getPath().getName().split(".")[0]) for status in fs.globStatus(pattern) or [])


def existing_version(spark: SparkSession, path: str | Path) -> int | None:
    """The table's current version (its newest commit), or None when there is no table yet."""
    return max(_versions(spark, path), default=None)


def _commit_info(spark: SparkSession, path: str | Path, version: int) -> dict:
    fs, log_dir = _log_files(spark, path)
    stream = fs.open(getattr(spark._jvm, "org.apache.hadoop.fs.Path")(log_dir, f"{version:020d}.json"))
    try:
        text = getattr(spark._jvm, "org.apache.commons.io.IOUtils").toString(stream, "UTF-8")
    finally:
        stream.close()
    actions = (json.loads(line) for line in text.splitlines() if line.strip())
    return next((action["commitInfo"] for action in actions if "commitInfo" in action), {})


def commits_after(spark: SparkSession, path: str | Path, version: int | None) -> list[tuple[int, str | None]]:
    """(version, user metadata) of the table's commits after `version` (None: all of them)."""
    return [
        (later, _commit_info(spark, path, later).get("userMetadata"))
        for later in _versions(spark, path)
        if version is None or later > version
    ]


def restore(spark: SparkSession, path: str | Path, version: int | None) -> None:
    """Put a table back at `version`; None means it did not exist, so it is removed."""
    if version is None:
        shutil.rmtree(path, ignore_errors=True)
    elif existing_version(spark, path) != version:
        DeltaTable.forPath(spark, str(path)).restoreToVersion(version)


def read_table(spark: SparkSession, path: str | Path) -> DataFrame:
    return spark.read.format("delta").load(str(path))
