"""The published snapshot: each table at the version of the latest succeeded run that
wrote it; failed, recovered and unfinished runs are invisible. (The reader after a killed
publication: tests/integration/test_reliability.py.)"""

from datetime import datetime

import pytest

from onderwijsscore.errors import PipelineError
from onderwijsscore.snapshot import Snapshot


def run(run_id, status, hour, versions):
    return {"run_id": run_id, "status": status, "ended_at": datetime(2026, 12, 1, hour), "delta_versions": versions}


def test_each_table_is_read_at_the_latest_succeeded_run_that_wrote_it():
    runs = [
        # Listed out of order: the end time decides.
        run(
            "c", "succeeded", 12, [("export/budgets", 4), ("restricted/student_scores", 2)]
        ),  # pairs: as pyarrow gives a map
        run("a", "succeeded", 10, {"export/budgets": 0, "export/stability": 0, "restricted/student_scores": 0}),
        run("b", "succeeded", 11, {"export/budgets": 1}),  # a one-year rerun: no year pairs
        run("d", "failed", 13, {}),
        run("e", "recovered", 14, {}),  # killed while publishing: its versions 5.. are not recorded
    ]
    snapshot = Snapshot.from_runs(runs)
    assert snapshot.run_id == "c"
    assert snapshot.versions == {"export/budgets": 4, "export/stability": 0, "restricted/student_scores": 2}
    assert snapshot.tables("export") == ["budgets", "stability"]
    assert snapshot.version("restricted", "student_scores") == 2
    with pytest.raises(PipelineError, match="no succeeded run published export/regional"):
        snapshot.version("export", "regional")


def test_nothing_is_published_before_a_run_succeeds():
    with pytest.raises(PipelineError, match="no succeeded run in export/runs"):
        Snapshot.from_runs([run("a", "failed", 10, {})])
