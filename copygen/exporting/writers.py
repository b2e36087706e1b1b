"""Streaming writers: records in, bytes out, constant memory.

``open_writer(preset, fileobj)`` returns a writer for the preset's format; ``write(record)``
encodes one record straight into ``fileobj`` (a binary file the caller opened and still
owns: ``close()`` finishes the format but does not close it). A writer keeps no record
after writing it, so a million rows take the memory of one.

* **csv** — UTF-8, optionally with a BOM so Excel reads it as UTF-8 (``excel_bom``),
  RFC 4180 as the csv module writes it (`csv_line` writes rows the same, faster): ","
  delimiter, CRLF line ends, a field quoted only when it holds a quote, comma or line
  break, quotes doubled. The header (the preset's
  ``columns``) is written at once, so an export of 0 rows is still a valid file. Every
  cell, header included, goes through ``marketing.csvsafe.safe_cell``: one starting with
  = + - @ tab CR or LF gets a leading apostrophe so a spreadsheet will not run it as a
  formula. The one exception: in the preset's ``raw_columns`` (phone columns) a value that
  is exactly an E.164 number ("+" and digits, as `normalize_phone` writes it) stays as it
  is, because the targets reject "'+49…" and a "+" followed by digits is no formula
  anyone can inject. Lists become JSON arrays, None an empty cell, numbers their text.
* **jsonl** — one JSON object per line, "\\n" after each, UTF-8 (``ensure_ascii=False``).
* **json** — ``{"attributes":[`` then the records separated by "," then ``]}``, written as
  they come (Braze's /users/track body).

JSON text is NOT apostrophe-escaped: formula injection is a spreadsheet problem of CSV
files, and JSON consumers read values as data, so escaping would only corrupt the copy.

Used as a context manager, the writer finishes the file on a clean exit only: after an
exception a JSON file stays unterminated (invalid) rather than looking complete.
``export_rows`` is the whole loop: render each row with the preset, write the records,
count and keep the warnings.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Protocol

from copygen.exporting.presets import Preset
from copygen.exporting.rows import ExportRow, ExportWarning
from marketing.csvsafe import _FORMULA_START as FORMULA_START
from marketing.csvsafe import safe_cell

__all__ = ["ExportSummary", "ExportWriter", "export_rows", "open_writer"]

BOM = "\ufeff"
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# A cell the guard changes starts with one of marketing.csvsafe's formula characters. Searched
# over a whole row joined (and led) by NUL, so a row that needs no guard — nearly all — costs
# one search in C instead of a function call per cell; a NUL inside a cell can only make a
# false alarm, which the per-cell path then settles exactly.
_SEP = "\0"
_GUARD_NEEDED = re.compile(_SEP + "[" + "".join(map(re.escape, FORMULA_START)) + "]")
_GUARD_START = frozenset(FORMULA_START)


class ExportWriter(Protocol):
    """What `open_writer` returns."""

    bytes_written: int

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> ExportWriter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _Writer:
    """Shared plumbing: UTF-8 encoding into the binary file, byte count, open/closed."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._file = fileobj
        self.bytes_written = 0
        self.closed = False

    def _put(self, text: str) -> None:
        data = text.encode("utf-8")
        self._file.write(data)
        self.bytes_written += len(data)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("write to a closed export writer")

    def _finish(self) -> None:
        """Format trailer (JSON's ``]}``); nothing for CSV and JSONL."""

    def close(self) -> None:
        """Finish the format and flush; the file itself stays open (the caller owns it)."""
        if self.closed:
            return
        self._finish()
        self.closed = True
        flush = getattr(self._file, "flush", None)
        if flush is not None:
            flush()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.closed = True


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), ensure_ascii=False)
    return str(value)


class _Encoder:
    def __init__(self, writer: _Writer) -> None:
        self.write = writer._put


def csv_line(texts: list[str]) -> str:
    """One CSV record of two or more fields, byte for byte as ``csv.writer`` (",",
    QUOTE_MINIMAL, "\\r\\n") writes it: a field holding a comma, a quote, CR or LF is quoted
    and its quotes doubled. On a 30-field Mailchimp row it takes 3 µs where ``writerow``
    took 10; a property test holds the two to the same output. (A lone empty field is
    written '""' by csv.writer, so one-field rows still go through it.)"""
    return (
        ",".join(
            [
                '"' + t.replace('"', '""') + '"'
                if ("," in t or '"' in t or "\n" in t or "\r" in t)
                else t
                for t in texts
            ]
        )
        + "\r\n"
    )


class CsvWriter(_Writer):
    def __init__(self, preset: Preset, fileobj: IO[bytes], *, excel_bom: bool = False) -> None:
        super().__init__(fileobj)
        self._columns = preset.columns
        self._known = frozenset(self._columns)
        self._raw = preset.raw_columns & self._known
        # The csv module writes str to any object with .write(); this one encodes it.
        self._csv = csv.writer(_Encoder(self), lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        if excel_bom:
            self._put(BOM)
        self._csv.writerow([safe_cell(c) for c in self._columns])

    def write(self, record: dict[str, Any]) -> None:
        """Write one record (column -> value); ValueError for a key not in the header."""
        self._check_open()
        if not self._known.issuperset(record):
            unknown = record.keys() - self._known
            raise ValueError(f"columns not in the header: {', '.join(sorted(unknown))}")
        texts = [v if v.__class__ is str else _csv_text(v) for v in map(record.get, self._columns)]
        if _GUARD_NEEDED.search(_SEP + _SEP.join(texts)):
            texts = [
                self._cell(c, t) if t[:1] in _GUARD_START else t
                for c, t in zip(self._columns, texts, strict=True)
            ]
        if len(texts) > 1:
            self._put(csv_line(texts))
        else:
            self._csv.writerow(texts)

    def _cell(self, column: str, value: Any) -> str:
        """The reference rule for one cell (`write` takes a fast path to the same text)."""
        text = _csv_text(value)
        if column in self._raw and _E164.fullmatch(text):
            return text
        return safe_cell(text)


class JsonlWriter(_Writer):
    def write(self, record: dict[str, Any]) -> None:
        """Write one record as a line of JSON."""
        self._check_open()
        self._put(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")


class JsonWriter(_Writer):
    def __init__(self, fileobj: IO[bytes], *, key: str = "attributes") -> None:
        super().__init__(fileobj)
        self._first = True
        self._put("{" + json.dumps(key) + ":[")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record to the array."""
        self._check_open()
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        self._put(text if self._first else "," + text)
        self._first = False

    def _finish(self) -> None:
        self._put("]}\n")


def open_writer(preset: Preset, fileobj: IO[bytes], *, excel_bom: bool = False) -> ExportWriter:
    """A streaming writer of ``preset``'s format into the binary ``fileobj``.

    ``excel_bom`` (CSV only) starts the file with a UTF-8 BOM. A CSV preset whose columns
    depend on the channel must be bound first (``preset_for(key, channel=...)``), else
    ValueError.
    """
    if preset.format == "csv":
        return CsvWriter(preset, fileobj, excel_bom=excel_bom)
    if preset.format == "jsonl":
        return JsonlWriter(fileobj)
    if preset.format == "json":
        return JsonWriter(fileobj)
    raise ValueError(f"unknown export format {preset.format!r}")


@dataclass
class ExportSummary:
    """What `export_rows` did: rows written and left out, the first ``keep_warnings``
    warnings, how many there were in all and per code."""

    written: int = 0
    skipped: int = 0
    warnings: list[ExportWarning] = field(default_factory=list)
    warning_count: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    bytes_written: int = 0


def export_rows(
    preset: Preset,
    rows: Iterable[ExportRow],
    fileobj: IO[bytes],
    *,
    excel_bom: bool = False,
    keep_warnings: int = 1000,
    on_progress: Callable[[int, int | None], None] | None = None,
    total: int | None = None,
    progress_every: int = 1000,
) -> ExportSummary:
    """Render every row with ``preset`` and stream the records into ``fileobj``.

    Memory stays flat: rows are consumed one by one and only the first ``keep_warnings``
    warnings are kept (all are counted). ``on_progress(done, total)`` is called every
    ``progress_every`` rows and at the end.
    """
    summary = ExportSummary()
    done = 0
    with open_writer(preset, fileobj, excel_bom=excel_bom) as writer:
        for row in rows:
            result = preset.render(row)
            if result.record is None:
                summary.skipped += 1
            else:
                writer.write(result.record)
                summary.written += 1
            for warning in result.warnings:
                summary.warning_count += 1
                summary.codes[warning.code] += 1
                if len(summary.warnings) < keep_warnings:
                    summary.warnings.append(warning)
            done += 1
            if on_progress is not None and done % progress_every == 0:
                on_progress(done, total)
    summary.bytes_written = writer.bytes_written
    if on_progress is not None:
        on_progress(done, total)
    return summary
