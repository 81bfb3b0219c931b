"""Publishing a run's slices all together or not at all.

Delta commits are atomic per table, not across tables, so a run publishes in steps. The
run holds the output root's lease throughout (`onderwijsscore.lease`): no other run publishes or
recovers meanwhile.

1. *compute*: every output is computed and kept (`runtime.materialize`, or a small local
   frame) and every gate passes on exactly those frames. A run stopped here has changed
   no published table.
2. *publish*: a marker naming the run and each target table's current version is written
   atomically (a temporary file, fsync, rename) under `<output>/_staging/<run_id>/`;
   each slice is written into its table with `replaceWhere`, every commit tagged with
   the run id (Delta commit user metadata); then the run's `succeeded` row is appended
   to `export/runs` (the commit point), and only then is the marker removed.

A run killed while publishing leaves its marker behind. The next run first *recovers*:
if `export/runs` has the marked run's `succeeded` row, its publication was complete and
only the marker goes. Otherwise every table named in the marker is restored to the
version it had before (Delta RESTORE), after checking that every commit since that
version is the marked run's own: if another commit came in between (another run's slice,
an OPTIMIZE, a fix by hand), recovery stops and changes nothing. The recovered run gets a
`recovered` row in `export/runs`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from onderwijsscore import delta_io
from onderwijsscore.delta_io import Commit
from onderwijsscore.errors import PipelineError
from onderwijsscore.run_record import RunRecord
from onderwijsscore.runtime import concurrently, stage

log = logging.getLogger("onderwijsscore")

STAGING_DIR = "_staging"
MARKER = "_PUBLISHING.json"


@dataclass(frozen=True)
class Output:
    """One table slice a run produces: where it goes, which partitions, what."""

    zone: str
    table: str
    frame: DataFrame
    slice_values: dict[str, list]
    aggregate: bool = False  # bounded by units and scenarios, not students: written by one task

    @property
    def name(self) -> str:
        return f"{self.zone}/{self.table}"


def staging_root(output_root: Path, run_id: str) -> Path:
    return output_root / STAGING_DIR / run_id


def publish(
    outputs: list[Output],
    output_root: Path,
    record: RunRecord,
    commit_point: Callable[[dict[str, Commit]], None],
    concurrency: int = 1,
) -> dict[str, Commit]:
    """Write every output slice into its published table, up to `concurrency` at once,
    then call `commit_point` with each table's commit (version and rows written) before the
    marker goes: the run's `succeeded` row is written there."""
    root = staging_root(output_root, record.run_id)
    root.mkdir(parents=True, exist_ok=True)
    before = {
        output.name: delta_io.existing_version(output.frame.sparkSession, output_root / output.name)
        for output in outputs
    }
    marker = {
        "run_id": record.run_id,
        "started_at": record.started_at.isoformat(),
        "config_hash": record.config_hash,
        "input_fingerprint": record.input_fingerprint,
        "years": record.years,
        "versions_before": before,
    }
    _write_atomically(root / MARKER, json.dumps(marker))

    def write(output: Output) -> Commit:
        with stage(f"publish {output.name}") as counts:
            commit = delta_io.write_slice(
                output.frame, output_root / output.name, output.slice_values, record.run_id, one_task=output.aggregate
            )
            counts["rows"] = commit.rows
            return commit

    commits = dict(zip([o.name for o in outputs], concurrently(write, outputs, concurrency), strict=True))
    commit_point(commits)
    _remove_staging(output_root, record.run_id)
    return commits


def _write_atomically(path: Path, text: str) -> None:
    """`path` holds all of `text` or is absent: written to a temporary file, synced, renamed."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _remove_staging(output_root: Path, run_id: str) -> None:
    shutil.rmtree(staging_root(output_root, run_id), ignore_errors=True)
    with contextlib.suppress(OSError):  # the staging folder itself, once no run uses it
        (output_root / STAGING_DIR).rmdir()


def _read_marker(path: Path) -> dict:
    try:
        marker = json.loads(path.read_text())
        if not isinstance(marker, dict) or not isinstance(marker.get("versions_before"), dict):
            raise ValueError("no versions_before")
        return marker
    except (OSError, ValueError) as error:
        raise PipelineError(
            f"publishing marker {path} is unreadable ({type(error).__name__}): the run that wrote it was "
            "interrupted; compare its tables' Delta history with export/runs and restore them by hand, "
            "then remove the marker's folder"
        ) from None


def recover(
    spark: SparkSession, output_root: Path, runs_path: Path, recovering_run: str, concurrency: int = 1
) -> list[str]:
    """Undo the partial publication of every interrupted run whose marker is left (the
    caller holds the lease, so no live run has one); return the run ids recovered. A
    marker whose run has its `succeeded` row was complete: only the marker goes. Up to
    `concurrency` tables are restored at once."""
    recovered = []
    for marker_path in sorted((output_root / STAGING_DIR).glob(f"*/{MARKER}")):
        marker = _read_marker(marker_path)
        if _succeeded(spark, runs_path, marker["run_id"]):
            log.info("run %s: publication complete, removing its marker", marker["run_id"])
        else:
            undo(spark, output_root, marker, recovering_run, concurrency)
            error = f"publication interrupted; tables restored to their versions before it by run {recovering_run}"
            started = {"started_at": datetime.fromisoformat(marker["started_at"])} if "started_at" in marker else {}
            interrupted = RunRecord(
                config_hash=marker.get("config_hash", ""),
                input_fingerprint=marker.get("input_fingerprint", ""),
                years=marker.get("years", []),
                run_id=marker["run_id"],
                **started,
            )
            delta_io.append(interrupted.to_frame(spark, "recovered", error), runs_path, recovering_run)
            log.warning("recovered the interrupted publication of run %s", marker["run_id"])
            recovered.append(marker["run_id"])
        _remove_staging(output_root, marker["run_id"])
    # Staging folders without a marker belong to runs stopped before publishing: nothing to undo.
    for folder in sorted((output_root / STAGING_DIR).glob("*")):
        _remove_staging(output_root, folder.name)
    return recovered


def undo(spark: SparkSession, output_root: Path, marker: dict, recovering_run: str, concurrency: int = 1) -> None:
    """Restore every table of `marker` to its version before the marked run published,
    after checking that every later commit is that run's own; else change nothing. A
    restore is several small Spark jobs and a commit: tables restore side by side."""
    run_id, before = marker["run_id"], marker["versions_before"]
    foreign = {
        name: [version for version, tag in delta_io.commits_after(spark, output_root / name, version) if tag != run_id]
        for name, version in before.items()
    }
    foreign = {name: versions for name, versions in foreign.items() if versions}
    if foreign:
        tables = "; ".join(f"{name} versions {versions}" for name, versions in sorted(foreign.items()))
        raise PipelineError(
            f"cannot recover the interrupted publication of run {run_id}: commits of others since it began "
            f"({tables}); nothing was restored. Check these tables' Delta history, then restore them by hand "
            "and remove the marker's folder"
        )

    def restore(table: tuple[str, int | None]) -> None:
        delta_io.restore(spark, output_root / table[0], table[1])

    spark.conf.set(_COMMIT_TAG, recovering_run)
    try:
        concurrently(restore, before.items(), concurrency)
    finally:
        spark.conf.unset(_COMMIT_TAG)


_COMMIT_TAG = "spark.databricks.delta.commitInfo.userMetadata"


def _succeeded(spark: SparkSession, runs_path: Path, run_id: str) -> bool:
    # No commit yet: no table, or a first write that failed after creating its log folder.
    if delta_io.existing_version(spark, runs_path) is None:
        return False
    runs = delta_io.read_table(spark, runs_path)
    return runs.where((F.col("run_id") == run_id) & (F.col("status") == "succeeded")).limit(1).count() > 0
