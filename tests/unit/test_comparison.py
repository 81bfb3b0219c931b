"""compare_outputs: two output roots are equal only when every table has the same rows."""

from decimal import Decimal

from onderwijsscore.comparison import compare_outputs
from onderwijsscore.delta_io import append
from onderwijsscore.runtime import literal_frame


def _write(spark, root, table, rows):
    frame = literal_frame(spark, rows, "year int, swv_id string, amount decimal(14,2), run_id string")
    append(frame, root / table, "test")


def _roots(spark, tmp_path, right_amount):
    left, right = tmp_path / "left", tmp_path / "right"
    rows = [(2020, "SWV01", Decimal("100.00"), "run-a"), (2020, "SWV02", Decimal("250.10"), "run-a")]
    _write(spark, left, "export/budgets", rows)
    # Another run id, and one amount possibly a cent off.
    _write(
        spark,
        right,
        "export/budgets",
        [(2020, "SWV01", Decimal("100.00"), "run-b"), (2020, "SWV02", right_amount, "run-b")],
    )
    return left, right


def test_same_rows_under_other_run_ids_are_equal(spark, tmp_path):
    left, right = _roots(spark, tmp_path, Decimal("250.10"))
    [result] = compare_outputs(spark, left, right)
    assert result.table == "export/budgets" and result.rows == (2, 2) and result.equal


def test_a_cent_makes_a_difference_unless_the_column_is_ignored(spark, tmp_path):
    left, right = _roots(spark, tmp_path, Decimal("250.11"))
    [different] = compare_outputs(spark, left, right)
    assert not different.equal and (different.only_left, different.only_right) == (1, 1)
    [ignored] = compare_outputs(spark, left, right, {"export/budgets": ("amount",)})
    assert ignored.equal and ignored.ignored == ("amount",)


def test_a_table_on_one_side_only_is_not_equal(spark, tmp_path):
    left, right = _roots(spark, tmp_path, Decimal("250.10"))
    _write(spark, left, "export/regional", [(2020, "SWV01", Decimal("1.00"), "run-a")])
    results = {result.table: result for result in compare_outputs(spark, left, right)}
    assert results["export/budgets"].equal
    assert results["export/regional"].rows == (1, None) and not results["export/regional"].equal
