"""The session factory's py4j shortcut: PySpark's per-call JVM classes are resolved once."""

import pytest
from pyspark.sql import functions as F

from onderwijsscore.runtime import PINNED_JVM_CLASSES, pin_jvm_classes


def test_pinned_classes_reach_the_jvm_with_the_call_alone(spark):
    jvm = spark.sparkContext._jvm
    for name in PINNED_JVM_CLASSES:
        assert getattr(jvm, name) is getattr(jvm, name.rsplit(".", 1)[1]), name
    F.col("a"), F.lit(1)  # their methods looked up once
    client = jvm._gateway_client
    sent = []
    send = client.send_command

    def counted(command, *args, **kwargs):
        sent.append(command.split("\n", 1)[0])
        return send(command, *args, **kwargs)

    client.send_command = counted
    try:
        F.col("b"), F.lit(2)
    finally:
        del client.send_command
    # Calls only ("c"): no reflection ("r": class or member lookups); py4j may interleave
    # releases of collected objects ("m").
    assert [kind for kind in sent if kind != "m"] == ["c", "c"]


def test_a_class_missing_from_the_class_path_is_named_not_pinned(spark):
    with pytest.raises(RuntimeError, match="no JVM class org.apache.spark.sql.NoSuchClass on the driver's class path"):
        pin_jvm_classes(spark, ["org.apache.spark.sql.NoSuchClass"])
    assert "NoSuchClass" not in vars(spark.sparkContext._jvm)
