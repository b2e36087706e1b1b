"""CSV cells a spreadsheet will not execute (formula injection, OWASP CSV injection)."""

from __future__ import annotations

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: object) -> str:
    """Text of the value, prefixed with an apostrophe when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def unsafe_cell(text: str) -> str:
    """The original value of a cell written by `safe_cell`, for showing it on a page
    (autoescaped HTML has no formula problem)."""
    if text.startswith("'") and text[1:].startswith(_FORMULA_START):
        return text[1:]
    return text
