"""The whole run: read and check the input, compute every stage, then write.

Nothing is published before every check has passed (see lib/publication.py for how a
run's slices become visible together); each stage logs its start, end, duration and row
counts (never ids). The run is recorded in `export/runs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lib import contract, delta_io, publication
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
    publication.recover(spark, settings.output_root)
    try:
        with stage("read and check input", record.row_counts):
            inputs = contract.read_inputs(spark, settings.input_root, settings.input_format)
            record.row_counts.update({f"input.{name}": rows for name, rows in inputs.row_counts.items()})
        outputs = [
            replace(output, frame=output.frame.withColumn("run_id", F.lit(record.run_id)))
            for output in compute(spark, config, settings, inputs, record)
        ]
        record.row_counts.update(publication.stage_outputs(outputs, settings.output_root, record.run_id))
        record.delta_versions.update(publication.publish(spark, outputs, settings.output_root, record.run_id))
    except Exception as error:
        publication.recover(spark, settings.output_root)  # undo a partial publication
        delta_io.append(record.to_frame(spark, "failed", describe(error)), runs_path)
        raise
    delta_io.append(record.to_frame(spark, "succeeded"), runs_path)
    log.info("run %s: succeeded", record.run_id)
    return record


def compute(
    spark: SparkSession, config: Config, settings: RunSettings, inputs: contract.Inputs, record: RunRecord
) -> list[publication.Output]:
    """Every output slice of the run, computed (lazily) from the checked input."""
    return []
