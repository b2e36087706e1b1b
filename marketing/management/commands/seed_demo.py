"""Demo users (one per role) and demo catalogs imported from the samples in demo/.

Idempotent: users keep their passwords, catalogs that already hold events are left alone.
Passwords come from DEMO_PASSWORD or are generated once and kept in DATA_DIR/demo-logins.txt.
"""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

from marketing.analytics.importing import auto_map
from marketing.models import Catalog, Event, Job, Upload
from marketing.services.imports import import_run, upload_from_path
from marketing.services.jobs import job_create, worker_name

DEMO_DIR = Path(settings.BASE_DIR) / "demo"
DEMO_USERS = [
    ("admin", "admin", True),
    ("marketer", "marketer", False),
    ("approver", "approver", False),
]
DEMO_CATALOGS = [
    {
        "name": "Online Retail (demo)",
        "currency": "GBP",
        "timezone": "Europe/London",
        "file": "online_retail_sample.csv.gz",
        "kind": Upload.Kind.ONLINE_RETAIL,
    },
    {
        "name": "Clothing reviews (demo)",
        "currency": "USD",
        "timezone": "America/New_York",
        "file": "clothing_reviews_sample.csv.gz",
        "kind": Upload.Kind.REVIEWS,
    },
]


class Command(BaseCommand):
    help = "Create demo users and import the demo data (safe to run again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-data", action="store_true", help="Only create the users.")

    def handle(self, *args, no_data: bool = False, **options) -> None:
        logins = self._users()
        if not no_data:
            admin = User.objects.get(username="admin")
            for spec in DEMO_CATALOGS:
                self._catalog(spec, admin)
        self.stdout.write("\nDemo logins:")
        for username, password in logins:
            self.stdout.write(f"  {username:10} {password}")

    def _users(self) -> list[tuple[str, str]]:
        store = Path(settings.DATA_DIR) / "demo-logins.txt"
        saved: dict[str, str] = {}
        if store.exists():
            for line in store.read_text().splitlines():
                name, _, pw = line.partition(" ")
                saved[name] = pw
        logins = []
        for username, role, superuser in DEMO_USERS:
            password = (
                os.environ.get("DEMO_PASSWORD") or saved.get(username) or secrets.token_urlsafe(9)
            )
            user, created = User.objects.get_or_create(username=username)
            if created or os.environ.get("DEMO_PASSWORD") or username not in saved:
                user.set_password(password)
            user.is_staff = superuser
            user.is_superuser = superuser
            user.save()
            user.groups.add(Group.objects.get(name=role))
            logins.append((username, password))
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text("".join(f"{u} {p}\n" for u, p in logins))
        store.chmod(0o600)
        return logins

    def _catalog(self, spec: dict, admin: User) -> None:
        catalog, _ = Catalog.objects.get_or_create(
            name=spec["name"],
            defaults={"currency": spec["currency"], "timezone": spec["timezone"]},
        )
        if Event.objects.filter(catalog=catalog).exists():
            self.stdout.write(f"{catalog}: already loaded")
            return
        source = DEMO_DIR / spec["file"]
        self.stdout.write(f"{catalog}: importing {source.name} …")
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / source.name.removesuffix(".gz")
            with gzip.open(source, "rb") as src, plain.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            upload = upload_from_path(catalog=catalog, kind=spec["kind"], path=plain, user=admin)
        columns = upload.detected["columns"]
        job = job_create(
            kind=Job.Kind.IMPORT,
            user=admin,
            catalog=catalog,
            params={
                "upload_id": upload.pk,
                "mapping": auto_map(columns, spec["kind"]),
                "file": upload.original_name,
            },
        )
        import_run(job_id=job.pk, worker=worker_name())
        job.refresh_from_db()
        self.stdout.write(f"{catalog}: {job.get_status_display().lower()} — {job.message}")
