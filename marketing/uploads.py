"""Upload handlers: refuse an import file over IMPORT_MAX_BYTES while it arrives, not after.

Django's default handlers keep every byte of an upload (in memory, then in a temporary
file) before the view sees it, so a size check in the view or the service runs only once a
file of any size sits on disk. `ImportSizeLimitHandler` goes first in the request's handler
list. It refuses the file up front when the request's Content-Length already says it is too
big, and otherwise counts the bytes as they arrive and stops before the limit is passed. A
refused file is skipped: the handlers after it never store its bytes (the rest of the body is
read and thrown away, so the page can still answer with a message), and the reason waits in
`handler.error` for the view to show.

Install it per request (`imports.upload_create` does) or for every request in
settings.FILE_UPLOAD_HANDLERS, first in the list; the view reuses an installed one.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest

# What a multipart body carries besides the file: the boundaries, each part's headers, the
# CSRF token and the kind. Bodies up to the limit plus this much are judged by counting.
MULTIPART_OVERHEAD = 64 * 1024


def _size(n: int) -> str:
    """MB as the import service counts them (2**20 bytes), so 200 MiB reads "200.0 MB"."""
    if n < 2**20 // 10:
        return f"{n / 1024:.1f} KB"
    return f"{n / 2**20:.1f} MB"


def too_big_message(*, name: str, limit: int, size: int | None = None) -> str:
    """The message the import service gives for a big file: "big.csv: file is 2.8 MB, …"."""
    if size is None:
        reason = f"file is over the {_size(limit)} limit"
    else:
        reason = f"file is {_size(size)}, over the {_size(limit)} limit"
    return f"{name}: {reason}" if name else reason


class ImportSizeLimitHandler(FileUploadHandler):
    """Skips a file bigger than settings.IMPORT_MAX_BYTES and records why in `error`."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = settings.IMPORT_MAX_BYTES
        self.request_size: int | None = None
        self.received = 0
        self.error: str | None = None

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None) -> None:
        """Note the body's size; returning None lets the multipart parser do the parsing."""
        self.limit = settings.IMPORT_MAX_BYTES  # read per request (tests change it)
        self.request_size = content_length or None
        self.received = 0
        self.error = None

    def new_file(self, field_name, file_name, *args, **kwargs) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        self.received = 0
        if self.request_size is not None and self.request_size > self.limit + MULTIPART_OVERHEAD:
            # The file cannot be smaller than the body minus a few headers: refuse it before
            # a single byte is stored. The body's size stands in for the file's.
            self._refuse(size=self.request_size)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.limit:
            self._refuse(size=None)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        """The storing handlers after this one build the file object."""
        return None

    def _refuse(self, *, size: int | None) -> None:
        self.error = too_big_message(name=self.file_name or "", limit=self.limit, size=size)
        raise SkipFile(self.error)


def install_size_limit(request: HttpRequest) -> ImportSizeLimitHandler:
    """The request's size-limit handler, moved or added first (call before reading the body).

    Reuses one from settings.FILE_UPLOAD_HANDLERS, so it never counts a file twice.
    """
    handlers = request.upload_handlers
    installed = [h for h in handlers if isinstance(h, ImportSizeLimitHandler)]
    handler = installed[0] if installed else ImportSizeLimitHandler(request)
    for old in installed:
        handlers.remove(old)
    handlers.insert(0, handler)
    return handler
