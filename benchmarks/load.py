"""Load test: 20 marketers browse and edit for 2 minutes against gunicorn + PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tailor_bench \\
        .venv/bin/python benchmarks/load.py [--users 20] [--duration 120] \\
        [--redis redis://127.0.0.1:6379/0] [--reseed]

Works in its own database (DATABASE_URL's name plus ``_bench_load``, or ``--database``),
created if missing and migrated. Set-up, in a child process and reused by later runs
(``--reseed`` builds it again), not part of the figures: the synthetic shop of
``benchmarks/copy_scale.py``'s ``prepare`` (165k customers → ~104k profiled, with RFM and
learned segments, the rule segment "every profiled customer" and a current RP3β run with
lists for every customer), the three rule segments of ``benchmarks/profiles.py``, and a
one-email-per-customer brief (2 variants) over one of them, drafted in-process by the
drafting job's own service; then ``--users`` marketer accounts (one password, new each run)
and ``VACUUM ANALYZE`` (what autovacuum keeps up in production).

Served as in production: ``gunicorn marketing.wsgi`` with 2 gthread workers × 4 threads
(``--workers``, ``--threads``) and a 5 s keep-alive, DEBUG=0, REQUIRE_SECRET_KEY=1 with a
SECRET_KEY, HTTPS=0 (plain http on the loopback: no redirect; CSP and the other headers as
deployed), persistent database connections (DB_CONN_MAX_AGE=60), the Redis cache
(``--redis``; login throttling counts there) and static files collected into a temporary
STATIC_ROOT and served by whitenoise. Passwords use Django's default hasher.

Load: locust as a library in this process (gevent, one core at most), ``--users`` users
started 2 per second (``--spawn-rate``), each waiting 1–3 s between tasks. Each logs in
through the real login form (GET, CSRF token, POST, 302 to the dashboard), fetches the
page's stylesheet, scripts and icon once as a browser with an empty cache does, then picks
tasks with the weights of WEIGHTS: dashboard; segment list and a
segment; customer list, a search, a profile; the recommendation run and a customer's lists
under it; the brief, the draft list and a draft; and editing a draft — GET its page, then
POST the editor's fields with one sentence added or removed, with the page's CSRF token in
``X-CSRFToken`` and ``HX-Request: true`` as htmx sends it; the answer must be the
``#draft-main`` fragment saying "Saved revision". Every answer must be 200 (302 for the
login) without a redirect, and carry a marker of the page it is; anything else counts as an
error. Before the clock starts, one untimed visit of every kind warms the workers (model
artifact, caches). At the end the users finish the task in hand, so no request is cut off.

The measured run waits for a quiet machine: it takes ``flock /tmp/tailor-bench.lock`` and
checks the 1-minute load average is below ``--max-load`` (1.5), else releases the lock, waits
and tries again (``--wait-s`` at most). Printed: a table per endpoint (requests, errors, p50,
p95, p99, max, mean in ms), the load averages, and last a JSON line
{"requests", "errors", "p95_ms"} (overall p95 of every request, login and static included);
the full figures go to ``--json``. Targets: 0 errors and p95 ≤ 300 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlparse

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts benchmarks/ first on sys.path, where api.py would shadow the
# Django app `api`: take it off; the set-up child imports the benchmarks' modules once
# Django has imported the real `api`.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import bench_url, loadavg  # noqa: E402

CATALOG_NAME = "Load benchmark s7"
BRIEF_NAME = "Load: win-back email"
BRIEF_SEGMENT = "Bench: likely to churn, email allowed"
USER_PREFIX = "load-marketer-"
TARGET_P95_MS = 300.0
LOCK_PATH = "/tmp/tailor-bench.lock"
SAMPLE = 400  # customers and drafts the users pick from
EDIT_SUFFIX = " Reply to this email if you have any questions."


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# ----------------------------------------------------------------------------- HTML helpers


class _FormReader(HTMLParser):
    """Collects the named inputs and textareas of one form (by id), and the CSRF token of
    the page's ``<body hx-headers>`` (what htmx sends) or of any form."""

    def __init__(self, form_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.in_form = False
        self.fields: dict[str, str] = {}
        self.textarea: str | None = None
        self.hx_token = ""
        self.form_token = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body" and a.get("hx-headers"):
            with contextlib.suppress(ValueError, AttributeError):
                self.hx_token = json.loads(a["hx-headers"]).get("X-CSRFToken", "")
        if tag == "form" and (self.form_id is None or a.get("id") == self.form_id):
            self.in_form = True
        if tag == "input" and a.get("name") == "csrfmiddlewaretoken" and not self.form_token:
            self.form_token = a.get("value", "")
        if not self.in_form:
            return
        if tag == "input" and a.get("name") and a.get("type", "text") not in ("submit", "button"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "textarea" and a.get("name"):
            self.textarea = a["name"]
            self.fields[self.textarea] = ""

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.fields[self.textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self.textarea = None
        elif tag == "form":
            self.in_form = False


def read_form(html: str, form_id: str | None = None) -> tuple[dict[str, str], str]:
    """(the form's fields by name, the page's CSRF token: htmx's header value, else the
    form's hidden input). A textarea's value loses the one newline HTML drops after its
    start tag, as a browser does."""
    reader = _FormReader(form_id)
    reader.feed(html)
    fields = {k: v[1:] if v.startswith("\n") else v for k, v in reader.fields.items()}
    return fields, reader.hx_token or reader.form_token


def toggle_sentence(text: str, sentence: str = EDIT_SUFFIX) -> str:
    """The text with ``sentence`` removed from its end if it is there, else appended, so
    every save changes the draft and the text never grows."""
    if text.endswith(sentence):
        return text[: -len(sentence)]
    return text + sentence


_ASSET = re.compile(r'<(?:link[^>]+href|script[^>]+src)="(/static/[^"]+)"')


def static_assets(html: str) -> list[str]:
    """The page's own stylesheets and scripts (what a browser with an empty cache fetches)."""
    return list(dict.fromkeys(_ASSET.findall(html)))


# ----------------------------------------------------------------------------- set-up (child)


def seed(args: argparse.Namespace) -> dict:
    """The data and accounts the users need (each part unless present); runs in a child."""
    from benchmarks._common import django_setup, ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    django_setup()  # imports the Django app `api` before benchmarks/ goes on sys.path
    sys.path.insert(0, _HERE)
    import copy_scale  # benchmarks/copy_scale.py: data, profiles, segment, recommendations
    import profiles as profiles_bench  # benchmarks/profiles.py: rule segments, the user
    from django.conf import settings
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection, transaction

    from copygen.models import Brief, Draft
    from copygen.services.briefs import brief_create, brief_draft_start
    from copygen.services.drafting import drafting_run
    from marketing.celery import app as celery_app
    from marketing.models import Catalog, Job, Profile, Segment
    from marketing.services import segments as segment_service
    from recommendations.models import ModelRun

    call_command("migrate", verbosity=0)
    prep = argparse.Namespace(
        customers=args.customers,
        events=args.events,
        products=args.products,
        seed=args.seed,
        work=args.work,
        reload=args.reseed,
    )
    figures = copy_scale.prepare(prep, CATALOG_NAME)
    fresh = not figures["load"].get("reused")
    catalog = Catalog.objects.get(name=CATALOG_NAME)
    owner = profiles_bench.bench_user()

    made = []
    for name, rule in profiles_bench.RULE_SEGMENTS:
        existing = Segment.objects.filter(catalog=catalog, kind=Segment.Kind.RULE, name=name)
        if fresh or not existing.exists():
            existing.delete()
            segment_service.segment_rule_create(user=owner, catalog=catalog, name=name, rule=rule)
            made.append(name)
    if made:
        print(f"set-up: rule segments {made}", flush=True)

    brief = Brief.objects.filter(catalog=catalog, name=BRIEF_NAME).first()
    drafted = brief is not None and brief.job is not None and brief.job.status == "succeeded"
    if fresh or made or not drafted:
        if brief is not None:
            brief.delete()
        segment = Segment.objects.get(catalog=catalog, name=BRIEF_SEGMENT)
        brief = brief_create(
            user=owner,
            catalog=catalog,
            name=BRIEF_NAME,
            audience=Brief.Audience.CUSTOMERS,
            segment=segment,
            channel="email",
            tone="friendly",
            locales=["en"],
            source=Brief.Source.RECOMMENDATIONS,
            products_per_message=2,
            variants=2,
        )
        settings.COPY_DRAFT_PARALLEL = 1  # this process drafts every chunk itself
        with transaction.atomic():
            job = brief_draft_start(brief=brief, user=owner)
        celery_app.control.purge()  # the queued task: drafted here instead
        start = time.perf_counter()
        drafting_run(job_id=job.pk, worker="load-benchmark")
        job.refresh_from_db()
        if job.status != Job.Status.SUCCEEDED:
            raise SystemExit(f"drafting job {job.status}: {job.error}")
        print(
            f"set-up: {brief.drafts.count():,} drafts for {segment.size:,} customers in "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )

    # Accounts: marketers with one password, new each run (one hash for all of them).
    password = secrets.token_urlsafe(18)
    hashed = make_password(password)
    marketer = Group.objects.get(name="marketer")
    usernames = [f"{USER_PREFIX}{i:02d}" for i in range(1, args.users + 1)]
    for username in usernames:
        user, _ = User.objects.get_or_create(username=username)
        user.password = hashed
        user.is_active = True
        user.save(update_fields=["password", "is_active"])
        user.groups.set([marketer])

    rng = random.Random(args.seed)
    run = ModelRun.objects.get(catalog=catalog, is_current=True)
    profiled = list(Profile.objects.filter(catalog=catalog).values_list("customer_id", flat=True))
    customers = rng.sample(profiled, min(SAMPLE, len(profiled)))
    from marketing.models import Customer

    people = list(
        Customer.objects.filter(pk__in=customers[:40]).values_list("external_id", "name", "email")
    )
    searches = []
    for i, (external_id, name, email) in enumerate(people):
        # Shapes people type: a whole customer id, part of a name, an email, a country.
        choice = [external_id, (name or "").split(" ")[-1], email, "germany"][i % 4]
        if choice:
            searches.append(choice)
    pending = list(
        Draft.objects.filter(brief=brief, status=Draft.Status.PENDING).values_list("pk", flat=True)
    )
    drafts = rng.sample(pending, min(SAMPLE, len(pending)))
    with connection.cursor() as cursor:
        # What autovacuum keeps up in production (visibility maps for index-only scans,
        # statistics); a server running without it would otherwise be measured unvacuumed.
        cursor.execute("VACUUM ANALYZE")
    return {
        "catalog": catalog.pk,
        "segments": list(
            Segment.objects.filter(catalog=catalog).order_by("pk").values_list("pk", flat=True)
        ),
        "customers": customers,
        "searches": searches,
        "countries": list(
            Customer.objects.exclude(country="")
            .order_by("country")
            .values_list("country", flat=True)
            .distinct()
        ),
        "run": run.pk,
        "brief": brief.pk,
        "drafts": drafts,
        "draft_pages": max(1, min(10, len(pending) // 50)),
        "customer_pages": max(1, min(20, len(profiled) // 50)),
        "usernames": usernames,
        "password": password,
        "sizes": {
            "customers": Customer.objects.count(),
            "profiles": len(profiled),
            "segments": Segment.objects.filter(catalog=catalog).count(),
            "rule_segments": Segment.objects.filter(
                catalog=catalog, kind=Segment.Kind.RULE
            ).count(),
            "drafts": brief.drafts.count(),
            "pending_drafts": len(pending),
        },
        "setup": {k: v for k, v in figures.items() if k != "load"} | {"load": figures["load"]},
    }


def seed_child(raw: str) -> None:
    args = argparse.Namespace(**json.loads(raw))
    args.work = Path(args.work)
    out = seed(args)
    print("CHILD " + json.dumps(out, default=str), flush=True)


def run_seed(args: argparse.Namespace) -> dict:
    """The set-up in a child process (Django and the heavy libraries stay out of this one,
    which runs gevent for locust)."""
    raw = json.dumps(
        {
            "customers": args.customers,
            "events": args.events,
            "products": args.products,
            "seed": args.seed,
            "work": str(args.work),
            "reseed": args.reseed,
            "users": args.users,
        }
    )
    result = None
    with subprocess.Popen(
        [sys.executable, __file__, "--seed-child", raw],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    ) as proc:
        for line in proc.stdout:  # the set-up's progress as it comes
            if line.startswith("CHILD "):
                result = json.loads(line[len("CHILD ") :])
            else:
                print(line, end="", flush=True)
    if proc.returncode != 0 or result is None:
        raise SystemExit("the set-up failed")
    return result


# ----------------------------------------------------------------------------- the server


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(args: argparse.Namespace, static_root: str) -> dict[str, str]:
    """Production settings on plain http (no TLS here, so HTTPS=0: no redirect)."""
    return os.environ | {
        "DEBUG": "0",
        "REQUIRE_SECRET_KEY": "1",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "HTTPS": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DB_CONN_MAX_AGE": "60",
        "CACHE_BACKEND": "django.core.cache.backends.redis.RedisCache",
        "CACHE_LOCATION": args.redis,
        "STATIC_ROOT": static_root,
        "LOG_LEVEL": "WARNING",
    }


def start_server(args: argparse.Namespace, env: dict[str, str], port: int, log: Path):
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    out = log.open("w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "marketing.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(args.threads),
            "--timeout",
            "60",
            # Longer than the users' 3 s between requests: a server that closes an idle
            # connection just as the client reuses it resets that request (browsers retry
            # it, requests does not). Gunicorn's docs: 1-5 s when clients connect directly.
            "--keep-alive",
            "5",
            "--worker-tmp-dir",
            "/dev/shm",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def wait_ready(host: str, server, timeout_s: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{host}/health/", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"gunicorn did not answer /health/ within {timeout_s:.0f} s")


@contextlib.contextmanager
def quiet_machine(max_load: float, wait_s: float):
    """Hold the benchmark lock while the 1-minute load average is below ``max_load``;
    otherwise release it, wait and try again (at most ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    with open(LOCK_PATH, "a") as fh:
        while True:
            fcntl.flock(fh, fcntl.LOCK_EX)
            load = os.getloadavg()[0]
            if load < max_load:
                break
            fcntl.flock(fh, fcntl.LOCK_UN)
            if time.monotonic() > deadline:
                raise SystemExit(f"load average stayed at or above {max_load} ({load:.2f})")
            print(f"load average {load:.2f} ≥ {max_load}: waiting", flush=True)
            time.sleep(30)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- the users


def make_user_class(host: str, data: dict, weights: dict[str, int]):
    """The locust user: a marketer who logs in once, then browses and edits."""
    import itertools

    from locust import HttpUser, between, task

    names = itertools.cycle(data["usernames"])
    catalog, run, brief = data["catalog"], data["run"], data["brief"]

    class Marketer(HttpUser):
        wait_time = between(1, 3)

        def on_start(self) -> None:
            self.client.headers["User-Agent"] = "tailor-load-benchmark"
            self.rng = random.Random()
            self.login(next(names), data["password"])

        # -- requests

        def get(self, path: str, name: str, marker: str, headers: dict | None = None) -> str:
            """GET ``path``; an error unless 200 (no redirect) with ``marker`` in the page."""
            with self.client.get(
                path, name=name, headers=headers, allow_redirects=False, catch_response=True
            ) as response:
                if response.status_code == 0:  # no answer: requests' exception
                    response.failure(f"no answer: {response.error!r}"[:200])
                    return ""
                if response.status_code != 200:
                    location = response.headers.get("Location", "")
                    response.failure(f"status {response.status_code} {location}".strip())
                    return ""
                if marker not in response.text:
                    response.failure(f"no {marker!r} in the page")
                    return ""
                response.success()
                return response.text

        def login(self, username: str, password: str) -> None:
            html = self.get("/accounts/login/", "login form", 'name="csrfmiddlewaretoken"')
            _, token = read_form(html)
            with self.client.post(
                "/accounts/login/",
                data={"username": username, "password": password, "csrfmiddlewaretoken": token},
                name="login",
                allow_redirects=False,
                catch_response=True,
            ) as response:
                if response.status_code != 302 or response.headers.get("Location") != "/":
                    response.failure(f"login: status {response.status_code}")
                    return
                response.success()
            page = self.get("/", "dashboard", "<h1>Welcome")
            for asset in static_assets(page):  # an empty browser cache, once
                with self.client.get(
                    asset, name="static", allow_redirects=False, catch_response=True
                ) as response:
                    if response.status_code == 200 and response.content:
                        response.success()
                    else:
                        response.failure(f"status {response.status_code}")

        def pick(self, key: str):
            return self.rng.choice(data[key])

        # -- tasks (weights from WEIGHTS)

        @task(weights["dashboard"])
        def dashboard(self) -> None:
            self.get(f"/?catalog={catalog}", "dashboard", "<h1>Welcome")

        @task(weights["segment_list"])
        def segment_list(self) -> None:
            self.get(f"/catalogs/{catalog}/segments/", "segment list", "<h1>Segments</h1>")

        @task(weights["segment"])
        def segment(self) -> None:
            self.get(f"/segments/{self.pick('segments')}/", "segment", "Download members (CSV)")

        @task(weights["customer_list"])
        def customer_list(self) -> None:
            query = {"page": self.rng.randint(1, data["customer_pages"])}
            if self.rng.random() < 0.3:
                query["country"] = self.pick("countries")
            self.get(f"/customers/?{urlencode(query)}", "customer list", "<h1>Customers</h1>")

        @task(weights["customer_search"])
        def customer_search(self) -> None:
            term = self.pick("searches")
            self.get(
                f"/customers/?{urlencode({'q': term})}", "customer search", "<h1>Customers</h1>"
            )

        @task(weights["profile"])
        def profile(self) -> None:
            self.get(f"/customers/{self.pick('customers')}/", "profile", "<h1>Customer <span")

        @task(weights["run_page"])
        def run_page(self) -> None:
            self.get(f"/recommendations/runs/{run}/", "run", f"<h1>Recommendation run #{run}</h1>")

        @task(weights["customer_recs"])
        def customer_recs(self) -> None:
            path = f"/recommendations/runs/{run}/customers/{self.pick('customers')}/"
            self.get(path, "customer recommendations", "<h1>Preview: customer")

        @task(weights["brief_page"])
        def brief_page(self) -> None:
            self.get(f"/copy/briefs/{brief}/", "brief", f"<h1>{BRIEF_NAME}</h1>")

        @task(weights["draft_list"])
        def draft_list(self) -> None:
            query = urlencode({"brief": brief, "page": self.rng.randint(1, data["draft_pages"])})
            self.get(f"/copy/drafts/?{query}", "draft list", "<h1>Drafts</h1>")

        @task(weights["draft"])
        def draft(self) -> None:
            self.get(f"/copy/drafts/{self.pick('drafts')}/", "draft", 'id="draft-main"')

        @task(weights["edit"])
        def edit(self) -> None:
            pk = self.pick("drafts")
            html = self.get(f"/copy/drafts/{pk}/", "draft", 'id="draft-editor"')
            if not html:
                return
            fields, token = read_form(html, "draft-editor")
            fields.pop("csrfmiddlewaretoken", None)
            if "field-body" not in fields or not token:
                return
            fields["field-body"] = toggle_sentence(fields["field-body"])
            with self.client.post(
                f"/copy/drafts/{pk}/edit/",
                data=fields,
                headers={
                    "HX-Request": "true",
                    "HX-Target": "draft-main",
                    "HX-Current-URL": f"{host}/copy/drafts/{pk}/",
                    "X-CSRFToken": token,
                },
                name="edit draft (POST)",
                allow_redirects=False,
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(f"status {response.status_code}")
                elif (
                    "Saved revision" not in response.text or 'id="draft-main"' not in response.text
                ):
                    response.failure("not saved")
                else:
                    response.success()

    Marketer.host = host
    return Marketer


# A marketer's day: mostly reading profiles, segments and drafts; some edits.
WEIGHTS = {
    "dashboard": 3,
    "segment_list": 2,
    "segment": 3,
    "customer_list": 2,
    "customer_search": 2,
    "profile": 4,
    "run_page": 1,
    "customer_recs": 2,
    "brief_page": 1,
    "draft_list": 2,
    "draft": 3,
    "edit": 2,
}

TASKS = list(WEIGHTS)


def warm_up(user_class, concurrency: int = 4) -> None:
    """One untimed visit of every task per greenlet, several at once so that both workers
    load the model artifact and fill their caches before the clock starts."""
    import gevent
    from locust.env import Environment

    env = Environment(user_classes=[user_class])
    failures: list[str] = []
    env.events.request.add_listener(
        lambda name, exception, **_: exception and failures.append(f"{name}: {exception}")
    )

    def visit() -> None:
        user = user_class(env)
        user.on_start()
        for name in TASKS:
            getattr(user, name)()

    gevent.joinall([gevent.spawn(visit) for _ in range(concurrency)], raise_error=True)
    if failures:
        raise SystemExit("warm-up failed: " + "; ".join(sorted(set(failures))[:5]))


def run_load(user_class, users: int, spawn_rate: float, duration_s: float) -> dict:
    """``users`` users for ``duration_s`` (ramp-up included); every request's time."""
    import gevent
    from locust.env import Environment

    # At the end, users finish the task in hand (no request is cut off) and stop.
    env = Environment(user_classes=[user_class], stop_timeout=30)
    times: dict[str, list[float]] = {}
    errors: dict[str, dict[str, int]] = {}

    def on_request(request_type, name, response_time, exception, **_) -> None:
        key = f"{request_type} {name}"
        times.setdefault(key, []).append(response_time)
        if exception is not None:
            reasons = errors.setdefault(key, {})
            reason = str(exception)[:120]
            reasons[reason] = reasons.get(reason, 0) + 1

    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    started = time.perf_counter()
    runner.start(users, spawn_rate=spawn_rate)
    gevent.sleep(duration_s)
    runner.stop()  # waits for the users to finish their tasks (stop_timeout at most)
    seconds = time.perf_counter() - started
    runner.quit()
    return {"seconds": seconds, "times": times, "errors": errors}


def summarize(result: dict) -> dict:
    rows = {}
    everything: list[float] = []
    for key in sorted(result["times"]):
        ms = result["times"][key]
        everything += ms
        n_err = sum(result["errors"].get(key, {}).values())
        rows[key] = {
            "requests": len(ms),
            "errors": n_err,
            "p50_ms": round(percentile(ms, 0.50), 1),
            "p95_ms": round(percentile(ms, 0.95), 1),
            "p99_ms": round(percentile(ms, 0.99), 1),
            "max_ms": round(max(ms), 1),
            "mean_ms": round(sum(ms) / len(ms), 1),
        }
    total = {
        "requests": len(everything),
        "errors": sum(r["errors"] for r in rows.values()),
        "p50_ms": round(percentile(everything, 0.50), 1),
        "p95_ms": round(percentile(everything, 0.95), 1),
        "p99_ms": round(percentile(everything, 0.99), 1),
        "max_ms": round(max(everything, default=0.0), 1),
        "mean_ms": round(sum(everything) / max(len(everything), 1), 1),
    }
    return {"endpoints": rows, "total": total}


def print_table(summary: dict) -> None:
    head = f"{'endpoint':34} {'reqs':>6} {'errs':>5} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'mean':>7}"
    print(head)
    print("-" * len(head))
    for key, r in [*summary["endpoints"].items(), ("TOTAL", summary["total"])]:
        print(
            f"{key[:34]:34} {r['requests']:6d} {r['errors']:5d} {r['p50_ms']:7.1f} "
            f"{r['p95_ms']:7.1f} {r['p99_ms']:7.1f} {r['max_ms']:7.1f} {r['mean_ms']:7.1f}"
        )
    print("(milliseconds)", flush=True)


def main() -> None:
    # gevent patches the standard library for locust before anything else imports it.
    from gevent import monkey

    monkey.patch_all()

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=120, help="seconds, ramp-up included")
    parser.add_argument("--spawn-rate", type=float, default=2.0, help="users started per second")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (gthread)")
    parser.add_argument("--customers", type=int, default=165_000)
    parser.add_argument("--events", type=int, default=1_650_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", help="database name (default: DATABASE_URL's + _bench_load)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="cache (and broker)")
    parser.add_argument("--reseed", action="store_true", help="build the data even if present")
    parser.add_argument("--setup-only", action="store_true", help="prepare the data and stop")
    parser.add_argument("--max-load", type=float, default=1.5, help="start below this load avg")
    parser.add_argument("--wait-s", type=float, default=1800, help="longest wait for quiet")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/load.json")
    parser.add_argument("--work", type=Path, default=ROOT / "var/bench-load")
    args = parser.parse_args()
    if args.users < 1 or args.duration <= 0:
        parser.error("--users and --duration must be positive")

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server (the database is derived).")
    url = bench_url(url, args.database, "_bench_load")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DATA_DIR", str(args.work / "data"))
    os.environ.setdefault("IMPORT_MAX_BYTES", str(4 * 1024**3))
    os.environ.setdefault("CELERY_BROKER_URL", args.redis)
    print(f"database {urlparse(url).path.lstrip('/')}, load average {loadavg()}", flush=True)

    data = run_seed(args)
    print(f"data: {data['sizes']}", flush=True)
    if args.setup_only:
        return

    with tempfile.TemporaryDirectory(prefix="tailor-load-static-") as static_root:
        env = server_env(args, static_root)
        port = free_port()
        host = f"http://127.0.0.1:{port}"
        log = args.work / "gunicorn.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        server = start_server(args, env, port, log)
        try:
            wait_ready(host, server)
            user_class = make_user_class(host, data, WEIGHTS)
            warm_up(user_class)
            print("server warm; waiting for a quiet machine", flush=True)
            with quiet_machine(args.max_load, args.wait_s):
                load_before = loadavg()
                print(
                    f"{args.users} users for {args.duration:.0f} s, load average {load_before}",
                    flush=True,
                )
                result = run_load(user_class, args.users, args.spawn_rate, args.duration)
                load_after = loadavg()
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    summary = summarize(result)
    print_table(summary)
    for key, reasons in sorted(result["errors"].items()):
        for reason, n in reasons.items():
            print(f"error: {key}: {n} × {reason}")
    total = summary["total"]
    figures = {
        "requests": total["requests"],
        "errors": total["errors"],
        "p95_ms": total["p95_ms"],
        "p50_ms": total["p50_ms"],
        "p99_ms": total["p99_ms"],
        "requests_per_s": round(total["requests"] / result["seconds"], 1),
        "meets_target": total["errors"] == 0 and total["p95_ms"] <= TARGET_P95_MS,
        "target_p95_ms": TARGET_P95_MS,
        "users": args.users,
        "duration_s": args.duration,
        "spawn_rate": args.spawn_rate,
        "server": f"gunicorn gthread {args.workers} workers × {args.threads} threads",
        "endpoints": summary["endpoints"],
        "error_reasons": result["errors"],
        "weights": WEIGHTS,
        "data": data["sizes"],
        "cpu_count": os.cpu_count(),
        "load_before": load_before,
        "load_after": load_after,
    }
    print(
        f"{total['requests']:,} requests ({figures['requests_per_s']}/s), {total['errors']} "
        f"errors, p50 {total['p50_ms']} ms, p95 {total['p95_ms']} ms; load average "
        f"{load_before} → {load_after}",
        flush=True,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        json.dumps(
            {"requests": total["requests"], "errors": total["errors"], "p95_ms": total["p95_ms"]}
        )
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--seed-child":
        seed_child(sys.argv[2])
    else:
        main()
