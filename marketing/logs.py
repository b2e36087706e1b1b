"""Log output: plain text or one JSON object per line (LOG_FORMAT), with e-mail addresses masked.

Log collectors (Loki, CloudWatch, Elastic) index JSON fields without parsing rules, so a line
carries `time`, `level`, `logger`, `message`, the `request_id` of the web request it belongs
to and the `job_id` of the job it names. The code already names jobs in a fixed way
(``logger.error("import job %s failed: …", job.pk)``), so the job id is read from the call's
arguments instead of changing every call site.

Messages avoid personal data by contract, but exception texts are not ours: a database error
quotes the row it refused. Both formats therefore mask anything shaped like an e-mail address
in the finished line, tracebacks included.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The id of the web request being handled (empty outside one: workers, management commands).
REQUEST_ID: ContextVar[str] = ContextVar("tailor_request_id", default="")

EMAIL_MASK = "[email]"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# "import job %s", "report of job %s": the argument after "job " is the job's id.
_JOB_ARGUMENT = re.compile(r"\bjob %[sdr]")
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")
# A request id a proxy sent us is kept only when it cannot smuggle anything into a log line.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def redact(text: str) -> str:
    """The text with every e-mail address replaced by a mask."""
    return _EMAIL.sub(EMAIL_MASK, text)


def job_id_of(record: logging.LogRecord) -> int | None:
    """The job a record names by the project's convention (``job %s`` with the id as argument)."""
    msg, args = record.msg, record.args
    if not isinstance(msg, str) or not isinstance(args, tuple):
        return None
    found = _JOB_ARGUMENT.search(msg)
    if found is None:
        return None
    before = [p for p in _PLACEHOLDER.findall(msg[: found.start() + 4]) if p != "%%"]
    index = len(before)
    if index >= len(args):
        return None
    value = args[index]
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


class ContextFilter(logging.Filter):
    """Adds `request_id` and `job_id` to a record when they are known (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id and not hasattr(record, "request_id"):
            record.request_id = request_id
        if not hasattr(record, "job_id"):
            job_id = job_id_of(record)
            if job_id is not None:
                record.job_id = job_id
        return True


class TemplateContextFilter(logging.Filter):
    """Drops the traceback of Django's DEBUG "Exception while resolving variable" records.

    Its last exception (VariableDoesNotExist) prints the whole template context: the customers
    of a list, an upload's preview rows, the search typed. The message itself names only the
    variable and the template, which is what debugging a template needs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            record.exc_info = None
            record.exc_text = None
        return True


class TextFormatter(logging.Formatter):
    """The classic one-line text format, e-mail addresses masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and extras.

    Django attaches the request object to its request and server log records; a JSON encoder
    would print its repr (with the query string, which may hold a search for an e-mail
    address), so only the method and path are kept.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", ["levelname", "name", "message"])
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        request = log_data.pop("request", None)
        if isinstance(request, HttpRequest):
            log_data["method"] = request.method
            log_data["path"] = request.path
        log_data.pop("server_time", None)
        # Time first, as people read a line; the other keys keep their order.
        fields = dict(log_data)
        log_data.clear()
        log_data["time"] = fields.pop("time", None)
        log_data.update(fields)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RequestIdMiddleware:
    """Gives each request an id for its log lines, and returns it as ``X-Request-ID``.

    A well-formed id from the proxy in front (the same header) is kept, so a request can be
    followed from the proxy's log into ours; anything else gets a fresh random id.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sent = request.headers.get("X-Request-ID", "")
        request_id = sent if _CLIENT_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        response["X-Request-ID"] = request_id
        return response
