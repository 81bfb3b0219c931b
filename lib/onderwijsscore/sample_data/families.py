"""Students and their families: background, track, asylum registration, parents,
WSNP, home and school."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from onderwijsscore.runtime import literal_frame
from onderwijsscore.sample_data.draws import (
    by_area,
    categorical,
    clamp,
    lookup,
    normal,
    opaque_id,
    ordered_category,
    uniform,
    with_logit_shift,
)
from onderwijsscore.sample_data.geography import Geography, cohort_cells
from onderwijsscore.sample_data.spec import SampleSpec
from onderwijsscore.vocabulary import EDUCATION_LEVELS


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

    cells = literal_frame(
        spark,
        [cell_row(*cell) for cell in cohort_cells(spec, geography)],
        "entry_year int, swv_index int, n_students int, big_city boolean, regular_slots int, pro_district int, "
        "pro_slots int",
    )
    # The cells are spread evenly over the default parallelism, so the exploded students are too.
    cells = cells.repartition(spark.sparkContext.defaultParallelism)
    students = cells.withColumn("number", F.explode(F.sequence(F.lit(1), F.col("n_students")))).drop("n_students")
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
