"""The benchmark's measurements (lib/onderwijsscore/benchmark.py): the event-log summary on a hand-written
event log, the process-tree sampler on real processes, and the reports."""

import json
import subprocess
import sys

from onderwijsscore.benchmark import (
    DescriptionMetrics,
    TreeSampler,
    cpu_report,
    jvm_thread_group,
    stage_timings,
    student_years,
    summarise,
)


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
            "Executor CPU Time": run_ms * 600_000,  # nanoseconds: 60 % of the run time on a CPU
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
    assert {stage.stage_id: stage.cpu_time_ns for stage in summary.stages.values()} == {0: 1.2e9, 3: 0.42e9}
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


def test_the_sampler_counts_the_cpu_time_and_memory_of_a_process_and_its_children():
    burn = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}]); exec({burn!r})"
    with subprocess.Popen([sys.executable, "-c", parent]) as process, TreeSampler(process.pid, 0.05) as sampler:
        process.wait()
    cpu = sampler.cpu_seconds()
    # Each process burns 0.6 s; the last sample comes at most 0.05 s before each exits.
    assert cpu["all processes"] > 1.0
    assert cpu["Python and the rest"] == cpu["all processes"]
    assert cpu["JVM"] == cpu["Spark tasks"] == cpu["other JVM threads"] == 0
    # Two Python interpreters, each several MiB resident; the largest is one of them.
    assert 2**20 < sampler.peak_largest < sampler.peak_total


def test_jvm_threads_are_grouped_by_their_names_as_linux_truncates_them():
    assert jvm_thread_group("Executor task l") == "Spark tasks"
    assert jvm_thread_group("C2 CompilerThre") == jvm_thread_group("C1 CompilerThre") == "JIT compilers"
    assert jvm_thread_group("GC Thread#1") == jvm_thread_group("G1 Conc#0") == "garbage collector"
    assert jvm_thread_group("Thread-4") == "calls from Python"
    assert jvm_thread_group("dag-scheduler-e") is None


def test_cpu_report_gives_each_figure_its_share_of_all_processes():
    cpu = {"all processes": 400.0, "JVM": 360.0, "Spark tasks": 200.0, "JIT compilers": 100.0}
    cpu |= {"garbage collector": 20.0, "calls from Python": 28.0, "other JVM threads": 12.0}
    cpu |= {"Python and the rest": 40.0}
    assert cpu_report(cpu, wall_seconds=200.0).splitlines() == [
        "CPU time (sampled from /proc): 400.0 s, 2.00 cores busy on average",
        "   360.0 s  90%  JVM",
        "   200.0 s  50%    Spark tasks",
        "   100.0 s  25%    JIT compilers",
        "    20.0 s   5%    garbage collector",
        "    28.0 s   7%    calls from Python",
        "    12.0 s   3%    other JVM threads",
        "    40.0 s  10%  Python and the rest",
    ]
