"""The input contract: table definitions, readers and schema enforcement.

Every table of the contract is read from one folder under the input root (Parquet,
Delta or CSV with header), checked against its definition and returned with canonical
types. A table that breaks the contract stops the run with a `ContractError` naming
table, column, rule and number of offending rows; row content (ids) never appears.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lib.errors import PipelineError
from lib.runtime import concurrently

EDUCATION_LEVELS = (
    "basis",
    "vmbo_bk_mbo1",
    "vmbo_gt",
    "mbo23",
    "mbo4",
    "havo_vwo",
    "hbo_wo_bachelor",
    "hbo_wo_master",
)
ORIGIN_GROUPS = ("nl", "eu15_west", "other", "new_eu", "north_africa", "east_asia", "sur_ant", "turkey")
DURATION_CLASSES = ("0_5", "5_10", "10_plus")
PROGRAMMES = ("vmbo_bk", "vmbo_gt", "pro", "havo", "vwo", "other")
SHRINK_TYPES = ("krimp", "anticipeer")

MONEY = T.DecimalType(18, 2)
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
        TableDef(
            "education",
            (
                Col("year", "int"),
                Col("person_id", "str"),
                Col("education_level", "str", nullable=True, domain=EDUCATION_LEVELS),
            ),
            key=("year", "person_id"),
            non_empty=False,
        ),
        TableDef(
            "income",
            (
                Col("year", "int"),
                Col("person_id", "str"),
                Col("income_percentile", "int", nullable=True, min=1, max=100),
            ),
            key=("year", "person_id"),
            non_empty=False,
        ),
        TableDef(
            "residence_duration",
            (Col("year", "int"), Col("person_id", "str"), Col("duration_class", "str", domain=DURATION_CLASSES)),
            key=("year", "person_id"),
            non_empty=False,
        ),
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
        TableDef(
            "addresses",
            (Col("year", "int"), Col("person_id", "str"), _postcode("postcode", nullable=True)),
            key=("year", "person_id"),
            non_empty=False,
        ),
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

    def __str__(self) -> str:
        return f"table {self.table}, column {self.column}: {self.rule} ({self.rows} rows)"


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


def read_raw(spark: SparkSession, folder: Path, fmt: str) -> DataFrame:
    if fmt == "csv":
        # Every CSV column arrives as a string and is parsed by the contract.
        return spark.read.option("header", True).option("inferSchema", False).csv(str(folder))
    return spark.read.format(fmt).load(str(folder))


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


def validate(table: TableDef, raw: DataFrame, from_text: bool = False) -> tuple[DataFrame, list[Violation], int]:
    """Cast a raw table to its canonical schema and list what breaks the contract.

    Every rule, key uniqueness included, is counted in one aggregation over the table:
    per key first (rows sharing it), then over the keys. Returns the typed frame (lazy:
    a scan of the input, which is cheaper to read again than to keep), the violations
    and the number of rows.
    """
    present = {f.name: f.dataType for f in raw.schema.fields}
    missing = [c for c in table.columns if c.name not in present]
    violations = [Violation(table.name, c.name, "column missing", 0) for c in missing]
    if missing:
        return raw, violations, 0

    typed: dict[str, SparkColumn] = {}
    parse_failed: dict[str, SparkColumn] = {}
    checks = []
    for col in table.columns:
        value, failed = _typed(col, present[col.name], from_text)
        typed[col.name] = value
        if failed is not None:  # judged on the raw value; the other rules judge the typed value
            parse_failed[col.name] = failed
            kind = "string" if col.kind == "str" else col.kind
            checks.append(
                (col.name, f"wrong type: not a valid {kind} (found {present[col.name].simpleString()})", failed)
            )
    for col in table.columns:
        c = typed[col.name]
        if not col.nullable:
            checks.append((col.name, "null not allowed", c.isNull() & ~parse_failed.get(col.name, F.lit(False))))
        if col.domain:
            checks.append((col.name, f"code not in {list(col.domain)}", c.isNotNull() & ~c.isin(*col.domain)))
        if col.min is not None:
            checks.append((col.name, f"value outside [{col.min}, {col.max}]", ~c.between(col.min, col.max)))
        if col.pattern:
            checks.append((col.name, f"value does not match {col.pattern}", ~c.rlike(col.pattern)))

    broken = [F.count_if(F.coalesce(cond, F.lit(False))).alias(f"c{i}") for i, (_, _, cond) in enumerate(checks)]
    per_rule = [F.sum(f"c{i}").alias(f"c{i}") for i in range(len(checks))]
    if table.key:
        per_key = raw.groupBy(*[typed[name].alias(name) for name in table.key]).agg(
            F.count(F.lit(1)).alias("_rows"), *broken
        )
        shared = F.coalesce(F.sum(F.when(F.col("_rows") > 1, F.col("_rows"))), F.lit(0))
        counts = per_key.agg(F.sum("_rows").alias("_rows"), shared.alias("_shared"), *per_rule).first()
    else:
        counts = raw.agg(F.count(F.lit(1)).alias("_rows"), F.lit(0).alias("_shared"), *broken).first()
    rows = counts["_rows"] or 0
    for i, (name, rule, _) in enumerate(checks):
        if counts[f"c{i}"]:
            violations.append(Violation(table.name, name, rule, counts[f"c{i}"]))
    if table.non_empty and rows == 0:
        violations.append(Violation(table.name, "*", "table is empty", 0))
    if counts["_shared"]:
        violations.append(
            Violation(table.name, ",".join(table.key), "key not unique (rows sharing a key)", counts["_shared"])
        )
    return raw.select(*[value.alias(name) for name, value in typed.items()]), violations, rows


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
    concurrency: int = 1,
) -> Inputs:
    """Read and validate every contract table; raise one `ContractError` listing all violations.

    Up to `concurrency` tables are checked at once; the frames returned are lazy scans.
    `--years` filtering is the caller's: the whole input is checked.
    """
    root = Path(input_root)

    def check(name: str) -> tuple[DataFrame | None, list[Violation], int]:
        folder = root / name
        if not folder.is_dir():
            return None, [Violation(name, "*", f"table missing (no folder {folder})", 0)], 0
        table_format = detect_format(folder) if fmt == "auto" else fmt
        return validate(CONTRACT[name], read_raw(spark, folder, table_format), table_format == "csv")

    names = tables or tuple(CONTRACT)
    checked = dict(zip(names, concurrently(check, names, concurrency), strict=True))
    violations = [violation for _, found, _ in checked.values() for violation in found]
    frames = {name: typed for name, (typed, _, _) in checked.items() if typed is not None}
    row_counts = {name: rows for name, (typed, _, rows) in checked.items() if typed is not None}
    if violations:
        raise ContractError(violations)
    return Inputs(frames, row_counts)
