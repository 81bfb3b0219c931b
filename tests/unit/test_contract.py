"""The readers' contract errors: each rule, its message, and no ids in it."""

import datetime as dt
import shutil
from dataclasses import replace

import pytest
from pyspark.sql import types as T

from onderwijsscore.contract import CONTRACT, ContractError, read_inputs
from onderwijsscore.models import mapped_register_codes
from onderwijsscore.runtime import literal_frame

# Ids carry a marker so a test can prove no message ever quotes one.
ID = "SECRETID"

VALID_ROWS = {
    "enrolment": [(2020, f"{ID}s1", "v1", "vmbo_bk", 3, True), (2020, f"{ID}s2", "v1", "pro", 1, True)],
    "persons": [(f"{ID}s1", 2006, "m", "nl"), (f"{ID}s2", 2007, "f", None), (f"{ID}f1", 1975, "m", "nl")],
    "parents": [(f"{ID}s1", f"{ID}f1", None), (f"{ID}s2", None, None)],
    "education": [(2020, f"{ID}f1", "mbo4")],
    "income": [(2020, f"{ID}f1", 55)],
    "residence_duration": [(2020, f"{ID}m1", "10_plus")],
    "wsnp": [(f"{ID}f1", dt.date(2019, 1, 1), None)],
    "asylum": [(f"{ID}s2", dt.date(2016, 5, 1))],
    "addresses": [(2020, f"{ID}s1", "1011"), (2020, f"{ID}s2", None)],
    "schools": [(2020, "v1", "b1", "1011", False, None)],
    "swv_postcodes": [("1011", "VO2701")],
    "swv": [("VO2701", "Amsterdam", None, None), ("VO0001", "RSVO", None, None)],
    "budgets": [(2020, 600_000_000, None)],
    "swv_budgets": [(2020, "VO2701", 1000, 2000, 3000)],
}

SPARK_TYPES = {
    "int": "int",
    "str": "string",
    "bool": "boolean",
    "date": "date",
    "decimal": "long",
}  # money may be whole euros


def schema_of(table):
    return ", ".join(f"{c.name} {SPARK_TYPES[c.kind]}" for c in CONTRACT[table].columns)


def write_table(spark, root, table, rows, fmt="parquet", schema=None):
    frame = literal_frame(spark, rows, schema or schema_of(table)).coalesce(1)
    if fmt == "csv":
        frame.write.mode("overwrite").option("header", True).csv(str(root / table))
    else:
        frame.write.mode("overwrite").format(fmt).save(str(root / table))


@pytest.fixture(scope="module")
def valid_input(spark, tmp_path_factory):
    """Every contract table with the valid rows, written once as Parquet."""
    root = tmp_path_factory.mktemp("valid") / "in"
    for table, rows in VALID_ROWS.items():
        write_table(spark, root, table, rows)
    return root


def corrupted_copy(spark, valid_input, tmp_path, rows=None, schemas=None):
    """A copy of the valid input with some tables replaced."""
    root = tmp_path / "in"
    shutil.copytree(valid_input, root)
    for table, table_rows in (rows or {}).items():
        shutil.rmtree(root / table)
        write_table(spark, root, table, table_rows, schema=(schemas or {}).get(table))
    return root


def errors_for(spark, valid_input, tmp_path, rows, schemas=None):
    """Read only the corrupted tables and return their violations and the error message."""
    root = corrupted_copy(spark, valid_input, tmp_path, rows, schemas)
    with pytest.raises(ContractError) as caught:
        read_inputs(spark, root, tables=tuple(rows))
    message = str(caught.value)
    assert ID not in message, "an error message quotes an id"
    return caught.value.violations, message


@pytest.mark.parametrize("fmt", ["parquet", "delta", "csv"])
def test_valid_input_reads_in_every_format_with_canonical_types(spark, valid_input, tmp_path, fmt):
    # Every table once (Parquet); the tables with money, booleans and dates in each format.
    if fmt == "parquet":
        root, tables = valid_input, tuple(VALID_ROWS)
    else:
        root, tables = tmp_path / "in", ("enrolment", "wsnp", "budgets")
        for table in tables:
            write_table(spark, root, table, VALID_ROWS[table], fmt)
    inputs = read_inputs(spark, root, tables=tables)
    assert inputs.row_counts == {table: len(VALID_ROWS[table]) for table in tables}
    assert inputs["budgets"].schema["lwoo_budget"].dataType == T.DecimalType(18, 2)
    assert inputs["enrolment"].schema["grade"].dataType == T.IntegerType()
    assert inputs["wsnp"].where("end_date is null").count() == 1
    assert inputs["enrolment"].where("funded").count() == 2


def test_missing_table_is_named(spark, valid_input, tmp_path):
    root = corrupted_copy(spark, valid_input, tmp_path)
    shutil.rmtree(root / "asylum")
    with pytest.raises(ContractError, match=r"table asylum, column \*: table missing"):
        read_inputs(spark, root)


def test_missing_column_is_named(spark, valid_input, tmp_path):
    violations, message = errors_for(
        spark,
        valid_input,
        tmp_path,
        rows={"swv": [("VO2701", None, None)]},
        schemas={"swv": "swv_id string, shrink_region string, shrink_type string"},
    )
    assert [(v.table, v.column, v.rule) for v in violations] == [("swv", "name", "column missing")]
    assert "table swv, column name: column missing" in message


def test_duplicate_key_counts_every_row_sharing_it(spark, valid_input, tmp_path):
    # s1's key on three rows, s2's on two, and s2 once more in 2019 (another key)
    others = [(2020, f"{ID}s1", "v1", "vmbo_gt", 4, True), (2020, f"{ID}s1", "v2", "pro", 1, True)]
    others += [(2020, f"{ID}s2", "v2", "pro", 2, True), (2019, f"{ID}s2", "v1", "pro", 1, True)]
    duplicated = VALID_ROWS["enrolment"] + others
    violations, message = errors_for(spark, valid_input, tmp_path, rows={"enrolment": duplicated})
    assert [(v.table, v.column, v.rule, v.rows) for v in violations] == [
        ("enrolment", "year,student_id", "key not unique (rows sharing a key)", 5)
    ]
    assert "(5 rows)" in message


def test_null_id_unknown_code_and_range(spark, valid_input, tmp_path):
    rows = {
        "enrolment": VALID_ROWS["enrolment"] + [(2020, None, "v1", "mavo", 9, True)],
        "persons": VALID_ROWS["persons"] + [(f"{ID}x", 1980, "x", "mars")],
    }
    violations, _ = errors_for(spark, valid_input, tmp_path, rows=rows)
    found = {(v.table, v.column, v.rule.split(" ")[0], v.rows) for v in violations}
    assert found == {
        ("enrolment", "student_id", "null", 1),
        ("enrolment", "programme", "code", 1),
        ("enrolment", "grade", "value", 1),
        ("persons", "sex", "code", 1),
        ("persons", "origin_group", "code", 1),
    }


def test_codes_the_education_mapping_knows_are_accepted_others_named(spark, settings, valid_input, tmp_path):
    # input-contract.md: a code the conf/ mapping recodes (praktijkonderwijs) is valid input;
    # a code neither the categories nor the mapping know stops the run.
    models = [settings.models[name] for name in ("lwoo", "pro")]
    mapped = mapped_register_codes(models)
    assert mapped == {"education": {"education_level": ("praktijkonderwijs",)}}
    education = VALID_ROWS["education"] + [(2020, f"{ID}m1", "praktijkonderwijs")]
    root = corrupted_copy(spark, valid_input, tmp_path, rows={"education": education})
    assert read_inputs(spark, root, tables=("education",), mapped_codes=mapped).row_counts == {"education": 2}
    with pytest.raises(ContractError, match=r"education_level: code not in \['basis', .*'hbo_wo_master'\] \(1 rows\)"):
        read_inputs(spark, root, tables=("education",))  # without the mapping
    root = corrupted_copy(
        spark, valid_input, tmp_path / "bogus", rows={"education": [*education, (2020, f"{ID}m2", "lts")]}
    )
    with pytest.raises(ContractError) as caught:
        read_inputs(spark, root, tables=("education",), mapped_codes=mapped)
    assert [(v.column, v.rows) for v in caught.value.violations] == [("education_level", 1)]
    assert "'hbo_wo_master', 'praktijkonderwijs'] (1 rows)" in str(caught.value) and ID not in str(caught.value)


def test_a_code_only_some_models_map_is_not_accepted(settings):
    lwoo, pro = (settings.models[name] for name in ("lwoo", "pro"))
    only_lwoo = replace(lwoo, education_mapping={**lwoo.education_mapping, "lts": "vmbo_bk_mbo1"})
    assert mapped_register_codes([only_lwoo, pro])["education"] == {"education_level": ("praktijkonderwijs",)}


def test_an_id_with_whitespace_breaks_the_contract(spark, valid_input, tmp_path):
    # A padded id would silently become "not in the register".
    rows = {
        "parents": [(f"{ID}s1", f"{ID}f1 ", None), (f"{ID}s2", None, f"{ID}m2\n")],
        "schools": [(2020, "v1", "b1", "1011", False, "\tVO2701")],
    }
    violations, _ = errors_for(spark, valid_input, tmp_path, rows=rows)
    assert sorted((v.table, v.column, v.rule, v.rows) for v in violations) == [
        ("parents", "father_id", "id with leading or trailing whitespace", 1),
        ("parents", "mother_id", "id with leading or trailing whitespace", 1),
        ("schools", "swv_override", "id with leading or trailing whitespace", 1),
    ]


def test_wrong_type_in_parquet_and_in_csv(spark, valid_input, tmp_path):
    as_text = "year string, student_id string, school_id string, programme string, grade string, funded boolean"
    violations, message = errors_for(
        spark,
        valid_input,
        tmp_path,
        rows={"enrolment": [("2020", f"{ID}s1", "v1", "vmbo_bk", "3", True)]},
        schemas={"enrolment": as_text},
    )
    assert {(v.column, v.rows) for v in violations} == {("year", 1), ("grade", 1)}
    assert "wrong type: not a valid int (found string)" in message

    write_table(spark, tmp_path / "csv", "income", [(2020, f"{ID}f1", 55)], "csv")
    # Corrupt one CSV cell: a percentile that is not a number.
    part = next((tmp_path / "csv" / "income").glob("*.csv"))
    part.write_text(part.read_text().replace(",55", ",fifty-five"))
    for checksum in part.parent.glob(".*.crc"):
        checksum.unlink()
    with pytest.raises(ContractError) as caught:
        read_inputs(spark, tmp_path / "csv", tables=("income",))
    assert [(v.table, v.column, v.rows) for v in caught.value.violations] == [("income", "income_percentile", 1)]


def test_postcode_pattern_and_int32_overflow(spark, valid_input, tmp_path):
    violations, _ = errors_for(
        spark,
        valid_input,
        tmp_path,
        rows={"swv_postcodes": [("1011", "VO2701"), ("10115", "VO2701")], "income": [(2020, f"{ID}f1", 2**40)]},
        schemas={"income": "year int, person_id string, income_percentile long"},
    )
    found = {(v.table, v.column, v.rule.split(":")[0], v.rows) for v in violations}
    assert ("swv_postcodes", "postcode", "value does not match ^[0-9]{4}$", 1) in found
    assert ("income", "income_percentile", "wrong type", 1) in found


def test_empty_population_table_is_an_error(spark, valid_input, tmp_path):
    violations, _ = errors_for(spark, valid_input, tmp_path, rows={"enrolment": []})
    assert [(v.table, v.rule) for v in violations] == [("enrolment", "table is empty")]


def files_of(root, table, suffix):
    return sorted((root / table).glob(f"*{suffix}"))


def test_files_spark_would_fail_on_or_misread_are_named_before_any_read(spark, valid_input, tmp_path):
    """A stray file, a damaged Parquet file, and part files that disagree on their columns
    (one lacks a column Spark would fill with nulls; one has another type)."""
    root = corrupted_copy(spark, valid_input, tmp_path)
    (root / "persons" / "notes.txt").write_text("extracted by hand\n")
    (root / "persons" / "_README").write_text("a hidden file: Spark skips it, so does the contract\n")
    damaged = files_of(root, "income", ".parquet")[0]
    damaged.write_bytes(damaged.read_bytes()[:40])
    literal_frame(spark, [(f"{ID}x", 1990, "m")], "person_id string, birth_year int, sex string").coalesce(
        1
    ).write.mode("append").parquet(str(root / "persons"))
    literal_frame(
        spark, [(f"{ID}y", "1990", "m", "nl")], schema_of("persons").replace("birth_year int", "birth_year string")
    ).coalesce(1).write.mode("append").parquet(str(root / "persons"))
    with pytest.raises(ContractError) as caught:
        read_inputs(spark, root, tables=("persons", "income", "education"))
    found = [(v.table, v.column, v.rows, v.unit) for v in caught.value.violations]
    assert found == [
        ("persons", "*", 1, "files"),
        ("persons", "birth_year", 3, "files"),
        ("persons", "origin_group", 3, "files"),
        ("income", "*", 1, "files"),
    ]
    message = str(caught.value)
    assert (
        "table persons, column *: file in the table folder that is not Parquet (a stray or damaged file: notes.txt)"
        in message
    )
    assert (
        "table persons, column birth_year: part files disagree on the column (int32 in 2, string in 1) (3 files)"
        in message
    )
    assert "table persons, column origin_group: part files disagree on the column (absent in 1, string in 2)" in message
    assert ID not in message


def test_a_stray_file_in_a_csv_table_is_named(spark, valid_input, tmp_path):
    root = tmp_path / "in"
    write_table(spark, root, "budgets", VALID_ROWS["budgets"], "csv")
    (root / "budgets" / "budgets.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(ContractError, match=r"table budgets, column \*: file in the table folder that is not CSV"):
        read_inputs(spark, root, tables=("budgets",))
