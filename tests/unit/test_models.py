"""Model files and scoring rules: the shipped files' content and the loaders' validation."""

from __future__ import annotations

import copy
import re
from decimal import Decimal

import pytest
import yaml

from onderwijsscore.errors import ConfigFileError
from onderwijsscore.models import coefficient_lookup, parse_model, start_lookup
from onderwijsscore.scoring.rules import parse_scoring_rules
from onderwijsscore.vocabulary import CHARACTERISTICS

# The brochure's figure 1, in the contract's category order.
BROCHURE_FIGURE_1 = {
    "father_education": ("-0.22", "-0.15", "0.21", "0.00", "0.40", "0.64", "0.83", "1.23"),
    "mother_education": ("-0.33", "-0.30", "0.14", "0.00", "0.33", "0.63", "1.02", "1.28"),
    "origin_group": ("0.00", "-0.12", "-0.02", "-0.13", "-0.16", "0.48", "-0.49", "-0.49"),
    "mother_duration": ("-0.06", "0.29", "0.00"),
    "wsnp": ("0.00", "-0.84"),
}


@pytest.fixture(scope="module")
def pro(settings):
    return settings.models["pro"]


@pytest.fixture(scope="module")
def lwoo(settings):
    return settings.models["lwoo"]


def test_pro_model_is_the_official_brochure_table(pro):
    assert (pro.name, pro.status) == ("pro", "official")
    assert (pro.programmes, pro.grades, pro.funded_only) == (("pro",), (1, 2, 3, 4, 5, 6), True)
    assert pro.start == {"pro": Decimal("0")}
    for characteristic, values in BROCHURE_FIGURE_1.items():
        categories = CHARACTERISTICS[characteristic]
        assert pro.coefficients[characteristic] == dict(zip(categories, map(Decimal, values), strict=True))
    assert pro.education_mapping == {"praktijkonderwijs": "vmbo_bk_mbo1"}


def test_lwoo_model_is_illustrative_and_shaped_by_the_report(config, lwoo):
    assert lwoo.status == "illustrative"
    assert "figure 2.1" in (config.conf_dir / "models" / "lwoo.yaml").read_text()  # says why, in the file
    assert (lwoo.programmes, lwoo.grades, lwoo.funded_only) == (("vmbo_bk", "vmbo_gt"), (3, 4), True)
    assert lwoo.start["vmbo_bk"] < lwoo.start["vmbo_gt"]
    origins = lwoo.coefficients["origin_group"]
    clearly_negative = {origin for origin, value in origins.items() if value <= Decimal("-0.10")}
    assert clearly_negative == {"north_africa", "sur_ant", "turkey"}
    assert all(abs(value) <= Decimal("0.05") for origin, value in origins.items() if origin not in clearly_negative)
    duration = lwoo.coefficients["mother_duration"]
    assert duration["0_5"] > duration["10_plus"]
    assert lwoo.coefficients["wsnp"]["yes"] < lwoo.coefficients["wsnp"]["no"]


def test_lookup_frames(spark, pro, settings):
    score_type = settings.scoring.score_type
    lookup = coefficient_lookup(spark, pro, score_type)
    assert lookup.dtypes == [("characteristic", "string"), ("category", "string"), ("coefficient", "decimal(12,6)")]
    rows = {(r["characteristic"], r["category"]): r["coefficient"] for r in lookup.collect()}
    assert len(rows) == sum(len(categories) for categories in CHARACTERISTICS.values())
    assert rows[("wsnp", "yes")] == Decimal("-0.84")
    assert [tuple(r) for r in start_lookup(spark, pro, score_type).collect()] == [("pro", Decimal("0"))]


@pytest.fixture
def raw_pro(config):
    return copy.deepcopy(config["models/pro"])


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda raw: raw["coefficients"]["origin_group"].pop("turkey"), "coefficients.origin_group", "missing"),
        (lambda raw: raw["coefficients"]["wsnp"].update(maybe=0.1), "coefficients.wsnp", "unknown ['maybe']"),
        (lambda raw: raw["coefficients"]["mother_education"].update(mbo4="high"), "mother_education.mbo4", "number"),
        (lambda raw: raw["coefficients"]["father_education"].update(mbo4=True), "father_education.mbo4", "number"),
        (lambda raw: raw["coefficients"].pop("wsnp"), "coefficients", "characteristics"),
        (lambda raw: raw.update(status="draft"), "status", "official"),
        (lambda raw: raw.update(start={"vmbo_bk": 0.0}), "start", "population programme"),
        (lambda raw: raw["population"].update(grades=[0, 1]), "population.grades", "1-6"),
        (lambda raw: raw.update(model="lwoo"), "model", "'pro' model"),
        (lambda raw: raw.update(education_mapping={"praktijkonderwijs": "pro"}), "education_mapping", "map"),
    ],
)
def test_invalid_model_file_names_file_and_key(raw_pro, mutate, key, problem):
    mutate(raw_pro)
    with pytest.raises(ConfigFileError, match=f"conf/models/pro.yaml: .*{re.escape(key)}.*{re.escape(problem)}"):
        parse_model(raw_pro, "conf/models/pro.yaml", expected_name="pro")


def test_unquoted_yes_no_gets_a_hint(raw_pro):
    raw_pro["coefficients"]["wsnp"] = yaml.safe_load("{no: 0.0, yes: -0.84}")  # YAML 1.1 reads booleans
    with pytest.raises(ConfigFileError, match="quote yes/no"):
        parse_model(raw_pro, "conf/models/pro.yaml")


def test_scoring_rules(settings):
    rules = settings.scoring
    assert (rules.teldatum_month, rules.teldatum_day, rules.wsnp_window_months) == (10, 1, 12)
    assert str(rules.asylum_min_registration_date) == "2014-01-01"
    assert rules.missing_mother_duration == "10_plus"
    # domain.md §3: path 2 same school and track, then the track; path 3 from all keys at
    # the school down to the track.
    assert rules.donor_levels["imputed_donor_school"] == (("school_id", "track"), ("track",))
    assert rules.donor_levels["imputed_donor_parent"] == (
        ("school_id", "track", "origin_group", "father_education", "mother_education"),
        ("track", "origin_group", "father_education", "mother_education"),
        ("track", "origin_group"),
        ("track",),
    )
    assert (rules.score_type.scale, rules.expected_coefficient_type.scale) == (6, 18)
    assert rules.education_model.features == (
        "income_percentile",
        "age",
        "sex",
        "partner_education",
        "child_origin_group",
    )


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda raw: raw["donors"]["parent_not_in_register"].append(["postcode"]), "donors.parent_not_in_register"),
        (lambda raw: raw["education_imputation"].update(features=["shoe_size"]), "education_imputation.features"),
        (
            lambda raw: raw["education_imputation"].update(elastic_net_param=0.5),
            "education_imputation.elastic_net_param",
        ),
        (lambda raw: raw.pop("wsnp_window_months"), "wsnp_window_months"),
        (lambda raw: raw.update(missing_mother_duration="forever"), "missing_mother_duration"),
        (lambda raw: raw.update(score_decimals=True), "score_decimals"),
        (lambda raw: raw.update(expected_coefficient_decimals=4), "expected_coefficient_decimals"),
        (lambda raw: raw["donors"]["not_in_register"].append([]), "donors.not_in_register"),
    ],
)
def test_invalid_scoring_rules_name_file_and_key(config, mutate, key):
    raw = copy.deepcopy(config["scoring"])
    mutate(raw)
    with pytest.raises(ConfigFileError, match=f"conf/scoring.yaml: {key}"):
        parse_scoring_rules(raw, "conf/scoring.yaml")
