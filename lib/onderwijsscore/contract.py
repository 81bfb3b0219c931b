"""The input contract: table definitions, readers and schema enforcement.

Every table of the contract is read from one folder under the input root (Parquet,
Delta or CSV with header), checked against its definition and returned with canonical
types. A table that breaks the contract stops the run with a `ContractError` naming
table, column, rule and number of offending rows; row content (ids) never appears.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce
from operator import add
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_type

from onderwijsscore.errors import PipelineError
from onderwijsscore.vocabulary import DURATION_CLASSES, EDUCATION_LEVELS, ORIGIN_GROUPS, PROGRAMMES, SHRINK_TYPES

MONEY = T.DecimalType(18, 2)
# Java's \s; trimming these is several times cheaper than a regular expression per id.
WHITESPACE = " \t\n\x0b\f\r"
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Col:
    name: str
    kind: str  # int | str | bool | date | decimal
    nullable: bool = False
    domain: tuple[str, ...] | None = None
    min: int | None = None
    max: int | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class TableDef:
    name: str
    columns: tuple[Col, ...]
    key: tuple[str, ...] = ()
    non_empty: bool = True


def _postcode(name: str, nullable: bool = False) -> Col:
    return Col(name, "str", nullable=nullable, pattern=r"^[0-9]{4}$")


def _yearly_register(name: str, value: Col) -> TableDef:
    """A register of one value per person and year; a year may have no rows."""
    return TableDef(
        name, (Col("year", "int"), Col("person_id", "str"), value), key=("year", "person_id"), non_empty=False
    )


CONTRACT: dict[str, TableDef] = {
    t.name: t
    for t in (
        TableDef(
            "enrolment",
            (
                Col("year", "int"),
                Col("student_id", "str"),
                Col("school_id", "str"),
                Col("programme", "str", domain=PROGRAMMES),
                Col("grade", "int", min=1, max=6),
                Col("funded", "bool"),
            ),
            key=("year", "student_id"),
        ),
        TableDef(
            "persons",
            (
                Col("person_id", "str"),
                Col("birth_year", "int"),
                Col("sex", "str", domain=("m", "f")),
                Col("origin_group", "str", nullable=True, domain=ORIGIN_GROUPS),
            ),
            key=("person_id",),
        ),
        TableDef(
            "parents",
            (Col("child_id", "str"), Col("father_id", "str", nullable=True), Col("mother_id", "str", nullable=True)),
            key=("child_id",),
        ),
        _yearly_register("education", Col("education_level", "str", nullable=True, domain=EDUCATION_LEVELS)),
        _yearly_register("income", Col("income_percentile", "int", nullable=True, min=1, max=100)),
        _yearly_register("residence_duration", Col("duration_class", "str", domain=DURATION_CLASSES)),
        TableDef(
            "wsnp",
            (Col("person_id", "str"), Col("start_date", "date"), Col("end_date", "date", nullable=True)),
            non_empty=False,
        ),
        TableDef(
            "asylum",
            (Col("person_id", "str"), Col("registration_date", "date")),
            key=("person_id",),
            non_empty=False,
        ),
        _yearly_register("addresses", _postcode("postcode", nullable=True)),
        TableDef(
            "schools",
            (
                Col("year", "int"),
                Col("school_id", "str"),
                Col("board_id", "str", nullable=True),
                _postcode("postcode"),
                Col("rsvo", "bool"),
                Col("swv_override", "str", nullable=True),
            ),
            key=("year", "school_id"),
        ),
        TableDef("swv_postcodes", (_postcode("postcode"), Col("swv_id", "str")), key=("postcode",)),
        TableDef(
            "swv",
            (
                Col("swv_id", "str"),
                Col("name", "str"),
                Col("shrink_region", "str", nullable=True),
                Col("shrink_type", "str", nullable=True, domain=SHRINK_TYPES),
            ),
            key=("swv_id",),
        ),
        TableDef(
            "budgets",
            (
                Col("year", "int"),
                Col("lwoo_budget", "decimal", nullable=True),
                Col("pro_onderwijskansen_budget", "decimal", nullable=True),
            ),
            key=("year",),
        ),
        TableDef(
            "swv_budgets",
            (
                Col("year", "int"),
                Col("swv_id", "str"),
                Col("regional_support", "decimal"),
                Col("pro_budget", "decimal"),
                Col("current_lwoo_budget", "decimal"),
            ),
            key=("year", "swv_id"),
        ),
    )
}

CANONICAL_TYPES = {
    "int": T.IntegerType(),
    "str": T.StringType(),
    "bool": T.BooleanType(),
    "date": T.DateType(),
    "decimal": MONEY,
}
_ACCEPTED = {
    "int": (T.ByteType, T.ShortType, T.IntegerType, T.LongType),
    "str": (T.StringType, T.VarcharType, T.CharType),
    "bool": (T.BooleanType,),
    "date": (T.DateType,),
    "decimal": (T.DecimalType, T.ByteType, T.ShortType, T.IntegerType, T.LongType),
}


@dataclass(frozen=True)
class Violation:
    table: str
    column: str
    rule: str
    rows: int
    unit: str = "rows"  # what `rows` counts

    def __str__(self) -> str:
        return f"table {self.table}, column {self.column}: {self.rule} ({self.rows} {self.unit})"


class ContractError(PipelineError):
    """Input that breaks the contract; the message names table, column, rule and count."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(f"input breaks the contract ({len(violations)} violations):\n{lines}")


def detect_format(folder: Path) -> str:
    if (folder / "_delta_log").is_dir():
        return "delta"
    if any(folder.rglob("*.parquet")):
        return "parquet"
    if any(folder.rglob("*.csv")):
        return "csv"
    raise ContractError([Violation(folder.name, "*", "no Parquet, Delta or CSV files found in the table folder", 0)])


_FORMAT_NAMES = {"parquet": "Parquet", "csv": "CSV"}


def _data_files(folder: Path) -> list[Path]:
    """The files Spark reads in a table folder: names starting with `_` or `.` are hidden."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(("_", ".")) for part in path.relative_to(folder).parts)
    )


def file_violations(table: str, folder: Path, fmt: str) -> tuple[list[Violation], pa.Schema | None]:
    """Files Spark would fail on, or read into a table silently wrong: a file that is not
    Parquet (or not CSV) in the folder, and part files that disagree on their columns.
    Reads footers and header lines only, on the driver; names files, never row content.
    A Delta table reads only the files its log lists, with the log's schema.

    Also the first Parquet part file's footer, for `footer_schema`: None for CSV, Delta,
    or part files in partition folders (their partition columns are not in the footers)."""
    if fmt == "delta":
        return [], None
    schemas: dict[str, dict[str, str]] = {}  # file -> column -> type
    footers: list[pa.Schema] = []
    foreign = []
    for path in _data_files(folder):
        name = str(path.relative_to(folder))
        try:
            if fmt == "parquet":
                footers.append(pq.read_schema(path))
                schemas[name] = {field.name: str(field.type) for field in footers[-1]}
            else:
                schemas[name] = _csv_columns(path)
        except (OSError, ValueError, UnicodeDecodeError, pa.ArrowException):
            foreign.append(name)
    found = []
    if foreign:
        listed = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        rule = f"file in the table folder that is not {_FORMAT_NAMES[fmt]} (a stray or damaged file: {listed})"
        found.append(Violation(table, "*", rule, len(foreign), "files"))
    columns = sorted({column for columns in schemas.values() for column in columns})
    for column in columns:
        kinds = Counter(schema.get(column, "absent") for schema in schemas.values())
        if len(kinds) > 1:
            split = ", ".join(f"{kind} in {n}" for kind, n in sorted(kinds.items()))
            found.append(
                Violation(table, column, f"part files disagree on the column ({split})", len(schemas), "files")
            )
    partitioned = any(len(Path(name).parts) > 1 for name in schemas)
    return found, footers[0] if footers and not partitioned else None


def _csv_columns(path: Path) -> dict[str, str]:
    """A CSV file's header: each column is text until the contract parses it."""
    if not path.name.endswith((".csv", ".csv.gz")):
        raise ValueError(f"{path.name} is not a .csv or .csv.gz file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return dict.fromkeys(next(csv.reader(handle), []), "text")


def read_raw(spark: SparkSession, folder: Path, fmt: str, schema: T.StructType | None = None) -> DataFrame:
    """The table as stored; `schema` (Parquet): its columns' types, known from the footers."""
    if fmt == "csv":
        # Every CSV column arrives as a string and is parsed by the contract.
        return spark.read.option("header", True).option("inferSchema", False).csv(str(folder))
    reader = spark.read.format(fmt)
    return (reader.schema(schema) if schema is not None else reader).load(str(folder))


def footer_schema(table: TableDef, footer: pa.Schema | None) -> T.StructType | None:
    """The contract columns' types in a Parquet part file's footer (`file_violations`: the
    part files agree), as Spark infers them: given to the reader, they spare a
    schema-inference Spark job per table. None (Spark then infers) without a footer, or
    when a column is absent or of a type outside `_FOOTER_TYPES`."""
    if footer is None:
        return None
    fields = []
    for col in table.columns:
        index = footer.get_field_index(col.name)  # -1: absent (or twice)
        if index < 0 or not any(is_type(footer.field(index).type) for is_type in _FOOTER_TYPES):
            return None
        fields.append(T.StructField(col.name, from_arrow_type(footer.field(index).type)))
    return T.StructType(fields)


# Arrow types that pyspark maps to the type Spark's own Parquet inference gives.
_FOOTER_TYPES = (
    pa.types.is_signed_integer,
    pa.types.is_boolean,
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_date32,
    pa.types.is_decimal128,
    pa.types.is_float32,
    pa.types.is_float64,
)


def _typed(col: Col, source: T.DataType, from_text: bool) -> tuple[SparkColumn, SparkColumn | None]:
    """The canonical value of a column and, when it needs parsing, the condition that it failed.

    Returns (value, failed) where `failed` is None when the physical type cannot fail,
    or a boolean column that is true where a non-null input is not a valid value. Text is
    parsed only when it comes from CSV: a typed format must carry the contract's types.
    """
    raw = F.col(col.name)
    target = CANONICAL_TYPES[col.kind]
    if isinstance(source, _ACCEPTED[col.kind]):
        if col.kind == "int" and isinstance(source, T.LongType):
            fits = raw.between(*_INT32)
            return F.when(fits, raw.cast(target)), raw.isNotNull() & ~fits
        return raw.cast(target), None
    if from_text and isinstance(source, T.StringType):
        trimmed = F.trim(raw)
        value = (F.lower(trimmed) if col.kind == "bool" else trimmed).try_cast(target)
        if col.kind == "int":
            # Reject fractional or out-of-range text rather than truncating it.
            value = F.when(trimmed.rlike(r"^[+-]?[0-9]+$"), value)
        return value, raw.isNotNull() & (trimmed != "") & value.isNull()
    return F.lit(None).cast(target), raw.isNotNull()


@dataclass(frozen=True)
class _Check:
    column: str
    rule: str
    broken: SparkColumn  # true on a row that breaks the rule


@dataclass(frozen=True)
class _Table:
    """A table read as its contract says: canonical values and the rules to count."""

    definition: TableDef
    raw: DataFrame
    typed: dict[str, SparkColumn]
    checks: list[_Check]

    @property
    def frame(self) -> DataFrame:
        """The canonical frame: lazy, a scan of the input (cheaper to read again than to keep)."""
        return self.raw.select(*[value.alias(name) for name, value in self.typed.items()])

    def checked(self) -> DataFrame:
        """One row: the table's name, its rows and the rows breaking each check (`counts`),
        and the rows whose key another row has too (`shared`), from one scan of the table.

        The key is compared by its 64-bit hash, so `shared` can only overcount, by a
        collision: a non-zero result is counted again on the keys (`rows_sharing_a_key`).
        The rows are counted per key by sorting (a window), not in a hash aggregation: the
        keys are almost all distinct, so an aggregation's partial step saves nothing and its
        two hash maps cost more than one sort (docs/benchmarks.md, "Round twelve"). Each
        row's broken checks travel through the window's shuffle as the bits of one long, so
        the columns are read and decoded once for the rules and the key ("Round thirteen").
        """
        broken = [F.coalesce(check.broken, F.lit(False)) for check in self.checks]
        # One bit per check; a contract table has a handful of columns, far below 63 checks.
        bits = [F.when(b, F.lit(1 << bit)).otherwise(F.lit(0)).cast("long") for bit, b in enumerate(broken)]
        mask = reduce(add, bits, F.lit(0).cast("long"))
        keys = [self.typed[name] for name in self.definition.key]
        # A table without a key has no shared keys, and no shuffle.
        rows_with_key = F.count(F.lit(1)).over(Window.partitionBy(F.xxhash64(*keys))) if keys else F.lit(1)
        rows = self.raw.select(rows_with_key.alias("rows_with_key"), mask.alias("broken"))
        counts = [F.count_if(F.col("broken").bitwiseAND(F.lit(1 << bit)) != 0) for bit in range(len(broken))]
        return rows.agg(
            F.array(F.count(F.lit(1)), *counts).alias("counts"),
            F.count_if(F.col("rows_with_key") > 1).alias("shared"),
        ).select(F.lit(self.definition.name).alias("table"), "counts", "shared")

    def rows_sharing_a_key(self) -> DataFrame:
        """One row: the table's name and the rows whose key another row has too, counted on
        the keys themselves (after `checked` found a shared key hash)."""
        per_key = Window.partitionBy(F.struct(*[self.typed[name] for name in self.definition.key]))
        rows_with_key = self.raw.select(F.count(F.lit(1)).over(per_key).alias("rows_with_key"))
        shared = rows_with_key.agg(F.count_if(F.col("rows_with_key") > 1).alias("shared"))
        return shared.select(F.lit(self.definition.name).alias("table"), "shared")


def _read_table(
    table: TableDef, raw: DataFrame, from_text: bool, mapped: Mapping[str, tuple[str, ...]]
) -> tuple[_Table | None, list[Violation]]:
    """The table with its canonical values and checks, or the columns it lacks. `mapped`:
    per column, codes outside its domain that a mapping in conf/ recodes."""
    present = {f.name: f.dataType for f in raw.schema.fields}
    missing = [c for c in table.columns if c.name not in present]
    if missing:
        return None, [Violation(table.name, c.name, "column missing", 0) for c in missing]

    typed: dict[str, SparkColumn] = {}
    parse_failed: dict[str, SparkColumn] = {}
    checks = []
    for col in table.columns:
        value, failed = _typed(col, present[col.name], from_text)
        typed[col.name] = value
        if failed is not None:  # judged on the raw value; the other rules judge the typed value
            parse_failed[col.name] = failed
            kind = "string" if col.kind == "str" else col.kind
            found = present[col.name].simpleString()
            checks.append(_Check(col.name, f"wrong type: not a valid {kind} (found {found})", failed))
    for col in table.columns:
        c = typed[col.name]
        if not col.nullable:
            checks.append(_Check(col.name, "null not allowed", c.isNull() & ~parse_failed.get(col.name, F.lit(False))))
        if col.domain:
            known = (*col.domain, *mapped.get(col.name, ()))
            checks.append(_Check(col.name, f"code not in {list(known)}", c.isNotNull() & ~c.isin(*known)))
        if col.min is not None:
            checks.append(_Check(col.name, f"value outside [{col.min}, {col.max}]", ~c.between(col.min, col.max)))
        if col.pattern:
            checks.append(_Check(col.name, f"value does not match {col.pattern}", ~c.rlike(col.pattern)))
        if _is_identifier(col):
            # A padded id would silently match no register row ("not in the register").
            padded = c != F.btrim(c, F.lit(WHITESPACE))
            checks.append(_Check(col.name, "id with leading or trailing whitespace", padded))
    return _Table(table, raw, typed, checks), []


def _is_identifier(col: Col) -> bool:
    """Id columns: `*_id`, and `swv_override` (an SWV id)."""
    return col.kind == "str" and (col.name.endswith("_id") or col.name == "swv_override")


@dataclass(frozen=True)
class Inputs:
    frames: dict[str, DataFrame]
    row_counts: dict[str, int]

    def __getitem__(self, table: str) -> DataFrame:
        return self.frames[table]


def read_inputs(
    spark: SparkSession,
    input_root: str | Path,
    fmt: str = "auto",
    tables: tuple[str, ...] | None = None,
    mapped_codes: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
) -> Inputs:
    """Read and check every contract table; raise one `ContractError` listing all violations.

    `mapped_codes` (table -> column -> codes) are register codes that a mapping in conf/
    recodes into the categories: the contract accepts them besides the categories.

    One query checks every table: each table's rows, rule breaks and rows sharing a key
    (by key hash; recounted on the keys only where that finds any, a second query).
    The frames returned are lazy scans. `--years` filtering is the caller's: the whole
    input is checked.
    """
    root = Path(input_root)
    names = tables or tuple(CONTRACT)
    read: dict[str, _Table] = {}
    violations: dict[str, list[Violation]] = {}
    for name in names:
        folder = root / name
        if not folder.is_dir():
            violations[name] = [Violation(name, "*", f"table missing (no folder {folder})", 0)]
            continue
        table_format = detect_format(folder) if fmt == "auto" else fmt
        violations[name], footer = file_violations(name, folder, table_format)
        if violations[name]:
            continue
        table, violations[name] = _read_table(
            CONTRACT[name],
            read_raw(spark, folder, table_format, footer_schema(CONTRACT[name], footer)),
            table_format == "csv",
            (mapped_codes or {}).get(name, {}),
        )
        if table is not None:
            read[name] = table

    checked = _collect_rows([table.checked() for table in read.values()], "counts", "shared")
    recount = [read[name] for name, (_, shared_hashes) in checked.items() if shared_hashes]
    shared = {name: n for name, (n,) in _collect_rows([t.rows_sharing_a_key() for t in recount], "shared").items()}

    row_counts = {}
    for name, table in read.items():
        rows, *broken = checked[name][0]
        row_counts[name] = rows
        violations[name] += [
            Violation(name, c.column, c.rule, n) for c, n in zip(table.checks, broken, strict=True) if n
        ]
        if table.definition.non_empty and rows == 0:
            violations[name].append(Violation(name, "*", "table is empty", 0))
        if shared.get(name):
            key = ",".join(table.definition.key)
            violations[name].append(Violation(name, key, "key not unique (rows sharing a key)", shared[name]))
    found = [violation for name in names for violation in violations[name]]
    if found:
        raise ContractError(found)
    return Inputs({name: table.frame for name, table in read.items()}, row_counts)


def _collect_rows(frames: list[DataFrame], *values: str) -> dict[str, tuple]:
    """table -> the `values` of one-row frames, collected as one query."""
    if not frames:
        return {}
    return {row.table: tuple(row[value] for value in values) for row in reduce(DataFrame.unionByName, frames).collect()}
