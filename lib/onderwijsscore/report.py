"""The report's figures (notebooks/, `make report`), drawn from the published Delta tables.

Reads with delta-rs, as a BI tool would: no Spark, only `export/` tables, every one as
of the last succeeded run (`onderwijsscore.snapshot.PublishedTables`). Each figure
function takes pandas frames and returns a matplotlib Figure; the notebooks only choose
what to show and save the figures next to the HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report is built without a display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from onderwijsscore.config import Config  # noqa: E402
from onderwijsscore.snapshot import PublishedTables  # noqa: E402
from onderwijsscore.vocabulary import CHARACTERISTICS, SHRINK_TYPES  # noqa: E402

EUR_MILLION = 1_000_000


@dataclass(frozen=True)
class ReportSettings:
    scenario: str
    pro_scenario: str
    comparison_pair: tuple[str, str]
    export_zone: str

    @classmethod
    def from_config(cls, config: Config) -> ReportSettings:
        raw = config["analyses"]["report"]
        a, b = raw["comparison_pair"]
        return cls(raw["scenario"], raw["pro_scenario"], (a, b), config["pipeline"]["zones"]["export"])


def read_export(published: PublishedTables, table: str) -> pd.DataFrame:
    """A published export table, as of the snapshot's run, as pandas; money as float for plotting."""
    arrow = published.read(table)
    as_float = pa.schema([pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f for f in arrow.schema])
    return arrow.cast(as_float).to_pandas()


def save(figure: Figure, path: Path) -> None:
    """Write the figure as PNG (what the HTML report embeds) and free it."""
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _diagonal_scatter(x: pd.Series, y: pd.Series, xlabel: str, ylabel: str, title: str) -> Figure:
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.scatter(x / EUR_MILLION, y / EUR_MILLION, s=14, alpha=0.7)
    low = min(x.min(), y.min()) / EUR_MILLION
    high = max(x.max(), y.max()) / EUR_MILLION
    axes.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--", label="no change")
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def year_on_year(budgets: pd.DataFrame, scenario: str, year: int) -> Figure:
    """Fig. 4.1.1: each SWV's total in `year` against the previous year, with the diagonal."""
    chosen = budgets[budgets.scenario == scenario]
    pairs = chosen[chosen.year == year].merge(chosen[chosen.year == year - 1], on="swv_id", suffixes=("", "_previous"))
    return _diagonal_scatter(
        pairs.total_previous,
        pairs.total,
        f"budget {year - 1} (EUR million)",
        f"budget {year} (EUR million)",
        f"SWV budgets {year - 1} → {year}, {scenario}",
    )


def against_current(budgets: pd.DataFrame, scenario: str, year: int) -> Figure:
    """Fig. 5.1.1: each SWV's budget under the scenario against the current regulation."""
    chosen = budgets[(budgets.scenario == scenario) & (budgets.year == year)]
    return _diagonal_scatter(
        chosen.current_total,
        chosen.total,
        "current regulation (EUR million)",
        f"{scenario} (EUR million)",
        f"New vs current regulation, {year}",
    )


def scenario_pair(comparison: pd.DataFrame, pair: str, year: int) -> Figure:
    """Fig. 5.2.3: each SWV's budget under scenario b against scenario a."""
    chosen = comparison[(comparison.pair == pair) & (comparison.year == year)]
    a, b = chosen.scenario_a.iloc[0], chosen.scenario_b.iloc[0]
    return _diagonal_scatter(
        chosen.total_a, chosen.total_b, f"{a} (EUR million)", f"{b} (EUR million)", f"{a} vs {b}, {year}"
    )


def profile_bars(profiles: pd.DataFrame, scenario: str, year: int, characteristic: str) -> Figure:
    """Ch. 3: share of the population and of the target group per category (suppressed
    cells are left out and named in the title)."""
    chosen = profiles[
        (profiles.scenario == scenario) & (profiles.year == year) & (profiles.characteristic == characteristic)
    ]
    shares = chosen.pivot_table(index="category", columns="group", values="share", aggfunc="first")
    shares = shares.reindex(sorted(shares.index, key=_category_rank(characteristic)))
    figure, axes = plt.subplots(figsize=(7, 4))
    (shares * 100).plot.bar(ax=axes, rot=30)
    n_suppressed = int(chosen.suppressed.sum())
    suffix = f" ({n_suppressed} cells suppressed)" if n_suppressed else ""
    axes.set(ylabel="% of group", xlabel="", title=f"{characteristic}: population vs target, {scenario} {year}{suffix}")
    figure.tight_layout()
    return figure


def _category_rank(characteristic: str):
    """Categories in their code-list order (education low to high), then `imputed`, `unknown`."""
    order = [*CHARACTERISTICS.get(characteristic, ("yes", "no")), "imputed", "unknown"]
    return lambda category: (order.index(category) if category in order else len(order), category)


def per_student_by_region(rollup: pd.DataFrame, scenario: str, year: int) -> Figure:
    """Ch. 6: budget per vmbo grade 3-4 student per shrink-region type, current vs scenario."""
    chosen = rollup[(rollup.scenario == scenario) & (rollup.year == year)].set_index("shrink_type")
    # krimp, anticipeer (the contract's order), then the rest
    chosen = chosen.reindex(sorted(chosen.index, key=lambda t: (*SHRINK_TYPES, t).index(t)))
    figure, axes = plt.subplots(figsize=(6, 4))
    chosen[["per_student_current", "per_student_scenario"]].rename(
        columns={"per_student_current": "current", "per_student_scenario": scenario}
    ).plot.bar(ax=axes, rot=0)
    axes.set(ylabel="EUR per vmbo grade 3-4 student", xlabel="", title=f"Budget per student by region type, {year}")
    figure.tight_layout()
    return figure


def change_waterfall(explained: pd.DataFrame, scenario: str, year: int, drivers: list[str]) -> Figure:
    """The drivers of the year-on-year change summed over SWVs with a published split,
    for the SWVs that gained and those that lost."""
    chosen = explained[(explained.scenario == scenario) & (explained.year == year) & ~explained.suppressed]
    gained = chosen.total >= chosen.total_prev
    sums = pd.DataFrame({"gaining SWVs": chosen[gained][drivers].sum(), "losing SWVs": chosen[~gained][drivers].sum()})
    figure, axes = plt.subplots(figsize=(7, 4))
    (sums / EUR_MILLION).plot.barh(ax=axes)
    axes.axvline(0, color="grey", linewidth=1)
    axes.set(xlabel="EUR million", title=f"What moved the budgets {year - 1} → {year}, {scenario}")
    figure.tight_layout()
    return figure


def cross_table(cells: pd.DataFrame, scenario: str, year: int) -> pd.DataFrame:
    """A stability or redistribution table as the report prints it (suppressed cells empty)."""
    chosen = cells[(cells.scenario == scenario) & (cells.year == year)]
    table = chosen.pivot_table(index="absolute_bin", columns="relative_bin", values="n_units", aggfunc="first")

    def in_order(dimension: str) -> list[str]:
        return list(chosen.drop_duplicates(f"{dimension}_bin").sort_values(f"{dimension}_order")[f"{dimension}_bin"])

    return table.reindex(index=in_order("absolute"), columns=in_order("relative"))
