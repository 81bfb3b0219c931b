"""Benchmark summary from a Spark event log: jobs, stages and shuffle bytes per stage.

`make bench` runs the pipeline with `spark.eventLog.enabled` under `/usr/bin/time -v`
(wall time, peak memory) and then prints this summary of the event log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StageMetrics:
    stage_id: int
    name: str
    tasks: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    run_time_ms: int = 0


@dataclass
class EventLogSummary:
    jobs: int = 0
    stages: dict[tuple[int, int], StageMetrics] = field(default_factory=dict)

    @property
    def shuffle_write_bytes(self) -> int:
        return sum(stage.shuffle_write_bytes for stage in self.stages.values())


def summarise(event_log: Path) -> EventLogSummary:
    summary = EventLogSummary()
    with event_log.open() as lines:
        for line in lines:
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerJobStart":
                summary.jobs += 1
            elif kind == "SparkListenerTaskEnd" and event.get("Task Metrics"):
                key = (event["Stage ID"], event["Stage Attempt ID"])
                stage = summary.stages.setdefault(key, StageMetrics(event["Stage ID"], ""))
                metrics = event["Task Metrics"]
                stage.tasks += 1
                stage.run_time_ms += metrics.get("Executor Run Time", 0)
                read = metrics.get("Shuffle Read Metrics", {})
                stage.shuffle_read_bytes += read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)
                stage.shuffle_write_bytes += metrics.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0)
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                key = (info["Stage ID"], info["Stage Attempt ID"])
                summary.stages.setdefault(key, StageMetrics(info["Stage ID"], "")).name = info["Stage Name"]
    return summary


def report(summary: EventLogSummary, top: int = 15) -> str:
    heaviest = sorted(summary.stages.values(), key=lambda s: s.shuffle_write_bytes + s.shuffle_read_bytes)[::-1]
    lines = [
        f"Spark jobs: {summary.jobs}",
        f"Spark stages: {len(summary.stages)}",
        f"shuffle written, all stages: {summary.shuffle_write_bytes / 2**20:.1f} MiB",
        f"stages by shuffle bytes (top {top}):",
        f"{'stage':>6} {'tasks':>6} {'run s':>8} {'shuffle read MiB':>17} {'shuffle write MiB':>18}  name",
    ]
    for stage in heaviest[:top]:
        lines.append(
            f"{stage.stage_id:>6} {stage.tasks:>6} {stage.run_time_ms / 1000:>8.1f} "
            f"{stage.shuffle_read_bytes / 2**20:>17.1f} {stage.shuffle_write_bytes / 2**20:>18.1f}  {stage.name[:60]}"
        )
    return "\n".join(lines)
