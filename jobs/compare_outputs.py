"""Compare the published tables of two output roots row for row, e.g. the outputs of two
code versions on the same input (docs/benchmarks.md, "Same results"). Exit code 0 when
every table is equal, 1 when one differs or exists on one side only.

    python jobs/compare_outputs.py LEFT_OUTPUT RIGHT_OUTPUT [--ignore export/cutoffs:cutoff_approx,...]
"""

import argparse
import sys
from pathlib import Path

from onderwijsscore.comparison import compare_outputs
from onderwijsscore.config import conf_dir_beside, load_config
from onderwijsscore.runtime import build_session, configure_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("left", help="an output root (restricted/ and export/ Delta tables)")
    parser.add_argument("right", help="the output root to compare it with")
    parser.add_argument(
        "--config", type=Path, default=conf_dir_beside(__file__), help="config directory (default: the project's conf/)"
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="TABLE:COLUMNS",
        help="leave comma-separated columns of a table (zone/table) out of the comparison (repeatable)",
    )
    args = parser.parse_args(argv)
    ignored = {table: tuple(columns.split(",")) for table, columns in (item.split(":", 1) for item in args.ignore)}
    configure_logging()
    spark = build_session(load_config(args.config), "onderwijsscore-compare")
    try:
        results = compare_outputs(spark, Path(args.left), Path(args.right), ignored)
    finally:
        spark.stop()
    for result in results:
        print(result)
    return 0 if results and all(result.equal for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
