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
# # Who is in the target group (report ch. 3)
#
# The population of vmbo grade 3-4 students (lwoo) and of praktijkonderwijs (pro), and
# their target groups, by the characteristics of the onderwijsscore. Read from
# `export/profiles`; cells on fewer than the disclosure minimum of students are empty.
# Parents whose education was imputed are their own category `imputed`; students scored
# by a donor or as asylum students count as `unknown`.

# %%
import os
from pathlib import Path

from IPython.display import Image, display

from onderwijsscore import report
from onderwijsscore.config import load_config
from onderwijsscore.snapshot import PublishedTables

output_root = Path(os.environ.get("REPORT_OUTPUT", "data/output"))
figures = Path(os.environ.get("REPORT_DIR", "data/output/report")) / "figures"
figures.mkdir(parents=True, exist_ok=True)
settings = report.ReportSettings.from_config(load_config(os.environ.get("REPORT_CONF", "conf")))
# Every table as of the last succeeded run, even while another run publishes.
published = PublishedTables(output_root, settings.export_zone)


def show(figure, name):
    path = figures / f"{name}.png"
    report.save(figure, path)
    display(Image(filename=path))


profiles = report.read_export(published, "profiles")
year = int(profiles.year.max())
print(f"output {output_root} as of run {published.snapshot.run_id}, year {year}")

# %% [markdown]
# ## lwoo: population and target group of the shown scenario

# %%
for characteristic in ["mother_education", "father_education", "origin_group", "dutch_parent", "mother_duration"]:
    show(
        report.profile_bars(profiles, settings.scenario, year, characteristic),
        f"profile_{settings.scenario}_{characteristic}",
    )

# %% [markdown]
# ## Share of WSNP and asylum students in the target group, per target share

# %%
lwoo = profiles[(profiles.year == year) & profiles.scenario.str.startswith("lwoo_") & (profiles.group == "target")]
small = lwoo[lwoo.characteristic.isin(["wsnp", "asylum"]) & (lwoo.category == "yes")]
display(small.pivot_table(index="scenario", columns="characteristic", values="share", aggfunc="first").round(4))

# %% [markdown]
# ## praktijkonderwijs

# %%
for characteristic in ["mother_education", "origin_group"]:
    show(
        report.profile_bars(profiles, settings.pro_scenario, year, characteristic),
        f"profile_{settings.pro_scenario}_{characteristic}",
    )
