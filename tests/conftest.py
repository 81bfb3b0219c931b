"""Shared fixtures: one local SparkSession for the whole suite (as chispa and Delta's
own tests do), tiny sample input generated once, and one local pipeline run on it."""

from dataclasses import replace

import pytest

from lib import pipeline
from lib.models import load_model
from lib.runtime import build_session, load_config
from lib.sample_data import generate
from lib.scores import load_scoring_rules

TEST_SPARK = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "4g",
    "spark.databricks.delta.snapshotPartitions": "2",
    # Tiny data: most JVM time goes to compiling code that runs briefly; C1 only is faster.
    # C1 alone gets a 48 MB code cache by default, which Spark's generated code can fill
    # (the JVM then fails on method handles): reserve the tiered default.
    "spark.driver.extraJavaOptions": " ".join(
        ("-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m", "-XX:-DontCompileHugeMethods")
    ),
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
def scoring_rules(config):
    """The configured scoring rules, but at most 10 iterations for the education model:
    each is a Spark job, and 10 are plenty for the hand-made inputs."""
    configured = load_scoring_rules(config)
    return replace(configured, education_model=replace(configured.education_model, max_iter=10))


@pytest.fixture(scope="session")
def pro_model(config):
    return load_model(config, "pro")


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
