"""The publication protocol on tiny tables: the output root's lease, the atomic marker,
the commit point (the `succeeded` row before the marker goes), and recovery that undoes
only the interrupted run's own commits."""

import json
import os
import socket
import subprocess
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from onderwijsscore import delta_io, lease, pipeline, publication
from onderwijsscore.errors import PipelineError
from onderwijsscore.run_record import RunRecord

SETTINGS = lease.LeaseSettings(heartbeat_seconds=0.05, stale_after_seconds=60)
TABLE = "export/t"


def owner(run_id: str, pid: int, host: str | None = None, heartbeat: datetime | None = None) -> lease.Owner:
    when = (heartbeat or datetime.now(UTC)).isoformat()
    return lease.Owner(run_id, host or socket.gethostname(), pid, when, when)


def write_lease(root: Path, holder: lease.Owner) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / lease.LEASE_FILE).write_text(json.dumps(asdict(holder)))


def finished_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# --- The lease ------------------------------------------------------------------------------


def test_a_second_run_is_refused_while_the_owner_lives(tmp_path):
    with lease.held(tmp_path, "first", SETTINGS) as taken_over:
        assert taken_over is None
        with pytest.raises(lease.OutputRootLocked, match=r"locked by run first \(host .*, pid \d+\) since 20"):
            lease.acquire(tmp_path, "second", SETTINGS)
        # The job's check before it starts Spark says the same, and takes nothing.
        with pytest.raises(lease.OutputRootLocked, match=r"locked by run first"):
            lease.refuse_if_held(tmp_path, SETTINGS)
        assert lease.read_owner(tmp_path).run_id == "first"
    assert lease.read_owner(tmp_path) is None  # given back
    lease.refuse_if_held(tmp_path, SETTINGS)


def test_the_heartbeat_is_renewed_and_the_lease_given_back_on_failure(tmp_path):
    with pytest.raises(RuntimeError), lease.held(tmp_path, "run", SETTINGS):
        first = lease.read_owner(tmp_path).heartbeat_at
        time.sleep(0.3)
        assert lease.read_owner(tmp_path).heartbeat_at > first
        raise RuntimeError("the run failed")
    assert lease.read_owner(tmp_path) is None


def test_a_dead_owners_lease_is_taken_over(tmp_path):
    dead = owner("killed", finished_pid())
    write_lease(tmp_path, dead)
    lease.refuse_if_held(tmp_path, SETTINGS)  # a dead owner does not stop a job from starting
    assert lease.acquire(tmp_path, "next", SETTINGS) == dead
    assert lease.read_owner(tmp_path).run_id == "next"


def test_an_owner_on_another_host_is_dead_when_its_heartbeat_is_stale(tmp_path):
    write_lease(tmp_path, owner("elsewhere", 1, host="other-host"))
    with pytest.raises(lease.OutputRootLocked, match="run elsewhere"):
        lease.acquire(tmp_path, "next", SETTINGS)
    stale = owner("elsewhere", 1, host="other-host", heartbeat=datetime.now(UTC) - timedelta(minutes=5))
    write_lease(tmp_path, stale)
    assert lease.acquire(tmp_path, "next", SETTINGS) == stale


def test_a_run_on_a_locked_output_root_exits_2_and_writes_nothing(spark, settings, tmp_path, caplog):
    run_settings = pipeline.RunSettings.create(settings.pipeline, tmp_path / "in", tmp_path / "out", [2020])
    (tmp_path / "in").mkdir()
    write_lease(run_settings.output_root, owner("busy", os.getpid()))
    with caplog.at_level("ERROR", logger="onderwijsscore"):
        assert pipeline.run_job(spark, settings, run_settings) == 2
    assert "output root" in caplog.text and "locked by run busy" in caplog.text
    assert sorted(p.name for p in run_settings.output_root.iterdir()) == [lease.LEASE_FILE]


# --- Publication and recovery -----------------------------------------------------------------


@pytest.fixture
def published(spark, tmp_path):
    """An output root whose table `export/t` has one slice published by run r0 (version 0)."""
    root = tmp_path / "out"
    write(spark, root, "r0", 1)
    return root


def write(spark, root: Path, run_id: str, value: int) -> delta_io.Commit:
    frame = spark.range(1).select(F.lit(2020).alias("year"), F.lit(value).alias("value"))
    return delta_io.write_slice(frame, root / TABLE, {"year": [2020]}, run_id)


def record(run_id: str) -> RunRecord:
    return RunRecord(config_hash="c", input_fingerprint="i", years=[2020], run_id=run_id)


def killed_while_publishing(spark, root: Path, run_id: str) -> None:
    """What a run killed after its first slice leaves: the marker and its commit."""
    marker = {"run_id": run_id, "started_at": datetime.now(UTC).isoformat(), "versions_before": {TABLE: 0}}
    marker |= {"config_hash": "c", "input_fingerprint": "i", "years": [2020]}
    (publication.staging_root(root, run_id)).mkdir(parents=True)
    (publication.staging_root(root, run_id) / publication.MARKER).write_text(json.dumps(marker))
    write(spark, root, run_id, 2)


def runs(spark, root: Path) -> list[tuple[str, str]]:
    return sorted((r.run_id, r.status) for r in delta_io.read_table(spark, root / "export/runs").collect())


def test_a_slice_write_reports_its_commit_and_writes_one_file_per_partition(spark, tmp_path):
    frame = spark.range(5).select((F.lit(2019) + F.col("id") % 2).cast("int").alias("year"), F.col("id").alias("value"))
    table = tmp_path / TABLE
    first = delta_io.write_slice(frame, table, {"year": [2019, 2020]}, "r1", one_task=True)
    assert sorted(path.parent.name for path in table.rglob("*.parquet")) == ["year=2019", "year=2020"]
    second = delta_io.write_slice(frame.where("year = 2020"), table, {"year": [2020]}, "r2")
    assert (first, second) == (delta_io.Commit(0, 5), delta_io.Commit(1, 2))
    assert delta_io.existing_version(spark, table) == 1 and delta_io.existing_version(spark, tmp_path / "none") is None


def test_the_succeeded_row_is_written_while_the_marker_is_still_there(spark, published):
    marker = publication.staging_root(published, "r1") / publication.MARKER
    seen = []

    def commit_point(commits):
        seen.append((json.loads(marker.read_text())["versions_before"], commits[TABLE].version))

    frame = spark.range(1).select(F.lit(2020).alias("year"), F.lit(5).alias("value"))
    output = publication.Output("export", "t", frame, {"year": [2020]})
    publication.publish([output], published, record("r1"), commit_point)
    assert seen == [({TABLE: 0}, 1)] and not marker.exists()
    assert delta_io.commits_after(spark, published / TABLE, 0) == [(1, "r1")]  # tagged with its run


def test_recovery_restores_the_interrupted_runs_tables_and_records_it(spark, published):
    killed_while_publishing(spark, published, "r1")
    # No runs table yet, as for a first run whose succeeded row failed after Delta made the
    # table's log folder: a folder without a commit.
    (published / "export/runs/_delta_log").mkdir(parents=True)
    assert publication.recover(spark, published, published / "export/runs", "r2", concurrency=2) == ["r1"]
    assert [r.value for r in delta_io.read_table(spark, published / TABLE).collect()] == [1]
    assert delta_io.commits_after(spark, published / TABLE, 1) == [(2, "r2")]  # the restore, tagged
    assert runs(spark, published) == [("r1", "recovered")]
    assert not (published / publication.STAGING_DIR).exists()


def test_a_publication_with_its_succeeded_row_is_complete_and_kept(spark, published):
    killed_while_publishing(spark, published, "r1")
    delta_io.append(record("r1").to_frame(spark, "succeeded"), published / "export/runs", "r1")
    assert publication.recover(spark, published, published / "export/runs", "r2") == []
    assert [r.value for r in delta_io.read_table(spark, published / TABLE).collect()] == [2]
    assert not (published / publication.STAGING_DIR).exists()


def test_a_foreign_commit_stops_recovery_and_nothing_changes(spark, published):
    killed_while_publishing(spark, published, "r1")
    write(spark, published, "someone-else", 3)  # e.g. a fix by hand, after the killed run
    with pytest.raises(PipelineError, match=r"commits of others since it began \(export/t versions \[2\]\)"):
        publication.recover(spark, published, published / "export/runs", "r2")
    assert delta_io.existing_version(spark, published / TABLE) == 2
    assert (publication.staging_root(published, "r1") / publication.MARKER).exists()


def test_a_truncated_marker_stops_the_run_with_a_clear_error_and_a_failed_row(
    spark, settings, published, tmp_path, caplog
):
    killed_while_publishing(spark, published, "r1")
    marker = publication.staging_root(published, "r1") / publication.MARKER
    marker.write_text(marker.read_text()[:25])
    (tmp_path / "in").mkdir()
    run_settings = pipeline.RunSettings.create(settings.pipeline, tmp_path / "in", published, [2020])
    with caplog.at_level("ERROR", logger="onderwijsscore"):
        assert pipeline.run_job(spark, settings, run_settings) == 2
    assert "publishing marker" in caplog.text and "is unreadable (JSONDecodeError)" in caplog.text
    assert [status for _, status in runs(spark, published)] == ["failed"]
    assert delta_io.existing_version(spark, published / TABLE) == 1  # nothing restored by guesswork
