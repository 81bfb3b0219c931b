"""The SQL endpoint for BI tools: Spark's Thrift JDBC/ODBC server over the published
export tables (`make serve`, `jobs/serve.py`, `docs/bi.md`).

The serving process builds one Spark session, registers every export table as of the
last succeeded run (`onderwijsscore.snapshot`) as a view in the database named after the export
zone, and starts `HiveThriftServer2` on that session, so every client session sees those
views and nothing else:

- The views are global temporary views over Delta snapshots read at fixed versions, in
  Spark's global temporary database, renamed to the export zone's name (`export`). A
  publication in progress is invisible; a refresh (SIGHUP, `make serve` again)
  re-registers them at the versions of the run that succeeded since.
- `spark.sql.runSQLOnFiles` is off, so SQL cannot read a path (``delta.`/…` ``): the
  restricted zone is never registered, and naming it gives "table or view not found".
- The views are read-only (a view over a DataFrame cannot be inserted into). Spark has
  no authorisation of its own: a client could still create a table over a path and
  write to it, so the server should run as a user that may only read the output root
  (`docs/bi.md`).
- The Hive session state the server needs keeps its Derby metastore and `derby.log` in
  `<output>/_serve/`, never in the working directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.catalogue import Catalogue
from onderwijsscore.config import Config
from onderwijsscore.runtime import literal_frame
from onderwijsscore.snapshot import RUNS_TABLE, Snapshot, read_published

log = logging.getLogger("onderwijsscore")

TABLES_VIEW = "tables"  # the served tables and what each holds
SERVE_DIR = "_serve"  # under the output root: metastore, derby.log, server log and pid


@dataclass(frozen=True)
class ServeSettings:
    """conf/serve.yaml, the export zone and the output root."""

    output_root: Path
    host: str
    port: int
    database: str  # the export zone's name: clients query `export.budgets`

    @classmethod
    def from_config(
        cls, config: Config, output_root: str | Path, host: str | None = None, port: int | None = None
    ) -> ServeSettings:
        raw = config["serve"]
        return cls(
            output_root=Path(output_root).resolve(),
            host=host or raw["host"],
            port=int(port or raw["port"]),
            database=config["pipeline"]["zones"]["export"],
        )

    @property
    def serve_dir(self) -> Path:
        return self.output_root / SERVE_DIR

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:hive2://{self.host}:{self.port}/default"


def session_settings(settings: ServeSettings, jars: list[str], java_options: str) -> dict[str, Any]:
    """Spark settings of the serving session (on top of conf/spark.yaml). `jars`: the Delta
    jars, which the server's sessions load from the driver's class path (`spark.jars`
    alone is not enough for the Delta catalog); `java_options`: the driver's own."""
    metastore = settings.serve_dir / "metastore_db"
    return {
        "spark.sql.globalTempDatabase": settings.database,
        "spark.sql.runSQLOnFiles": "false",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(settings.serve_dir / "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        "spark.hadoop.hive.server2.thrift.bind.host": settings.host,
        "spark.hadoop.hive.server2.thrift.port": str(settings.port),
        "spark.driver.extraClassPath": ":".join(jars),
        "spark.driver.extraJavaOptions": f"{java_options} -Dderby.system.home={settings.serve_dir}".strip(),
    }


def with_comments(frame: DataFrame, comments: dict[str, str]) -> DataFrame:
    """`frame` with each described column's comment (what JDBC/ODBC clients show)."""
    return frame.select(
        *[
            F.col(column).alias(column, metadata={"comment": comments[column]}) if column in comments else column
            for column in frame.columns
        ]
    )


def register_published(spark: SparkSession, settings: ServeSettings, catalogue: Catalogue) -> Snapshot:
    """(Re-)register every export table, as of the last succeeded run, as a view of the
    database, and `runs` up to that run; a table no longer published is dropped.
    Columns carry their descriptions as comments. A global temporary view has no table
    comment, so the tables' descriptions are a view of their own: `tables`."""
    snapshot, frames = read_published(spark, settings.output_root, settings.database)
    runs = spark.read.format("delta").load(str(settings.output_root / settings.database / RUNS_TABLE))
    frames[RUNS_TABLE] = runs.where(F.col("ended_at") <= F.lit(snapshot.ended_at))
    registered = {row.viewName for row in spark.sql(f"SHOW VIEWS IN {settings.database}").collect()}
    frames[TABLES_VIEW] = literal_frame(
        spark,
        sorted((table, spec.description if (spec := catalogue.tables.get(table)) else None) for table in frames),
        T.StructType.fromDDL("table_name string, description string"),
    )
    for table, frame in frames.items():
        with_comments(frame, catalogue.comments(table)).createOrReplaceGlobalTempView(table)
    for gone in registered - set(frames):
        spark.catalog.dropGlobalTempView(gone)
    log.info("serving %d tables as of run %s", len(frames), snapshot.run_id)
    return snapshot


def start_server(spark: SparkSession) -> Any:
    """Start the Thrift JDBC/ODBC server on this session; returns the server (`.stop()`)."""
    server = spark.sparkContext._jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2
    return server.startWithContext(spark._jsparkSession.sqlContext())
