"""Exports, the Django side of the fast row path: the streamed query's one JSON array per
row, the attribute lookup cached per set of headers, and what a worker imports.

The streamed rows carry the draft's fields and product ids and the customer's attributes
as the text of one JSON array (one decode per row); `_attribute` ranks a customer's
headers once per distinct set. The import tests pin the memory work: a process that set
Django up and imported the export service, or ran what a starting worker runs, holds no
science library.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from copygen.models import Draft
from copygen.services import exports
from marketing.models import Product
from recommendations.services import artifacts
from recommendations.signals import resume_stalled_model_runs
from tests.copygen_factories import BriefFactory, mug
from tests.factories import CatalogFactory
from tests.test_exports_service import approved, csv_rows, export_of, grant_export_roles, person

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def export_settings(settings, tmp_path, monkeypatch):
    settings.DATA_DIR = tmp_path / "data"
    grant_export_roles()
    monkeypatch.setattr(exports.secrets, "randbits", lambda bits: 20_241_128)


def _attribute_reference(attributes: dict, keys) -> str:
    """`_attribute` as it was: clean every header of every row."""
    if not attributes:
        return ""
    found = {}
    for key, value in attributes.items():
        clean = re.sub(r"[^a-z0-9]", "", str(key).lower())
        if clean in keys and clean not in found and value not in (None, ""):
            found[clean] = str(value)
    for key in keys:
        if key in found:
            return found[key]
    return ""


HEADERS = st.sampled_from(
    ["Phone", "phone", "Mobile Phone", "mobile_phone", "TEL", "Tel.", "zip", "Post-Code", "x"]
)
VALUES = st.one_of(st.none(), st.just(""), st.text(max_size=4), st.integers(), st.booleans())


@settings(max_examples=400, deadline=None)
@given(attributes=st.dictionaries(HEADERS, VALUES, max_size=6))
def test_attribute_lookup_finds_what_cleaning_every_header_finds(attributes):
    for keys in (exports._PHONE_KEYS, exports._ZIP_KEYS):
        assert exports._attribute(attributes, keys) == _attribute_reference(attributes, keys)


@pytest.mark.django_db
def test_streamed_rows_decode_fields_products_and_attributes_together(export_settings, marketer):
    catalog = CatalogFactory(currency="GBP")
    first = mug(catalog, sku="MUG-1")
    second = mug(catalog, sku="MUG-2")
    brief = BriefFactory(catalog=catalog, channel="email", name="Spring email")
    # The best-ranked header with a value wins: "Phone" is empty, so the mobile number.
    pat = person(1, attributes={"Phone": "", "Mobile Phone": "01511 2345678", "Zip": 10115})
    kim = person(2, attributes={})
    gone = Product.objects.create(catalog=catalog, sku="GONE", title="Gone")
    draft = approved(brief, pat, products=[second, first])
    # Text ids count, junk does not, a product deleted since drafting is left out.
    Draft.objects.filter(pk=draft.pk).update(product_ids=[second.pk, str(first.pk), "x", gone.pk])
    approved(brief, kim, products=[first])
    gone.delete()

    rows = {r["customer_id"]: r for r in csv_rows(export_of(brief, marketer, preset="generic_csv"))}
    assert json.loads(rows["C-1"]["product_skus"]) == ["MUG-2", "MUG-1"]
    assert json.loads(rows["C-2"]["product_skus"]) == ["MUG-1"]

    klaviyo = csv_rows(export_of(brief, marketer, preset="klaviyo"))
    assert [r["Phone Number"] for r in klaviyo] == ["+4915112345678", ""]
    assert klaviyo[0]["tailor_email_subject"] == draft.fields["subject"]


WORKER_SCRIPT = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketing.settings")
import django
django.setup()
{work}
heavy = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "gensim", "plotly.graph_objects")
print(json.dumps([m for m in heavy if m in sys.modules]))
"""


def _science_libraries_loaded(work: str, data_dir: Path, **env: str) -> list[str]:
    """The science libraries a fresh process holds once Django is set up and ``work`` ran."""
    out = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT.format(work=work)],
        cwd=ROOT,
        env={**os.environ, "DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _database_url() -> str:
    """This test database, for a subprocess."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_worker_that_exports_loads_no_science_library(tmp_path):
    # The apps' ready() imports every task module and the admin: each imports the services
    # that need pandas, scikit-learn or gensim only when its task (or admin action) runs.
    work = "import copygen.services.exports  # what a worker running export_run needs"
    assert _science_libraries_loaded(work, tmp_path) == []


@pytest.mark.django_db
def test_a_starting_worker_with_no_model_run_work_loads_no_science_library(tmp_path):
    # worker_ready runs in the worker's main process: the model-run sweep (no run scoring)
    # and the orphaned-file cleanup (no model file) must not load numpy or pandas there.
    work = (
        "from celery.signals import worker_ready, worker_shutdown\n"
        "worker_ready.send(sender=None)  # what a starting worker runs\n"
        "worker_shutdown.send(sender=None)"
    )
    assert _science_libraries_loaded(work, tmp_path, DATABASE_URL=_database_url()) == []


@pytest.mark.django_db
def test_a_starting_worker_still_deletes_orphaned_model_files(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    orphan = artifacts.artifact_path(999_999)  # a run that no longer exists
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"model")
    resume_stalled_model_runs()
    assert not orphan.exists()
