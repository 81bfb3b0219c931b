"""Benchmark the whole pipeline: wall time and peak memory of the run (driver JVM
included), then Spark jobs, stages and shuffle bytes per stage from its event log.

    python jobs/benchmark.py --input DIR --output DIR [--years ...] [--config conf]
"""

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

from lib.benchmark import report, summarise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True, help="bench folder: output tables and the event log")
    parser.add_argument("--years")
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    events = Path(args.output) / "events"
    events.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).with_name("run_pipeline.py")),
        "--input",
        args.input,
        "--output",
        str(Path(args.output) / "output"),
        "--spark-conf",
        "spark.eventLog.enabled=true",
        "--spark-conf",
        f"spark.eventLog.dir={events}",
    ]
    command += ["--years", args.years] if args.years else []
    command += ["--config", args.config] if args.config else []
    started = time.monotonic()
    returncode = subprocess.run(command).returncode
    wall = time.monotonic() - started
    # ru_maxrss of the largest descendant (the driver JVM), in KiB on Linux.
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"== benchmark: exit {returncode}, wall time {wall / 60:.1f} min, peak memory {peak_gib:.2f} GiB")
    logs = sorted(events.glob("*"), key=lambda path: path.stat().st_mtime)
    if logs:
        print(report(summarise(logs[-1])))
    return returncode


if __name__ == "__main__":
    sys.exit(main())
