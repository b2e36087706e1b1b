"""Recognise an uploaded file and stream it as frames of strings.

`sniff` looks at the file once (size, format, encoding, delimiter, header) and fails
early with a specific `ImportFileError`; `iter_frames` then streams it in chunks so a
multi-million-row CSV never sits in memory whole. Every frame holds the source columns as
str ("" for missing) plus `_row`, the row number a user sees in a spreadsheet.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import math
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import SURROGATE, SURROGATE_SHOWN_AS, ImportFileError, has_bad_char, shown

FORMATS = ("csv", "json", "jsonl", "xlsx")
DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
SAMPLE_RECORDS = 5
ROW_COLUMN = "_row"
EXTRA_COLUMN = "_extra"
# Per row, the first column whose cell holds a NUL character or a lone surrogate ("" for none);
# only present when some row has one, so the cleaner can reject those rows. CSV files never
# get it: a NUL byte makes the whole file "binary" (pandas' parser would silently cut the cell
# at it), and no decoder the CSV reader uses yields a lone surrogate.
NUL_COLUMN = "_nul"
_RESERVED = (ROW_COLUMN, EXTRA_COLUMN, NUL_COLUMN)
# Extra names given to the CSV parser so a row with a few stray fields becomes one rejected
# row instead of a parser error that stops the whole file.
_SPARE_FIELDS = 4
_SPARE_NAMES = [f"\x00spare{i}" for i in range(_SPARE_FIELDS)]
_BLOCK = 1 << 20

ZIP_MAX_RATIO = 100  # uncompressed/compressed per member; far above real workbooks
ZIP_MAX_EXPANSION = 20  # total uncompressed size over max_bytes

_CSV_EXTS = {".csv", ".tsv", ".txt", ".tab"}
_JSON_EXTS = {".json"}
_JSONL_EXTS = {".jsonl", ".ndjson", ".jsonlines"}
_XLSX_EXTS = {".xlsx", ".xlsm"}

_BINARY_MAGIC = {
    b"\xd0\xcf\x11\xe0": "binary file, not CSV/JSON/XLSX (old .xls workbook: save it as .xlsx or CSV)",
    b"\x1f\x8b": "binary file, not CSV/JSON/XLSX (gzip archive: upload the uncompressed file)",
    b"%PDF": "binary file, not CSV/JSON/XLSX (PDF document)",
}
_BINARY = "binary file, not CSV/JSON/XLSX"
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))


@dataclass(frozen=True)
class SourceInfo:
    """What sniffing found; stored on the upload and shown on the mapping form."""

    format: str
    encoding: str | None
    delimiter: str | None
    columns: list[str]
    sample: list[dict[str, str]]


# ---------------------------------------------------------------------------- sniff


def sniff(path: str | Path, *, name: str, max_bytes: int) -> SourceInfo:
    """Recognise format, encoding, delimiter and header, failing early on unusable files.

    Fails with ImportFileError for an empty, oversized or binary file, an undecodable or
    headerless one, duplicate header names, and JSON that is not a list of objects.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ImportFileError("file is empty", file=name)
    if size > max_bytes:
        raise ImportFileError(
            f"file is {_size(size)}, over the {_size(max_bytes)} limit", file=name
        )
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    ext = Path(name).suffix.lower()

    if head.startswith(b"PK\x03\x04"):
        if ext in _XLSX_EXTS or _zip_is_workbook(path):
            _check_zip(path, name=name, max_bytes=max_bytes)
            columns = _xlsx_header(path, name=name)
            return _with_sample(path, "xlsx", None, None, columns, name=name)
        raise ImportFileError(_BINARY + " (zip archive: upload the CSV or XLSX inside)", file=name)
    if ext in _XLSX_EXTS:
        raise ImportFileError("not a valid .xlsx workbook (no zip signature)", file=name)

    encoding = _detect_encoding(path, head, name=name)
    text = _decode_head(head, encoding, name=name)
    if not text.strip():
        raise ImportFileError("file is empty", file=name)
    fmt = _detect_format(text, ext)
    if fmt == "csv":
        delimiter = sniff_delimiter(text, complete=size <= len(head))
        columns = _csv_header(text, delimiter, name=name)
        return _with_sample(path, "csv", encoding, delimiter, columns, name=name)
    if fmt == "jsonl":
        columns = _jsonl_columns(path, encoding, name=name)
    else:
        columns = _json_columns(path, encoding, name=name)
    return _with_sample(path, fmt, encoding, None, columns, name=name)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def _with_sample(
    path: Path, fmt: str, encoding: str | None, delimiter: str | None, columns, *, name: str
) -> SourceInfo:
    info = SourceInfo(fmt, encoding, delimiter, list(columns), [])
    if fmt in ("json", "jsonl") and not columns:
        empty = _first_frame(path, info, name=name) is None
        reason = "file has no records" if empty else "the JSON records have no fields"
        raise ImportFileError(reason, file=name)
    _check_header(columns, name=name)
    frame = _first_frame(path, info, name=name)
    if frame is None or frame.empty:
        raise ImportFileError("file has a header row but no data rows", file=name)
    data = frame.drop(columns=[c for c in _RESERVED if c in frame])
    sample = [
        {k: shown(v) for k, v in record.items()}
        for record in data.head(SAMPLE_RECORDS).to_dict("records")
    ]
    return SourceInfo(fmt, encoding, delimiter, list(columns), sample)


def _first_frame(path: Path, info: SourceInfo, *, name: str) -> pd.DataFrame | None:
    frames = iter_frames(path, info, name=name, chunk_rows=SAMPLE_RECORDS + 1)
    try:
        return next(frames, None)
    finally:
        frames.close()


def _check_header(columns: list[str], *, name: str) -> None:
    if not columns or all(not c for c in columns):
        raise ImportFileError("no header row: the first row is empty", file=name, row=1)
    seen: set[str] = set()
    for i, col in enumerate(columns, start=1):
        if "\x00" in col:
            raise ImportFileError(
                f"the name of column {i} contains a NUL character", file=name, row=1
            )
        if has_bad_char(col):
            raise ImportFileError(
                f"the name of column {i} is not valid text (a lone surrogate such as \\ud800)",
                file=name,
                row=1,
            )
        if col in seen:
            raise ImportFileError(f"duplicate column name {col!r}", file=name, row=1, column=col)
        if col in _RESERVED:
            raise ImportFileError(
                f"column name {col!r} is reserved; rename it", file=name, row=1, column=col
            )
        seen.add(col)
    if all(_looks_numeric(c) for c in columns if c):
        raise ImportFileError(
            f"no header row: the first row looks like data ({', '.join(columns[:3])}…); "
            "add a row of column names",
            file=name,
            row=1,
        )


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def _name_columns(raw: list[str]) -> list[str]:
    """Strip header names and name blank ones by position (e.g. a pandas index column)."""
    names = [("" if c is None else str(c)).strip() for c in raw]
    while names and not names[-1]:
        names.pop()
    return [n or f"column_{i + 1}" for i, n in enumerate(names)]


# ------------------------------------------------------------------------- encoding


def _detect_encoding(path: Path, head: bytes, *, name: str) -> str:
    """BOM first, then strict UTF-8 over the whole file, else a Latin-1 family codec.

    Windows-1252 is picked over ISO-8859-1 when the file has bytes 0x80-0x9F that cp1252
    defines (curly quotes, €): in Latin-1 those are invisible control characters.
    """
    if head.startswith(codecs.BOM_UTF8):
        _check_no_nul(path, None, name=name)
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _check_no_nul(path, "utf-16", name=name)
        return "utf-16"
    for magic, reason in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise ImportFileError(reason, file=name)
    sample = head[:8192]
    if b"\x00" in sample:
        raise ImportFileError(_BINARY, file=name)
    if sample and len(sample.translate(None, _CONTROL)) < 0.9 * len(sample):
        raise ImportFileError(_BINARY, file=name)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    utf8 = True
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            if b"\x00" in block:
                raise ImportFileError(_BINARY, file=name)
            if utf8 and not (block.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    return "utf-8" if utf8 else _latin_family(path)


def _check_no_nul(path: Path, encoding: str | None, *, name: str) -> None:
    """A file with a byte-order mark is text; a NUL in it still makes it binary, as in any
    other file (decoded first for UTF-16, whose every ASCII character has a zero byte)."""
    if encoding is None:
        with path.open("rb") as fh:
            while block := fh.read(_BLOCK):
                if b"\x00" in block:
                    raise ImportFileError(_BINARY + " (it contains NUL bytes)", file=name)
        return
    try:
        with path.open("r", encoding=encoding, newline="") as fh:
            while block := fh.read(_BLOCK):
                if "\x00" in block:
                    raise ImportFileError(_BINARY + " (it contains NUL characters)", file=name)
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"cannot decode the file as {encoding}: {exc.reason}", file=name
        ) from None


def _latin_family(path: Path) -> str:
    """cp1252 when bytes 0x80-0x9F occur and all are ones cp1252 defines, else latin-1."""
    c1 = holes = False
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            c1 = c1 or re.search(rb"[\x80-\x9f]", block) is not None
            holes = holes or re.search(rb"[\x81\x8d\x8f\x90\x9d]", block) is not None
    return "cp1252" if c1 and not holes else "latin-1"


def _decode_head(head: bytes, encoding: str, *, name: str) -> str:
    """Decode the first bytes, tolerating a multibyte character cut at the end."""
    try:
        text = codecs.getincrementaldecoder(encoding)("strict").decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"cannot decode the file as {encoding}: {exc.reason}", file=name
        ) from None
    if encoding == "utf-16" and "\x00" in text:
        raise ImportFileError(_BINARY, file=name)
    return text.lstrip("\ufeff")


# --------------------------------------------------------------------------- format


def _detect_format(text: str, ext: str) -> str:
    if ext in _CSV_EXTS:
        return "csv"
    if ext in _JSONL_EXTS:
        return "jsonl"
    stripped = text.lstrip()
    first = stripped[:1]
    if first == "[":
        return "json"
    if first == "{" or ext in _JSON_EXTS:
        # JSON Lines when the first line is a whole object and more lines follow; else
        # plain JSON, which then has to be an array ("not a list of objects" otherwise).
        lines = [ln for ln in stripped.split("\n", 2)[:2] if ln.strip()]
        try:
            json.loads(lines[0])
        except RecursionError:
            pass  # a whole (if absurdly deep) value: reading the records will say so
        except ValueError:
            return "json"
        return "jsonl" if len(lines) > 1 else "json"
    return "csv"


def sniff_delimiter(text: str, *, complete: bool = True) -> str:
    """The delimiter among , ; TAB | : csv.Sniffer if its answer parses consistently,
    else the candidate giving the most rows with the header's field count.

    complete=False: text is the start of a longer file, so its last record may be cut.
    """
    end = max(text.rfind("\n"), text.rfind("\r"))  # a lone \r ends records too (old Macs)
    if not complete and end >= 0:
        text = text[: end + 1]
    try:
        guess = csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        guess = None
    scores = {d: _consistency(text, d, complete=complete) for d in DELIMITERS}
    if guess in scores and scores[guess][1] > 1 and scores[guess][0] >= 0.9:
        return guess
    best = max(DELIMITERS, key=lambda d: scores[d])
    return best if scores[best][1] > 1 else ","


def _consistency(sample: str, delimiter: str, *, complete: bool) -> tuple[float, int]:
    """(share of the first records with the header's field count, header field count)."""
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, strict=True)
    try:
        for row in reader:
            if row:
                rows.append(row)
            if len(rows) > 200:
                break
    except csv.Error:
        if complete:
            return (0.0, 0)  # the whole file does not parse this way
        # else: the sample ends inside a quoted value; judge the records before it
    if not complete and len(rows) > 2:
        rows = rows[:-1]  # possibly cut short
    if not rows:
        return (0.0, 0)
    width = len(rows[0])
    body = rows[1:] or rows
    return (sum(len(r) == width for r in body) / len(body), width)


# ------------------------------------------------------------------------------ CSV


def _csv_header(text: str, delimiter: str, *, name: str) -> list[str]:
    try:
        # newline="": records may end in \n, \r\n or a lone \r (old Mac exports).
        first = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error as exc:
        raise ImportFileError(f"cannot read the header row: {exc}", file=name, row=1) from None
    return _name_columns(first)


def iter_frames(
    path: str | Path, info: SourceInfo, *, name: str, chunk_rows: int = 100_000
) -> Iterator[pd.DataFrame]:
    """Stream the file as frames of at most chunk_rows records (strings plus `_row`).

    Raises ImportFileError when the file turns out to be malformed past the part sniffing
    saw (a broken CSV quote, a JSON Lines line that is not an object).
    A CSV row with more fields than the header gets an `_extra` column holding the surplus,
    so the cleaner can reject that one row.
    """
    path = Path(path)
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    if info.format == "csv":
        yield from _iter_csv(path, info, name=name, chunk_rows=chunk_rows)
    elif info.format == "jsonl":
        yield from _records_to_frames(
            _iter_jsonl(path, info.encoding, name=name), info.columns, chunk_rows, name=name
        )
    elif info.format == "json":
        yield from _records_to_frames(
            _iter_json_array(path, info.encoding, name=name), info.columns, chunk_rows, name=name
        )
    elif info.format == "xlsx":
        yield from _iter_xlsx(path, info, name=name, chunk_rows=chunk_rows)
    else:
        raise ValueError(f"unknown format {info.format!r}")


def _iter_csv(
    path: Path, info: SourceInfo, *, name: str, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    columns = list(info.columns)
    if info.encoding == "utf-16":
        # The C parser cannot stream UTF-16; transcode to a temporary UTF-8 file first.
        with tempfile.TemporaryFile() as tmp:
            with path.open("r", encoding="utf-16", newline="") as src:
                writer = io.TextIOWrapper(tmp, encoding="utf-8", newline="", write_through=True)
                shutil.copyfileobj(src, writer, _BLOCK)
                writer.flush()
                writer.detach()
            tmp.seek(0)
            yield from _read_csv(tmp, columns, info.delimiter, "utf-8", name, chunk_rows)
        return
    with path.open("rb") as fh:
        yield from _read_csv(fh, columns, info.delimiter, info.encoding, name, chunk_rows)


def _read_csv(fh, columns, delimiter, encoding, name, chunk_rows) -> Iterator[pd.DataFrame]:
    # The header record is read as data (header=None) so that it goes through the same
    # tokenizer as every other record and row numbers count records, not physical lines.
    width = len(columns)
    try:
        reader = pd.read_csv(
            fh,
            sep=delimiter or ",",
            header=None,
            names=[*columns, *_SPARE_NAMES],
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
            encoding=encoding,
            quotechar='"',
            doublequote=True,
            iterator=True,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise _parser_error(exc, name, width) from None
    with reader:
        next_row = 2  # the header is record 1
        header_pending = True
        take = chunk_rows + 1
        while True:
            try:
                chunk = reader.get_chunk(take)
            except StopIteration:
                return
            except pd.errors.ParserError as exc:
                raise _parser_error(exc, name, width) from None
            except UnicodeDecodeError as exc:
                raise ImportFileError(
                    f"cannot decode the file as {encoding}: {exc.reason}", file=name
                ) from None
            if header_pending:
                chunk = chunk.iloc[1:]
                header_pending = False
            take = chunk_rows
            n = len(chunk)
            if n == 0:
                continue
            # Rebuild from the column arrays: no copies, a fresh 0..n-1 index.
            data = {c: chunk[c].to_numpy(dtype=object) for c in columns}
            spare = [chunk[c].to_numpy(dtype=object) for c in _SPARE_NAMES]
            # _row goes in with the rest: inserting it into a frame of thousands of
            # columns would warn that the frame is fragmented, once per chunk.
            data[ROW_COLUMN] = np.arange(next_row, next_row + n, dtype=np.int64)
            frame = pd.DataFrame(data, copy=False)
            next_row += n
            if any("".join(col) for col in spare):
                sep = delimiter or ","
                extra = pd.Series(spare[0], dtype=object)
                for col in spare[1:]:
                    extra = extra.str.cat(pd.Series(col, dtype=object), sep=sep)
                frame[EXTRA_COLUMN] = extra.str.rstrip(sep).to_numpy()
            frame = _drop_blank_rows(frame, columns, spare)
            if not frame.empty:
                yield frame


def _drop_blank_rows(frame: pd.DataFrame, columns: list[str], spare) -> pd.DataFrame:
    """Blank lines carry nothing; they still count in the row numbers of later rows."""
    maybe = frame[columns[0]].to_numpy(dtype=object) == ""
    if not maybe.any():
        return frame
    idx = np.flatnonzero(maybe)
    blank = np.ones(idx.size, dtype=bool)
    for values in [*(frame[c].to_numpy(dtype=object) for c in columns[1:]), *spare]:
        blank &= values[idx] == ""
    if not blank.any():
        return frame
    return frame.drop(index=frame.index[idx[blank]]).reset_index(drop=True)


def _parser_error(exc: Exception, name: str, width: int) -> ImportFileError:
    text = str(exc)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return ImportFileError(
            f"line {m.group(2)} has {m.group(3)} fields but the header has {width}; "
            "check the delimiter and quoting",
            file=name,
        )
    if "EOF inside string" in text:
        m = re.search(r"line (\d+)", text)
        where = f" starting on line {m.group(1)}" if m else ""
        return ImportFileError(
            f"a quoted value{where} is never closed (unbalanced quote)", file=name
        )
    return ImportFileError(f"malformed CSV: {text}", file=name)


# ----------------------------------------------------------------------- JSON/JSONL


def _json_text(value: object) -> str:
    """One JSON value as the string a CSV cell would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _iter_jsonl(path: Path, encoding: str | None, *, name: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line; blank lines are skipped."""
    with path.open("r", encoding=encoding or "utf-8", newline=None) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise ImportFileError(
                    f"invalid JSON: {_json_error(exc)}", file=name, row=lineno
                ) from None
            if not isinstance(obj, dict):
                raise ImportFileError(
                    f"each line must be a JSON object, found {_json_type(obj)}",
                    file=name,
                    row=lineno,
                )
            yield lineno, obj


def _iter_json_array(path: Path, encoding: str | None, *, name: str) -> Iterator[tuple[int, dict]]:
    """(record number from 1, object) from a top-level JSON array, read incrementally."""
    decoder = json.JSONDecoder()
    with path.open("r", encoding=encoding or "utf-8") as fh:
        buf = fh.read(_BLOCK).lstrip("\ufeff")
        eof = False
        pos = _skip_ws(buf, 0)
        if buf[pos : pos + 1] != "[":
            what = "an object" if buf[pos : pos + 1] == "{" else "not an array"
            raise ImportFileError(
                f"JSON must be a list of objects ([{{…}}, …]); found {what}", file=name
            )
        pos += 1
        index = 0
        expect_value = True
        while True:
            pos = _skip_ws(buf, pos)
            if pos >= len(buf) and not eof:
                more = fh.read(_BLOCK)
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            ch = buf[pos : pos + 1]
            if ch == "]" and (index == 0 or not expect_value):
                return
            if not expect_value:
                if not ch:
                    raise ImportFileError("invalid JSON: the array is never closed", file=name)
                if ch != ",":
                    raise ImportFileError(
                        f"invalid JSON after record {index}: expected ',' or ']'", file=name
                    )
                pos += 1
                expect_value = True
                continue
            if not ch:
                raise ImportFileError("invalid JSON: the array is never closed", file=name)
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                truncated = exc.msg.startswith("Unterminated") or exc.pos >= len(buf) - 5
                if truncated and not eof:
                    more = fh.read(_BLOCK)
                    eof = not more
                    buf, pos = buf[pos:] + more, 0
                    continue
                raise ImportFileError(
                    f"invalid JSON in record {index + 1}: {exc.msg}", file=name, row=index + 1
                ) from None
            except (ValueError, RecursionError) as exc:
                raise ImportFileError(
                    f"invalid JSON in record {index + 1}: {_json_error(exc)}",
                    file=name,
                    row=index + 1,
                ) from None
            if end >= len(buf) and not eof:
                # A number at the very end of the buffer may continue in the next block.
                more = fh.read(_BLOCK)
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            index += 1
            if not isinstance(obj, dict):
                raise ImportFileError(
                    f"JSON must be a list of objects; record {index} is {_json_type(obj)}",
                    file=name,
                    row=index,
                )
            yield index, obj
            pos = end
            expect_value = False
            if pos > _BLOCK:
                buf, pos = buf[pos:], 0


def _json_error(exc: Exception) -> str:
    """What is wrong with a JSON value, without the parser's internals."""
    if isinstance(exc, RecursionError):
        return "values nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if "digits" in str(exc):  # int("9" * 5000): Python refuses numbers over 4300 digits
        return "a number has too many digits"
    return str(exc)


def _skip_ws(buf: str, pos: int) -> int:
    n = len(buf)
    while pos < n and buf[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_type(obj: object) -> str:
    return {list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(obj), "a number"
    )


_SNIFF_JSON_RECORDS = 1000


def _add_keys(keys: dict[str, None], obj: dict) -> None:
    for key in obj:
        col = key.strip()
        if col:
            keys.setdefault(col, None)


def _jsonl_columns(path: Path, encoding: str | None, *, name: str) -> list[str]:
    """Keys of the first records, in order of first appearance (later new keys still load)."""
    keys: dict[str, None] = {}
    for i, (_row, obj) in enumerate(_iter_jsonl(path, encoding, name=name)):
        _add_keys(keys, obj)
        if i + 1 >= _SNIFF_JSON_RECORDS:
            break
    return list(keys)


def _json_columns(path: Path, encoding: str | None, *, name: str) -> list[str]:
    """Keys of all records: a JSON array is validated whole at sniff time."""
    keys: dict[str, None] = {}
    for _row, obj in _iter_json_array(path, encoding, name=name):
        _add_keys(keys, obj)
    return list(keys)


def _records_to_frames(
    records: Iterator[tuple[int, dict]], columns: list[str], chunk_rows: int, *, name: str
) -> Iterator[pd.DataFrame]:
    """Batch (row, object) pairs into frames; keys the sniff did not see become columns."""
    batch_rows: list[int] = []
    batch: list[dict] = []
    for row, obj in records:
        batch_rows.append(row)
        batch.append(obj)
        if len(batch) >= chunk_rows:
            yield _records_frame(batch, batch_rows, columns, name=name)
            batch, batch_rows = [], []
    if batch:
        yield _records_frame(batch, batch_rows, columns, name=name)


def _records_frame(
    batch: list[dict], rows: list[int], columns: list[str], *, name: str
) -> pd.DataFrame:
    actual: dict[str, None] = {}
    for obj in batch:
        actual.update(dict.fromkeys(obj))
    if has_bad_char("".join(actual)):  # a key first seen after the sniffed records
        row, obj = next(
            (r, obj) for r, obj in zip(rows, batch, strict=True) if has_bad_char("".join(obj))
        )
        what = "a NUL character" if "\x00" in "".join(obj) else "a lone surrogate such as \\ud800"
        raise ImportFileError(f"a field name contains {what}", file=name, row=row)
    stripped: dict[str, str] = {}
    for key in actual:
        col = key.strip()
        if col and (col not in stripped or key == col):
            stripped[col] = key
    # column -> key in the objects (" sku" in the file is the column "sku")
    source_key = {col: col if col in actual else stripped.get(col, col) for col in columns}
    for col, key in stripped.items():
        source_key.setdefault(col, key)
    try:
        data = {col: [_json_text(obj.get(key)) for obj in batch] for col, key in source_key.items()}
    except RecursionError:
        # json.loads accepted the value, but writing it back as a cell went deeper still.
        raise ImportFileError(
            "invalid JSON: values nested too deeply", file=name, row=rows[0]
        ) from None
    frame = pd.DataFrame(data, dtype=object)
    frame[ROW_COLUMN] = np.asarray(rows, dtype=np.int64)
    return _mark_nul(frame, data)


def _mark_nul(frame: pd.DataFrame, data: dict[str, list[str]]) -> pd.DataFrame:
    """Add NUL_COLUMN when a cell holds a NUL character or a lone surrogate (a JSON "\\u0000"
    or "\\ud800"; workbook cells are checked as well): per row the first such column, so the
    cleaner rejects that row.

    Lone surrogates are then replaced by U+FFFD in the frame: the row is rejected anyway, and
    whole-column work before that (hashing distinct values, which encodes them) must not
    meet a character no encoder takes.
    """
    hits = [col for col, values in data.items() if has_bad_char("".join(values))]
    if not hits:
        return frame
    where = np.full(len(frame), "", dtype=object)
    for col in reversed(hits):  # the first column wins
        values = data[col]
        where[[has_bad_char(v) for v in values]] = col
        if SURROGATE.search("".join(values)):
            frame[col] = np.array(
                [SURROGATE.sub(SURROGATE_SHOWN_AS, v) for v in values], dtype=object
            )
    frame[NUL_COLUMN] = where
    return frame


# ----------------------------------------------------------------------------- XLSX


def _zip_is_workbook(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return "xl/workbook.xml" in zf.namelist()
    except zipfile.BadZipFile:
        return False


def _check_zip(path: Path, *, name: str, max_bytes: int) -> None:
    """Refuse zip bombs before openpyxl inflates anything."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except zipfile.BadZipFile:
        raise ImportFileError("not a valid .xlsx workbook (damaged zip)", file=name) from None
    total = sum(m.file_size for m in members)
    if total > ZIP_MAX_EXPANSION * max_bytes:
        raise ImportFileError(
            f"workbook expands to {_size(total)}, over {ZIP_MAX_EXPANSION}× the upload limit",
            file=name,
        )
    for m in members:
        if m.file_size > 1024 * 1024 and m.file_size > ZIP_MAX_RATIO * max(m.compress_size, 1):
            raise ImportFileError(
                f"workbook part {m.filename} is compressed over {ZIP_MAX_RATIO}:1; refusing a "
                "possible zip bomb",
                file=name,
            )


@contextmanager
def _workbook(path: Path, *, name: str):
    """The workbook, opened read-only; formulas arrive as text, never evaluated."""
    import openpyxl  # noqa: PLC0415 - only xlsx uploads pay for importing it

    with path.open("rb") as fh:  # a file object: openpyxl would refuse an odd file name
        try:
            wb = openpyxl.load_workbook(fh, read_only=True, data_only=False, keep_links=False)
        except Exception as exc:  # openpyxl raises many types for damaged workbooks
            raise ImportFileError(f"cannot open the workbook: {exc}", file=name) from None
        try:
            if not wb.worksheets:
                raise ImportFileError("the workbook has no sheets", file=name)
            yield wb
        finally:
            with suppress(Exception):
                wb.close()


def _sheet_rows(wb, *, name: str, **kwargs) -> Iterator[tuple]:
    """The first sheet's rows as values. A read-only workbook parses its sheet only now, so a
    damaged one (bad XML, a bad CRC, a broken deflate stream) fails here, not when opened."""
    rows = wb.worksheets[0].iter_rows(values_only=True, **kwargs)
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # ElementTree, zipfile, zlib and openpyxl raise many types
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise ImportFileError(f"cannot read the workbook: {reason}", file=name) from None
        yield values


def _xlsx_header(path: Path, *, name: str) -> list[str]:
    with _workbook(path, name=name) as wb:
        first = next(_sheet_rows(wb, name=name, min_row=1, max_row=1), ())
        return _name_columns([_cell_text(v) for v in first])


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    text = getattr(value, "text", None)  # ArrayFormula / DataTableFormula
    return str(text if text is not None else value)


def _iter_xlsx(
    path: Path, info: SourceInfo, *, name: str, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    columns = list(info.columns)
    width = len(columns)
    with _workbook(path, name=name) as wb:
        rows: list[int] = []
        data: list[list[str]] = [[] for _ in columns]
        extra: list[str] = []
        has_extra = False
        sheet_rows = _sheet_rows(wb, name=name, min_row=2)
        for rownum, values in enumerate(sheet_rows, start=2):
            cells = [_cell_text(v) for v in values]
            surplus = [c for c in cells[width:] if c]
            if not any(cells[:width]) and not surplus:
                continue  # an empty sheet row
            cells += [""] * (width - len(cells))
            for col, value in zip(data, cells, strict=False):
                col.append(value)
            extra.append(",".join(surplus))
            has_extra = has_extra or bool(surplus)
            rows.append(rownum)
            if len(rows) >= chunk_rows:
                yield _xlsx_frame(columns, data, rows, extra, has_extra)
                rows, data, extra, has_extra = [], [[] for _ in columns], [], False
        if rows:
            yield _xlsx_frame(columns, data, rows, extra, has_extra)


def _xlsx_frame(columns, data, rows, extra, has_extra) -> pd.DataFrame:
    cells = dict(zip(columns, data, strict=True))
    frame = pd.DataFrame(cells, dtype=object)
    frame[ROW_COLUMN] = np.asarray(rows, dtype=np.int64)
    if has_extra:
        frame[EXTRA_COLUMN] = extra
    return _mark_nul(frame, cells)
