"""Paths 2 and 3 (domain.md §3): the student takes the score of a donor (a student on path
4 or 5), found with joins over configured levels of match keys and chosen by the
smallest hash of (seed, recipient, donor), so the choice is deterministic given the
seed. Only missing data match any donor; a parent's unknown education is a category of
its own."""

from __future__ import annotations

from functools import reduce
from operator import add

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from onderwijsscore.vocabulary import DONOR_SOURCES, EDUCATION_CHARACTERISTICS

# Match keys a donor level may use (domain.md §3).
DONOR_MATCH_KEYS = ("school_id", "track", "origin_group", "father_education", "mother_education")
# A parent in the register without an education level: a category of its own for matching.
UNKNOWN_EDUCATION = "unknown"


def _match_value(key: str) -> Column:
    """The student's value of a match key; null only where the data are missing (a parent
    not in the register, no origin group), and a null recipient value matches any donor."""
    if key == "origin_group":
        return F.col("origin_group_observed")
    if key in EDUCATION_CHARACTERISTICS:
        role = key.removesuffix("_education")
        return F.when(F.col(f"{role}_in_register"), F.coalesce(F.col(f"{key}_observed"), F.lit(UNKNOWN_EDUCATION)))
    return F.col(key)


# Keys whose value a recipient may miss.
_KEYS_MISSING_MATCHES_ANY = ("origin_group", *EDUCATION_CHARACTERISTICS)
DonorLevels = dict[str, tuple[tuple[str, ...], ...]]  # score_source -> match-key levels, preferred first
_ENTRY_KEYS = ["year", "model", "source", "level", "mask", "match_key"]
_ENTRIES = T.ArrayType(
    T.StructType(
        [
            T.StructField("source", T.StringType()),
            T.StructField("level", T.IntegerType()),
            T.StructField("mask", T.IntegerType()),
            T.StructField("match_key", T.ArrayType(T.StringType())),
        ]
    )
)


def _entry(source: str, level: int, mask: Column, match_key: Column) -> Column:
    """One (path, level) entry: `mask` says which keys a recipient may miss it does have
    (bit i: the level's i-th such key), `match_key` the values of the keys compared."""
    return F.struct(
        F.lit(source).alias("source"),
        F.lit(level).alias("level"),
        mask.alias("mask"),
        match_key.cast("array<string>").alias("match_key"),
    )


def _unknowable(keys: tuple[str, ...]) -> list[str]:
    return [key for key in keys if key in _KEYS_MISSING_MATCHES_ANY]


def _recipient_entries(levels_by_source: DonorLevels) -> Column:
    """A recipient's entries for the levels of its own path. A missing value (null) is left
    out of the compared keys, so it matches every donor: the equi-join stays exact."""

    def entry(source: str, number: int, keys: tuple[str, ...]) -> Column:
        known = [_match_value(key).isNotNull().cast("int") * (2**i) for i, key in enumerate(_unknowable(keys))]
        values = F.array_compact(F.array(*[_match_value(key) for key in keys]))
        return _entry(source, number, reduce(add, known, F.lit(0)), values)

    return F.coalesce(
        *[
            F.when(
                F.col("score_source") == source,
                F.array(*[entry(source, number, keys) for number, keys in enumerate(levels)]),
            )
            for source, levels in levels_by_source.items()
        ]
    )


def _donor_entries(levels_by_source: DonorLevels, combinations: list[tuple[str, int, int]]) -> Column:
    """A donor's entries for the (path, level, mask) combinations recipients use: the values of
    the keys the mask keeps. (A donor, on path 4 or 5, misses no key's value; were one null,
    its array would equal no recipient's, which holds no null.)"""
    entries = []
    for source, number, mask in combinations:
        keys = levels_by_source[source][number]
        unknowable = _unknowable(keys)
        kept = [key for key in keys if key not in unknowable or mask & 2 ** unknowable.index(key)]
        entries.append(_entry(source, number, F.lit(mask), F.array(*[_match_value(key) for key in kept])))
    return F.array(*entries) if entries else F.array().cast(_ENTRIES)


def donor_recipients(students: DataFrame, levels_by_source: DonorLevels) -> DataFrame:
    """The donor search's first step: each recipient's match entries at the first level
    (0 = most preferred) that has a donor. `donor_scores` picks the donor there; the
    search is split so the caller can keep this small frame (a few percent of the
    students), which the second step reads three times.

    `levels_by_source` maps a score_source to its levels of match keys, preferred first;
    `students` has the keys' columns (`school_id`, `track`, `origin_group_observed`,
    `<role>_education_observed`, `<role>_in_register`). Donors are the students on paths 4
    and 5 of the same year and model. A level is a number and its key values one array
    column, so all levels are matched in one equi-join. Donors are expanded only into the
    entries that recipients ask for. A recipient without a candidate at any level (no
    donor in its year, model and the last level's keys) gets no row, and the output gate
    stops the run on its missing score.
    """
    recipients = students.where(F.col("score_source").isin(*levels_by_source)).select(
        "year", "model", "student_id", F.inline(_recipient_entries(levels_by_source))
    )
    first_level = (
        recipients.join(
            _asked_donor_entries(students, levels_by_source, recipients).select(*_ENTRY_KEYS).distinct(), _ENTRY_KEYS
        )
        .groupBy("year", "model", "student_id")
        .agg(F.min("level").alias("level"))
    )
    return recipients.join(first_level, ["year", "model", "student_id", "level"])


def donor_scores(students: DataFrame, recipients: DataFrame, levels_by_source: DonorLevels, seed: int) -> DataFrame:
    """(year, model, student_id, donor_level, donor_score) for the `recipients` of
    `donor_recipients`: among the candidates at the recipient's level, the one with the
    smallest 64-bit hash of (seed, recipient id, donor id) wins, an aggregate rather than
    a ranking. (Two candidates of one recipient with the same hash, a chance of n²/3.7e19
    for n candidates, would leave the choice between those two to the order of
    processing.) Donor ids never leave this function.
    """
    # The smallest hash wins: a hash aggregation over fixed-width values (a struct with the
    # donor id would sort every candidate pair).
    preference = F.xxhash64(F.lit(seed), F.col("student_id"), F.col("donor_id"))
    # A key of a national level can have many thousands of donors: the few recipients are
    # hashed and the donors streamed past them, so no donor group is buffered or sorted.
    return (
        _asked_donor_entries(students, levels_by_source, recipients)
        .join(recipients.hint("shuffle_hash"), _ENTRY_KEYS)
        .groupBy("year", "model", "student_id", F.col("level").alias("donor_level"))
        .agg(F.min_by("donor_score", preference).alias("donor_score"))
    )


def _asked_donor_entries(students: DataFrame, levels_by_source: DonorLevels, asked: DataFrame) -> DataFrame:
    """The donors' entries that some entry of `asked` matches (a broadcast filter)."""
    donors = students.where(F.col("score_source").isin(*DONOR_SOURCES))
    combinations = sorted(tuple(row) for row in asked.select("source", "level", "mask").distinct().collect())
    return donors.select(
        "year",
        "model",
        F.col("student_id").alias("donor_id"),
        F.col("score").alias("donor_score"),
        F.inline(_donor_entries(levels_by_source, combinations)),
    ).join(F.broadcast(asked.select(*_ENTRY_KEYS).distinct()), _ENTRY_KEYS, "left_semi")
