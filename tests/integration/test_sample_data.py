"""The sample-data generator: contract, determinism, realism targets and the planted relation.

One generation at SCALE 0.01 (about 9.5k students a year) serves the module. The share
targets are the report's (vmbo grades 3-4, the lwoo population); tolerances allow for
sampling noise at this scale.
"""

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from helpers import SAMPLE_SCALE as SCALE
from helpers import SAMPLE_SEED as SEED
from helpers import SAMPLE_YEARS as YEARS
from helpers import assert_same_rows
from onderwijsscore.contract import CONTRACT, read_inputs
from onderwijsscore.models import mapped_register_codes
from onderwijsscore.sample_data.draws import opaque_id, uniform
from onderwijsscore.sample_data.geography import plan_geography, plan_swvs
from onderwijsscore.sample_data.spec import SampleSpec
from onderwijsscore.sample_data.tables import sample_tables
from onderwijsscore.vocabulary import EDUCATION_LEVELS


@pytest.fixture(scope="module")
def generated(sample_generation):
    """(output folder, row counts written per table): the suite's shared sample input."""
    return sample_generation


@pytest.fixture(scope="module")
def models(settings):
    return [settings.models[name] for name in ("lwoo", "pro")]


@pytest.fixture(scope="module")
def inputs(spark, generated, models):
    return read_inputs(spark, generated[0], mapped_codes=mapped_register_codes(models))


def student_profile(inputs) -> DataFrame:
    """One row per (year, student) with the flags the report's shares count."""
    persons = inputs["persons"]
    in_brp = persons.select("person_id", F.lit(True).alias("in_brp"), "origin_group")
    edu = inputs["education"].where(F.col("education_level").isNotNull())
    edu = edu.select("year", "person_id", F.lit(True).alias("known"))
    teldatum = F.make_date(F.col("year"), F.lit(10), F.lit(1))
    wsnp_years = (
        inputs["wsnp"]
        .crossJoin(inputs["enrolment"].select("year").distinct())
        .where(
            (F.col("start_date") <= teldatum)
            & (F.coalesce("end_date", F.lit("9999-12-31").cast("date")) >= F.add_months(teldatum, -12))
        )
        .select("year", "person_id", F.lit(True).alias("wsnp"))
        .distinct()
    )

    def parent(role: str, frame: DataFrame) -> DataFrame:
        key = F.col(f"{role}_id")
        frame = frame.join(
            in_brp.withColumnsRenamed(
                {"person_id": f"{role}_id", "in_brp": f"{role}_in_brp", "origin_group": f"{role}_origin"}
            ),
            f"{role}_id",
            "left",
        )
        frame = frame.join(
            edu.withColumnsRenamed({"person_id": f"{role}_id", "known": f"{role}_known"}),
            ["year", f"{role}_id"],
            "left",
        )
        frame = frame.join(
            wsnp_years.withColumnsRenamed({"person_id": f"{role}_id", "wsnp": f"{role}_wsnp"}),
            ["year", f"{role}_id"],
            "left",
        )
        present = F.coalesce(f"{role}_in_brp", F.lit(False)) & key.isNotNull()
        return frame.withColumns(
            {
                f"{role}_present": present,
                f"{role}_unknown_edu": present & F.col(f"{role}_known").isNull(),
                f"{role}_dutch": present & (F.col(f"{role}_origin") == "nl"),
            }
        )

    frame = (
        inputs["enrolment"]
        .join(in_brp.withColumnRenamed("person_id", "student_id").drop("origin_group"), "student_id", "left")
        .join(inputs["parents"].withColumnRenamed("child_id", "student_id"), "student_id", "left")
        .join(inputs["asylum"].withColumnRenamed("person_id", "student_id"), "student_id", "left")
    )
    frame = parent("mother", parent("father", frame))
    student_present = F.coalesce("in_brp", F.lit(False))
    return frame.select(
        "year",
        "student_id",
        "school_id",
        "programme",
        "grade",
        "funded",
        (F.col("programme").isin("vmbo_bk", "vmbo_gt") & F.col("grade").between(3, 4)).alias("vmbo_upper"),
        (~student_present | ~F.col("father_present") | ~F.col("mother_present")).alias("not_in_brp"),
        (student_present & ~F.col("father_present") & F.col("mother_present")).alias("father_only_missing"),
        (F.col("father_unknown_edu") | F.col("mother_unknown_edu")).alias("unknown_education"),
        F.col("registration_date").isNotNull().alias("asylum"),
        (F.coalesce("father_wsnp", F.lit(False)) | F.coalesce("mother_wsnp", F.lit(False))).alias("wsnp"),
        (F.col("father_dutch") | F.col("mother_dutch")).alias("dutch_parent"),
    )


def shares(profile: DataFrame) -> dict[str, float]:
    flags = ["not_in_brp", "unknown_education", "asylum", "wsnp", "dutch_parent", "funded"]
    row = profile.agg(
        *[F.avg(F.col(flag).cast("double")).alias(flag) for flag in flags],
        (F.count_if("father_only_missing") / F.count_if("not_in_brp")).alias("father_only_of_not_in_brp"),
    ).first()
    return row.asDict()


@pytest.fixture(scope="module")
def profile(inputs):
    return student_profile(inputs).persist()


def test_every_table_meets_the_contract(generated, inputs):
    # read_inputs raised no ContractError; every table was written and its count logged.
    assert set(generated[1]) == set(CONTRACT)
    assert generated[1]["enrolment"] == inputs["enrolment"].count()


def test_sizes_per_year(inputs):
    enrolment = inputs["enrolment"]
    per_year = {
        r["year"]: r
        for r in enrolment.groupBy("year")
        .agg(
            F.count(F.lit(1)).alias("students"),
            F.count_if(F.col("programme").isin("vmbo_bk", "vmbo_gt") & F.col("grade").between(3, 4)).alias(
                "vmbo_upper"
            ),
            F.count_if(F.col("programme") == "pro").alias("pro"),
        )
        .collect()
    }
    assert sorted(per_year) == list(YEARS)
    for row in per_year.values():
        assert row["students"] == pytest.approx(950_000 * SCALE, rel=0.05)
        assert row["vmbo_upper"] == pytest.approx(200_000 * SCALE, rel=0.08)
        assert row["pro"] == pytest.approx(29_000 * SCALE, rel=0.25)


def test_students_move_through_grades(inputs):
    enrolment = inputs["enrolment"].select("year", "student_id", "grade")
    next_year = enrolment.select((F.col("year") - 1).alias("year"), "student_id", F.col("grade").alias("next_grade"))
    followed = enrolment.join(next_year, ["year", "student_id"], "left")
    # Every track lasts at least 4 years: grades 1-3 always continue, one grade up.
    continuing = followed.where((F.col("year") < YEARS[-1]) & (F.col("grade") < 4))
    assert continuing.count() > 0
    assert continuing.where(F.col("next_grade").isNull()).count() == 0
    assert followed.where(F.col("next_grade") != F.col("grade") + 1).count() == 0
    entering = {row["year"] for row in enrolment.where("grade = 1").select("year").distinct().collect()}
    assert entering == set(YEARS)  # a new cohort every year


def test_report_shares_in_the_lwoo_population(profile):
    realised = shares(profile.where("vmbo_upper"))
    assert realised["unknown_education"] == pytest.approx(0.58, abs=0.05)
    assert realised["not_in_brp"] == pytest.approx(0.06, abs=0.015)
    assert realised["father_only_of_not_in_brp"] == pytest.approx(0.75, abs=0.1)
    assert realised["asylum"] == pytest.approx(0.02, abs=0.008)
    assert realised["wsnp"] == pytest.approx(0.012, abs=0.006)
    assert realised["dutch_parent"] == pytest.approx(0.66, abs=0.05)
    assert realised["funded"] == pytest.approx(0.98, abs=0.01)


def test_big_cities_concentrate_risk(spark, config, inputs, profile):
    big_cities = [s.swv_id for s in plan_swvs(SampleSpec.from_config(config, SCALE, SEED, YEARS)) if s.big_city]
    located = inputs["schools"].join(inputs["swv_postcodes"], "postcode", "left")
    school_swv = located.select("year", "school_id", F.coalesce("swv_override", "swv_id").alias("swv_id"))
    by_area = (
        profile.join(school_swv, ["year", "school_id"])
        .withColumn("big_city", F.col("swv_id").isin(*big_cities))
        .groupBy("big_city")
        .agg(*[F.avg(F.col(flag).cast("double")).alias(flag) for flag in ("dutch_parent", "asylum", "wsnp")])
    )
    big, rest = sorted(by_area.collect(), key=lambda row: not row["big_city"])
    assert big["dutch_parent"] < rest["dutch_parent"] - 0.15
    assert big["asylum"] > 1.5 * rest["asylum"]
    assert big["wsnp"] > 1.5 * rest["wsnp"]


def test_geography(inputs):
    swv, regions, schools = inputs["swv"], inputs["swv_postcodes"], inputs["schools"]
    assert swv.count() == 75
    assert regions.join(swv.where("swv_id = 'VO0001'"), "swv_id").count() == 0
    assert regions.select("swv_id").distinct().count() == 74
    assert swv.where(F.col("shrink_type").isNotNull()).count() > 5
    unmapped = schools.join(regions, "postcode", "left_anti")
    assert unmapped.count() > 0 and unmapped.where(F.col("swv_override").isNull()).count() == 0
    assert schools.where("rsvo").select("school_id").distinct().count() >= 2
    enrolled = inputs["enrolment"].select("year", "school_id").distinct()
    assert enrolled.join(schools, ["year", "school_id"], "left_anti").count() == 0
    homes = inputs["addresses"].where(F.col("postcode").isNotNull())
    assert 0 < homes.join(regions, "postcode", "left_anti").count() < 0.02 * homes.count()


def test_budgets(inputs):
    budgets = {row["year"]: row for row in inputs["budgets"].collect()}
    assert sorted(budgets) == list(range(YEARS[0], YEARS[-1] + 3))
    assert [y for y, row in budgets.items() if row["lwoo_budget"] is not None] == list(YEARS)
    assert [y for y, row in budgets.items() if row["pro_onderwijskansen_budget"] is not None] == [y + 2 for y in YEARS]
    assert float(budgets[YEARS[0]]["lwoo_budget"]) == pytest.approx(600e6 * SCALE, rel=0.01)
    current = inputs["swv_budgets"].groupBy("year").agg(F.sum("current_lwoo_budget").alias("total")).collect()
    for row in current:
        assert float(row["total"]) == pytest.approx(float(budgets[row["year"]]["lwoo_budget"]), abs=1.0)


def test_register_codes_are_written_for_the_mapping_to_recode(inputs, models):
    counts = dict(inputs["education"].groupBy("education_level").count().collect())
    recoded = models[0].education_mapping
    assert set(counts) - {None} - set(EDUCATION_LEVELS) == set(recoded)  # praktijkonderwijs
    for code, category in recoded.items():
        assert 0.1 < counts[code] / (counts[code] + counts[category]) < 0.3  # conf: 0.2 of vmbo_bk_mbo1


def test_education_relates_to_income_and_partner(inputs, models):
    levels = F.array(*[F.lit(level) for level in EDUCATION_LEVELS])
    recoded = F.create_map(*[F.lit(code) for pair in models[0].education_mapping.items() for code in pair])
    level = F.coalesce(recoded[F.col("education_level")], F.col("education_level"))
    education = (
        inputs["education"]
        .where(F.col("education_level").isNotNull())
        .withColumn("level_index", F.array_position(levels, level).cast("double"))
    )
    with_income = education.join(inputs["income"].where(F.col("income_percentile").isNotNull()), ["year", "person_id"])
    assert with_income.stat.corr("level_index", "income_percentile") > 0.35
    # Even the crudest model, the modal level per income decile, beats the majority class.
    cells = (
        with_income.groupBy(F.ceil(F.col("income_percentile") / 10).alias("decile"), "education_level")
        .count()
        .collect()
    )
    per_level: dict[str, int] = {}
    best_per_decile: dict[int, int] = {}
    for row in cells:
        per_level[row["education_level"]] = per_level.get(row["education_level"], 0) + row["count"]
        best_per_decile[row["decile"]] = max(best_per_decile.get(row["decile"], 0), row["count"])
    assert sum(best_per_decile.values()) > 1.2 * max(per_level.values())

    parents = inputs["parents"].where(F.col("father_id").isNotNull() & F.col("mother_id").isNotNull())
    fathers = education.select("year", F.col("person_id").alias("father_id"), F.col("level_index").alias("father"))
    mothers = education.select("year", F.col("person_id").alias("mother_id"), F.col("level_index").alias("mother"))
    couples = parents.join(fathers, "father_id").join(mothers, ["year", "mother_id"])
    assert couples.stat.corr("father", "mother") > 0.3


def test_same_seed_same_data(spark, config, inputs):
    again = sample_tables(spark, SampleSpec.from_config(config, SCALE, SEED, YEARS))
    for name in ("enrolment", "income"):
        assert_same_rows(again[name](), inputs[name])


def test_other_seed_other_data(spark, config):
    # Every row-level draw and id goes through `uniform`/`opaque_id`, every dimension draw
    # through `plan_geography`: the seed changes both.
    def schools(seed: int) -> list[str]:
        return [v.school_id for v in plan_geography(SampleSpec.from_config(config, SCALE, seed, YEARS)).vestigingen]

    def draws(seed: int) -> list:
        ids = spark.range(100).select(uniform(seed, "x", "id").alias("u"), opaque_id("P", seed, "x", "id").alias("i"))
        return ids.orderBy("i").collect()

    assert schools(SEED) == schools(SEED)
    assert set(schools(SEED)).isdisjoint(schools(SEED + 1))
    assert draws(SEED) == draws(SEED)
    assert not {row["i"] for row in draws(SEED)} & {row["i"] for row in draws(SEED + 1)}
