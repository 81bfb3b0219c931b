"""The output catalogue (conf/outputs.yaml): every table a run writes, its zone, partition
columns and slice rule, and what it and each column mean. The orchestrator builds the
run's slices from it, the SQL endpoint its column comments, `make docs` the column
section of docs/outputs.md."""

from __future__ import annotations

from dataclasses import dataclass

from onderwijsscore.errors import ConfigFileError

ZONES = ("restricted", "export")
# The values a run replaces in a partition column (pipeline.compute gives each its values).
SLICE_RULES = (
    "run_years",
    "pair_years",
    "funding_years",
    "scored_models",
    "scenarios",
    "lwoo_scenarios",
    "pro_scenarios",
    "scenario_pairs",
)


@dataclass(frozen=True)
class TableSpec:
    name: str
    zone: str  # a key of ZONES; the folder comes from conf/pipeline.yaml zones
    partition: tuple[str, ...]
    slice: dict[str, str] | None  # partition column -> slice rule; None: not a slice of the run (runs)
    description: str
    columns: dict[str, str]  # column -> meaning, beyond the common columns

    @property
    def aggregate(self) -> bool:
        """Export tables are aggregates, bounded by units and scenarios, not by students."""
        return self.zone == "export"


@dataclass(frozen=True)
class Catalogue:
    common: dict[str, str]  # columns that mean the same in every table that has them
    tables: dict[str, TableSpec]

    @classmethod
    def from_yaml(cls, raw: dict, file: str) -> Catalogue:
        tables = {}
        for name, spec in raw["tables"].items():
            zone, partition, slice_rules = spec["zone"], tuple(spec["partition"]), spec["slice"]
            if zone not in ZONES:
                raise ConfigFileError(file, f"tables.{name}.zone", f"must be one of {list(ZONES)}")
            if slice_rules is not None and (
                set(slice_rules) != set(partition) or not set(slice_rules.values()) <= set(SLICE_RULES)
            ):
                raise ConfigFileError(
                    file, f"tables.{name}.slice", f"a rule of {list(SLICE_RULES)} for each partition column"
                )
            tables[name] = TableSpec(name, zone, partition, slice_rules, spec["description"], dict(spec["columns"]))
        return cls(dict(raw["common"]), tables)

    def comments(self, table: str) -> dict[str, str]:
        """What each column of `table` means, the common columns included (none when unknown)."""
        spec = self.tables.get(table)
        return {**self.common, **spec.columns} if spec else {}

    def slice_tables(self, rule: str) -> list[str]:
        """The tables whose slice uses `rule` (e.g. the year-pair tables: `pair_years`)."""
        return [name for name, spec in self.tables.items() if spec.slice and rule in spec.slice.values()]

    def columns_markdown(self) -> str:
        """The column section of docs/outputs.md."""
        lines = ["| column | meaning |", "|---|---|"]
        lines += [f"| `{column}` | {text} |" for column, text in self.common.items()]
        for spec in self.tables.values():
            partition = f"partitioned by {', '.join(spec.partition)}" if spec.partition else "not partitioned"
            lines += ["", f"### `{spec.zone}/{spec.name}`", "", f"{spec.description} ({partition})", ""]
            lines += ["| column | meaning |", "|---|---|"]
            lines += [f"| `{column}` | {text} |" for column, text in spec.columns.items()]
        return "\n".join(lines) + "\n"


COLUMNS_BEGIN = "<!-- columns: generated from conf/outputs.yaml by `make docs`; edit that file -->"
COLUMNS_END = "<!-- end of generated columns -->"


def with_columns_section(document: str, catalogue: Catalogue) -> str:
    """`document` with the text between the column markers replaced by the catalogue's
    `columns_markdown` (the markers appended first when absent)."""
    if COLUMNS_BEGIN not in document:
        document = f"{document.rstrip()}\n\n## Columns\n\n{COLUMNS_BEGIN}\n{COLUMNS_END}\n"
    head, rest = document.split(COLUMNS_BEGIN, 1)
    _, tail = rest.split(COLUMNS_END, 1)
    return f"{head}{COLUMNS_BEGIN}\n{catalogue.columns_markdown()}{COLUMNS_END}{tail}"
