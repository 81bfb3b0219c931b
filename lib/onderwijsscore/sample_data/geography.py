"""Geography: SWVs, postcode regions and vestigingen (small: planned on the driver)."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import astuple, dataclass
from itertools import accumulate
from statistics import NormalDist
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from onderwijsscore.runtime import literal_frame
from onderwijsscore.sample_data.spec import SampleSpec

FIRST_POSTCODE, POSTCODE_COUNT = 1000, 9000  # 4-digit postcodes 1000-9999


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
    return literal_frame(
        spark,
        [
            (s.index, s.swv_id, s.name, s.shrink_region, s.shrink_type, s.big_city, s.postcode_lo, s.postcode_hi)
            for s in geography.swvs
        ],
        "swv_index int, swv_id string, name string, shrink_region string, shrink_type string, big_city boolean, "
        "postcode_lo int, postcode_hi int",
    )


def school_frame(spark: SparkSession, geography: Geography) -> DataFrame:
    return literal_frame(
        spark,
        [astuple(v) for v in geography.vestigingen],
        "school_id string, kind string, catchment int, slot int, swv_index int, board_id string, postcode int, "
        "rsvo boolean, closed boolean, successor_id string, swv_override string, budget_swv_id string",
    )
