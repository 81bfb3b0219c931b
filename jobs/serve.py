"""The SQL endpoint: Spark's Thrift JDBC/ODBC server over the published export tables.

    python jobs/serve.py --output OUT [--host 127.0.0.1] [--port 10000] [--config conf]
        [--spark-conf KEY=VALUE ...]

Runs until SIGTERM or SIGINT (`make serve-stop`); SIGHUP re-registers the tables at the
versions of the last succeeded run (`make serve` while it runs). Writes its pid to
OUT/_serve/server.pid. See docs/bi.md.
"""

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from onderwijsscore.config import conf_dir_beside, load_config
from onderwijsscore.errors import PipelineError
from onderwijsscore.runtime import add_spark_conf_option, build_session, configure_logging, delta_jars
from onderwijsscore.serving import ServeSettings, register_published, session_settings, start_server
from onderwijsscore.settings import Settings

log = logging.getLogger("onderwijsscore")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="output root of the pipeline's runs")
    parser.add_argument("--host", help="address to bind (default conf/serve.yaml: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default conf/serve.yaml)")
    parser.add_argument(
        "--config", type=Path, default=conf_dir_beside(__file__), help="config directory (default: the project's conf/)"
    )
    add_spark_conf_option(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    configure_logging()
    config = load_config(args.config)
    settings = ServeSettings.from_config(config, args.output, args.host, args.port)
    settings.serve_dir.mkdir(parents=True, exist_ok=True)
    overrides = dict(args.spark_conf)
    local_java_options = config["spark"].get("local", {}).get("spark.driver.extraJavaOptions", "")
    java_options = overrides.pop("spark.driver.extraJavaOptions", local_java_options)
    session = session_settings(settings, delta_jars(config), java_options)
    spark = build_session(config, "onderwijsscore-serve", overrides | session)
    catalogue = Settings.from_config(config).outputs
    stop, refresh = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: refresh.set())
    pid_file = settings.serve_dir / "server.pid"
    try:
        register_published(spark, settings, catalogue)
        server = start_server(spark)
        pid_file.write_text(str(os.getpid()))
        log.info("serving %s", settings.jdbc_url)
        while not stop.wait(0.5):
            if refresh.is_set():
                refresh.clear()
                register_published(spark, settings, catalogue)
        server.stop()
    except PipelineError as error:  # nothing published yet
        log.error("not serving: %s", error)
        return 2
    finally:
        pid_file.unlink(missing_ok=True)
        spark.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
