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
}
SAMPLE_SCALE = 0.01
SAMPLE_SEED = 7
SAMPLE_YEARS = [2019, 2020]


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
def sample_input(spark, config, tmp_path_factory):
    """Sample input at SCALE=0.01 (≈9.5 k students a year, two teldatum years), every contract table."""
    root = tmp_path_factory.mktemp("sample") / "input"
    generate(spark, config, root, SAMPLE_SCALE, SAMPLE_SEED, SAMPLE_YEARS)
    return root


@pytest.fixture(scope="session")
def local_run(spark, config, sample_input, tmp_path_factory):
    """The whole pipeline run once in local mode on the sample input: (settings, run record)."""
    output = tmp_path_factory.mktemp("local") / "output"
    settings = pipeline.RunSettings.from_config(config, sample_input, output, SAMPLE_YEARS)
    record = pipeline.run(spark, config, settings)
    return settings, record
