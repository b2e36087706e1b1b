"""Pure import core: recognise an uploaded file, stream it, validate and normalise it.

Imports only the standard library, numpy, pandas and openpyxl. The Django service
(`marketing/services/imports/`) drives it: `sniff` -> (the user fixes the mapping) ->
`Cleaner.clean` per frame from `iter_frames` -> database writes. See
docs/import-core-contract.md.
"""

from .cleaning import CleanedChunk, Cleaner, CleanOptions
from .errors import CleanOptionError, ImportFileError, Issue
from .fields import EVENT_KINDS, FIELDS, KINDS, FieldSpec, auto_map, missing_required
from .formats import SourceInfo, iter_frames, sniff

__all__ = [
    "EVENT_KINDS",
    "FIELDS",
    "KINDS",
    "CleanOptionError",
    "CleanOptions",
    "CleanedChunk",
    "Cleaner",
    "FieldSpec",
    "ImportFileError",
    "Issue",
    "SourceInfo",
    "auto_map",
    "iter_frames",
    "missing_required",
    "sniff",
]
