"""The session factory's py4j shortcut: PySpark's per-call JVM classes are resolved once."""

from pyspark.sql import functions as F

from onderwijsscore.runtime import PINNED_JVM_CLASSES


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
