"""Numbers for people, formatted in one place (modint.report.format)."""

from modint.report.format import MISSING, percent, percent_ci


def test_percent_by_hand():
    assert percent(0.153) == "15.3"
    assert percent(-0.05, signed=True) == "-5.0" and percent(0.05, signed=True) == "+5.0"
    assert percent(0.5, unit="%") == "50.0%"
    assert percent(None) == MISSING and percent(None, missing=None) is None
    assert percent(1 / 3) == "33.3" and percent(0.00049) == "0.0"


def test_percent_ci_by_hand():
    assert percent_ci((0.1, 0.25)) == "[10.0, 25.0]"
    assert percent_ci([-0.1, 0.05], signed=True) == "[-10.0, +5.0]"
    assert percent_ci(None) == "" and percent_ci((None, None)) == "" and percent_ci((0.1,), missing="–") == "–"
