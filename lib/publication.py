"""Publishing a run's slices all together or not at all.

Delta commits are atomic per table, not across tables, so a run publishes in two steps:

1. *compute*: every output is computed and kept (`runtime.materialize`, or a small local
   frame) and every gate passes on exactly those frames. A run stopped here has changed
   no published table.
2. *publish*: a marker listing each target table's current version is written under
   `<output>/_staging/<run_id>/`, each slice is written into its table with
   `replaceWhere` (several tables at once), the versions are recorded and the marker is
   removed.

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
from lib.delta_io import Commit
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


def publish(outputs: list[Output], output_root: Path, run_id: str, concurrency: int = 1) -> dict[str, Commit]:
    """Write every output slice into its published table, up to `concurrency` at once;
    return each table's commit (version and rows written)."""
    root = staging_root(output_root, run_id)
    root.mkdir(parents=True, exist_ok=True)
    before = {
        output.name: delta_io.existing_version(output.frame.sparkSession, output_root / output.name)
        for output in outputs
    }
    (root / MARKER).write_text(json.dumps({"run_id": run_id, "versions_before": before}))

    def write(output: Output) -> Commit:
        with stage(f"publish {output.name}") as counts:
            commit = delta_io.write_slice(output.frame, output_root / output.name, output.slice_values)
            counts["rows"] = commit.rows
            return commit

    commits = dict(zip([o.name for o in outputs], concurrently(write, outputs, concurrency), strict=True))
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(OSError):  # the staging folder itself, once no run uses it
        root.parent.rmdir()
    return commits


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
