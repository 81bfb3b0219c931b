"""spark-submit entry point: the whole pipeline from input tables to Delta outputs.

    spark-submit --py-files dist/onderwijsscore.zip --jars <delta jars> \
        jobs/run_pipeline.py --input IN --output OUT [--years 2019,2020] [--config conf]
"""

import argparse
import logging
import sys
from pathlib import Path

from onderwijsscore import lease, pipeline
from onderwijsscore.config import conf_dir_beside
from onderwijsscore.errors import PipelineError
from onderwijsscore.runtime import add_spark_conf_option, build_session, configure_logging
from onderwijsscore.settings import load_settings


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="input root: one folder per contract table")
    parser.add_argument("--output", required=True, help="output root: restricted/ and export/ Delta tables")
    parser.add_argument("--years", help="comma-separated teldatum years (default: conf/pipeline.yaml)")
    parser.add_argument(
        "--config", type=Path, default=conf_dir_beside(__file__), help="config directory (default: the project's conf/)"
    )
    add_spark_conf_option(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    configure_logging()
    years = [int(y) for y in args.years.split(",")] if args.years else None
    try:
        settings = load_settings(args.config)
        run_settings = pipeline.RunSettings.create(settings.pipeline, args.input, args.output, years)
        lease.refuse_if_held(run_settings.output_root, run_settings.pipeline.lease)  # before Spark starts
    except PipelineError as error:
        logging.getLogger("onderwijsscore").error("run stopped: %s", error)
        return 2
    overrides = dict(args.spark_conf)
    spark = build_session(settings.config, "onderwijsscore-pipeline", overrides)
    try:
        return pipeline.run_job(spark, settings, run_settings)
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
