"""Out-of-range configuration stops a run at its start, before the output root is touched."""

import copy
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from helpers import PROJECT_ROOT
from onderwijsscore.config import Config
from onderwijsscore.errors import ConfigFileError
from onderwijsscore.pipeline import stale_year_pairs
from onderwijsscore.run_record import input_fingerprint
from onderwijsscore.settings import Settings


def changed(config, name, path, value):
    """`config` with `value` at `path` (dotted) of file `name`."""
    files = copy.deepcopy(config.files[name])
    *parents, key = path.split(".")
    node = files
    for part in parents:
        node = node[part]
    node[key] = value
    return config.with_overrides(name, **files)


@pytest.mark.parametrize(
    ("name", "path", "value", "message"),
    [
        ("disclosure", "min_students", 4, "min_students: at least 5"),
        ("scenarios", "models.lwoo.thresholds", [-1], "thresholds F are percentages in \\[0, 100\\]"),
        ("scenarios", "models.lwoo.target_shares", [100], "shares are whole percentages in 1..99"),
        ("scenarios", "models.pro.asylum_share", 0, "shares are whole percentages in 1..99"),
        ("budgets", "lwoo.se_share", 1.2, "se_share: a share in \\[0, 1\\]"),
        ("budgets", "pro.teldatum_lag_years", -1, "teldatum_lag_years: not negative"),
    ],
)
def test_out_of_range_rules_stop_the_run_at_its_start(config, tmp_path, name, path, value, message, caplog):
    broken = changed(config, name, path, value)
    with pytest.raises(ConfigFileError, match=message):
        Settings.from_config(broken)
    conf_dir = written(broken, tmp_path / "conf")
    with caplog.at_level("ERROR", logger="onderwijsscore"):
        exit_code = run_pipeline_job().main(
            ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--config", str(conf_dir)]
        )
    assert exit_code == 2
    assert re.search(f"run stopped: .*{name}.yaml: .*{message}", caplog.text)
    assert not (tmp_path / "out").exists()  # stopped before the lease and the session: nothing touched


def test_spark_settings_on_the_command_line_are_key_value_pairs(capsys):
    parse = run_pipeline_job().parse_args
    required = ["--input", "in", "--output", "out"]
    settings = parse([*required, "--spark-conf", "spark.a=1", "--spark-conf", "spark.b=x=y"]).spark_conf
    assert dict(settings) == {"spark.a": "1", "spark.b": "x=y"}  # the value may hold "="
    with pytest.raises(SystemExit) as refused:
        parse([*required, "--spark-conf", "spark.a"])
    assert refused.value.code == 2
    assert "argument --spark-conf: expected KEY=VALUE, got 'spark.a'" in capsys.readouterr().err


def test_a_missing_key_is_a_config_error_naming_file_and_key(config):
    disclosure = {key: value for key, value in config.files["disclosure"].items() if key != "min_students"}
    broken = Config(config.conf_dir, {**config.files, "disclosure": disclosure})
    with pytest.raises(ConfigFileError, match=r"disclosure.yaml: min_students: missing"):
        Settings.from_config(broken)


@pytest.mark.parametrize(("restricted", "export"), [("zone", "zone"), ("zone", "zone/export"), ("a/b", "a")])
def test_zones_must_be_separate_folders(config, restricted, export):
    broken = config.with_overrides("pipeline", zones={"restricted": restricted, "export": export})
    with pytest.raises(ConfigFileError, match="pipeline.yaml: zones: restricted and export must be separate"):
        Settings.from_config(broken)


def test_a_slice_rule_per_partition_column_is_required(config):
    broken = changed(config, "outputs", "tables.budgets.slice", {"year": "run_years"})  # scenario has none
    with pytest.raises(ConfigFileError, match=r"outputs.yaml: tables.budgets.slice: a rule of .* for each partition"):
        Settings.from_config(broken)
    unknown = changed(config, "outputs", "tables.budgets.slice", {"year": "every_year", "scenario": "lwoo_scenarios"})
    with pytest.raises(ConfigFileError, match=r"tables.budgets.slice"):
        Settings.from_config(unknown)


def written(config: Config, folder: Path) -> Path:
    """`config`'s files as YAML under `folder` (a config directory)."""
    for name, content in config.files.items():
        path = folder / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(content))
    return folder


def run_pipeline_job():
    """jobs/run_pipeline.py as a module (the jobs are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("run_pipeline", PROJECT_ROOT / "jobs" / "run_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_input_fingerprint_hashes_content(tmp_path):
    table = tmp_path / "in" / "persons"
    table.mkdir(parents=True)
    (table / "part-0.parquet").write_bytes(b"abcd")
    first = input_fingerprint(tmp_path / "in")
    (table / "part-0.parquet").write_bytes(b"abce")  # same path, same size, other data
    assert input_fingerprint(tmp_path / "in") != first


@pytest.mark.parametrize(
    ("years", "stale", "covered"),
    [
        (
            [2020],
            ["change_explained 2020 (pair 2019-2020)", "stability 2020 (pair 2019-2020)"],
            [2017, 2018, 2019, 2020],
        ),
        ([2017, 2018, 2019, 2020], [], [2017, 2018, 2019, 2020]),
        ([2021], [], [2021]),  # a new year: its pair with 2020 is not computed, nothing goes stale
        (
            [2017],
            ["change_explained 2018 (pair 2017-2018)", "stability 2018 (pair 2017-2018)"],
            [2017, 2018, 2019, 2020],
        ),
    ],
)
def test_a_rerun_must_cover_every_year_the_published_pairs_connect(years, stale, covered):
    published = {"stability": {2018, 2019, 2020}, "change_explained": {2018, 2019, 2020}}
    assert stale_year_pairs(published, years) == (stale, covered)


def test_pairs_connect_only_consecutive_published_years():
    # 2015-2016 and 2019-2020 published; a gap between them.
    published = {"stability": {2016, 2020}}
    assert stale_year_pairs(published, [2019]) == (["stability 2020 (pair 2019-2020)"], [2019, 2020])
    assert stale_year_pairs({}, [2019]) == ([], [2019])
