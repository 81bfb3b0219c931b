# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Budgets: stability, redistribution, regional effects and what explains a change
#
# Report chapters 4-6 from `export/budgets`, `export/stability`, `export/redistribution`,
# `export/scenario_comparison`, `export/regional_rollup` and `export/change_explained`.

# %%
import os
from pathlib import Path

from IPython.display import Image, display

from onderwijsscore import report
from onderwijsscore.analyses.tables import pair_id
from onderwijsscore.config import load_config
from onderwijsscore.snapshot import PublishedTables

output_root = Path(os.environ.get("REPORT_OUTPUT", "data/output"))
figures = Path(os.environ.get("REPORT_DIR", "data/output/report")) / "figures"
figures.mkdir(parents=True, exist_ok=True)
settings = report.ReportSettings.from_config(load_config(os.environ.get("REPORT_CONF", "conf")))
# Every table as of the last succeeded run, even while another run publishes.
published = PublishedTables(output_root, settings.export_zone)
scenario = settings.scenario
budgets = report.read_export(published, "budgets")
year = int(budgets.year.max())
print(f"output {output_root} as of run {published.snapshot.run_id}, scenario {scenario}, year {year}")


def show(figure, name):
    path = figures / f"{name}.png"
    report.save(figure, path)
    display(Image(filename=path))


# %% [markdown]
# ## Stability (fig. 4.1.1, tables 4.1.3/4.1.4)
# Each dot is an SWV; on the diagonal its budget did not change from the previous year.

# %%
show(report.year_on_year(budgets, scenario, year), f"year_on_year_{scenario}")
display(report.cross_table(report.read_export(published, "stability"), scenario, year))

# %% [markdown]
# ## Redistribution against the current regulation (fig. 5.1.1, table 5.1.2)
# Above the diagonal an SWV gains from the new regulation.

# %%
show(report.against_current(budgets, scenario, year), f"against_current_{scenario}")
display(report.cross_table(report.read_export(published, "redistribution"), scenario, year))

# %% [markdown]
# ## Two target shares compared (fig. 5.2.3)

# %%
a, b = settings.comparison_pair
comparison = report.read_export(published, "scenario_comparison")
show(report.scenario_pair(comparison, pair_id(a, b), year), f"comparison_{a}_{b}")

# %% [markdown]
# ## Regional: budget per vmbo grade 3-4 student by shrink-region type (ch. 6)
# The RSVO (VO0001) has no area and is left out.

# %%
rollup = report.read_export(published, "regional_rollup")
show(report.per_student_by_region(rollup, scenario, year), f"per_student_by_region_{scenario}")
display(rollup[(rollup.year == year) & (rollup.scenario == scenario)])

# %% [markdown]
# ## What explains the change from the previous year
# Per SWV the change of the budget splits exactly into: the fixed parts (regional, pro),
# the lwoo_se part, the change in gross score of computed, imputed and asylum students
# (at last year's amount per point), the threshold, the national amount per point, and
# rounding cents. Below: summed over SWVs that gained and SWVs that lost.

# %%
explained = report.read_export(published, "change_explained")
drivers = [
    "fixed_parts",
    "se_part",
    "iq_computed",
    "iq_imputed",
    "iq_asylum",
    "iq_threshold",
    "iq_national_rate",
    "rounding",
]
show(report.change_waterfall(explained, scenario, year, drivers), f"change_explained_{scenario}")
biggest = explained[(explained.year == year) & (explained.scenario == scenario)]
display(biggest.assign(change=biggest.total - biggest.total_prev).nlargest(5, "change")[["swv_id", "change", *drivers]])
