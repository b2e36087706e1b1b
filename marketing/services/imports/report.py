"""The rejected-rows report: row-level issues streamed to a formula-safe CSV, then attached to
the job."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from django.core.files import File

from marketing.analytics.importing import Issue
from marketing.csvsafe import safe_cell
from marketing.models import Job

REPORT_HEADER = ["row", "column", "value", "reason", "action"]


class IssueWriter:
    """Streams row-level issues to a CSV file (formula-safe) and counts them: rejected rows,
    values kept as text, and lines written."""

    def __init__(self, path: Path, file_name: str) -> None:
        self._fh = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh)
        self._csv.writerow(["file", *REPORT_HEADER])
        self.file_name = file_name
        self.rejected_rows: set[int] = set()
        self.kept = 0
        self.lines = 0  # issues written: the report's row count

    def write(self, issues: Iterable[Issue]) -> None:
        for issue in issues:
            self.lines += 1
            if issue.action == "rejected":
                self.rejected_rows.add(issue.row)
            else:
                self.kept += 1
            self._csv.writerow(
                [
                    safe_cell(self.file_name),
                    issue.row,
                    safe_cell(issue.column),
                    safe_cell(issue.value),
                    safe_cell(issue.reason),
                    issue.action,
                ]
            )

    def close(self) -> None:
        self._fh.close()


def attach_report(job: Job, path: Path) -> None:
    """Store the issues CSV as the job's rejected-rows report (the temporary file stays the
    caller's to delete)."""
    with path.open("rb") as fh:
        job.report_file.save(f"job-{job.pk}-rejected-rows.csv", File(fh), save=False)
    Job.objects.filter(pk=job.pk).update(report_file=job.report_file.name)
