"""The SQL endpoint (docs/bi.md): the real Thrift server on a free loopback port over a
copy of the local run, queried with real clients (PyHive, beeline), stopped by the test.

One test holds the server from start to stop, so the suite's processes never start two."""

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyhive import hive
from pyspark.sql import functions as F

from helpers import PROJECT_ROOT, TEST_SPARK_ARGS, free_port
from onderwijsscore import publication
from onderwijsscore.catalogue import with_columns_section
from onderwijsscore.delta_io import append, read_table
from onderwijsscore.run_record import RunRecord
from onderwijsscore.snapshot import PublishedTables

BEELINE = Path(sys.executable).parent.parent / "lib/python3.11/site-packages/pyspark/bin/beeline"
SLICE = {"year": [2020], "scenario": ["lwoo_p20_school"]}


def port_answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def served_runs(cursor) -> set[str]:
    cursor.execute("SELECT DISTINCT run_id FROM export.budgets")
    return {row[0] for row in cursor.fetchall()}


def wait_for(log: Path, pattern: str, count: int, process, timeout: float = 300) -> str:
    """The log's text once `pattern` occurs `count` times in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if len(re.findall(pattern, text)) >= count:
            return text
        assert process.poll() is None, text[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"no {count} x {pattern!r} in {log}")


def first_sql_block(markdown: str) -> str:
    return re.search(r"```sql\n(.*?)```", markdown, re.S).group(1)


@pytest.mark.long
def test_the_endpoint_serves_the_last_succeeded_run_to_real_clients_and_nothing_restricted(
    spark, config, local_run, tmp_path
):
    settings, record = local_run
    root = tmp_path / "output"
    shutil.copytree(settings.output_root, root)
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                str(PROJECT_ROOT / "jobs" / "serve.py"),
                "--output",
                str(root),
                "--port",
                str(port),
                # The test session's settings for tiny data (interpreted expressions, quick compilation).
                *TEST_SPARK_ARGS,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        assert f"serving jdbc:hive2://127.0.0.1:{port}/default" in wait_for(log, "serving jdbc:", 1, server)
        cursor = hive.connect(host="127.0.0.1", port=port, username="bi").cursor()

        # PyHive reads one (year, scenario) of export.budgets equal to delta-rs's read, to the cent.
        cursor.execute(
            "SELECT swv_id, total, lwoo_iq FROM export.budgets WHERE year = 2020 AND scenario = 'lwoo_p20_school'"
        )
        served = sorted(cursor.fetchall())
        budgets = PublishedTables(root).read("budgets").to_pylist()
        expected = sorted(
            (row["swv_id"], row["total"], row["lwoo_iq"])
            for row in budgets
            if row["year"] == 2020 and row["scenario"] == "lwoo_p20_school"
        )
        assert served == expected and len(served) > 50

        # Column comments come from conf/outputs.yaml.
        cursor.execute("DESCRIBE export.budgets")
        comments = {name: comment for name, _, comment in cursor.fetchall()}
        assert comments["per_student"] == "total / n_students, euros"
        cursor.execute("SELECT description FROM export.tables WHERE table_name = 'budgets'")
        assert cursor.fetchall() == [(config["outputs"]["tables"]["budgets"]["description"],)]

        # beeline, the JDBC client shipped with pyspark, runs docs/bi.md's first query.
        query = first_sql_block((PROJECT_ROOT / "docs" / "bi.md").read_text())
        beeline = subprocess.run(
            [str(BEELINE), "-u", f"jdbc:hive2://127.0.0.1:{port}/default", "-n", "bi", "--silent=true", "-e", query],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert beeline.returncode == 0, beeline.stderr[-2000:]
        assert "redistribution" in beeline.stdout

        # The restricted zone is not reachable, by name or by path.
        for restricted in ("restricted.student_scores", f"delta.`{root}/restricted/student_scores`"):
            with pytest.raises(Exception, match="TABLE_OR_VIEW_NOT_FOUND"):
                cursor.execute(f"SELECT count(*) FROM {restricted}")
        # The views are not writable.
        with pytest.raises(Exception, match="UNSUPPORTED_INSERT"):
            cursor.execute("INSERT INTO export.budgets SELECT * FROM export.budgets LIMIT 1")

        # A second run publishes: while its slices are written and its succeeded row is not,
        # the server (even refreshed) serves only the previous run.
        assert served_runs(cursor) == {record.run_id}
        slice_rows = read_table(spark, root / "export" / "budgets").where(
            (F.col("year") == 2020) & (F.col("scenario") == "lwoo_p20_school")
        )
        second = RunRecord(config_hash="c", input_fingerprint="i", years=[2020])
        output = publication.Output(
            "export", "budgets", slice_rows.withColumn("run_id", F.lit(second.run_id)).localCheckpoint(), SLICE
        )
        runs_path = root / "export" / "runs"

        def commit_point(commits):
            server.send_signal(signal.SIGHUP)
            wait_for(log, r"serving \d+ tables as of run", 2, server)
            assert served_runs(cursor) == {record.run_id}
            second.delta_versions.update({name: commit.version for name, commit in commits.items()})
            append(second.to_frame(spark, "succeeded"), runs_path, second.run_id)

        publication.publish([output], root, second, commit_point)
        # After it succeeded, a refresh serves its slice without a restart.
        server.send_signal(signal.SIGHUP)
        wait_for(log, f"tables as of run {second.run_id}", 1, server)
        assert served_runs(cursor) == {record.run_id, second.run_id}
    finally:
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=120)
    # A clean shutdown: exit 0, the port free, no pid file, nothing written to the working directory.
    assert exit_code == 0, log.read_text()[-3000:]
    assert not port_answers(port)
    assert not (root / "_serve" / "server.pid").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["output", "server.log"]
    assert (root / "_serve" / "derby.log").exists()


def test_docs_outputs_md_holds_the_columns_of_conf_outputs_yaml(settings):
    document = (PROJECT_ROOT / "docs" / "outputs.md").read_text()
    assert with_columns_section(document, settings.outputs) == document, "run `make docs`"
    assert "| `per_student` | total / n_students, euros |" in settings.outputs.columns_markdown()
