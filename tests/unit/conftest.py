"""Helpers for the import-core tests: write a file, run sniff -> iter_frames -> Cleaner."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from marketing.analytics.importing import (
    Cleaner,
    CleanOptions,
    Issue,
    SourceInfo,
    auto_map,
    iter_frames,
    sniff,
)

UPLOAD_TIME = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class ImportRun:
    info: SourceInfo
    products: pd.DataFrame
    customers: pd.DataFrame
    events: pd.DataFrame
    issues: list[Issue]
    counts: dict[str, int]
    chunks: int

    def rejected(self) -> list[Issue]:
        return [i for i in self.issues if i.action == "rejected"]


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    if isinstance(content, str):
        content = content.encode(encoding)
    path.write_bytes(content)
    return path


def run_import(
    path: Path,
    kind: str,
    *,
    mapping: dict[str, str | None] | None = None,
    chunk_rows: int = 100_000,
    **options,
) -> ImportRun:
    info = sniff(path, name=path.name, max_bytes=50 * 1024 * 1024)
    options.setdefault("catalog_id", 1)
    options.setdefault("default_time", UPLOAD_TIME)
    cleaner = Cleaner(kind, mapping or auto_map(info.columns, kind), CleanOptions(**options))
    parts = [
        cleaner.clean(f) for f in iter_frames(path, info, name=path.name, chunk_rows=chunk_rows)
    ]
    return ImportRun(
        info=info,
        products=pd.concat([p.products for p in parts], ignore_index=True),
        customers=pd.concat([p.customers for p in parts], ignore_index=True),
        events=pd.concat([p.events for p in parts], ignore_index=True),
        issues=[i for p in parts for i in p.issues],
        counts=dict(cleaner.counts),
        chunks=len(parts),
    )


@pytest.fixture
def csv_import(tmp_path):
    """csv_import(text, kind, name=..., **options) -> ImportRun."""

    def run(content: str | bytes, kind: str, *, name: str = "data.csv", **kwargs) -> ImportRun:
        return run_import(write(tmp_path / name, content), kind, **kwargs)

    return run
