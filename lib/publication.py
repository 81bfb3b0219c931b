"""Publishing a run's slices all together or not at all.

Delta commits are atomic per table, not across tables, so a run publishes in two steps:

1. *stage*: every output is computed once and written to a run-scoped Delta table under
   `<output>/_staging/<run_id>/`. This is the slow part; a run killed here has changed
   no published table.
2. *publish*: a marker listing each target table's current version is written, each
   staged slice is copied into its table with `replaceWhere` (cheap), the versions are
   recorded and the marker and staging are removed.

A run killed while publishing leaves its marker behind. The next run first *recovers*:
it restores every table named in the marker to the version it had before (Delta
RESTORE), so each table is back at its previous version, and then publishes anew. Until
then, `export/runs` names the versions of the last run that succeeded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from lib import delta_io
from lib.runtime import concurrently, stage

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

    @property
    def name(self) -> str:
        return f"{self.zone}/{self.table}"


def staging_root(output_root: Path, run_id: str) -> Path:
    return output_root / STAGING_DIR / run_id


def stage_outputs(outputs: list[Output], output_root: Path, run_id: str, concurrency: int = 1) -> dict[str, int]:
    """Write every output to the run's staging area, up to `concurrency` at once; return
    row counts per table."""

    def write(output: Output) -> int:
        with stage(f"compute {output.name}") as stage_counts:
            path = staging_root(output_root, run_id) / output.name
            delta_io.write_slice(output.frame, path, output.slice_values)
            stage_counts["rows"] = delta_io.read_table(output.frame.sparkSession, path).count()
            return stage_counts["rows"]

    return dict(zip([o.name for o in outputs], concurrently(write, outputs, concurrency), strict=True))


def staged(spark: SparkSession, output: Output, output_root: Path, run_id: str) -> DataFrame:
    return delta_io.read_table(spark, staging_root(output_root, run_id) / output.name)


def publish(spark: SparkSession, outputs: list[Output], output_root: Path, run_id: str) -> dict[str, int]:
    """Copy every staged slice into its published table; return the Delta versions written."""
    root = staging_root(output_root, run_id)
    before = {output.name: delta_io.existing_version(spark, output_root / output.name) for output in outputs}
    (root / MARKER).write_text(json.dumps({"run_id": run_id, "versions_before": before}))
    versions = {}
    for output in outputs:
        with stage(f"publish {output.name}"):
            frame = staged(spark, output, output_root, run_id)
            versions[output.name] = delta_io.write_slice(frame, output_root / output.name, output.slice_values)
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(OSError):  # the staging folder itself, once no run uses it
        root.parent.rmdir()
    return versions


def recover(spark: SparkSession, output_root: Path) -> list[str]:
    """Undo the partial publication of any killed run; return the run ids recovered."""
    recovered = []
    for marker in sorted((output_root / STAGING_DIR).glob(f"*/{MARKER}")):
        state = json.loads(marker.read_text())
        for name, version in state["versions_before"].items():
            delta_io.restore(spark, output_root / name, version)
        log.warning("recovered the interrupted publication of run %s", state["run_id"])
        recovered.append(state["run_id"])
    # Staging of runs killed before publishing holds nothing published: drop it too.
    shutil.rmtree(output_root / STAGING_DIR, ignore_errors=True)
    return recovered
