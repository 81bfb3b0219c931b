"""Benchmark the whole pipeline: wall time and peak memory of the run (driver JVM
included), the pipeline's own stage timings, then Spark jobs, stages and shuffle bytes
per stage from its event log.

    python jobs/benchmark.py --input DIR --output DIR [--years ...] [--config conf]
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from onderwijsscore.benchmark import TreeSampler, cpu_report, report, stage_timings, student_years, summarise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True, help="bench folder: output tables and the event log")
    parser.add_argument("--years")
    parser.add_argument("--config")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting")
    args = parser.parse_args(argv)
    events = Path(args.output) / "events"
    events.mkdir(parents=True, exist_ok=True)
    spark_conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": str(events),
        "spark.eventLog.rolling.enabled": "false",  # one plain JSON-lines file to summarise
        "spark.eventLog.compress": "false",
    }
    command = [
        sys.executable,
        str(Path(__file__).with_name("run_pipeline.py")),
        "--input",
        args.input,
        "--output",
        str(Path(args.output) / "output"),
        *[arg for key, value in spark_conf.items() for arg in ("--spark-conf", f"{key}={value}")],
    ]
    command += ["--years", args.years] if args.years else []
    command += ["--config", args.config] if args.config else []
    command += [arg for setting in args.spark_conf for arg in ("--spark-conf", setting)]
    started = time.monotonic()
    log_lines = []
    with (
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process,
        TreeSampler(process.pid) as sampler,
    ):
        for line in process.stderr:
            sys.stderr.write(line)
            log_lines.append(line)
    wall = time.monotonic() - started
    print(
        f"== benchmark: exit {process.returncode}, wall time {wall / 60:.1f} min ({wall:.1f} s), "
        f"peak memory: driver JVM {sampler.peak_largest / 2**30:.2f} GiB, "
        f"all processes {sampler.peak_total / 2**30:.2f} GiB"
    )
    population = student_years(log_lines)
    if population:
        print(f"student-years {population}: {wall / population * 1e6:.1f} s per million")
    print(cpu_report(sampler.cpu_seconds(), wall))
    print(stage_timings(log_lines))
    logs = sorted((p for p in events.iterdir() if p.is_file()), key=lambda path: path.stat().st_mtime)
    if logs:
        print(report(summarise(logs[-1])))
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
