"""conf/scoring.yaml: the choices domain.md §2-3 leaves open, validated."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from pyspark.sql import types as T

from onderwijsscore.errors import ConfigFileError
from onderwijsscore.scoring.donors import DONOR_MATCH_KEYS
from onderwijsscore.scoring.education import FEATURES, EducationModelSettings
from onderwijsscore.vocabulary import DONOR_PARENT_SOURCE, DONOR_SCHOOL_SOURCE, DURATION_CLASSES

_SCORE_INTEGER_DIGITS = 6
# conf/scoring.yaml `donors` section -> the path whose recipients it serves.
_DONOR_PATHS = {"not_in_register": DONOR_SCHOOL_SOURCE, "parent_not_in_register": DONOR_PARENT_SOURCE}
_PATH_2_KEY = "track"
# A score adds six terms of 6 integer digits (11 in the sum) and at most this many
# decimals: within Spark's 38 digits, so no intermediate sum is rounded.
_MAX_DECIMALS = 27


@dataclass(frozen=True)
class ScoringRules:
    """conf/scoring.yaml: the choices domain.md §2-3 leaves open."""

    teldatum_month: int
    teldatum_day: int
    score_decimals: int
    expected_coefficient_decimals: int
    wsnp_window_months: int
    asylum_min_registration_date: datetime.date
    missing_mother_duration: str
    donor_levels: dict[str, tuple[tuple[str, ...], ...]]  # score_source -> match-key levels, preferred first
    education_model: EducationModelSettings

    @property
    def score_type(self) -> T.DecimalType:
        return T.DecimalType(_SCORE_INTEGER_DIGITS + self.score_decimals, self.score_decimals)

    @property
    def expected_coefficient_type(self) -> T.DecimalType:
        """An imputed parent's expected coefficient, unrounded for the score's one rounding."""
        decimals = self.expected_coefficient_decimals
        return T.DecimalType(_SCORE_INTEGER_DIGITS + decimals, decimals)


def parse_scoring_rules(raw: Any, file: str) -> ScoringRules:
    """Validate conf/scoring.yaml; any problem raises `ConfigFileError` naming file and key."""

    def value(path: str, *kinds: type) -> Any:
        node = raw
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                raise ConfigFileError(file, path, "missing")
            node = node[key]
        # bool is an int in Python, but `true` is never meant as a number here.
        if isinstance(node, bool) or not isinstance(node, kinds):
            raise ConfigFileError(file, path, f"expected {' or '.join(k.__name__ for k in kinds)}, found {node!r}")
        return node

    teldatum = datetime.date(2000, value("teldatum.month", int), value("teldatum.day", int))  # validates the day
    missing_duration = value("missing_mother_duration", str)
    if missing_duration not in DURATION_CLASSES:
        raise ConfigFileError(file, "missing_mother_duration", f"not in {list(DURATION_CLASSES)}")

    donor_levels = {}
    for section, source in _DONOR_PATHS.items():
        levels = value(f"donors.{section}", list)
        if not levels or not all(isinstance(level, list) and set(level) <= set(DONOR_MATCH_KEYS) for level in levels):
            raise ConfigFileError(
                file, f"donors.{section}", f"must be a non-empty list of key lists from {list(DONOR_MATCH_KEYS)}"
            )
        donor_levels[source] = tuple(tuple(level) for level in levels)
    # domain.md §3: a path-2 donor has the recipient's track (its score holds the track's start value).
    if not all(_PATH_2_KEY in level for level in donor_levels[_DONOR_PATHS["not_in_register"]]):
        raise ConfigFileError(file, "donors.not_in_register", f"every level must include {_PATH_2_KEY}")
    decimals = {name: value(name, int) for name in ("score_decimals", "expected_coefficient_decimals")}
    if not 0 <= decimals["score_decimals"] <= decimals["expected_coefficient_decimals"] <= _MAX_DECIMALS:
        raise ConfigFileError(
            file, "expected_coefficient_decimals", f"must be at least score_decimals and at most {_MAX_DECIMALS}"
        )

    features = value("education_imputation.features", list)
    if not features or not set(features) <= set(FEATURES):
        raise ConfigFileError(file, "education_imputation.features", f"must be a non-empty subset of {list(FEATURES)}")
    if value("education_imputation.elastic_net_param", int, float) != 0:
        raise ConfigFileError(file, "education_imputation.elastic_net_param", "only 0 (L2 regularisation) is supported")
    held_out_fraction = value("education_imputation.held_out_fraction", int, float)
    if not 0 <= held_out_fraction < 1:
        raise ConfigFileError(file, "education_imputation.held_out_fraction", "must be in [0, 1)")

    return ScoringRules(
        teldatum_month=teldatum.month,
        teldatum_day=teldatum.day,
        score_decimals=decimals["score_decimals"],
        expected_coefficient_decimals=decimals["expected_coefficient_decimals"],
        wsnp_window_months=value("wsnp_window_months", int),
        asylum_min_registration_date=value("asylum_min_registration_date", datetime.date),
        missing_mother_duration=missing_duration,
        donor_levels=donor_levels,
        education_model=EducationModelSettings(
            features=tuple(features),
            held_out_fraction=held_out_fraction,
            max_iter=value("education_imputation.max_iter", int),
            reg_param=value("education_imputation.reg_param", int, float),
            tolerance=value("education_imputation.tolerance", int, float),
            concurrent_fits=value("education_imputation.concurrent_fits", int),
        ),
    )
