"""Out-of-range configuration stops a run at its start, before the output root is touched."""

import copy

import pytest

from onderwijsscore import pipeline
from onderwijsscore.errors import PipelineError
from onderwijsscore.pipeline import stale_year_pairs
from onderwijsscore.run_record import input_fingerprint


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
def test_out_of_range_rules_stop_the_run_at_its_start(spark, config, tmp_path, name, path, value, message, caplog):
    broken = changed(config, name, path, value)
    with pytest.raises(PipelineError, match=message):
        pipeline.check_config(broken)
    settings = pipeline.RunSettings.from_config(broken, tmp_path / "in", tmp_path / "out", [2020])
    with caplog.at_level("ERROR", logger="onderwijsscore"):
        assert pipeline.run_job(spark, broken, settings) == 2
    assert not (tmp_path / "out").exists()  # stopped before the lease: nothing touched


@pytest.mark.parametrize(("restricted", "export"), [("zone", "zone"), ("zone", "zone/export"), ("a/b", "a")])
def test_zones_must_be_separate_folders(config, restricted, export):
    broken = config.with_overrides("pipeline", zones={"restricted": restricted, "export": export})
    with pytest.raises(PipelineError, match="zones: restricted and export must be separate"):
        pipeline.RunSettings.from_config(broken, "in", "out", [2020])


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
