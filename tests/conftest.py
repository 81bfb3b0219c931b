"""Shared fixtures: one local SparkSession for the whole suite (as chispa and Delta's
own tests do), tiny sample input generated once, and one local pipeline run on it."""

import pytest

from lib import pipeline
from lib.runtime import build_session, load_config
from lib.sample_data import generate

TEST_SPARK = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "4g",
    "spark.databricks.delta.snapshotPartitions": "2",
    # Tiny data: most JVM time goes to compiling code that runs briefly; C1 only is faster.
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}
SAMPLE_SCALE = 0.01
SAMPLE_SEED = 20221001
SAMPLE_YEARS = (2017, 2018, 2019, 2020)  # generated: students move through grades
RUN_YEARS = [2019, 2020]  # the pipeline runs on two teldatum years to keep the suite fast


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: starts a Spark standalone cluster on 127.0.0.1 (slow, always run)")


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture(scope="session")
def spark(config):
    session = build_session(config, "onderwijsscore-tests", overrides=TEST_SPARK)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_generation(spark, config, tmp_path_factory):
    """Sample input at SCALE=0.01 (≈9.5 k students a year): (root, rows written per table)."""
    root = tmp_path_factory.mktemp("sample") / "input"
    return root, generate(spark, config, root, SAMPLE_SCALE, SAMPLE_SEED, SAMPLE_YEARS)


@pytest.fixture(scope="session")
def sample_input(sample_generation):
    return sample_generation[0]


@pytest.fixture(scope="session")
def local_run(spark, config, sample_input, tmp_path_factory):
    """The whole pipeline run once in local mode on the sample input: (settings, run record)."""
    output = tmp_path_factory.mktemp("local") / "output"
    settings = pipeline.RunSettings.from_config(config, sample_input, output, RUN_YEARS)
    record = pipeline.run(spark, config, settings)
    return settings, record
