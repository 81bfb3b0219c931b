"""Shared fixtures: one local SparkSession per test process (as chispa and Delta's own
tests do), tiny sample input generated once, and one local pipeline run on it.

`tests/unit/` tests one module on small hand-made frames; `tests/integration/` the whole
pipeline, its jobs and processes (sample data, the local run, the cluster, the SQL
endpoint, the report). Each test gets the marker of its folder: `make test` runs both,
`make test-unit` the fast part alone.

`make test` runs the suite in two processes (pytest-xdist): most of a test's time on tiny
data is the driver's planning and Delta's commits, not the cores. The sample input and
the local run are still made once per suite: the first process to need one makes it
under a file lock, the other reads it back.
"""

import fcntl
import pickle
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from helpers import CONF_DIR, RUN_YEARS, SAMPLE_SCALE, SAMPLE_SEED, SAMPLE_YEARS, TEST_SPARK, UNSET_PRO_BUDGET_YEAR
from onderwijsscore import pipeline
from onderwijsscore.config import load_config
from onderwijsscore.runtime import build_session
from onderwijsscore.sample_data.tables import generate
from onderwijsscore.settings import Settings


def pytest_configure(config):
    config.addinivalue_line("markers", "unit: one module on small hand-made frames (tests/unit/)")
    config.addinivalue_line("markers", "integration: the whole pipeline, its jobs and processes (tests/integration/)")
    config.addinivalue_line("markers", "cluster: starts a Spark standalone cluster on 127.0.0.1 (slow, always run)")
    config.addinivalue_line("markers", "long: takes minutes (processes of its own); started before the other tests")


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker("integration" if "integration" in item.path.parts else "unit")
    # The tests that take minutes go first: pytest-xdist's work stealing can then balance
    # the two processes with short tests at the end, instead of one process finishing a
    # long test alone (two minutes of a half-idle machine).
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def config():
    return load_config(CONF_DIR)


@pytest.fixture(scope="session")
def spark(config):
    session = build_session(config, "onderwijsscore-tests", overrides=TEST_SPARK)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def settings(config):
    return Settings.from_config(config)


@pytest.fixture(scope="session")
def scoring_rules(settings):
    return settings.scoring


@pytest.fixture(scope="session")
def pro_model(settings):
    return settings.models["pro"]


def once_per_suite(tmp_path_factory, name: str, make):
    """`make(folder)` computed once per test suite, whichever process asks first; the
    result is pickled next to the processes' temporary folders."""
    shared = tmp_path_factory.getbasetemp()
    if shared.name.startswith("popen-gw"):  # an xdist process: its parent is the suite's
        shared = shared.parent
    result = shared / f"{name}.pickle"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.is_file():
            folder = shared / name
            folder.mkdir()
            result.write_bytes(pickle.dumps(make(folder)))
        return pickle.loads(result.read_bytes())


@pytest.fixture(scope="session")
def sample_generation(spark, config, tmp_path_factory):
    """Sample input at SCALE=0.01 (≈9.5 k students a year): (root, rows written per table)."""

    def make(folder: Path):
        root = folder / "input"
        return root, generate(spark, config, root, SAMPLE_SCALE, SAMPLE_SEED, SAMPLE_YEARS)

    return once_per_suite(tmp_path_factory, "sample", make)


@pytest.fixture(scope="session")
def sample_input(sample_generation):
    return sample_generation[0]


@pytest.fixture(scope="session")
def local_run(spark, settings, sample_input, tmp_path_factory):
    """The whole pipeline run once in local mode on the sample input, without the pro
    budget of `UNSET_PRO_BUDGET_YEAR`: (settings, run record)."""

    def make(folder: Path):
        root = folder / "input"
        root.mkdir()
        for table in sample_input.iterdir():
            if table.name != "budgets":
                (root / table.name).symlink_to(table)
        pro_budget = "pro_onderwijskansen_budget"
        budgets = spark.read.parquet(str(sample_input / "budgets"))
        unset = F.when(F.col("year") != UNSET_PRO_BUDGET_YEAR, F.col(pro_budget))
        budgets.withColumn(pro_budget, unset).write.parquet(str(root / "budgets"))
        run_settings = pipeline.RunSettings.create(settings.pipeline, root, folder / "output", RUN_YEARS)
        return run_settings, pipeline.run(spark, settings, run_settings)

    return once_per_suite(tmp_path_factory, "local", make)
