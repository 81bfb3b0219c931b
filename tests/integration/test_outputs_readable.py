"""Every Delta table the pipeline writes is readable without Spark (delta-rs), with the
same rows, and carries no feature a plain reader cannot handle."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from deltalake import DeltaTable

from onderwijsscore.delta_io import read_table
from onderwijsscore.snapshot import read_arrow


def written_tables(settings):
    return sorted(p.parent for p in settings.output_root.glob("*/*/_delta_log"))


def test_every_output_table_reads_with_delta_rs(spark, local_run):
    settings, record = local_run
    tables = written_tables(settings)
    assert settings.output_root / "export" / "runs" in tables
    for path in tables:
        table = DeltaTable(str(path))
        protocol = table.protocol()
        assert not protocol.reader_features, f"{path.name} needs reader features {protocol.reader_features}"
        assert table.metadata().configuration.get("delta.enableDeletionVectors", "false") == "false"
        assert read_arrow(path).num_rows == read_table(spark, path).count(), path.name


def test_the_catalogue_describes_every_written_table_its_zone_partitions_and_columns(settings, local_run):
    run_settings, _ = local_run
    catalogue = settings.outputs
    for path in written_tables(run_settings):
        zone, name = path.parent.name, path.name
        spec = catalogue.tables[name]
        assert zone == spec.zone, name
        metadata = DeltaTable(str(path)).metadata()
        assert tuple(metadata.partition_columns) == spec.partition, name
        columns = {field.name for field in DeltaTable(str(path)).schema().fields}
        undescribed = columns - set(catalogue.comments(name))
        assert not undescribed, f"{name}: columns not in conf/outputs.yaml: {sorted(undescribed)}"


def test_run_record_names_this_run(spark, local_run):
    settings, record = local_run
    runs = read_table(spark, settings.output_root / "export" / "runs").collect()
    assert [(row.run_id, row.status) for row in runs] == [(record.run_id, "succeeded")]
    row = runs[0]
    assert row.config_hash == record.config_hash and len(row.input_fingerprint) == 64
    assert row.row_counts["input.enrolment"] > 0
    assert set(row.delta_versions) == set(record.delta_versions)


STANDALONE_READS = 16
READ_AND_EXIT = """
import sys
from onderwijsscore.snapshot import PublishedTables
published = PublishedTables(sys.argv[1])
for table in published.snapshot.tables("export"):
    published.read(table)
"""


def test_standalone_delta_rs_reads_exit_cleanly(local_run):
    """delta-rs's default file system let pyarrow abort about 1 in 4 reading processes at
    exit (exit 134); the snapshot reader reads through a native one. Each process reads
    every export table and exits."""
    settings, _ = local_run
    command = [sys.executable, "-c", READ_AND_EXIT, str(settings.output_root)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda _: subprocess.run(command, capture_output=True, text=True), range(STANDALONE_READS))
        )
    assert [result.returncode for result in results] == [0] * STANDALONE_READS, results[0].stderr[-2000:]
