"""The benchmark's event-log summary (lib/onderwijsscore/benchmark.py), on a hand-written event log."""

import json

from onderwijsscore.benchmark import DescriptionMetrics, stage_timings, student_years, summarise


def job_start(job_id: int, at_ms: int, description: str, stages: list[int]) -> dict:
    return {
        "Event": "SparkListenerJobStart",
        "Job ID": job_id,
        "Submission Time": at_ms,
        "Stage IDs": stages,
        "Properties": {"spark.job.description": description},
    }


def job_end(job_id: int, at_ms: int) -> dict:
    return {"Event": "SparkListenerJobEnd", "Job ID": job_id, "Completion Time": at_ms}


def task_end(stage_id: int, run_ms: int, shuffle_written: int, gc_ms: int = 0, spilled: int = 0) -> dict:
    return {
        "Event": "SparkListenerTaskEnd",
        "Stage ID": stage_id,
        "Stage Attempt ID": 0,
        "Task Metrics": {
            "Executor Run Time": run_ms,
            "JVM GC Time": gc_ms,
            "Memory Bytes Spilled": spilled,
            "Disk Bytes Spilled": spilled // 2,
            "Shuffle Read Metrics": {"Remote Bytes Read": 0, "Local Bytes Read": 10},
            "Shuffle Write Metrics": {"Shuffle Bytes Written": shuffle_written},
        },
    }


def test_summary_counts_run_time_per_stage_and_the_time_no_job_ran(tmp_path):
    events = [
        job_start(0, 0, "read", [0]),
        task_end(0, 1500, 100, gc_ms=300, spilled=1000),
        task_end(0, 500, 0, gc_ms=100),
        job_start(1, 500, "read", [1]),  # overlaps job 0: no gap
        job_end(0, 1000),
        job_end(1, 3000),
        job_start(2, 4000, "score", [2]),  # 1 s after the last end: below the 2 s threshold
        job_end(2, 5000),
        job_start(3, 9500, "budgets", [3]),  # 4.5 s gap
        task_end(3, 700, 0),
        job_end(3, 9600),
        job_start(4, 12000, "publish", [4]),  # 2.4 s gap
        job_end(4, 12100),
    ]
    log = tmp_path / "events"
    log.write_text("\n".join(json.dumps(event, separators=(",", ":")) for event in events) + "\n")

    summary = summarise(log)

    assert summary.jobs == 5
    assert summary.by_description() == {
        "read": DescriptionMetrics(jobs=2, run_seconds=2.0, gc_seconds=0.4, spilled_bytes=1500),
        "score": DescriptionMetrics(jobs=1),
        "budgets": DescriptionMetrics(jobs=1, run_seconds=0.7),
        "publish": DescriptionMetrics(jobs=1),
    }
    assert summary.shuffle_write_bytes == 100
    assert summary.idle_gaps() == [(4.5, "budgets"), (2.4, "publish")]
    assert summary.idle_gaps(min_seconds=1.0) == [(4.5, "budgets"), (2.4, "publish"), (1.0, "score")]


def test_stage_timings_lists_the_pipeline_log_slowest_first():
    lines = [
        "2026-11-29T16:30:46 INFO onderwijsscore: stage read and check input: done in 54.1s (input.enrolment=3)",
        "2026-11-29T16:31:46 INFO onderwijsscore: stage score students: start",
        "2026-11-29T16:32:46 INFO onderwijsscore: stage score students: done in 205.2s",
    ]
    assert stage_timings(lines).splitlines() == [
        "pipeline stages (total 4.3 min), slowest first:",
        "   205.2 s  score students",
        "    54.1 s  read and check input",
    ]


def test_student_years_sum_the_population_counts():
    lines = [
        "2026-11-30T19:43:03 INFO onderwijsscore: stage populations: done in 2.0s (lwoo.2019=197644, pro.2019=28161)",
        "2026-11-30T19:43:03 INFO onderwijsscore: stage cutoffs: done in 2.0s (scenarios=26)",
    ]
    assert student_years(lines) == 197644 + 28161
