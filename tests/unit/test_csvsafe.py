"""Formula-injection protection for CSV cells, and its inverse for display."""

import pytest

from marketing.csvsafe import safe_cell, unsafe_cell


@pytest.mark.parametrize("value", ["=1+1", "+44 20", "-3", "@SUM(A1)", "\tx", "\rx", "\nx"])
def test_formula_starts_are_neutralised_and_restored_for_display(value):
    assert safe_cell(value) == "'" + value
    assert unsafe_cell(safe_cell(value)) == value


@pytest.mark.parametrize("value", ["plain", "'quoted", "", "12.5", "a=b"])
def test_other_cells_pass_through_both_ways(value):
    assert safe_cell(value) == value
    assert unsafe_cell(value) == value


def test_none_is_an_empty_cell():
    assert safe_cell(None) == ""
