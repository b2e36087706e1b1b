"""Campaign exports, the pure core: approved copy as files campaign tools import.

No Django, no Celery, no database (an import-linter contract enforces it). The Django side
picks the drafts (approved only), the customers (consenting, minus control groups) and
builds one `ExportRow` per draft and customer; this package turns rows into a file:

    from copygen.exporting import export_rows, preset_for

    preset = preset_for("mailchimp", channel=brief.channel)
    summary = export_rows(preset, rows, fileobj, excel_bom=False)
    # summary.written, summary.skipped, summary.warnings (ExportWarning: draft_id,
    # customer_id, column, reason, code, row_skipped), summary.codes

or, step by step:

    with open_writer(preset, fileobj) as writer:
        for row in rows:
            result = preset.render(row)          # RenderResult
            if result.record is not None:
                writer.write(result.record)
            ...result.warnings...

Modules: `normalize` (email, phone, names, countries, zips and SHA-256 by each target's
rules), `rows` (ExportRow, ExportProduct, RenderResult, ExportWarning), `split` (long text
over numbered fields), `presets` (one module per target, each documenting its columns and
limits), `writers` (streaming CSV / JSONL / JSON).
"""

from copygen.exporting.normalize import (
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_zip,
    phone_digits,
    sha256_hex,
    split_name,
)
from copygen.exporting.presets import PRESETS, Preset, preset_for
from copygen.exporting.rows import ExportProduct, ExportRow, ExportWarning, RenderResult
from copygen.exporting.writers import ExportSummary, export_rows, open_writer

__all__ = [
    "PRESETS",
    "ExportProduct",
    "ExportRow",
    "ExportSummary",
    "ExportWarning",
    "Preset",
    "RenderResult",
    "export_rows",
    "normalize_country",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "normalize_zip",
    "open_writer",
    "phone_digits",
    "preset_for",
    "sha256_hex",
    "split_name",
]
