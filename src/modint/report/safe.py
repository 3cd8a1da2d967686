"""Cells and text that cannot hurt the program that opens an export.

``spreadsheet_cell(value)``: a value for a CSV, TSV or xlsx cell. Text that a spreadsheet would
run as a formula (it begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a
leading apostrophe, the OWASP rule for CSV injection; numbers, and text that reads as a plain
number ("-3.5", "+1.2e-3"), stay as they are. ``latex_escape(text)``: text that LaTeX typesets as
written, with every special character (``\\ { } $ & # ^ _ % ~``) escaped. Every exporter calls
these two (report tables, per-sample exports, lmms-eval / VLMEvalKit files).
"""

from __future__ import annotations

import math
import re
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?")
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def spreadsheet_cell(value: Any) -> Any:
    """``value`` safe for a spreadsheet cell: numbers (int, float, bool, None) unchanged, text
    that could start a formula prefixed with ``'``; anything else as its text, checked the same."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def latex_escape(text: Any) -> str:
    """``text`` with every LaTeX special character escaped (``None`` -> empty)."""
    return "" if text is None else "".join(_LATEX.get(ch, ch) for ch in str(text))
