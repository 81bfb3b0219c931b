"""Synthetic register microdata that meets the input contract, generated with Spark.

The generator models secondary education in the Netherlands at any scale (1 = the
whole country): 74 regional samenwerkingsverbanden (SWVs) plus the RSVO, their
postcode regions and vestigingen, yearly cohorts of students moving through the
grades of their track, and one family per student. A latent family socio-economic
status (SES) drives the student's track, both parents' education level and income
percentile and the chance of debt restructuring (WSNP); origin, asylum and big-city
SWVs shift it. Every random draw is a hash of (seed, attribute, entity key), so the
output depends only on config, scale, seed and years, never on partitioning or row
order. All shares and sizes are in conf/sample_data.yaml; docs/sample-data.md
describes the model and what it realises.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial, reduce
from itertools import accumulate
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from onderwijsscore.config import Config
from onderwijsscore.contract import CANONICAL_TYPES, CONTRACT
from onderwijsscore.runtime import materialize, stage
from onderwijsscore.vocabulary import EDUCATION_LEVELS

FIRST_POSTCODE, POSTCODE_COUNT = 1000, 9000  # 4-digit postcodes 1000-9999
_MANTISSA_BITS = 53


@dataclass(frozen=True)
class SampleSpec:
    """What one generation run draws: conf/sample_data.yaml plus scale, seed and years."""

    conf: dict[str, Any]
    scale: float
    seed: int
    years: tuple[int, ...]

    @classmethod
    def from_config(cls, config: Config, scale: float, seed: int, years: list[int] | tuple[int, ...]) -> SampleSpec:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if not years:
            raise ValueError("at least one year is needed")
        return cls(config["sample_data"], float(scale), int(seed), tuple(sorted(set(years))))

    @property
    def first_year(self) -> int:
        return self.years[0]

    @property
    def last_year(self) -> int:
        return self.years[-1]

    @property
    def closed_until(self) -> int | None:
        """The last year closed vestigingen exist; None when they outlive the data."""
        keep = self.conf["schools"]["closed_after_years"]
        return self.years[keep - 1] if len(self.years) > keep else None

    @property
    def max_duration(self) -> int:
        students = self.conf["students"]
        return max(*students["durations"].values(), *students["pro_durations"])


# --- random draws: pure functions of (seed, attribute, keys) ----------------------------


def uniform(seed: int, attribute: str, *keys: Column | str) -> Column:
    """A uniform draw in (0, 1), fixed by seed, attribute name and entity keys."""
    bits = F.xxhash64(F.lit(seed), F.lit(attribute), *keys).bitwiseAND(F.lit((1 << _MANTISSA_BITS) - 1))
    return (bits + 0.5) / float(1 << _MANTISSA_BITS)


def normal(seed: int, attribute: str, *keys: Column | str) -> Column:
    """A standard-normal draw (Box-Muller over two uniforms)."""
    radius = F.sqrt(F.log(uniform(seed, f"{attribute}:radius", *keys)) * -2.0)
    return radius * F.cos(uniform(seed, f"{attribute}:angle", *keys) * (2 * math.pi))


def opaque_id(prefix: str, seed: int, kind: str, *keys: Column | str) -> Column:
    """A pseudonymous id: prefix plus the 16 hex digits of a 64-bit hash (collisions ~1e-7 at 10M ids)."""
    return F.concat(F.lit(prefix), F.lpad(F.hex(F.xxhash64(F.lit(seed), F.lit(f"id:{kind}"), *keys)), 16, "0"))


def shares(mapping: Mapping[Any, float], name: str) -> dict[Any, float]:
    """Shares normalised to sum 1; a config typo that moves the sum by more than 1 % is an error."""
    total = sum(mapping.values())
    if abs(total - 1) > 0.01:
        raise ValueError(f"sample_data {name}: shares sum to {total}, expected 1")
    return {key: value / total for key, value in mapping.items()}


def categorical(u: Column, mapping: Mapping[Any, float], name: str) -> Column:
    """The category whose cumulative-share interval holds the uniform draw `u`."""
    items = list(shares(mapping, name).items())
    bounds = accumulate(share for _, share in items)
    cases = [(u < bound, F.lit(code)) for (code, _), bound in zip(items[:-1], bounds, strict=False)]
    return first_match(cases, F.lit(items[-1][0]))


def ordered_category(latent: Column, mapping: Mapping[Any, float], name: str) -> Column:
    """For a standard-normal latent: the category between the normal quantiles of its cumulative shares."""
    items = list(shares(mapping, name).items())
    bounds = accumulate(share for _, share in items)
    cases = [
        (latent < NormalDist().inv_cdf(bound), F.lit(code))
        for (code, _), bound in zip(items[:-1], bounds, strict=False)
    ]
    return first_match(cases, F.lit(items[-1][0]))


def first_match(cases: list[tuple[Column, Column]], default: Column | None = None) -> Column:
    """CASE WHEN over (condition, value) pairs in order."""
    (condition, value), *rest = cases
    chain = reduce(lambda expr, case: expr.when(*case), rest, F.when(condition, value))
    return chain if default is None else chain.otherwise(default)


def lookup(column: Column | str, mapping: Mapping[Any, Any]) -> Column:
    """The mapping's value for the column's value (null when absent)."""
    column = F.col(column) if isinstance(column, str) else column
    return first_match([(column == F.lit(key), F.lit(value)) for key, value in mapping.items()])


def by_area(per_area: Mapping[str, Any], draw) -> Column:
    """`draw(settings)` with the big-city SWVs' settings or the rest's."""
    return F.when(F.col("big_city"), draw(per_area["big_city"])).otherwise(draw(per_area["rest"]))


def with_logit_shift(base_share: float, shift: Column) -> Column:
    """A probability whose log-odds are those of `base_share` moved by `shift`."""
    return 1.0 / (1.0 + F.exp(-(F.lit(math.log(base_share / (1 - base_share))) + shift)))


def normal_cdf(x: Column) -> Column:
    """Logistic approximation of the standard normal CDF (error < 0.01)."""
    return 1.0 / (1.0 + F.exp(x * -1.702))


def clamp(column: Column, low: int, high: int) -> Column:
    return F.least(F.greatest(column, F.lit(low)), F.lit(high))


def conform(frame: DataFrame, table: str) -> DataFrame:
    """The contract's columns, in its order, with its canonical types."""
    return frame.select(*[F.col(c.name).cast(CANONICAL_TYPES[c.kind]).alias(c.name) for c in CONTRACT[table].columns])


# --- geography: SWVs, postcodes, vestigingen (small; planned on the driver) -------------


def dimension_draw(seed: int, attribute: str, *keys: object) -> float:
    """A uniform draw in (0, 1) for a row of a small dimension table, fixed by seed, attribute and keys."""
    digest = hashlib.blake2b(repr((seed, attribute, *keys)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def dimension_id(prefix: str, seed: int, kind: str, *keys: object) -> str:
    return prefix + hashlib.blake2b(repr((seed, f"id:{kind}", *keys)).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Swv:
    index: int
    swv_id: str
    name: str
    shrink_region: str | None
    shrink_type: str | None
    big_city: bool
    size_weight: float  # relative number of students
    postcode_lo: int  # its postcodes are [postcode_lo, postcode_hi)
    postcode_hi: int


@dataclass(frozen=True)
class Vestiging:
    school_id: str
    kind: str  # regular (vmbo/havo/vwo) or pro
    catchment: int  # regular: the SWV index; pro: the district of neighbouring SWVs
    slot: int  # rank in the catchment: students pick low slots more often (larger schools)
    swv_index: int  # the SWV it lies in
    board_id: str
    postcode: int
    rsvo: bool
    closed: bool  # closes after `closed_until`; its students move to its successor
    successor_id: str | None
    swv_override: str | None
    budget_swv_id: str  # the SWV paid for it: VO0001 for the RSVO


@dataclass(frozen=True)
class Geography:
    swvs: list[Swv]
    vestigingen: list[Vestiging]
    region: dict[int, str]  # the region table: postcode -> swv_id (retired postcodes left out)
    pro_district_size: int

    def slots(self) -> Counter[tuple[str, int]]:
        """Vestigingen per (kind, catchment)."""
        return Counter((v.kind, v.catchment) for v in self.vestigingen)


def shrink_layout(regions: list[dict[str, Any]], swv_count: int) -> dict[int, tuple[str, str]]:
    """swv index -> (region, type): regions spread over the country, each on neighbouring SWVs."""
    stride = swv_count // len(regions)
    layout = {}
    for number, region in enumerate(regions):
        if region["swvs"] > stride:
            raise ValueError(f"shrink region {region['name']} covers more than {stride} SWVs")
        layout |= {number * stride + k: (region["name"], region["type"]) for k in range(region["swvs"])}
    return layout


def plan_swvs(spec: SampleSpec) -> list[Swv]:
    """The regional SWVs with their size, shrink region, big-city flag and a contiguous postcode range."""
    geo, seed = spec.conf["geography"], spec.seed
    count = geo["regional_swvs"]
    shrink = shrink_layout(geo["shrink_regions"], count)
    # Big cities are never in a shrink region.
    outside_shrink = sorted((i for i in range(count) if i not in shrink), key=lambda i: dimension_draw(seed, "big", i))
    big_cities = set(outside_shrink[: geo["big_city_swvs"]])

    def spread(attribute: str, index: int, sd: float) -> float:
        return math.exp(NormalDist().inv_cdf(dimension_draw(seed, attribute, index)) * sd)

    # A big city has a fixed multiple of a median SWV's students on a fraction of its postcodes.
    sizes = [
        geo["big_city_size_factor"] if i in big_cities else spread("size", i, geo["swv_size_spread"])
        for i in range(count)
    ]
    areas = [
        geo["big_city_area_factor"] if i in big_cities else spread("area", i, geo["swv_area_spread"])
        for i in range(count)
    ]
    cumulative = list(accumulate(areas, initial=0.0))
    bounds = [FIRST_POSTCODE + round(POSTCODE_COUNT * c / cumulative[-1]) for c in cumulative]
    return [
        Swv(
            index=i,
            swv_id=f"VO{2001 + i:04d}",
            name=f"Samenwerkingsverband VO regio {i + 1:02d}",
            shrink_region=shrink.get(i, (None, None))[0],
            shrink_type=shrink.get(i, (None, None))[1],
            big_city=i in big_cities,
            size_weight=sizes[i],
            postcode_lo=bounds[i],
            postcode_hi=bounds[i + 1],
        )
        for i in range(count)
    ]


def plan_geography(spec: SampleSpec) -> Geography:
    """SWVs, the region table and the vestigingen.

    Regular vestigingen serve their own SWV, in numbers proportional to its size; pro
    vestigingen serve a district of neighbouring SWVs (one SWV each at scale 1). In a few
    SWVs slot 1 is an RSVO vestiging; in a couple the last slot closes after the first
    years (its students move to slot 0) and its postcode is retired from the region table.
    """
    conf, seed, scale = spec.conf["schools"], spec.seed, spec.scale
    geo = spec.conf["geography"]
    swvs = plan_swvs(spec)
    total_size = sum(s.size_weight for s in swvs)
    by_draw = sorted(swvs, key=lambda s: dimension_draw(seed, "rsvo", s.index))
    rsvo_hosts = {
        s.index for s in by_draw[: max(round(conf["rsvo_vestigingen"] * scale), conf["min_rsvo_vestigingen"])]
    }
    by_draw = sorted(swvs, key=lambda s: dimension_draw(seed, "closed", s.index))
    closed_hosts = {s.index for s in by_draw[: conf["closed_vestigingen"]]}

    # (kind, catchment, slot, swv, is the catchment's last slot) of every vestiging.
    places = []
    for swv in swvs:
        count = max(
            round(swv.size_weight / total_size * conf["regular_vestigingen"] * scale), conf["min_regular_per_swv"]
        )
        places += [("regular", swv.index, slot, swv, slot == count - 1) for slot in range(count)]
    pro_total = max(round(conf["pro_vestigingen"] * scale), math.ceil(len(swvs) / conf["max_swvs_per_pro_vestiging"]))
    district_size = math.ceil(len(swvs) / pro_total)
    for district in range(math.ceil(len(swvs) / district_size)):
        members = swvs[district * district_size : (district + 1) * district_size]
        share = sum(s.size_weight for s in members) / total_size
        count = max(round(share * pro_total), 1)
        places += [("pro", district, slot, members[slot % len(members)], False) for slot in range(count)]

    def place_id(kind: str, catchment: int, slot: int) -> str:
        return dimension_id("V", seed, "school", kind, catchment, slot)

    closing = {
        place_id(kind, catchment, slot): swv.postcode_lo
        + math.floor(dimension_draw(seed, "closed_postcode", catchment) * (swv.postcode_hi - swv.postcode_lo))
        for kind, catchment, slot, swv, last in places
        if kind == "regular" and last and swv.index in closed_hosts
    }
    all_postcodes = range(FIRST_POSTCODE, FIRST_POSTCODE + POSTCODE_COUNT)
    retired = set(sorted(all_postcodes, key=lambda p: dimension_draw(seed, "retired", p))[: geo["retired_postcodes"]])
    retired |= set(closing.values())
    open_postcodes = {s.index: [p for p in range(s.postcode_lo, s.postcode_hi) if p not in retired] for s in swvs}

    vestigingen, board_number, previous_swv = [], 0, None
    for kind, catchment, slot, swv, _ in sorted(places, key=lambda p: (p[3].index, p[0], p[2])):
        school_id = place_id(kind, catchment, slot)
        # Boards stay within an SWV; a new one starts with probability 1/mean size, so board
        # sizes are geometric (1-several vestigingen).
        starts_board = dimension_draw(seed, "board", school_id) < 1 / conf["vestigingen_per_board"]
        board_number = 0 if swv.index != previous_swv else board_number + starts_board
        previous_swv = swv.index
        postcodes = open_postcodes[swv.index]
        rsvo = kind == "regular" and slot == 1 and swv.index in rsvo_hosts
        closed = school_id in closing
        vestigingen.append(
            Vestiging(
                school_id=school_id,
                kind=kind,
                catchment=catchment,
                slot=slot,
                swv_index=swv.index,
                board_id=dimension_id("B", seed, "board", swv.index, board_number),
                postcode=closing[school_id]
                if closed
                else postcodes[math.floor(dimension_draw(seed, "school_postcode", school_id) * len(postcodes))],
                rsvo=rsvo,
                closed=closed,
                successor_id=place_id(kind, catchment, 0) if closed else None,
                swv_override=swv.swv_id if closed else None,
                budget_swv_id=geo["rsvo_swv_id"] if rsvo else swv.swv_id,
            )
        )
    region = {p: s.swv_id for s in swvs for p in open_postcodes[s.index]}
    return Geography(swvs, vestigingen, region, district_size)


def cohort_cells(spec: SampleSpec, geography: Geography) -> list[tuple[int, int, int]]:
    """(entry year, swv index, students entering grade 1): the national cohort split by SWV size and trend."""
    students, trends = spec.conf["students"], spec.conf["geography"]["cohort_trend"]
    cells = []
    for entry_year in range(spec.first_year - spec.max_duration + 1, spec.last_year + 1):
        since_first = entry_year - spec.first_year
        national = students["cohort_size"] * spec.scale * (1 + students["cohort_trend"]) ** since_first
        weights = [s.size_weight * (1 + trends[s.shrink_type or "rest"]) ** since_first for s in geography.swvs]
        total = sum(weights)
        cells += [
            (entry_year, s.index, round(national * w / total)) for s, w in zip(geography.swvs, weights, strict=True)
        ]
    return [cell for cell in cells if cell[2] > 0]


def swv_frame(spark: SparkSession, geography: Geography) -> DataFrame:
    return spark.createDataFrame(
        [
            (s.index, s.swv_id, s.name, s.shrink_region, s.shrink_type, s.big_city, s.postcode_lo, s.postcode_hi)
            for s in geography.swvs
        ],
        "swv_index int, swv_id string, name string, shrink_region string, shrink_type string, big_city boolean, "
        "postcode_lo int, postcode_hi int",
    )


def school_frame(spark: SparkSession, geography: Geography) -> DataFrame:
    return spark.createDataFrame(
        [astuple(v) for v in geography.vestigingen],
        "school_id string, kind string, catchment int, slot int, swv_index int, board_id string, postcode int, "
        "rsvo boolean, closed boolean, successor_id string, swv_override string, budget_swv_id string",
    )


def with_background(students: DataFrame, spec: SampleSpec) -> DataFrame:
    """Asylum, origin of both parents and the family's latent SES."""
    conf, seed = spec.conf, spec.seed
    origin, ses = conf["origin"], conf["ses"]
    # Draws that several CASE branches test are materialised once (keeps plans small).
    students = students.withColumns(
        {
            "asylum": uniform(seed, "asylum", "student_id") < by_area(conf["asylum"]["share"], F.lit),
            "u_composition": uniform(seed, "composition", "student_id"),
            "u_group": uniform(seed, "foreign_group", "student_id"),
            "foreign_father_in_mixed": uniform(seed, "foreign_parent", "student_id")
            < origin["mixed_foreign_father_share"],
            "ses_core": normal(seed, "ses", "student_id"),
        }
    )
    u_group = F.col("u_group")
    composition = by_area(
        origin["composition"], lambda mix: categorical(F.col("u_composition"), mix, "origin.composition")
    )
    foreign_group = by_area(origin["foreign_groups"], lambda mix: categorical(u_group, mix, "origin.foreign_groups"))
    asylum_group = categorical(u_group, conf["asylum"]["origin_groups"], "asylum.origin_groups")
    students = students.withColumns(
        {
            "composition": F.when(F.col("asylum"), "both_foreign").otherwise(composition),
            "foreign_group": F.when(F.col("asylum"), asylum_group).otherwise(foreign_group),
        }
    )
    both_foreign, mixed = F.col("composition") == "both_foreign", F.col("composition") == "mixed"
    foreign_father = both_foreign | (mixed & F.col("foreign_father_in_mixed"))
    foreign_mother = both_foreign | (mixed & ~F.col("foreign_father_in_mixed"))
    group_shift = lookup("foreign_group", ses["origin_shift"])
    # A mixed family has one foreign parent: half its group's shift.
    origin_shift = F.when(both_foreign, group_shift).when(mixed, group_shift * 0.5).otherwise(0.0)
    return students.withColumns(
        {
            "father_origin": F.when(foreign_father, F.col("foreign_group")).otherwise("nl"),
            "mother_origin": F.when(foreign_mother, F.col("foreign_group")).otherwise("nl"),
            # CBS derives a child's origin from the foreign parent (the mother's when both are).
            "student_origin": F.when(F.col("composition") == "both_nl", "nl").otherwise(F.col("foreign_group")),
            "ses": F.col("ses_core")
            + F.when(F.col("big_city"), ses["big_city_shift"]).otherwise(0.0)
            + origin_shift
            + F.when(F.col("asylum"), ses["asylum_shift"]).otherwise(0.0),
        }
    ).drop("u_composition", "u_group", "foreign_father_in_mixed")


def with_track(students: DataFrame, spec: SampleSpec) -> DataFrame:
    """Track, programme length, birth year and the teldatum years the student is enrolled.

    The track depends on the unshifted SES only, so its shares stay those of the config.
    """
    conf, seed = spec.conf["students"], spec.seed
    loading = conf["track_ses_correlation"]
    students = students.withColumns(
        {
            "track_latent": F.col("ses_core") * loading
            + normal(seed, "track", "student_id") * math.sqrt(1 - loading**2),
            "u_pro_duration": uniform(seed, "pro_duration", "student_id"),
        }
    )
    pro_duration = categorical(F.col("u_pro_duration"), conf["pro_durations"], "students.pro_durations")
    students = students.withColumn(
        "track", ordered_category(F.col("track_latent"), conf["track_shares"], "students.track_shares")
    ).withColumn(
        "duration", F.when(F.col("track") == "pro", pro_duration).otherwise(lookup("track", conf["durations"]))
    )
    entry, last = F.col("entry_year"), F.col("entry_year") + F.col("duration") - 1
    enrolled = F.array_intersect(F.sequence(entry, last), F.array(*[F.lit(y) for y in spec.years]))
    older = F.when(uniform(seed, "older", "student_id") < conf["older_share"], 1).otherwise(0)
    return (
        students.withColumn("enrolled_years", enrolled)
        .where(F.size("enrolled_years") > 0)
        .withColumns(
            {
                "first_enrolled_year": F.array_min("enrolled_years"),
                "mixed_lower": (F.col("track") != "pro")
                & (uniform(seed, "mixed_lower", "student_id") < conf["mixed_lower_grades_share"]),
                "funded": uniform(seed, "funded", "student_id") < conf["funded_share"],
                "sex": F.when(uniform(seed, "sex", "student_id") < conf["male_share"], "m").otherwise("f"),
                "birth_year": entry - conf["entry_age"] - older,
            }
        )
        .drop("track_latent", "u_pro_duration")
    )


def with_asylum_registration(students: DataFrame, spec: SampleSpec) -> DataFrame:
    """Registration date of asylum students: mostly from the rule's start date to their first
    teldatum, a few before that start and a few after that teldatum, so that the date rule matters."""
    conf, seed = spec.conf["asylum"], spec.seed
    rule_start = date.fromisoformat(conf["rule_start_date"])
    earliest = date(conf["earliest_year"], 1, 1)
    first_teldatum = F.make_date(F.col("first_enrolled_year"), F.lit(10), F.lit(1))
    students = students.withColumns(
        {
            "u_days": uniform(seed, "asylum_date", "student_id"),
            "u_period": uniform(seed, "asylum_period", "student_id"),
        }
    )

    def days(span: Column | int) -> Column:
        return F.floor(F.col("u_days") * span).cast("int")

    since_start = F.greatest(F.datediff(first_teldatum, F.lit(rule_start)) + 1, F.lit(1))
    period = F.col("u_period")
    before_share, after_share = conf["before_start_share"], conf["after_teldatum_share"]
    registration = (
        F.when(period < before_share, F.date_add(F.lit(earliest), days((rule_start - earliest).days)))
        .when(period < before_share + after_share, F.date_add(first_teldatum, days(365) + 1))
        .otherwise(F.date_add(F.lit(rule_start), days(since_start)))
    )
    return students.withColumn("registration_date", F.when(F.col("asylum"), registration)).drop("u_days", "u_period")


def with_parents(students: DataFrame, spec: SampleSpec) -> DataFrame:
    """Parents' ids, register status, birth years and generation; the mother's arrival year."""
    conf, seed = spec.conf, spec.seed
    parents, brp, origin = conf["parents"], conf["brp"], conf["origin"]
    mother_age, gap = parents["mother_age_at_birth"], parents["father_age_gap"]
    father_age = parents["father_age_at_birth"]
    students = students.withColumns(
        {
            "u_brp": uniform(seed, "brp", "student_id"),
            "mother_age_at_birth": clamp(
                F.round(normal(seed, "mother_age", "student_id") * mother_age["sd"] + mother_age["mean"]).cast("int"),
                mother_age["min"],
                mother_age["max"],
            ),
        }
    )
    father_age_at_birth = clamp(
        F.col("mother_age_at_birth")
        + F.round(normal(seed, "father_gap", "student_id") * gap["sd"] + gap["mean"]).cast("int"),
        father_age["min"],
        father_age["max"],
    )
    students = students.withColumn("brp_missing", categorical(F.col("u_brp"), brp["missing"], "brp.missing"))
    missing = F.col("brp_missing")
    students = students.withColumns(
        {
            "student_in_brp": missing != "student",
            "father_in_brp": ~missing.isin("father_only", "both_parents"),
            "mother_in_brp": ~missing.isin("mother_only", "both_parents"),
            "mother_birth_year": F.col("birth_year") - F.col("mother_age_at_birth"),
            "father_birth_year": F.col("birth_year") - father_age_at_birth,
        }
    )

    def parent_id(role: str) -> Column:
        as_null = ~F.col(f"{role}_in_brp") & (uniform(seed, f"{role}_null_id", "student_id") < brp["null_id_share"])
        return F.when(~as_null, opaque_id("P", seed, role, "student_id"))

    def first_generation(role: str) -> Column:
        born_abroad = uniform(seed, f"{role}_first_generation", "student_id") < origin["first_generation_share"]
        return (F.col(f"{role}_origin") != "nl") & (F.col("asylum") | born_abroad)

    # Arrival lies uniformly between the minimum age and the child's first teldatum; asylum
    # mothers arrive in the year of the child's registration.
    earliest_arrival = F.col("mother_birth_year") + origin["first_generation_min_age"]
    arrival_span = F.greatest(F.col("first_enrolled_year") - earliest_arrival + 1, F.lit(1))
    arrival = earliest_arrival + F.floor(uniform(seed, "mother_arrival", "student_id") * arrival_span).cast("int")
    return (
        students.withColumns(
            {
                "father_id": parent_id("father"),
                "mother_id": parent_id("mother"),
                "father_first_generation": first_generation("father"),
                "mother_first_generation": first_generation("mother"),
            }
        )
        .withColumn(
            "mother_arrival_year",
            F.when(F.col("asylum"), F.year("registration_date")).when(F.col("mother_first_generation"), arrival),
        )
        .drop("u_brp", "brp_missing", "mother_age_at_birth")
    )


def with_wsnp(students: DataFrame, spec: SampleSpec) -> DataFrame:
    """A WSNP period for some families (more often at low SES): which parents, start and end."""
    conf, seed = spec.conf["wsnp"], spec.seed
    family_share = by_area(
        conf["family_share"], lambda base: with_logit_shift(base, F.col("ses") * conf["ses_logit_slope"])
    )
    span_start = date(spec.first_year - conf["years_before_first"], 1, 1)
    last_teldatum = date(spec.last_year, 10, 1)
    other_days = conf["other_days"]
    students = students.withColumns(
        {
            "u_wsnp_parents": uniform(seed, "wsnp_parents", "student_id"),
            "in_wsnp": uniform(seed, "wsnp", "student_id") < family_share,
            "wsnp_start": F.date_add(
                F.lit(span_start),
                F.floor(uniform(seed, "wsnp_start", "student_id") * (last_teldatum - span_start).days).cast("int"),
            ),
            "wsnp_days": F.when(
                uniform(seed, "wsnp_standard", "student_id") < conf["standard_share"], conf["standard_days"]
            ).otherwise(
                other_days["min"]
                + F.floor(uniform(seed, "wsnp_days", "student_id") * (other_days["max"] - other_days["min"] + 1)).cast(
                    "int"
                )
            ),
        }
    )
    end = F.date_add("wsnp_start", F.col("wsnp_days"))
    which_parents = categorical(F.col("u_wsnp_parents"), conf["parents"], "wsnp.parents")
    return students.withColumns(
        {
            "wsnp_parents": F.when(F.col("in_wsnp"), which_parents),
            # Still running after the last teldatum: ongoing.
            "wsnp_end": F.when(end <= F.lit(last_teldatum), end),
        }
    ).drop("u_wsnp_parents", "in_wsnp", "wsnp_days")


def with_home(students: DataFrame, spec: SampleSpec, swvs: DataFrame) -> DataFrame:
    """Home postcode: in the student's SWV, or for some in a neighbouring one (which may be a retired postcode)."""
    conf, seed = spec.conf["addresses"], spec.seed
    count = spec.conf["geography"]["regional_swvs"]
    index = F.col("swv_index")
    neighbour = F.when(uniform(seed, "neighbour_side", "student_id") < 0.5, (index + 1) % count).otherwise(
        (index + count - 1) % count
    )
    elsewhere = uniform(seed, "home_elsewhere", "student_id") < conf["other_swv_share"]
    ranges = swvs.select(
        F.col("swv_index").alias("home_swv"),
        F.col("postcode_lo").alias("home_lo"),
        F.col("postcode_hi").alias("home_hi"),
    )
    located = students.withColumn("home_swv", F.when(elsewhere, neighbour).otherwise(index)).join(
        F.broadcast(ranges), "home_swv"
    )
    offset = F.floor(uniform(seed, "home_postcode", "student_id") * (F.col("home_hi") - F.col("home_lo")))
    return located.withColumn("home_postcode", (F.col("home_lo") + offset).cast("int")).drop(
        "home_swv", "home_lo", "home_hi"
    )


def with_school(students: DataFrame, spec: SampleSpec, schools: DataFrame) -> DataFrame:
    """The vestiging: regular students in their SWV, pro students in their district; low slots more often."""
    pro = F.col("track") == "pro"
    slots = F.when(pro, F.col("pro_slots")).otherwise(F.col("regular_slots"))
    skewed = F.pow(uniform(spec.seed, "school", "student_id"), spec.conf["schools"]["size_skew"])
    chosen = students.withColumns(
        {
            "kind": F.when(pro, "pro").otherwise("regular"),
            "catchment": F.when(pro, F.col("pro_district")).otherwise(F.col("swv_index")),
            "slot": F.floor(skewed * slots).cast("int"),
        }
    )
    targets = schools.select("kind", "catchment", "slot", "school_id", "closed", "successor_id")
    return chosen.join(F.broadcast(targets), ["kind", "catchment", "slot"]).drop(
        "kind", "catchment", "slot", "regular_slots", "pro_slots", "pro_district"
    )


def student_frame(
    spark: SparkSession, spec: SampleSpec, geography: Geography, swvs: DataFrame, schools: DataFrame
) -> DataFrame:
    """One row per student (and family) enrolled in at least one of the years."""
    swv_by_index, slots = {s.index: s for s in geography.swvs}, geography.slots()

    def cell_row(entry_year: int, index: int, count: int) -> tuple:
        district = index // geography.pro_district_size
        return (
            entry_year,
            index,
            count,
            swv_by_index[index].big_city,
            slots["regular", index],
            district,
            slots["pro", district],
        )

    cells = spark.createDataFrame(
        [cell_row(*cell) for cell in cohort_cells(spec, geography)],
        "entry_year int, swv_index int, n_students int, big_city boolean, regular_slots int, pro_district int, "
        "pro_slots int",
    )
    students = cells.withColumn("number", F.explode(F.sequence(F.lit(1), F.col("n_students")))).drop("n_students")
    # The cells are spread evenly over the default parallelism, so the exploded students are too.
    students = students.withColumn(
        "student_id", opaque_id("L", spec.seed, "student", "entry_year", "swv_index", "number")
    )
    students = with_track(with_background(students, spec), spec)
    students = with_parents(with_asylum_registration(students, spec), spec)
    return with_school(with_home(with_wsnp(students, spec), spec, swvs), spec, schools)


def parent_frame(students: DataFrame, spec: SampleSpec) -> DataFrame:
    """One row per parent with an id (of a student in BRP): register status, education and income latents."""
    conf, seed = spec.conf, spec.seed
    education, income = conf["education"], conf["income"]

    def role(name: str, sex: str) -> Column:
        arrival = F.col("mother_arrival_year") if name == "mother" else F.lit(None).cast("int")
        return F.struct(
            F.lit(name).alias("role"),
            F.col(f"{name}_id").alias("person_id"),
            F.col(f"{name}_in_brp").alias("in_brp"),
            F.col(f"{name}_birth_year").alias("birth_year"),
            F.lit(sex).alias("sex"),
            F.col(f"{name}_origin").alias("origin_group"),
            F.col(f"{name}_first_generation").alias("first_generation"),
            arrival.alias("arrival_year"),
            F.coalesce(F.col("wsnp_parents").isin(name, "both"), F.lit(False)).alias("in_wsnp"),
        )

    parents = (
        students.where("student_in_brp")
        .select(
            "enrolled_years",
            "ses",
            "asylum",
            "wsnp_start",
            "wsnp_end",
            F.explode(F.array(role("father", "m"), role("mother", "f"))).alias("parent"),
        )
        .select("*", "parent.*")
        .drop("parent")
        .where(F.col("person_id").isNotNull())
    )
    loading = education["ses_loading"]
    decades_younger = (F.col("birth_year") - education["reference_birth_year"]) / 10.0
    unknown = education["unknown"]
    unknown_shift = (
        -decades_younger * unknown["logit_per_decade_older"]
        + F.when(F.col("first_generation"), unknown["logit_first_generation"]).otherwise(0.0)
        + F.when(F.col("asylum"), unknown["logit_asylum"]).otherwise(0.0)
    )
    parents = parents.withColumns(
        {
            "education_latent": F.col("ses") * loading
            + normal(seed, "education", "person_id") * math.sqrt(1 - loading**2)
            + decades_younger * education["per_decade_younger"],
            "education_unknown": uniform(seed, "education_unknown", "person_id")
            < with_logit_shift(unknown["share"], unknown_shift),
            "education_null_row": uniform(seed, "education_null_row", "person_id") < unknown["null_row_share"],
            "income_persistent": normal(seed, "income", "person_id"),
            "income_shift": F.when(F.col("role") == "mother", income["mother_shift"]).otherwise(0.0),
        }
    )
    levels = _in_level_order(education["level_shares"])
    return parents.withColumn(
        "education_level", ordered_category(F.col("education_latent"), levels, "education.level_shares")
    )


def _in_level_order(level_shares: Mapping[str, float]) -> dict[str, float]:
    if set(level_shares) != set(EDUCATION_LEVELS):
        raise ValueError(f"sample_data education.level_shares must name exactly {list(EDUCATION_LEVELS)}")
    return {level: level_shares[level] for level in EDUCATION_LEVELS}


# --- contract tables ---------------------------------------------------------------------


def student_years(students: DataFrame) -> DataFrame:
    return students.withColumn("year", F.explode("enrolled_years")).withColumn(
        "grade", F.col("year") - F.col("entry_year") + 1
    )


def enrolment_table(students: DataFrame, spec: SampleSpec) -> DataFrame:
    mixed_grades = spec.conf["students"]["mixed_lower_grades"]
    moved = (
        F.col("closed") & (F.col("year") > F.lit(spec.closed_until)) if spec.closed_until is not None else F.lit(False)
    )
    return student_years(students).withColumns(
        {
            "programme": F.when(F.col("mixed_lower") & (F.col("grade") <= mixed_grades), "other").otherwise(
                F.col("track")
            ),
            "school_id": F.when(moved, F.col("successor_id")).otherwise(F.col("school_id")),
        }
    )


def persons_table(students: DataFrame, parents: DataFrame, spec: SampleSpec) -> DataFrame:
    null_origin = uniform(spec.seed, "origin_null", "student_id") < spec.conf["origin"]["student_null_share"]
    children = students.where("student_in_brp").select(
        F.col("student_id").alias("person_id"),
        "birth_year",
        "sex",
        F.when(~null_origin, F.col("student_origin")).alias("origin_group"),
    )
    adults = parents.where("in_brp").select("person_id", "birth_year", "sex", "origin_group")
    return children.unionByName(adults)


def parents_table(students: DataFrame) -> DataFrame:
    return students.where("student_in_brp").select(F.col("student_id").alias("child_id"), "father_id", "mother_id")


def parent_years(parents: DataFrame) -> DataFrame:
    """(year, parent in BRP) for the years their child is enrolled: the extract's coverage."""
    return parents.where("in_brp").withColumn("year", F.explode("enrolled_years"))


def education_table(parents: DataFrame, spec: SampleSpec) -> DataFrame:
    """Known levels as category codes, except a share of some categories written with the
    register's own code that the models' mapping recodes (praktijkonderwijs)."""
    rows = parent_years(parents).where(~F.col("education_unknown") | F.col("education_null_row"))
    level = F.col("education_level")
    for code, rule in spec.conf["education"]["register_codes"].items():
        drawn = uniform(spec.seed, f"register_code_{code}", "person_id") < rule["share"]
        level = F.when((F.col("education_level") == rule["counts_as"]) & drawn, F.lit(code)).otherwise(level)
    return rows.withColumn("education_level", F.when(~F.col("education_unknown"), level))


def income_table(parents: DataFrame, spec: SampleSpec) -> DataFrame:
    conf, seed = spec.conf["income"], spec.seed
    correlation, yearly = conf["education_correlation"], conf["yearly_noise_share"]
    yearly_noise = normal(seed, "income_year", "person_id", "year")
    noise = F.col("income_persistent") * math.sqrt(1 - yearly) + yearly_noise * math.sqrt(yearly)
    latent = F.col("education_latent") * correlation + noise * math.sqrt(1 - correlation**2) + F.col("income_shift")
    percentile = clamp(F.ceil(normal_cdf(latent) * 100).cast("int"), 1, 100)
    is_null = uniform(seed, "income_null", "person_id", "year") < conf["null_share"]
    return parent_years(parents).withColumn("income_percentile", F.when(~is_null, percentile))


def residence_table(parents: DataFrame, spec: SampleSpec) -> DataFrame:
    conf = spec.conf["residence"]
    without_row = uniform(spec.seed, "residence_missing", "person_id") < conf["missing_row_share"]
    mothers = parent_years(parents).where((F.col("role") == "mother") & ~without_row)
    years_here = F.greatest(F.col("year") - F.col("arrival_year"), F.lit(0))
    bounds = conf["class_upper_years"]
    duration_class = (
        F.when(F.col("arrival_year").isNull(), "10_plus")
        .when(years_here <= bounds["0_5"], "0_5")
        .when(years_here <= bounds["5_10"], "5_10")
        .otherwise("10_plus")
    )
    return mothers.withColumn("duration_class", duration_class)


def wsnp_table(parents: DataFrame) -> DataFrame:
    return parents.where("in_wsnp").select(
        "person_id", F.col("wsnp_start").alias("start_date"), F.col("wsnp_end").alias("end_date")
    )


def asylum_table(students: DataFrame) -> DataFrame:
    return students.where("asylum").select(F.col("student_id").alias("person_id"), "registration_date")


def addresses_table(students: DataFrame, spec: SampleSpec) -> DataFrame:
    is_null = uniform(spec.seed, "address_null", "student_id", "year") < spec.conf["addresses"]["null_share"]
    return (
        student_years(students.where("student_in_brp"))
        .withColumn("postcode", F.when(~is_null, F.col("home_postcode").cast("string")))
        .withColumnRenamed("student_id", "person_id")
    )


def schools_table(spark: SparkSession, schools: DataFrame, spec: SampleSpec) -> DataFrame:
    years = spark.createDataFrame([(y,) for y in spec.years], "year int")
    rows = schools.crossJoin(F.broadcast(years))
    if spec.closed_until is not None:
        rows = rows.where(~(F.col("closed") & (F.col("year") > spec.closed_until)))
    return rows.withColumn("postcode", F.col("postcode").cast("string"))


def region_table(spark: SparkSession, geography: Geography) -> DataFrame:
    return spark.createDataFrame(
        [(str(postcode), swv_id) for postcode, swv_id in sorted(geography.region.items())],
        "postcode string, swv_id string",
    )


def swv_table(spark: SparkSession, swvs: DataFrame, spec: SampleSpec) -> DataFrame:
    geo = spec.conf["geography"]
    rsvo = spark.createDataFrame(
        [(geo["rsvo_swv_id"], geo["rsvo_name"], None, None)],
        "swv_id string, name string, shrink_region string, shrink_type string",
    )
    return swvs.select("swv_id", "name", "shrink_region", "shrink_type").unionByName(rsvo)


def lwoo_budget(spec: SampleSpec, year: int) -> float | None:
    """National lwoo budget (EUR) of a teldatum year in the data; None for other years."""
    conf = spec.conf["budgets"]
    if year not in spec.years:
        return None
    return conf["lwoo_budget"] * spec.scale * (1 + conf["yearly_growth"]) ** (year - spec.first_year)


def pro_budget(spec: SampleSpec, funding_year: int) -> float | None:
    """National pro budget (EUR) of a funding year, whose teldatum is `lag` years earlier; None without data."""
    conf = spec.conf["budgets"]
    lag = conf["pro_funding_lag_years"]
    if funding_year - lag not in spec.years:
        return None
    return (
        conf["pro_onderwijskansen_budget"]
        * spec.scale
        * (1 + conf["yearly_growth"]) ** (funding_year - lag - spec.first_year)
    )


def cents(amount: float | None) -> Decimal | None:
    return None if amount is None else Decimal(amount).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def budgets_table(spark: SparkSession, spec: SampleSpec) -> DataFrame:
    lag = spec.conf["budgets"]["pro_funding_lag_years"]
    rows = [
        (year, cents(lwoo_budget(spec, year)), cents(pro_budget(spec, year)))
        for year in range(spec.first_year, spec.last_year + lag + 1)
    ]
    return spark.createDataFrame(rows, "year int, lwoo_budget decimal(18,2), pro_onderwijskansen_budget decimal(18,2)")


def swv_budgets_table(
    spark: SparkSession, enrolment: DataFrame, schools: DataFrame, spec: SampleSpec, geography: Geography
) -> DataFrame:
    """Current budgets per (year, SWV): fixed parts per funded (pro) student, and the current lwoo
    budget split roughly pro rata vmbo grade 3-4 students (a noisy distribution key fixed per SWV)."""
    conf, seed = spec.conf["budgets"], spec.seed
    funded = F.col("funded")
    vmbo_upper = F.col("programme").isin("vmbo_bk", "vmbo_gt") & F.col("grade").between(3, 4)
    paid_swv = schools.select("school_id", F.col("budget_swv_id").alias("swv_id"))
    counted = (
        enrolment.join(F.broadcast(paid_swv), "school_id")
        .groupBy("year", "swv_id")
        .agg(
            F.count_if(funded).alias("students"),
            F.count_if(funded & (F.col("programme") == "pro")).alias("pro_students"),
            F.count_if(funded & vmbo_upper).alias("vmbo_upper_students"),
        )
        .collect()
    )
    counts = {(row["year"], row["swv_id"]): row.asDict() for row in counted}
    swv_ids = [s.swv_id for s in geography.swvs] + [spec.conf["geography"]["rsvo_swv_id"]]

    def noise(attribute: str, swv_id: str, sd: float) -> float:
        return math.exp(NormalDist().inv_cdf(dimension_draw(seed, attribute, swv_id)) * sd)

    def amount(year: int, swv_id: str, students: str, per_student: float, attribute: str) -> float:
        count = counts.get((year, swv_id), {}).get(students, 0)
        return count * per_student * noise(attribute, swv_id, conf["fixed_budget_noise"])

    rows = []
    for year in spec.years:
        lwoo_weight = {
            swv_id: counts.get((year, swv_id), {}).get("vmbo_upper_students", 0)
            * noise("current_lwoo", swv_id, conf["current_lwoo_noise"])
            for swv_id in swv_ids
        }
        total_weight = sum(lwoo_weight.values())
        rows += [
            (
                year,
                swv_id,
                cents(amount(year, swv_id, "students", conf["regional_support_per_student"], "regional_support")),
                cents(amount(year, swv_id, "pro_students", conf["pro_budget_per_pro_student"], "pro_budget")),
                cents(lwoo_budget(spec, year) * lwoo_weight[swv_id] / total_weight),
            )
            for swv_id in swv_ids
        ]
    return spark.createDataFrame(
        rows,
        "year int, swv_id string, regional_support decimal(18,2), pro_budget decimal(18,2), "
        "current_lwoo_budget decimal(18,2)",
    )


# --- entry points ------------------------------------------------------------------------


def _conformed(build: Callable[[], DataFrame], table: str) -> DataFrame:
    return conform(build(), table)


def sample_tables(spark: SparkSession, spec: SampleSpec) -> dict[str, Callable[[], DataFrame]]:
    """A builder per contract table: call it for the table's frame, conformed to the contract.

    The student and parent frames all tables derive from are computed here, once, and kept as
    local checkpoints (memory, spilling to disk): the tables' plans then start from stored rows
    instead of the long chain of draws, which makes small runs several times faster. Like a
    cache, checkpointed rows live on the executors for the rest of the session.
    """
    geography = plan_geography(spec)
    swvs, schools = swv_frame(spark, geography), school_frame(spark, geography)
    with stage("sample-data families") as counts:
        students = materialize(student_frame(spark, spec, geography, swvs, schools))
        parents = materialize(parent_frame(students, spec))
        counts["students"], counts["parents"] = students.count(), parents.count()
    enrolment = enrolment_table(students, spec)
    builders = {
        "enrolment": lambda: enrolment,
        "persons": lambda: persons_table(students, parents, spec),
        "parents": lambda: parents_table(students),
        "education": lambda: education_table(parents, spec),
        "income": lambda: income_table(parents, spec),
        "residence_duration": lambda: residence_table(parents, spec),
        "wsnp": lambda: wsnp_table(parents),
        "asylum": lambda: asylum_table(students),
        "addresses": lambda: addresses_table(students, spec),
        "schools": lambda: schools_table(spark, schools, spec),
        "swv_postcodes": lambda: region_table(spark, geography),
        "swv": lambda: swv_table(spark, swvs, spec),
        "budgets": lambda: budgets_table(spark, spec),
        # Collects its per-SWV counts to the driver, so it runs only when asked for.
        "swv_budgets": lambda: swv_budgets_table(spark, enrolment, schools, spec, geography),
    }
    return {name: partial(_conformed, build, name) for name, build in builders.items()}


def generate(
    spark: SparkSession, config: Config, output: str | Path, scale: float, seed: int, years: list[int] | tuple[int, ...]
) -> dict[str, int]:
    """Write every contract table as Parquet under `output` (one folder each); returns row counts."""
    spec = SampleSpec.from_config(config, scale, seed, years)
    root = Path(output)
    written: dict[str, int] = {}
    for name, build in sample_tables(spark, spec).items():
        with stage(f"sample-data {name}") as counts:
            # Rows are counted while they are written, not by a second pass.
            written_rows = Observation(name)
            build().observe(written_rows, F.count(F.lit(1)).alias("rows")).write.mode("overwrite").parquet(
                str(root / name)
            )
            counts["rows"] = written[name] = written_rows.get["rows"]
    return written
