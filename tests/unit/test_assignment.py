import pytest

from helpers import physical_plan
from onderwijsscore.assignment import assign_swv
from onderwijsscore.runtime import literal_frame

SCHOOLS = "year int, school_id string, board_id string, postcode string, rsvo boolean, swv_override string"
STUDENTS = "year int, model string, student_id string, school_id string"
ADDRESSES = "year int, person_id string, postcode string"
REGION = [("1000", "SWV1"), ("2000", "SWV2"), ("3000", "SWV3")]


@pytest.fixture(scope="module")
def rules(settings):
    return settings.assignment


def schools(spark, *rows):
    return literal_frame(
        spark, [(2020, school, "B1", postcode, rsvo, override) for school, postcode, rsvo, override in rows], SCHOOLS
    )


def assigned(spark, rules, school_rows, enrolled, homes):
    students = literal_frame(spark, [(2020, "lwoo", student, school) for student, school in enrolled], STUDENTS)
    addresses = literal_frame(spark, homes, ADDRESSES)
    region = literal_frame(spark, REGION, "postcode string, swv_id string")
    return assign_swv(students, schools(spark, *school_rows), addresses, region, rules)


def test_each_assignment_rule(spark, rules):
    school_rows = [
        ("rsvo", "1000", True, "SWV3"),  # RSVO wins over the override and the postcode
        ("closed", "9999", False, "SWV3"),  # not in the region table: the manual SWV
        ("override", "2000", False, "SWV3"),  # the override replaces the postcode lookup
        ("plain", "1000", False, None),  # the SWV of the vestiging's postcode
    ]
    enrolled = [
        ("rsvo_student", "rsvo"),
        ("lives_elsewhere", "plain"),
        ("null_postcode", "plain"),
        ("no_address", "plain"),
        ("unknown_postcode", "plain"),
        ("closed_student", "closed"),
        ("override_student", "override"),
    ]
    homes = [
        (2020, "rsvo_student", "2000"),
        (2020, "lives_elsewhere", "2000"),
        (2020, "null_postcode", None),
        (2019, "no_address", "2000"),  # another teldatum's address does not count
        (2020, "unknown_postcode", "5555"),
        (2020, "closed_student", "1000"),
        (2020, "override_student", "3000"),
    ]
    frame = assigned(spark, rules, school_rows, enrolled, homes)
    got = {r.student_id: (r.swv_school, r.swv_residence) for r in frame.collect()}
    assert got == {
        "rsvo_student": ("VO0001", "VO0001"),
        "lives_elsewhere": ("SWV1", "SWV2"),
        "null_postcode": ("SWV1", "SWV1"),
        "no_address": ("SWV1", "SWV1"),
        "unknown_postcode": ("SWV1", "SWV1"),
        "closed_student": ("SWV3", "SWV1"),
        "override_student": ("SWV3", "SWV3"),
    }
    assert frame.columns == ["year", "model", "student_id", "school_id", "swv_school", "swv_residence"]
    plan = physical_plan(frame)
    assert "BroadcastHashJoin" in plan and "BatchEvalPython" not in plan and "ArrowEvalPython" not in plan
