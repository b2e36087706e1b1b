"""What can go wrong in an import, in words a marketer can act on.

Two levels: `ImportFileError` stops the whole import (nothing is written), an `Issue`
rejects or annotates one row and ends up in the rejected-rows CSV.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VALUE_MAX_CHARS = 200
NUL_SHOWN_AS = "\u2400"  # SYMBOL FOR NULL: a visible stand-in for a NUL character
# A lone UTF-16 surrogate: JSON may spell one ("\\ud800") and json.loads returns it, but no
# encoder (database, report CSV, upload JSON) takes it, so it is treated like NUL.
SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_SHOWN_AS = "\ufffd"  # REPLACEMENT CHARACTER


def has_bad_char(text: str) -> bool:
    """Whether text holds a character no database text column can store (NUL, a lone
    surrogate)."""
    return "\x00" in text or (not text.isascii() and SURROGATE.search(text) is not None)


def shown(text: str) -> str:
    """text with NUL and lone surrogates replaced by visible stand-ins (for pages, reports)."""
    text = text.replace("\x00", NUL_SHOWN_AS)
    return text if text.isascii() else SURROGATE.sub(SURROGATE_SHOWN_AS, text)


class ImportFileError(Exception):
    """A file-level problem: the whole import stops, nothing is written."""

    def __init__(
        self, reason: str, *, file: str = "", row: int | None = None, column: str | None = None
    ) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.column = column
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column}")
        parts = [p for p in (self.file, ", ".join(where)) if p]
        return ": ".join([*parts, self.reason])

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):
        # Keyword-only arguments break the default exception pickling (Celery results, logs).
        return (_rebuild_file_error, (self.reason, self.file, self.row, self.column))


def _rebuild_file_error(
    reason: str, file: str, row: int | None, column: str | None
) -> ImportFileError:
    return ImportFileError(reason, file=file, row=row, column=column)


class CleanOptionError(ValueError):
    """A catalog setting the cleaner cannot apply (time zone, non-product pattern).

    `option` names the `CleanOptions` field, so the service can point at the setting.
    """

    def __init__(self, option: str, reason: str) -> None:
        self.option = option
        self.reason = reason
        super().__init__(reason)

    def __reduce__(self):
        return (CleanOptionError, (self.option, self.reason))


@dataclass(frozen=True)
class Issue:
    """One row-level problem, written to the rejected-rows CSV."""

    row: int
    column: str
    value: str
    reason: str
    action: str = "rejected"


REJECTED = "rejected"
KEPT_AS_TEXT = "kept as text"


def short(value: object) -> str:
    """The offending value as text, cut so a 1 MB cell cannot bloat the report; NUL characters
    and lone surrogates (which no database text column takes) are shown as visible symbols."""
    text = "" if value is None else shown(str(value))
    if len(text) > VALUE_MAX_CHARS:
        return text[: VALUE_MAX_CHARS - 1] + "…"
    return text
