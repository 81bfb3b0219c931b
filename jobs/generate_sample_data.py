"""Write synthetic input-contract tables (Parquet, one folder per table) for tests and demos.

    python jobs/generate_sample_data.py --output DIR [--scale 0.01] [--seed N] [--years 2017,2018]
        [--config conf]

Defaults come from conf/sample_data.yaml; see docs/sample-data.md for what is modelled.
"""

import argparse
from pathlib import Path

from onderwijsscore.config import conf_dir_beside, load_config
from onderwijsscore.runtime import build_session, configure_logging
from onderwijsscore.sample_data.tables import generate


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="output root: one Parquet folder per contract table")
    parser.add_argument("--scale", type=float, help="1 = the Netherlands (default: conf/sample_data.yaml)")
    parser.add_argument("--seed", type=int, help="same seed, same data (default: conf/sample_data.yaml)")
    parser.add_argument("--years", help="comma-separated teldatum years (default: conf/sample_data.yaml)")
    parser.add_argument(
        "--config", type=Path, default=conf_dir_beside(__file__), help="config directory (default: the project's conf/)"
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    configure_logging()
    config = load_config(args.config)
    defaults = config["sample_data"]["defaults"]
    scale = defaults["scale"] if args.scale is None else args.scale
    seed = defaults["seed"] if args.seed is None else args.seed
    years = [int(y) for y in args.years.split(",")] if args.years else defaults["years"]
    spark = build_session(config, "generate-sample-data")
    try:
        generate(spark, config, args.output, scale, seed, years)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
