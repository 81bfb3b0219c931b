"""`make report` on the local run's outputs: both notebooks execute headless and write
every figure of the report plus one HTML page per notebook."""

import subprocess

from helpers import PROJECT_ROOT
from onderwijsscore.report import ReportSettings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def expected_figures(settings: ReportSettings) -> set[str]:
    a, b = settings.comparison_pair
    lwoo_profiles = ["mother_education", "father_education", "origin_group", "dutch_parent", "mother_duration"]
    return {
        *(f"profile_{settings.scenario}_{c}" for c in lwoo_profiles),
        *(f"profile_{settings.pro_scenario}_{c}" for c in ("mother_education", "origin_group")),
        f"year_on_year_{settings.scenario}",  # fig. 4.1.1
        f"against_current_{settings.scenario}",  # fig. 5.1.1
        f"comparison_{a}_{b}",  # fig. 5.2.3
        f"per_student_by_region_{settings.scenario}",  # ch. 6
        f"change_explained_{settings.scenario}",
    }


def test_make_report_executes_every_notebook_and_draws_every_figure(config, local_run, tmp_path):
    settings, _ = local_run
    report_dir = tmp_path / "report"
    result = subprocess.run(
        ["make", "--no-print-directory", "report", f"OUTPUT={settings.output_root}", f"REPORT_DIR={report_dir}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = {p.stem: p for p in (report_dir / "figures").glob("*.png")}
    assert set(figures) == expected_figures(ReportSettings.from_config(config))
    for path in figures.values():
        content = path.read_bytes()
        assert content.startswith(PNG_SIGNATURE) and len(content) > 10_000, path.name
    pages = sorted(p.name for p in report_dir.glob("*.html"))
    assert pages == ["01_target_group_profiles.html", "02_budgets.html"]
    budgets_page = (report_dir / "02_budgets.html").read_text()
    assert budgets_page.count("<img") >= 5 and "Traceback" not in budgets_page
