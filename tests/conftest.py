"""One shared local SparkSession for the whole suite (as chispa and Delta's own tests do)."""

import pytest

from lib.runtime import build_session, load_config

TEST_SPARK = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "4g",
    "spark.sql.adaptive.coalescePartitions.initialPartitionNum": "2",
    "spark.databricks.delta.snapshotPartitions": "2",
}


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture(scope="session")
def spark(config):
    session = build_session(config, "onderwijsscore-tests", overrides=TEST_SPARK)
    yield session
    session.stop()
