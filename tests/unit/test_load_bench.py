"""The load benchmark's page reading: the draft editor's fields and the CSRF token as htmx
sends them, the edit that always changes the text, and the assets a browser fetches.
(The benchmark itself is not run here: tests never time.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

PAGE = """<!doctype html><html><head>
<link rel="stylesheet" href="/static/css/app.abc.css">
<script src="/static/django_htmx/htmx.min.js" defer></script>
<link rel="icon" href="/static/favicon.svg">
</head>
<body hx-headers='{"X-CSRFToken": "HXTOKEN"}'>
<form id="search"><input name="q" value="ignored"></form>
<form id="draft-editor" method="post">
  <input type="hidden" name="csrfmiddlewaretoken" value="FORMTOKEN">
  <input type="text" name="field-subject" value="Tea &amp; cake">
  <textarea name="field-body">
Hi Ann,

Line two &lt;3</textarea>
  <textarea name="field-empty"></textarea>
  <button type="submit">Save</button>
</form>
<script src="/static/js/app.js" defer></script>
<script src="/static/js/app.js" defer></script>
</body></html>"""


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("load_bench", ROOT / "benchmarks" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_read_form_takes_one_forms_fields_and_htmx_token(bench):
    fields, token = bench.read_form(PAGE, "draft-editor")
    assert token == "HXTOKEN"
    assert fields == {
        "csrfmiddlewaretoken": "FORMTOKEN",
        "field-subject": "Tea & cake",
        "field-body": "Hi Ann,\n\nLine two <3",  # the newline after <textarea> is not content
        "field-empty": "",
    }


def test_read_form_falls_back_to_the_forms_token(bench):
    page = '<form><input type="hidden" name="csrfmiddlewaretoken" value="T1"></form>'
    assert bench.read_form(page) == ({"csrfmiddlewaretoken": "T1"}, "T1")
    assert bench.read_form("<p>no form</p>") == ({}, "")


def test_toggle_sentence_alternates_and_never_grows(bench):
    text = "Hi.\n\nSee you soon."
    once = bench.toggle_sentence(text)
    assert once != text and once.startswith(text)
    assert bench.toggle_sentence(once) == text


def test_static_assets_lists_own_stylesheets_and_scripts_once(bench):
    assert bench.static_assets(PAGE) == [
        "/static/css/app.abc.css",
        "/static/django_htmx/htmx.min.js",
        "/static/favicon.svg",
        "/static/js/app.js",
    ]


def test_percentile_interpolates(bench):
    assert bench.percentile([], 0.95) == 0.0
    assert bench.percentile([5.0], 0.95) == 5.0
    assert bench.percentile([float(i) for i in range(1, 101)], 0.95) == pytest.approx(95.05)
