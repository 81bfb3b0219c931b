"""The whole run: read and check the input, compute every stage, then write.

Nothing is written before every check has passed; each stage logs its start, end,
duration and row counts (never ids). The run is recorded in `export/runs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib import contract, delta_io
from lib.errors import describe
from lib.run_record import RunRecord, input_fingerprint
from lib.runtime import Config, stage

log = logging.getLogger("onderwijsscore")


@dataclass(frozen=True)
class RunSettings:
    input_root: Path
    output_root: Path
    years: list[int]
    seed: int
    input_format: str
    restricted_zone: str
    export_zone: str

    @classmethod
    def from_config(
        cls, config: Config, input_root: str | Path, output_root: str | Path, years: list[int] | None = None
    ) -> RunSettings:
        pipeline = config["pipeline"]
        return cls(
            input_root=Path(input_root),
            output_root=Path(output_root),
            years=sorted(years or pipeline["years"]),
            seed=int(pipeline["seed"]),
            input_format=pipeline["input_format"],
            restricted_zone=pipeline["zones"]["restricted"],
            export_zone=pipeline["zones"]["export"],
        )

    def table_path(self, zone: str, table: str) -> Path:
        return self.output_root / zone / table


@dataclass(frozen=True)
class Output:
    """One table slice to publish: where, which partitions, what."""

    zone: str
    table: str
    frame: DataFrame
    slice_values: dict[str, list]


def run(spark: SparkSession, config: Config, settings: RunSettings) -> RunRecord:
    record = RunRecord(
        config_hash=config.hash,
        input_fingerprint=input_fingerprint(settings.input_root),
        years=settings.years,
    )
    log.info(
        "run %s: years %s, input %s, output %s",
        record.run_id,
        settings.years,
        settings.input_root,
        settings.output_root,
    )
    runs_path = settings.table_path(settings.export_zone, "runs")
    try:
        with stage("read and check input", record.row_counts):
            inputs = contract.read_inputs(spark, settings.input_root, settings.input_format)
            record.row_counts.update({f"input.{name}": rows for name, rows in inputs.row_counts.items()})
        outputs = compute(spark, config, settings, inputs, record)
        publish(outputs, settings, record)
    except Exception as error:
        delta_io.append(record.to_frame(spark, "failed", describe(error)), runs_path)
        raise
    delta_io.append(record.to_frame(spark, "succeeded"), runs_path)
    log.info("run %s: succeeded", record.run_id)
    return record


def compute(
    spark: SparkSession, config: Config, settings: RunSettings, inputs: contract.Inputs, record: RunRecord
) -> list[Output]:
    """Every output slice of the run, computed (lazily) from the checked input."""
    return []


def publish(outputs: list[Output], settings: RunSettings, record: RunRecord) -> None:
    for output in outputs:
        path = settings.table_path(output.zone, output.table)
        with stage(f"write {output.zone}/{output.table}"):
            record.delta_versions[f"{output.zone}/{output.table}"] = delta_io.write_slice(
                output.frame.withColumn("run_id", F.lit(record.run_id)), path, output.slice_values
            )
