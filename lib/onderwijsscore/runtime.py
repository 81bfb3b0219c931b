"""The Spark side of a job: the session factory and the helpers every stage uses
(`stage`, `materialize`, `releasing`, `concurrently`, `literal_frame`)."""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from py4j.java_gateway import JavaClass, JavaMember
from pyspark import SparkContext, StorageLevel, inheritable_thread_target
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.config import Config

Item = TypeVar("Item")
Result = TypeVar("Result")
log = logging.getLogger("onderwijsscore")
JOB_DESCRIPTION = "spark.job.description"


def add_spark_conf_option(parser: argparse.ArgumentParser) -> None:
    """A job's repeatable `--spark-conf KEY=VALUE` (Spark settings over conf/spark.yaml's),
    parsed into (key, value) pairs: `dict(args.spark_conf)`."""
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        type=_spark_setting,
        metavar="KEY=VALUE",
        help="extra Spark setting (repeatable)",
    )


def _spark_setting(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def delta_jars(config: Config) -> list[str]:
    """The Delta jars to put on the classpath when this process starts the JVM; a relative
    `delta_jars_dir` is relative to the project folder that holds the config directory."""
    jars_dir = Path(os.environ.get("DELTA_JARS_DIR") or config["spark"]["delta_jars_dir"])
    if not jars_dir.is_absolute():
        jars_dir = config.conf_dir.resolve().parent / jars_dir
    jars = sorted(glob.glob(str(jars_dir / "*.jar")))
    if not jars:
        raise FileNotFoundError(
            f"no Delta jars in {jars_dir}: run `make setup` (fetches them with Maven) or set "
            "DELTA_JARS_DIR / conf/spark.yaml delta_jars_dir to where your administrator put them"
        )
    return jars


def under_spark_submit() -> bool:
    """True when spark-submit launched the JVM (it then owns master, memory and jars)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


# JVM classes PySpark names on almost every call (`sc._jvm.functions`, `sc._jvm.PythonUtils`:
# ≈2,000 times per run on small data) and the driver-side classes this package uses.
PINNED_JVM_CLASSES = (
    "org.apache.spark.sql.functions",
    "org.apache.spark.api.python.PythonUtils",
    "org.apache.spark.sql.api.python.PythonSQLUtils",
    "org.apache.hadoop.fs.Path",
    "org.apache.commons.io.IOUtils",
)


class _KeptMembers(JavaClass):
    """A JVM class whose static methods, once looked up, stay attributes: py4j asks the JVM
    for a class member on every access, and the JVM copies all the class's methods to
    find it (`functions` has ≈1,000; ≈4,500 lookups per run on small data). A method
    reference holds no state between calls."""

    def __getattr__(self, name: str) -> Any:
        member = super().__getattr__(name)
        if isinstance(member, JavaMember):
            self.__dict__[name] = member
        return member


def pin_jvm_classes(spark: SparkSession, names: Iterable[str] = PINNED_JVM_CLASSES) -> None:
    """Resolve the classes `names` (default `PINNED_JVM_CLASSES`) once, as attributes of the
    session's JVM view (by simple and by full name), keeping their methods.

    py4j resolves a name on the JVM view afresh on every access, and a simple name first as
    a class of the default package, then in `java.lang` and in each of PySpark's star
    imports: every miss walks the whole class path (≈270 jars), ≈4,700 misses per run on
    small data. A pinned name is found in Python, with no round trip.
    """
    jvm = spark.sparkContext._jvm
    for name in names:
        # py4j answers an unknown name with a package, which would fail only when called.
        if not isinstance(getattr(jvm, name), JavaClass):
            raise RuntimeError(f"no JVM class {name} on the driver's class path")
        java_class = _KeptMembers(name, jvm._gateway_client)
        setattr(jvm, name, java_class)
        setattr(jvm, name.rsplit(".", 1)[1], java_class)


def build_session(config: Config, app_name: str, overrides: dict[str, str] | None = None) -> SparkSession:
    spark_conf = config["spark"]
    settings: dict[str, Any] = dict(spark_conf.get("always", {}))
    if not under_spark_submit():
        settings.update(spark_conf.get("local", {}))
        settings["spark.jars"] = ",".join(delta_jars(config))
    settings.update(overrides or {})
    builder = SparkSession.builder.appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    pin_jvm_classes(spark)
    return spark


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )


@contextmanager
def stage(name: str, counts: dict[str, int] | None = None) -> Iterator[dict[str, int]]:
    """Log a stage's start, end and duration, and the row counts the stage fills in.

    Only counts and names are logged, never row content, so no id reaches a log.
    """
    counts = counts if counts is not None else {}
    log.info("stage %s: start", name)
    started = time.monotonic()
    # Spark jobs carry the stage's name (Spark UI, event log: `make bench` groups by it).
    context = SparkContext._active_spark_context
    outer = context.getLocalProperty(JOB_DESCRIPTION) if context else None
    if context:
        context.setJobDescription(name)
    try:
        yield counts
    except Exception:
        log.error("stage %s: failed after %.1fs", name, time.monotonic() - started)
        raise
    finally:
        if context:
            context.setLocalProperty(JOB_DESCRIPTION, outer)
    summary = ", ".join(f"{key}={value}" for key, value in counts.items())
    log.info("stage %s: done in %.1fs%s", name, time.monotonic() - started, f" ({summary})" if summary else "")


def materialize(frame: DataFrame) -> DataFrame:
    """`frame` computed now and kept (memory, else disk), with its lineage cut.

    For frames later steps read several times or build on (register facts, scores, unit
    scores, small check frames, suppression rounds). A plan on top of a long lineage costs
    the driver tens of seconds per query: every query re-optimises that lineage and
    matches it against the cache. A local checkpoint makes it a scan of the stored blocks. Like a cache it lives on the
    executors; a run that loses one fails, and its rerun recomputes (publication is atomic).
    """
    return frame.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)


@contextmanager
def releasing(spark: SparkSession) -> Iterator[None]:
    """Release, on leaving, every cache and local checkpoint (`materialize`) made inside:
    a run keeps nothing on the executors once it is done, whatever earlier work keeps."""
    before = set(spark.sparkContext._jsc.getPersistentRDDs().keySet())
    try:
        yield
    finally:
        for rdd_id, rdd in spark.sparkContext._jsc.getPersistentRDDs().items():
            if rdd_id not in before:
                rdd.unpersist(False)


def concurrently(function: Callable[[Item], Result], items: Iterable[Item], workers: int) -> list[Result]:
    """`[function(item) for item in items]`, up to `workers` at a time, in order.

    For independent Spark jobs that each leave cores idle (small tables, commits, driver
    work); threads inherit the caller's job description.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(inheritable_thread_target(function), items))


def literal_frame(spark: SparkSession, rows: list[tuple], schema: T.StructType | str) -> DataFrame:
    """A small DataFrame of literal rows (`schema` a StructType or DDL text, every column
    nullable), planned in the JVM: unlike `createDataFrame`'s Python RDD, scanning it
    needs no Python worker, and the planner knows it is small.

    The rows travel as one JSON text, parsed once in the JVM (constant-folded): one call,
    not one per value. Exact: decimals travel as their text, floats as the shortest text
    that reads back to the same double (Python's repr; Java parses it correctly rounded).
    """
    if isinstance(schema, str):
        schema = T.StructType.fromDDL(schema)
    text = json.dumps([dict(zip(schema.names, row, strict=True)) for row in rows], default=str)
    parsed = F.from_json(F.lit(text), T.ArrayType(schema), {"allowNonNumericNumbers": "true"})
    return spark.range(1).select(F.inline(parsed))
