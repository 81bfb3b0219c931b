"""The pipeline submitted to a real Spark standalone cluster (a master and two workers on
127.0.0.1, started with spark-class from the installed pyspark) for one teldatum year
gives the same outputs as that year's slices of the local two-year run, with no Python
on the executors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.compute as pc
import pyspark
import pytest

from helpers import PROJECT_ROOT, RUN_YEARS, TEST_SPARK, assert_same_arrow_rows, free_port
from onderwijsscore.runtime import delta_jars
from onderwijsscore.snapshot import read_arrow

SPARK_HOME = Path(pyspark.__file__).parent
CLUSTER_YEAR = RUN_YEARS[-1]  # one teldatum year: a year's outputs depend on that year's input only
pytestmark = [pytest.mark.cluster, pytest.mark.long]


def cluster_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp / "logs"),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        # The master and workers only coordinate: quick compilation spares the shared cores.
        "SPARK_DAEMON_JAVA_OPTS": "-XX:TieredStopAtLevel=1",
    }


def wait_for_workers(ui_port: int, workers: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
                if json.load(response).get("aliveworkers", 0) >= workers:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{workers} workers did not register within {timeout}s")


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """Start a master and two one-core workers; stop every process started, whatever happens."""
    tmp = tmp_path_factory.mktemp("cluster")
    env = cluster_env(tmp)
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    commands = [
        [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(ui_port),
        ],
    ] + [
        [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            "127.0.0.1",
            "--cores",
            "1",
            "--memory",
            "1500m",
            "--webui-port",
            str(free_port()),
            "--work-dir",
            str(tmp / f"work{i}"),
            url,
        ]
        for i in range(2)
    ]
    processes = []
    try:
        for i, command in enumerate(commands):
            log = open(tmp / f"daemon{i}.log", "w")  # noqa: SIM115 - closed with the process
            processes.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
        wait_for_workers(ui_port, workers=2)
        yield url, ui_port, env, tmp
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def build_py_files(target: Path) -> Path:
    """The zip `make dist` builds: the `onderwijsscore` package for --py-files."""
    return Path(shutil.make_archive(str(target / "onderwijsscore"), "zip", PROJECT_ROOT / "lib", "onderwijsscore"))


def delta_tables(root: Path) -> list[Path]:
    return sorted(p.parent.relative_to(root) for p in root.glob("*/*/_delta_log"))


def test_cluster_run_matches_local_run(config, settings, sample_input, standalone_cluster, request):
    url, ui_port, env, tmp = standalone_cluster
    output = tmp / "output"
    command = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master",
        url,
        "--py-files",
        str(build_py_files(tmp)),
        "--jars",
        ",".join(delta_jars(config)),
        "--driver-memory",
        "2g",
        "--executor-memory",
        "1g",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--conf",
        "spark.ui.enabled=false",
        # No Python on the executors (README): a Python worker there would fail to start.
        "--conf",
        "spark.pyspark.python=/nonexistent/python3",
        "--conf",
        f"spark.pyspark.driver.python={sys.executable}",
        # The JVM options of the test session (quick compilation for tiny data); Spark's
        # own settings stay the cluster defaults.
        "--driver-java-options",
        TEST_SPARK["spark.driver.extraJavaOptions"],
        "--conf",
        f"spark.executor.extraJavaOptions={TEST_SPARK['spark.driver.extraJavaOptions']}",
        str(PROJECT_ROOT / "jobs" / "run_pipeline.py"),
        "--input",
        str(sample_input),
        "--output",
        str(output),
        "--years",
        str(CLUSTER_YEAR),
        "--config",
        str(config.conf_dir),
    ]
    # The job's log goes to a file, not a pipe: nobody reads a pipe while the local run
    # to compare with is made (or waited for), and a full pipe would stall the job.
    log_path = tmp / "submit.log"
    with open(log_path, "w") as log, subprocess.Popen(command, env=env, cwd=tmp, stdout=log, stderr=log) as job:
        local_settings, _ = request.getfixturevalue("local_run")
        job.wait(timeout=1200)
    assert job.returncode == 0, log_path.read_text()[-4000:]
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        finished = [app["name"] for app in json.load(response)["completedapps"]]
    assert finished == ["onderwijsscore-pipeline"], "the job did not run on the standalone cluster"

    tables = delta_tables(output)
    # A one-year run writes every table except those of year pairs.
    assert {t.name for t in tables} == {t.name for t in delta_tables(local_settings.output_root)} - set(
        settings.outputs.slice_tables("pair_years")
    )
    # Both sides read with delta-rs: a Spark query per table and side cost the session a
    # minute and a half.
    for table in tables:
        if table.name == "runs":
            continue
        cluster = read_arrow(output / table).drop_columns(["run_id"])
        local = read_arrow(local_settings.output_root / table).drop_columns(["run_id"])
        local = local.filter(pc.is_in(local["year"], value_set=pc.unique(cluster["year"])))
        assert_same_arrow_rows(cluster, local, str(table))
    assert read_arrow(output / "export" / "runs").column("status").to_pylist() == ["succeeded"]
