"""What several test modules share: the test session's settings, the sample and run
parameters, paths, and small builders. Test modules import from here, never from each other."""

import contextlib
import io
import socket
from collections import Counter
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from onderwijsscore.contract import CANONICAL_TYPES, CONTRACT
from onderwijsscore.models import ScoreModel
from onderwijsscore.runtime import materialize
from onderwijsscore.scoring.donors import donor_recipients, donor_scores
from onderwijsscore.scoring.education import education_counts
from onderwijsscore.scoring.facts import student_facts
from onderwijsscore.scoring.rules import ScoringRules
from onderwijsscore.scoring.score import fit_education, fit_metrics, own_scores, with_donor_scores

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"

TEST_SPARK = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "4g",
    "spark.databricks.delta.snapshotPartitions": "2",
    # Tiny data: compiling a generated class per stage (Janino) costs more than the stage's
    # rows; interpreted expressions give the same results (the cluster test compares this
    # session's run with a run in generated code).
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    # Tiny data: most JVM time goes to compiling code that runs briefly; C1 only is faster.
    # C1 alone gets a 48 MB code cache by default, which Spark's generated code can fill
    # (the JVM then fails on method handles): reserve the tiered default.
    "spark.driver.extraJavaOptions": " ".join(
        ("-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m", "-XX:-DontCompileHugeMethods")
    ),
}
# TEST_SPARK as the jobs' repeatable `--spark-conf KEY=VALUE` arguments (CLI runs, the server).
TEST_SPARK_ARGS = [arg for key, value in TEST_SPARK.items() for arg in ("--spark-conf", f"{key}={value}")]
SAMPLE_SCALE = 0.01
SAMPLE_SEED = 20221001
SAMPLE_YEARS = (2017, 2018, 2019, 2020)  # generated: students move through grades
RUN_YEARS = [2019, 2020]  # the pipeline runs on two teldatum years to keep the suite fast
# The local run's input has no pro budget for the first run year's funding year (not set
# yet): domain.md §6 skips that pro_amounts slice and records why.
UNSET_PRO_BUDGET_YEAR = RUN_YEARS[0] + 2


def free_port() -> int:
    """A TCP port on 127.0.0.1 free now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def contract_schema(table: str) -> T.StructType:
    return T.StructType([T.StructField(c.name, CANONICAL_TYPES[c.kind], c.nullable) for c in CONTRACT[table].columns])


def physical_plan(frame: DataFrame) -> str:
    """The physical plan `frame.explain()` prints (Spark's public API, captured)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        frame.explain()
    return printed.getvalue()


def assert_same_rows(actual: DataFrame, expected: DataFrame) -> None:
    """The same column names and types and the same rows in any order, exactly (to the cent
    and the bit). pyspark.testing.assertDataFrameEqual would do, but in pyspark 4.1 it
    imports pyspark.pandas, which fails with the pinned pandas 3 (no DateOffset)."""
    types = [(field.name, field.dataType) for field in actual.schema.fields]
    assert types == [(field.name, field.dataType) for field in expected.schema.fields]
    got, want = Counter(actual.collect()), Counter(expected.collect())
    assert got == want, (
        f"only in actual: {list((got - want).elements())[:5]}; only in expected: {list((want - got).elements())[:5]}"
    )


def assert_same_arrow_rows(actual: pa.Table, expected: pa.Table, label: str = "") -> None:
    """`assert_same_rows` for tables read with delta-rs (no Spark job per table): the same
    column names and Arrow types and the same rows in any order, exactly."""
    assert actual.schema == expected.schema, label
    got, want = (Counter(tuple(row.values()) for row in table.to_pylist()) for table in (actual, expected))
    assert got == want, (
        f"{label}: only in actual: {list((got - want).elements())[:5]}; "
        f"only in expected: {list((want - got).elements())[:5]}"
    )


def score_students(
    inputs: dict[str, DataFrame], models: list[ScoreModel], rules: ScoringRules, years: list[int], seed: int
) -> tuple[DataFrame, dict]:
    """Every scoring step on `inputs`, kept where `pipeline.compute` keeps them: the scores
    (`OUTPUT_COLUMNS`) and the fit metrics per model and year."""
    facts = materialize(student_facts(inputs, models, rules, years))
    fits = fit_education(education_counts(facts, rules.education_model, seed).toArrow(), models, rules, years)
    own = materialize(own_scores(facts, fits, models, rules))
    recipients = materialize(donor_recipients(own, rules.donor_levels))
    donated = materialize(donor_scores(own, recipients, rules.donor_levels, seed))
    return with_donor_scores(own, donated, rules), fit_metrics(fits)
