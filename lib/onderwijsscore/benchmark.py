"""Benchmark measurements (`make bench`, jobs/benchmark.py): peak memory and CPU time of a
process tree (the JVM's by thread group), the pipeline's stage timings from its log, and
a summary of the Spark event log (jobs, stages, run time and shuffle bytes per stage, and
the time no job ran: the driver alone planning, committing or waiting).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

PAGE_SIZE = 4096
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STAGE_DONE = re.compile(r"stage (?P<name>.+?): done in (?P<seconds>[0-9.]+)s")
POPULATIONS = re.compile(r"stage populations: done in [0-9.]+s \((?P<counts>.*)\)")
COUNT = re.compile(r"=(\d+)")


# JVM threads by what they do, from their names (Linux keeps a thread name's first 15 characters).
JVM_THREAD_GROUPS = (
    ("Spark tasks", ("Executor task",)),
    ("JIT compilers", ("C1 Compiler", "C2 Compiler")),
    ("garbage collector", ("GC Thread", "G1 ")),
    # py4j runs each call from Python on a thread of this name: planning, code generation, commits.
    ("calls from Python", ("Thread-",)),
)


class TreeSampler:
    """Samples a process and all its descendants (Linux /proc) every `interval` seconds:
    the peak resident memory of the largest process (the driver JVM) and of the sum over
    the tree, and the CPU time of each process and of each JVM thread group."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid, self.interval = pid, interval
        self.peak_largest = self.peak_total = 0
        self._process_cpu: dict[int, tuple[str, float]] = {}  # pid -> (name, CPU s)
        self._thread_cpu: dict[tuple[int, int], tuple[str, float]] = {}  # (pid, tid) -> (name, CPU s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            processes = {pid: stat for pid in _tree(self.pid) if (stat := _stat(Path(f"/proc/{pid}/stat")))}
            sizes = [stat.rss_bytes for stat in processes.values()]
            if sizes:
                self.peak_largest = max(self.peak_largest, max(sizes))
                self.peak_total = max(self.peak_total, sum(sizes))
            for pid, stat in processes.items():
                self._process_cpu[pid] = (stat.name, stat.cpu_seconds)
                if stat.name == "java":
                    for task in _tasks(pid):
                        if thread := _stat(task / "stat"):
                            self._thread_cpu[(pid, int(task.name))] = (thread.name, thread.cpu_seconds)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds as last sampled: every process of the tree ("all processes"), the JVMs
        ("JVM") with their thread groups (`JVM_THREAD_GROUPS`; "other JVM threads" has the rest,
        threads that ended included), and the other processes ("Python and the rest")."""
        jvm = sum(cpu for name, cpu in self._process_cpu.values() if name == "java")
        total = sum(cpu for _, cpu in self._process_cpu.values())
        groups = {group: 0.0 for group, _ in JVM_THREAD_GROUPS}
        for name, cpu in self._thread_cpu.values():
            if (group := jvm_thread_group(name)) is not None:
                groups[group] += cpu
        groups["other JVM threads"] = max(jvm - sum(groups.values()), 0.0)
        return {"all processes": total, "JVM": jvm, **groups, "Python and the rest": total - jvm}


def jvm_thread_group(name: str) -> str | None:
    """The `JVM_THREAD_GROUPS` group of a JVM thread's (truncated) name; None: another thread."""
    return next((group for group, prefixes in JVM_THREAD_GROUPS if name.startswith(prefixes)), None)


def _tasks(pid: int) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []


class _Stat(NamedTuple):
    name: str
    cpu_seconds: float  # user + system
    rss_bytes: int  # resident memory (a thread's is its process's)


def _stat(path: Path) -> _Stat | None:
    """A process's or thread's `stat` file (proc(5)); None once it is gone."""
    try:
        text = path.read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()  # from field 3, state
    return _Stat(name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[21]) * PAGE_SIZE)


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for task in tasks for c in (task / "children").read_text().split()]
    except OSError:
        return []


def _tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue.extend(_children(current))
    return pids


def cpu_report(cpu_seconds: dict[str, float], wall_seconds: float) -> str:
    """`TreeSampler.cpu_seconds` as a table: each figure's seconds and share of all processes'."""
    total = cpu_seconds["all processes"]
    lines = [f"CPU time (sampled from /proc): {total:.1f} s, {total / wall_seconds:.2f} cores busy on average"]
    for name, seconds in cpu_seconds.items():
        if name != "all processes":
            label = name if name in ("JVM", "Python and the rest") else f"  {name}"
            lines.append(f"{seconds:>8.1f} s {seconds / total if total else 0:>4.0%}  {label}")
    return "\n".join(lines)


def student_years(log_lines: list[str]) -> int:
    """The population students summed over models and teldatum years (the populations stage's counts)."""
    return sum(
        int(count) for line in log_lines if (m := POPULATIONS.search(line)) for count in COUNT.findall(m["counts"])
    )


def stage_timings(log_lines: list[str]) -> str:
    """The pipeline's `stage X: done in Ns` log lines as a table, slowest first."""
    timings = [(m["name"], float(m["seconds"])) for line in log_lines if (m := STAGE_DONE.search(line))]
    lines = [f"pipeline stages (total {sum(s for _, s in timings) / 60:.1f} min), slowest first:"]
    lines += [f"{seconds:>8.1f} s  {name}" for name, seconds in sorted(timings, key=lambda t: -t[1])]
    return "\n".join(lines)


@dataclass
class StageMetrics:
    stage_id: int
    name: str
    tasks: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    run_time_ms: int = 0
    cpu_time_ns: int = 0
    gc_time_ms: int = 0
    spilled_bytes: int = 0  # memory and disk bytes spilled


@dataclass
class DescriptionMetrics:
    """One pipeline stage's Spark work (its jobs carry the stage's name as description)."""

    jobs: int = 0
    run_seconds: float = 0.0
    gc_seconds: float = 0.0
    spilled_bytes: int = 0


@dataclass
class JobSpan:
    description: str
    submitted_ms: int
    completed_ms: int | None = None


@dataclass
class EventLogSummary:
    jobs: int = 0
    stages: dict[tuple[int, int], StageMetrics] = field(default_factory=dict)
    stage_description: dict[int, str] = field(default_factory=dict)  # Spark stage -> pipeline stage
    jobs_per_description: dict[str, int] = field(default_factory=dict)
    job_spans: dict[int, JobSpan] = field(default_factory=dict)

    def idle_gaps(self, min_seconds: float = 2.0) -> list[tuple[float, str]]:
        """Stretches of at least `min_seconds` in which no Spark job ran, longest first, each
        with the description of the job that ended it (the stage the driver was preparing)."""
        gaps, busy_until = [], None
        for span in sorted(self.job_spans.values(), key=lambda span: span.submitted_ms):
            if busy_until is not None and span.submitted_ms - busy_until >= min_seconds * 1000:
                gaps.append(((span.submitted_ms - busy_until) / 1000, span.description))
            busy_until = max(busy_until or 0, span.completed_ms or span.submitted_ms)
        return sorted(gaps, reverse=True)

    def by_description(self) -> dict[str, DescriptionMetrics]:
        """Per pipeline stage (job description): Spark jobs, task run and GC time, spill."""
        metrics = {name: DescriptionMetrics(jobs=jobs) for name, jobs in self.jobs_per_description.items()}
        for stage in self.stages.values():
            found = metrics.setdefault(self.stage_description.get(stage.stage_id, "(none)"), DescriptionMetrics())
            found.run_seconds += stage.run_time_ms / 1000
            found.gc_seconds += stage.gc_time_ms / 1000
            found.spilled_bytes += stage.spilled_bytes
        return metrics

    @property
    def shuffle_write_bytes(self) -> int:
        return sum(stage.shuffle_write_bytes for stage in self.stages.values())


SUMMARISED_KINDS = ("JobStart", "JobEnd", "TaskEnd", "StageCompleted")
SUMMARISED_EVENTS = tuple(f'{{"Event":"SparkListener{kind}"' for kind in SUMMARISED_KINDS)


def summarise(event_log: Path) -> EventLogSummary:
    summary = EventLogSummary()
    with event_log.open() as lines:
        for line in lines:
            # The log is mostly SQL plans; parse only the events summarised.
            if not line.startswith(SUMMARISED_EVENTS):
                continue
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerJobStart":
                summary.jobs += 1
                description = (event.get("Properties") or {}).get("spark.job.description") or "(none)"
                summary.jobs_per_description[description] = summary.jobs_per_description.get(description, 0) + 1
                for stage_id in event.get("Stage IDs", []):
                    summary.stage_description.setdefault(stage_id, description)
                summary.job_spans[event["Job ID"]] = JobSpan(description, event["Submission Time"])
            elif kind == "SparkListenerJobEnd" and event["Job ID"] in summary.job_spans:
                summary.job_spans[event["Job ID"]].completed_ms = event["Completion Time"]
            elif kind == "SparkListenerTaskEnd" and event.get("Task Metrics"):
                key = (event["Stage ID"], event["Stage Attempt ID"])
                stage = summary.stages.setdefault(key, StageMetrics(event["Stage ID"], ""))
                metrics = event["Task Metrics"]
                stage.tasks += 1
                stage.run_time_ms += metrics.get("Executor Run Time", 0)
                stage.cpu_time_ns += metrics.get("Executor CPU Time", 0)
                stage.gc_time_ms += metrics.get("JVM GC Time", 0)
                stage.spilled_bytes += metrics.get("Memory Bytes Spilled", 0) + metrics.get("Disk Bytes Spilled", 0)
                read = metrics.get("Shuffle Read Metrics", {})
                stage.shuffle_read_bytes += read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)
                stage.shuffle_write_bytes += metrics.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0)
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                key = (info["Stage ID"], info["Stage Attempt ID"])
                summary.stages.setdefault(key, StageMetrics(info["Stage ID"], "")).name = info["Stage Name"]
    return summary


def report(summary: EventLogSummary, top: int = 15) -> str:
    header = f"{'stage':>6} {'tasks':>6} {'run s':>8} {'shuffle read MiB':>17} {'shuffle write MiB':>18}  name"

    def rows(stages: list[StageMetrics]) -> list[str]:
        return [
            f"{stage.stage_id:>6} {stage.tasks:>6} {stage.run_time_ms / 1000:>8.1f} "
            f"{stage.shuffle_read_bytes / 2**20:>17.1f} {stage.shuffle_write_bytes / 2**20:>18.1f}  {stage.name[:60]}"
            for stage in stages[:top]
        ]

    stages = list(summary.stages.values())
    by_shuffle = sorted(stages, key=lambda s: s.shuffle_write_bytes + s.shuffle_read_bytes, reverse=True)
    by_time = sorted(stages, key=lambda s: s.run_time_ms, reverse=True)
    gaps = summary.idle_gaps()
    return "\n".join(
        [
            f"Spark jobs: {summary.jobs}",
            f"Spark stages: {len(stages)}",
            f"task run time, all stages: {sum(s.run_time_ms for s in stages) / 60000:.1f} min, "
            f"of which on a CPU: {sum(s.cpu_time_ns for s in stages) / 6e10:.1f} min",
            f"shuffle written, all stages: {summary.shuffle_write_bytes / 2**20:.1f} MiB",
            f"no Spark job running for 2 s or more: {sum(s for s, _ in gaps):.1f} s in {len(gaps)} gaps; "
            "longest (seconds, the stage whose job ended it):",
            *[f"{seconds:>8.1f} s  {name}" for seconds, name in gaps[:5]],
            "Spark jobs, task run time, GC time and spill per pipeline stage:",
            f"{'jobs':>6} {'task s':>8} {'GC s':>6} {'spill MiB':>9}  stage",
            *[
                f"{m.jobs:>6} {m.run_seconds:>8.1f} {m.gc_seconds:>6.1f} {m.spilled_bytes / 2**20:>9.1f}  {name}"
                for name, m in sorted(summary.by_description().items(), key=lambda item: -item[1].run_seconds)
            ],
            f"stages by shuffle bytes (top {top}):",
            header,
            *rows(by_shuffle),
            f"stages by task run time (top {top}):",
            header,
            *rows(by_time),
        ]
    )
