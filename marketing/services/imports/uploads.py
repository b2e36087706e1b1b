"""Upload and start: store a file, sniff it, and queue the import job for a confirmed mapping."""

from __future__ import annotations

import contextlib
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from marketing.analytics.importing import ImportFileError, SourceInfo, missing_required, sniff
from marketing.models import Catalog, Job, Upload
from marketing.permissions import require_perm
from marketing.services.jobs import job_create, job_enqueue

# A customer erasure removes a stored file that names the customer; the row stays.
UPLOAD_FILE_REMOVED = (
    "The stored file was removed when a customer it names was erased. "
    "Upload the file again to import it."
)


def upload_create(*, catalog: Catalog, kind: str, file: UploadedFile, user) -> Upload:
    """Store an uploaded file and sniff it; file-level problems raise ImportFileError."""
    require_perm(user, "marketing.import_data")
    return store_upload(
        catalog=catalog, kind=kind, name=file.name, size=file.size, fileobj=file, user=user
    )


def upload_from_path(*, catalog: Catalog, kind: str, path: Path, user, name: str = "") -> Upload:
    """Register a file already on this machine as an upload (demo loader, benchmarks)."""
    with Path(path).open("rb") as fh:
        return store_upload(
            catalog=catalog,
            kind=kind,
            name=name or Path(path).name,
            size=Path(path).stat().st_size,
            fileobj=File(fh),
            user=user,
        )


def store_upload(
    *, catalog: Catalog, kind: str, name: str | None, size: int | None, fileobj, user
) -> Upload:
    """Save ``fileobj`` as an upload of ``kind`` and sniff it (the caller checked the
    permission); an oversized, empty or unreadable file raises ImportFileError and leaves
    nothing on disk."""
    if kind not in Upload.Kind.values:
        raise ValidationError(f"Unknown import kind {kind!r}")
    name = Path(name or "upload").name
    limit = settings.IMPORT_MAX_BYTES
    if size is not None and size > limit:
        # MB as the import core counts them (2**20 bytes), so the default 200 MB limit reads 200.0.
        raise ImportFileError(
            f"file is {size / 2**20:.1f} MB, over the {limit / 2**20:.1f} MB limit", file=name
        )
    if not size:
        raise ImportFileError("file is empty", file=name)
    upload = Upload(catalog=catalog, kind=kind, original_name=name, size=size, created_by=user)
    upload.file.save(name, fileobj, save=False)
    try:
        info = sniff(upload.file.path, name=name, max_bytes=limit)
        upload.detected = _info_to_json(info)
        upload.save()
    except BaseException:
        # Whatever went wrong (a file error, or a bug the page reports as a 500), no row
        # points at the stored file: remove it rather than leave an orphan on disk.
        with contextlib.suppress(OSError):
            upload.file.delete(save=False)
        raise
    return upload


def _info_to_json(info: SourceInfo) -> dict:
    return {
        "format": info.format,
        "encoding": info.encoding,
        "delimiter": info.delimiter,
        "columns": list(info.columns),
        "sample": [dict(r) for r in info.sample],
    }


def import_start(*, upload: Upload, mapping: dict[str, str | None], user) -> Job:
    """Create the import job and enqueue it once the transaction commits."""
    require_perm(user, "marketing.import_data")
    if upload.kind == Upload.Kind.CAMPAIGN_RESULTS:
        raise ValidationError("Campaign results are imported from the export's page.")
    return upload_job_start(
        upload=upload,
        mapping=mapping,
        user=user,
        job_kind=Job.Kind.IMPORT,
        catalog=upload.catalog,
        message=f"Queued: {upload.get_kind_display()} from {upload.original_name}",
    )


def upload_job_start(
    *,
    upload: Upload,
    mapping: dict[str, str | None],
    user,
    job_kind: str,
    catalog: Catalog,
    message: str,
    params: dict | None = None,
) -> Job:
    """Check a confirmed mapping against the upload, then queue its job of ``job_kind``
    (enqueued on commit) with ``params`` beside the upload, mapping and file name. The
    caller checked the permission and what the upload is for.

    ValidationError when the upload lost its file or the mapping names columns the file
    lacks or leaves a required field out. A second start of the same upload (a
    double-submitted form) returns the first job, unless that job never ran because the
    job queue could not be reached: then the user's retry queues a new one.
    """
    if not upload.file:
        raise ValidationError(UPLOAD_FILE_REMOVED)
    columns = upload.detected.get("columns", [])
    mapping = {k: (v or None) for k, v in mapping.items()}
    unknown = [v for v in mapping.values() if v and v not in columns]
    if unknown:
        raise ValidationError(f"Mapped columns not in the file: {', '.join(unknown)}")
    missing = missing_required(mapping, upload.kind, columns)
    if missing:
        raise ValidationError(f"Required fields not mapped: {', '.join(missing)}")
    with transaction.atomic():
        # A double-submitted mapping form must not import the same upload twice.
        Upload.objects.select_for_update().filter(pk=upload.pk).exists()
        existing = (
            Job.objects.filter(kind=job_kind, params__upload_id=upload.pk)
            .exclude(status=Job.Status.FAILED, attempts=0)  # never sent: see job_enqueue
            .order_by("-pk")
            .first()
        )
        if existing is not None:
            return existing
        job = job_create(
            kind=job_kind,
            user=user,
            catalog=catalog,
            params={
                "upload_id": upload.pk,
                **(params or {}),
                "mapping": mapping,
                "file": upload.original_name,
            },
            message=message,
        )
        job_enqueue(job)
    return job
