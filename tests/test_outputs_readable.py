"""Every Delta table the pipeline writes is readable without Spark (delta-rs), with the
same rows, and carries no feature a plain reader cannot handle."""

from deltalake import DeltaTable

from lib.delta_io import read_table


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
        assert table.to_pyarrow_table().num_rows == read_table(spark, path).count(), path.name


def test_run_record_names_this_run(spark, local_run):
    settings, record = local_run
    runs = read_table(spark, settings.output_root / "export" / "runs").collect()
    assert [(row.run_id, row.status) for row in runs] == [(record.run_id, "succeeded")]
    row = runs[0]
    assert row.config_hash == record.config_hash and len(row.input_fingerprint) == 64
    assert row.row_counts["input.enrolment"] > 0
    assert set(row.delta_versions) == set(record.delta_versions)
