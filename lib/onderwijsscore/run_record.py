"""`export/runs`: one row per run, the audit trail of what produced the outputs.

Holds only counts, hashes, versions and rule outcomes: never row content or ids.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from onderwijsscore import __version__

RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("ended_at", T.TimestampType(), False),
        T.StructField("code_version", T.StringType(), False),
        T.StructField("config_hash", T.StringType(), False),
        T.StructField("input_fingerprint", T.StringType(), False),
        T.StructField("years", T.ArrayType(T.IntegerType()), False),
        T.StructField("row_counts", T.MapType(T.StringType(), T.LongType()), False),
        T.StructField("delta_versions", T.MapType(T.StringType(), T.LongType()), False),
        T.StructField("data_quality", T.StringType(), True),
        T.StructField("disclosure", T.StringType(), True),
        T.StructField("model_fit", T.StringType(), True),
        T.StructField("error", T.StringType(), True),
        T.StructField("warnings", T.StringType(), True),
    ]
)


_PACKAGE_DIR = Path(__file__).resolve().parent


def code_version() -> str:
    """Package version plus the git commit when the code runs from a checkout (the package
    in the source layout `lib/onderwijsscore/`, not an installed copy)."""
    if _PACKAGE_DIR.parent.name != "lib":
        return __version__
    try:
        commit = subprocess.run(
            ["git", "-C", str(_PACKAGE_DIR), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def input_fingerprint(input_root: str | Path) -> str:
    """sha256 over every input file's relative path and the sha256 of its content (a file
    rewritten with other data of the same size changes it)."""
    root = Path(input_root)
    digest = hashlib.sha256()
    files = [Path(folder) / name for folder, _, names in os.walk(root, followlinks=True) for name in names]
    for path in sorted(p for p in files if not p.name.startswith((".", "_SUCCESS"))):
        with open(path, "rb") as file:
            content = hashlib.file_digest(file, "sha256").hexdigest()
        digest.update(f"{path.relative_to(root)}:{content}\n".encode())
    return digest.hexdigest()


@dataclass
class RunRecord:
    config_hash: str
    input_fingerprint: str
    years: list[int]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    row_counts: dict[str, int] = field(default_factory=dict)
    delta_versions: dict[str, int] = field(default_factory=dict)
    data_quality: dict[str, Any] = field(default_factory=dict)
    disclosure: dict[str, Any] = field(default_factory=dict)
    model_fit: dict[str, Any] = field(default_factory=dict)
    # What did not stop the run but a reader should know: tie overshoots, skipped slices.
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_frame(self, spark: SparkSession, status: str, error: str | None = None) -> DataFrame:
        def as_json(value: dict[str, Any] | list[dict[str, Any]]) -> str | None:
            return json.dumps(value, sort_keys=True, default=str) if value else None

        row = (
            self.run_id,
            status,
            self.started_at,
            datetime.now(UTC),
            code_version(),
            self.config_hash,
            self.input_fingerprint,
            self.years,
            self.row_counts,
            self.delta_versions,
            as_json(self.data_quality),
            as_json(self.disclosure),
            as_json(self.model_fit),
            error,
            as_json(self.warnings),
        )
        # From Arrow, decoded in the JVM: a list of rows would be a Python RDD, whose scan
        # starts a Python worker on an executor (executors need no Python, README).
        table = pa.Table.from_pylist([dict(zip(RUNS_SCHEMA.names, row, strict=True))], to_arrow_schema(RUNS_SCHEMA))
        return spark.createDataFrame(table, RUNS_SCHEMA)
