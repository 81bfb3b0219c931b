"""Reliability of a whole run (issue: bad input, faults, determinism, privacy).

- Bad input: a corrupted copy of the sample input per contract rule stops the run with
  exit code 2 and an error naming table, column, rule and count, and leaves every
  published data table at its version (only `export/runs` gains the `failed` row).
- Fault: the CLI (rerunning both years over a copy of the local two-year output) frozen
  while publishing holds the output root (a second CLI run exits 2, "locked"); killed
  with SIGKILL, it leaves every table readable and readers see only succeeded runs. The
  next run (in the test's own session: a CLI run's exit code and message are the second
  run's), on input that breaks the contract, takes over its lease, restores the
  interrupted tables and records the killed run as `recovered` before it reads its input,
  then stops with exit code 2 naming the table: every table then equals the uninterrupted
  local run row for row. (That two runs on the same input give the same tables is shown by the cluster
  test, whose run is another process.)
- Privacy: no pseudonymised person id in the logs of these runs.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from helpers import PROJECT_ROOT, RUN_YEARS, TEST_SPARK_ARGS, assert_same_arrow_rows
from onderwijsscore import lease, pipeline
from onderwijsscore.delta_io import read_table
from onderwijsscore.errors import PipelineError
from onderwijsscore.publication import MARKER, STAGING_DIR
from onderwijsscore.snapshot import PublishedTables, read_arrow, read_published

DATA_TABLES_GLOB = "*/*/_delta_log"
RUNS = Path("export") / "runs"
ID_TOKEN = re.compile(r"\b[A-Z][0-9A-F]{16}\b")


def delta_versions(root: Path) -> dict[str, int]:
    """The latest committed version of every Delta table under `root`, from its log files."""
    versions = {}
    for log in root.glob(DATA_TABLES_GLOB):
        commits = [int(p.stem) for p in log.glob("*.json") if p.stem.isdigit()]
        versions[str(log.parent.relative_to(root))] = max(commits)
    return versions


@pytest.fixture(scope="module")
def person_ids(spark, sample_input):
    """Every pseudonymised person id of the sample input (students and parents)."""
    return {row.person_id for row in spark.read.parquet(str(sample_input / "persons")).select("person_id").collect()}


def assert_no_ids(text: str, person_ids: set[str]) -> None:
    leaked = {token for token in ID_TOKEN.findall(text) if token in person_ids}
    assert not leaked, f"{len(leaked)} person ids in the log"


@pytest.fixture
def published(local_run, tmp_path):
    """A copy of the local run's published output, to run against."""
    settings, _ = local_run
    root = tmp_path / "output"
    shutil.copytree(settings.output_root, root)
    return root


def corrupted_input(spark, sample_input, root: Path, changes: dict) -> Path:
    """The sample input with each table of `changes` replaced by `change(frame)` (None: left out)."""
    root.mkdir()
    for folder in sample_input.iterdir():
        if folder.name not in changes:
            (root / folder.name).symlink_to(folder)
    for table, change in changes.items():
        frame = change(spark.read.parquet(str(sample_input / table)))
        if frame is not None:
            frame.write.parquet(str(root / table))
    return root


def first_row_where(frame, condition, **changes):
    """`frame` with `changes` applied to exactly one row matching `condition`."""
    marked = frame.withColumn("_first", F.monotonically_increasing_id())
    first = marked.where(condition).agg(F.min("_first")).first()[0]
    changed = {c: F.when(F.col("_first") == first, value).otherwise(F.col(c)) for c, value in changes.items()}
    return marked.withColumns(changed).drop("_first")


BAD_INPUTS = {
    # One input breaking six contract rules: the error lists each (test_contract.py has
    # each rule alone).
    "contract": (
        {
            "persons": lambda f: f.unionByName(f.limit(1)),
            "enrolment": lambda f: first_row_where(
                f, F.col("year") == 2020, student_id=F.lit(None).cast("string")
            ).withColumn("grade", F.col("grade").cast("string")),
            "education": lambda f: first_row_where(
                f, F.col("education_level").isNotNull(), education_level=F.lit("phd")
            ),
            "swv_postcodes": lambda f: None,
            "schools": lambda f: f.drop("rsvo"),
        },
        [
            "table persons, column person_id: key not unique (rows sharing a key) (2 rows)",
            "table enrolment, column student_id: null not allowed (1 rows)",
            "table enrolment, column grade: wrong type",
            "table education, column education_level: code not in",
            "table swv_postcodes, column *: table missing",
            "table schools, column rsvo: column missing",
        ],
    ),
    # Two input gates failing at once (referential integrity schools -> swv_postcodes, a
    # budget missing): one error names both.
    "input_gates": (
        {
            "schools": lambda f: f.withColumn(
                "postcode",
                F.when(
                    (F.col("year") == 2020) & ~F.col("rsvo") & F.col("swv_override").isNull(), F.lit("0000")
                ).otherwise(F.col("postcode")),
            ),
            "budgets": lambda f: f.where(F.col("year") != 2020),
        },
        ["table schools", "swv_override", "postcode not in swv_postcodes", "budgets", "lwoo_budget"],
    ),
    "empty_population": (
        {"enrolment": lambda f: f.where(~((F.col("year") == 2020) & (F.col("programme") == "pro")))},
        ["table enrolment", "no population student of model pro in teldatum year 2020", "(0 rows)"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_stops_the_run_loudly_and_changes_no_output(
    spark, settings, sample_input, published, tmp_path, caplog, capfd, person_ids, case
):
    changes, expected = BAD_INPUTS[case]
    bad_input = corrupted_input(spark, sample_input, tmp_path / "input", changes)
    before = delta_versions(published)
    run_settings = pipeline.RunSettings.create(settings.pipeline, bad_input, published, RUN_YEARS)

    with caplog.at_level("INFO", logger="onderwijsscore"):
        assert pipeline.run_job(spark, settings, run_settings) == 2

    stopped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run stopped")]
    assert len(stopped) == 1
    for fragment in expected:
        assert fragment in stopped[0], (fragment, stopped[0])
    assert re.search(r"\(\d+ \w+\)", stopped[0]), f"no count in: {stopped[0]}"
    after = delta_versions(published)
    assert after.pop(str(RUNS)) == before.pop(str(RUNS)) + 1
    assert after == before, "a failed run changed a published table"
    runs = read_table(spark, published / RUNS).where(F.col("status") == "failed").collect()
    assert len(runs) == 1 and expected[0] in runs[0].error
    assert not (published / STAGING_DIR).exists() or not any((published / STAGING_DIR).iterdir())
    assert_no_ids(caplog.text + "".join(capfd.readouterr()), person_ids)


def cli_command(input_root: Path, output_root: Path, years: list[int]) -> list[str]:
    return [
        sys.executable,
        str(PROJECT_ROOT / "jobs" / "run_pipeline.py"),
        "--input",
        str(input_root),
        "--output",
        str(output_root),
        "--years",
        ",".join(str(y) for y in years),
        *TEST_SPARK_ARGS,
    ]


def test_a_rerun_that_would_leave_year_pairs_stale_is_refused_before_reading(spark, settings, sample_input, published):
    before = delta_versions(published)
    run_settings = pipeline.RunSettings.create(settings.pipeline, sample_input, published, RUN_YEARS[-1:])
    with pytest.raises(PipelineError) as refused:
        pipeline.run(spark, settings, run_settings)
    assert str(refused.value) == (
        f"a run of years {RUN_YEARS[-1:]} would leave published year-pair slices stale: "
        f"change_explained {RUN_YEARS[-1]} (pair {RUN_YEARS[0]}-{RUN_YEARS[-1]}), stability {RUN_YEARS[-1]} "
        f"(pair {RUN_YEARS[0]}-{RUN_YEARS[-1]}) pair a year this run recomputes with one it does not. "
        f"Run years {','.join(map(str, RUN_YEARS))} instead (every year the published pairs connect)."
    )
    after = delta_versions(published)
    assert after.pop(str(RUNS)) == before.pop(str(RUNS)) + 1  # the failed row
    assert after == before


@pytest.mark.long
def test_killed_publication_is_recovered_by_the_next_run(
    spark, settings, local_run, published, tmp_path, caplog, capfd, person_ids
):
    local_settings, _ = local_run
    run_input = local_settings.input_root  # one pro budget left unset, as the published run

    before = delta_versions(published)
    log_path = tmp_path / "killed.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            cli_command(run_input, published, RUN_YEARS),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            markers = published / STAGING_DIR
            deadline = time.monotonic() + 900
            # Kill once the marker is written and at least one table has a new version.
            while time.monotonic() < deadline and process.poll() is None:
                current = delta_versions(published)
                if any(markers.glob(f"*/{MARKER}")) and any(current[t] > before.get(t, -1) for t in current):
                    break
                time.sleep(0.05)
            assert process.poll() is None, "the run ended before it could be killed while publishing"
            # Frozen mid-publication, it still holds the output root: a second run is refused.
            os.killpg(process.pid, signal.SIGSTOP)
            holder = lease.read_owner(published)
            second = subprocess.run(
                cli_command(run_input, published, RUN_YEARS), capture_output=True, text=True, timeout=600
            )
            assert second.returncode == 2, second.stderr[-2000:]
            assert f"output root {published} locked by run {holder.run_id}" in second.stderr + second.stdout
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            process.wait()
    killed_log = log_path.read_text()
    assert_no_ids(killed_log, person_ids)
    run_id = re.search(r"run ([0-9a-f]{32})", killed_log).group(1)

    # Killed mid-publication: every table readable, the marker names the versions before.
    marker = json.loads(next((published / STAGING_DIR).glob(f"*/{MARKER}")).read_text())
    assert marker["run_id"] == run_id
    assert {t: v for t, v in marker["versions_before"].items() if v is not None} == {
        t: v for t, v in before.items() if t in marker["versions_before"]
    }
    after_kill = delta_versions(published)
    assert any(after_kill[t] > before[t] for t in before), "nothing was published before the kill"
    for table in after_kill:
        read_table(spark, published / table).count()
    # A reader of the published snapshot sees only succeeded runs, at their versions, in
    # Spark and in delta-rs alike: none of the half publication.
    succeeded = {r.run_id for r in read_table(spark, published / RUNS).where("status = 'succeeded'").collect()}
    snapshot, frames = read_published(spark, published)
    assert snapshot.versions == {t: v for t, v in before.items() if t != str(RUNS)}
    delta_rs = PublishedTables(published)
    for table, frame in frames.items():
        seen = {row.run_id for row in frame.select("run_id").distinct().collect()}
        assert seen and seen <= succeeded and run_id not in seen, table
        assert set(delta_rs.read(table).column("run_id").unique().to_pylist()) == seen, table

    # The next run, on input without `swv_postcodes`, runs in this session (a cold CLI
    # process costs a minute more; the refused run above is the CLI's exit code and
    # message): it takes over the dead run's lease, restores the tables its publication
    # changed, records it as recovered, and only then reads its input and stops with exit
    # code 2, naming the table.
    bad_input = corrupted_input(spark, run_input, tmp_path / "bad_input", {"swv_postcodes": lambda f: None})
    next_settings = pipeline.RunSettings.create(settings.pipeline, bad_input, published, RUN_YEARS)
    capfd.readouterr()
    with caplog.at_level("INFO", logger="onderwijsscore"):
        assert pipeline.run_job(spark, settings, next_settings) == 2
    next_log = caplog.text
    stopped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("run stopped")]
    assert len(stopped) == 1 and "table swv_postcodes" in stopped[0] and "missing" in stopped[0], stopped
    assert f"took over the lease of run {run_id}" in next_log
    assert f"recovered the interrupted publication of run {run_id}" in next_log
    assert_no_ids(next_log + "".join(capfd.readouterr()), person_ids)

    statuses = {r.run_id: r.status for r in read_table(spark, published / RUNS).collect()}
    assert statuses[run_id] == "recovered"
    assert sorted(status for other, status in statuses.items() if other not in succeeded) == ["failed", "recovered"]
    for table in sorted(set(before) - {str(RUNS)}):
        # Read with delta-rs at the latest version: no Spark job per table.
        restored = read_arrow(published / table)
        assert run_id not in restored.column("run_id").unique().to_pylist(), f"{table} keeps a slice of the killed run"
        # Restored to the uninterrupted local run's tables, row for row.
        local = read_arrow(local_settings.output_root / table)
        assert_same_arrow_rows(restored.drop_columns(["run_id"]), local.drop_columns(["run_id"]), table)
