"""Which SWV a student counts for, under each assignment principle (domain.md §5).

- `swv_school` (per year and vestiging): RSVO vestigingen go to the RSVO SWV, which wins
  over everything; else the manual `swv_override`; else the SWV of the vestiging's postcode.
- `swv_residence` (per student): RSVO vestigingen go to the RSVO SWV; else the SWV of the
  home postcode; else, when the postcode is null, absent or not in the region table,
  the student's `swv_school`.

A population student whose vestiging has no SWV stops the run: dropping them would drop
their money silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class AssignmentRules:
    rsvo_swv_id: str

    @classmethod
    def from_yaml(cls, raw: dict) -> AssignmentRules:
        """conf/budgets.yaml `swv_assignment`."""
        return cls(raw["rsvo_swv_id"])


def vestiging_swv(schools: DataFrame, swv_postcodes: DataFrame, rules: AssignmentRules) -> DataFrame:
    """Per (year, school_id): `rsvo` and `swv_school` (null when undeterminable)."""
    region = swv_postcodes.select("postcode", F.col("swv_id").alias("postcode_swv"))
    return schools.join(F.broadcast(region), "postcode", "left").select(
        "year",
        "school_id",
        "rsvo",
        F.when(F.col("rsvo"), F.lit(rules.rsvo_swv_id))
        .otherwise(F.coalesce("swv_override", "postcode_swv"))
        .alias("swv_school"),
    )


def assign_swv(
    students: DataFrame,
    schools: DataFrame,
    addresses: DataFrame,
    swv_postcodes: DataFrame,
    rules: AssignmentRules,
) -> DataFrame:
    """The student frame plus `swv_school` and `swv_residence`. A vestiging whose SWV
    `vestiging_swv` cannot determine stops the run at the input gates (`quality`)."""
    vestigingen = vestiging_swv(schools, swv_postcodes, rules)
    homes = addresses.select("year", F.col("person_id").alias("student_id"), F.col("postcode").alias("home_postcode"))
    home_region = swv_postcodes.select(F.col("postcode").alias("home_postcode"), F.col("swv_id").alias("home_swv"))
    swv_school = F.col("swv_school")
    return (
        students.join(F.broadcast(vestigingen), ["year", "school_id"], "left")
        # The students are hashed and the (larger) address register streamed past them.
        .hint("shuffle_hash")
        .join(homes, ["year", "student_id"], "left")
        .join(F.broadcast(home_region), "home_postcode", "left")
        .withColumn("swv_residence", F.when(F.col("rsvo"), swv_school).otherwise(F.coalesce("home_swv", swv_school)))
        .select(*students.columns, "swv_school", "swv_residence")
    )
