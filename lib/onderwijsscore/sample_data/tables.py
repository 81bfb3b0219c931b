"""The contract tables built from the students and families, and the entry points:
`sample_tables` (every table as a lazy frame) and `generate` (written as Parquet)."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from pathlib import Path
from statistics import NormalDist

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from onderwijsscore.config import Config
from onderwijsscore.runtime import literal_frame, materialize, stage
from onderwijsscore.sample_data.draws import clamp, conform, normal, normal_cdf, uniform
from onderwijsscore.sample_data.families import parent_frame, student_frame
from onderwijsscore.sample_data.geography import Geography, dimension_draw, plan_geography, school_frame, swv_frame
from onderwijsscore.sample_data.spec import SampleSpec


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
    years = literal_frame(spark, [(y,) for y in spec.years], "year int")
    rows = schools.crossJoin(F.broadcast(years))
    if spec.closed_until is not None:
        rows = rows.where(~(F.col("closed") & (F.col("year") > spec.closed_until)))
    return rows.withColumn("postcode", F.col("postcode").cast("string"))


def region_table(spark: SparkSession, geography: Geography) -> DataFrame:
    return literal_frame(
        spark,
        [(str(postcode), swv_id) for postcode, swv_id in sorted(geography.region.items())],
        "postcode string, swv_id string",
    )


def swv_table(spark: SparkSession, swvs: DataFrame, spec: SampleSpec) -> DataFrame:
    geo = spec.conf["geography"]
    rsvo = literal_frame(
        spark,
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
    return literal_frame(spark, rows, "year int, lwoo_budget decimal(18,2), pro_onderwijskansen_budget decimal(18,2)")


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
    return literal_frame(
        spark,
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
