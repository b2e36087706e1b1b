"""The security matrix: every URL pattern of the project, for every role, answers as the table
below says. A view added without an entry here fails `test_every_url_pattern_has_an_entry`,
so no page can slip in without someone deciding who may open it.

Roles: anonymous; ``none`` (signed in, no role); approver; marketer; admin (the admin role,
made staff as an operator does to let them into the Django admin; not a superuser).

- Pages (session login): anonymous → login redirect; roles without the permission → 403;
  allowed → 200 (or what the door's `get_ok` / `post_ok` says: 302 after a write, or for a
  fragment that plain GETs open on its page). A GET-only page answers POST with 405, a
  POST-only one answers GET with 405.
- Every write of a page refuses a POST without a CSRF token (403), also from htmx.
- The JSON API (bearer tokens): no token → 401 JSON, whatever the session; each role's own
  token → 200 where its user holds the scope's permissions, else 403.
- The Django admin: anonymous and non-staff → its login page; staff → what the model's
  permissions allow (ADMIN_MODELS).
- Public by design, listed in PUBLIC: the login and logout pages, the OpenAPI document and
  the API's JSON 404. Static files are served by WhiteNoise, outside the URL patterns.

The objects are a small world of real rows (catalog, customers, segment, category, brief,
drafts, a finished export with its file, jobs, a recommendation run, uploads, API tokens).
POSTs send data that changes nothing where the view allows it (an invalid form re-renders at
200); destructive doors get a fresh object per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from api.auth import token_digest
from api.models import ApiToken, Scope
from api.services.tokens import token_create
from copygen.models import Brief, Draft, Export
from copygen.services import exports, results_import
from marketing.models import DerivedCategory, Job, Profile, ProfileRun, Segment, Upload
from marketing.services import imports as import_services
from marketing.services.segments import segment_rule_create
from recommendations.models import ModelRun
from recommendations.services import model_run_start
from tests.copygen_factories import BriefFactory, draft_make, mug
from tests.factories import CatalogFactory, CustomerFactory, JobFactory
from tests.recommendation_support import shop_create
from tests.roles import role_group

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "none", "approver", "marketer", "admin")
SIGNED_IN = frozenset(ROLES) - {"anonymous"}
ALL_ROLES = frozenset({"approver", "marketer", "admin"})  # every role group
MARKETERS = frozenset({"marketer", "admin"})  # marketers and admins write most things
APPROVERS = frozenset({"approver", "admin"})  # approve_draft
ADMIN = frozenset({"admin"})
NOBODY: frozenset[str] = frozenset()

GET_ONLY = "GET only"  # a POST answers 405
POST_ONLY = "POST only"  # a GET answers 405
FRANCE = {"op": "and", "rules": [{"field": "country", "operator": "eq", "value": "France"}]}


# ----------------------------------------------------------------------------- the world


@dataclass
class World:
    users: dict[str, User | None]
    catalog: Any
    product: Any
    customer: Any
    segment: Segment
    category: DerivedCategory
    job: Job
    run: ModelRun
    brief: Brief
    draft: Draft
    export: Export
    results_job: Job
    uploads: dict[str, Upload]
    results_uploads: dict[str, Upload]
    tokens: dict[str, tuple[ApiToken, str]]

    def own(self, objects: dict[str, Any], role: str) -> Any:
        """The role's own object (uploads, tokens); others get the marketer's, which the
        permission check refuses before ownership matters."""
        return objects.get(role) or objects["marketer"]

    # Destructive doors get a fresh object for every request.
    def fresh_catalog(self):
        return CatalogFactory()

    def fresh_segment(self) -> Segment:
        n = Segment.objects.count()
        return segment_rule_create(
            user=self.users["marketer"], catalog=self.catalog, name=f"Doomed {n}", rule=FRANCE
        )

    def fresh_brief(self) -> Brief:
        return BriefFactory(catalog=self.catalog, segment=self.segment)

    @property
    def catalog_type(self) -> int:
        return ContentType.objects.get_for_model(self.catalog).pk

    def admin_url(self, label: str, action: str) -> str:
        """An admin URL of one model; object URLs name a real row (another user than the
        admin themself for auth.user)."""
        app, model = label.split(".")
        if action in ("changelist", "add"):
            return reverse(f"admin:{app}_{model}_{action}")
        if label == "auth.user":
            pk = self.users["marketer"].pk
        else:
            pk = apps.get_model(label).objects.order_by("pk").values_list("pk", flat=True)[0]
        if action == "object":
            return f"/admin/{app}/{model}/{pk}/"
        return reverse(f"admin:{app}_{model}_{action}", args=[pk])


def _users() -> dict[str, User | None]:
    users: dict[str, User | None] = {"anonymous": None}
    for role in SIGNED_IN:
        user = User.objects.create_user(f"matrix-{role}", f"{role}@example.test", "pw")
        if role != "none":
            user.groups.add(role_group(role))
        users[role] = user
    users["admin"].is_staff = True
    users["admin"].save(update_fields=["is_staff"])
    return users


def _export(catalog, users) -> Export:
    mug(catalog)
    brief = BriefFactory(catalog=catalog, channel="email", name="Exported")
    for n in (1, 2):
        customer = CustomerFactory(
            external_id=f"X-{n}", email=f"x{n}@example.test", consent_email=True
        )
        draft_make(brief=brief, customer=customer, status=Draft.Status.APPROVED)
    export = exports.export_create(user=users["marketer"], brief=brief, preset="mailchimp")
    exports.export_run(job_id=export.job_id, worker="inline")
    export.refresh_from_db()
    assert export.status == Job.Status.SUCCEEDED, export.job.error
    return export


def _tokens(users) -> dict[str, tuple[ApiToken, str]]:
    tokens = {}
    for role in ("marketer", "admin"):
        created = token_create(
            user=users[role], name=f"{role} tool", scopes=list(Scope.values), catalog=None
        )
        tokens[role] = (created.token, created.secret)
    # Roles that may not make tokens: rows written directly, as if they had lost the role.
    for role in ("approver", "none"):
        secret = f"tlr_matrix-{role}-" + "x" * 30
        token = ApiToken.objects.create(
            user=users[role],
            name="stale",
            prefix=secret[:8],
            digest=token_digest(secret),
            scopes=list(Scope.values),
        )
        tokens[role] = (token, secret)
    return tokens


def world_build() -> World:
    users = _users()
    shop = shop_create(name="Matrix", customers=6)
    catalog = shop.catalog
    segment = segment_rule_create(user=users["marketer"], catalog=catalog, name="FR", rule=FRANCE)
    category = DerivedCategory.objects.create(catalog=catalog, name="Mugs", auto_name="Mugs")
    job = JobFactory(catalog=catalog, created_by=users["marketer"])
    job.report_file.save("report.csv", ContentFile(b"file,row,column,value,reason\n"))
    brief = BriefFactory(catalog=catalog, segment=segment)
    brief.job = JobFactory(kind=Job.Kind.COPY_DRAFT, catalog=catalog)
    brief.save(update_fields=["job"])
    export = _export(catalog, users)
    uploads, results_uploads = {}, {}
    for role in MARKETERS:
        uploads[role] = import_services.upload_create(
            catalog=catalog,
            kind=Upload.Kind.PRODUCTS,
            file=SimpleUploadedFile("p.csv", b"sku,title\nA1,Mug\n"),
            user=users[role],
        )
        results_uploads[role] = results_import.results_upload_create(
            export=export,
            file=SimpleUploadedFile("r.csv", b"Email Address,Opens\nx1@example.test,1\n"),
            user=users[role],
        )
    results_job = JobFactory(
        kind=Job.Kind.RESULTS_IMPORT, catalog=catalog, params={"export_id": export.pk}
    )
    run = model_run_start(
        catalog=catalog, user=users["marketer"], algorithms=["popular"], budget_s=1
    )
    profile_run = ProfileRun.objects.create(catalog=catalog, as_of=timezone.now())
    Profile.objects.create(
        catalog=catalog, customer=shop.customers[0], run=profile_run, rfm_segment="Champions"
    )
    return World(
        users=users,
        catalog=catalog,
        product=shop.products[0],
        customer=shop.customers[0],
        segment=segment,
        category=category,
        job=job,
        run=run,
        brief=brief,
        draft=draft_make(brief=brief),
        export=export,
        results_job=results_job,
        uploads=uploads,
        results_uploads=results_uploads,
        tokens=_tokens(users),
    )


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Door:
    """Who may open one URL, and how.

    ``get`` / ``post``: the roles allowed to GET / POST, or GET_ONLY / POST_ONLY.
    ``url(world, role)`` builds the address from the world's objects.
    """

    url: Callable[[World, str], str]
    get: frozenset[str] | str
    post: frozenset[str] | str = GET_ONLY
    get_ok: int = 200
    post_ok: int = 302
    data: dict[str, Any] = field(default_factory=dict)
    hx: bool = False  # ask as htmx (fragments)
    api: bool = False  # a JSON endpoint: bearer tokens, no session, no CSRF


def page(name: str, *args: Callable[[World, str], Any], **kw: Any) -> Door:
    """A page `name` whose URL arguments come from the world: ``page("x", lambda w, r: w.brief.pk)``."""

    def url(world: World, role: str) -> str:
        return reverse(name, args=[arg(world, role) for arg in args])

    return Door(url=url, **kw)


CATALOG = lambda w, r: w.catalog.pk  # noqa: E731
PRODUCT = lambda w, r: w.product.pk  # noqa: E731
CUSTOMER = lambda w, r: w.customer.pk  # noqa: E731
SEGMENT = lambda w, r: w.segment.pk  # noqa: E731
CATEGORY = lambda w, r: w.category.pk  # noqa: E731
JOB = lambda w, r: w.job.pk  # noqa: E731
RUN = lambda w, r: w.run.pk  # noqa: E731
BRIEF = lambda w, r: w.brief.pk  # noqa: E731
DRAFT = lambda w, r: w.draft.pk  # noqa: E731
EXPORT = lambda w, r: w.export.pk  # noqa: E731
RESULTS_JOB = lambda w, r: w.results_job.pk  # noqa: E731

MATRIX: dict[str, Door] = {
    # ------------------------------------------------------------------ marketing
    # Catalogs, products and the dashboard's aggregates: anyone signed in browses them.
    "marketing:home": page("marketing:home", get=SIGNED_IN),
    "marketing:about": page("marketing:about", get=SIGNED_IN),
    "marketing:catalog-list": page("marketing:catalog-list", get=SIGNED_IN),
    "marketing:catalog-create": page(
        "marketing:catalog-create", get=ADMIN, post=ADMIN, post_ok=200
    ),
    "marketing:catalog-detail": page("marketing:catalog-detail", CATALOG, get=SIGNED_IN),
    "marketing:catalog-update": page(
        "marketing:catalog-update", CATALOG, get=ADMIN, post=ADMIN, post_ok=200
    ),
    "marketing:catalog-delete": page(
        "marketing:catalog-delete", lambda w, r: w.fresh_catalog().pk, get=ADMIN, post=ADMIN
    ),
    "marketing:product-list": page("marketing:product-list", CATALOG, get=SIGNED_IN),
    "marketing:product-detail": page("marketing:product-detail", PRODUCT, get=SIGNED_IN),
    # Customers are personal data: view_customer (every role; not an account without one).
    "marketing:customer-list": page("marketing:customer-list", get=ALL_ROLES),
    "marketing:customer-detail": page("marketing:customer-detail", CUSTOMER, get=ALL_ROLES),
    "marketing:customer-erase": page(
        "marketing:customer-erase",
        CUSTOMER,
        get=ADMIN,
        post=ADMIN,
        post_ok=200,
        data={"confirmation": "not the id"},
    ),
    "marketing:upload-create": page(
        "marketing:upload-create", CATALOG, get=MARKETERS, post=MARKETERS, post_ok=200
    ),
    "marketing:upload-mapping": page(
        "marketing:upload-mapping",
        lambda w, r: w.own(w.uploads, r).pk,
        get=MARKETERS,
        post=MARKETERS,
        post_ok=200,
    ),
    "marketing:profile-refresh": page(
        "marketing:profile-refresh", CATALOG, get=POST_ONLY, post=MARKETERS
    ),
    "marketing:profile-models": page("marketing:profile-models", CATALOG, get=ALL_ROLES),
    "marketing:segment-list": page("marketing:segment-list", CATALOG, get=ALL_ROLES),
    "marketing:segment-detail": page("marketing:segment-detail", SEGMENT, get=ALL_ROLES),
    "marketing:segment-members-csv": page("marketing:segment-members-csv", SEGMENT, get=ALL_ROLES),
    "marketing:segment-create": page(
        "marketing:segment-create", CATALOG, get=MARKETERS, post=MARKETERS, post_ok=200
    ),
    "marketing:segment-count": page(
        "marketing:segment-count", CATALOG, get=POST_ONLY, post=MARKETERS, post_ok=200, hx=True
    ),
    "marketing:segment-update": page(
        "marketing:segment-update", SEGMENT, get=MARKETERS, post=MARKETERS, post_ok=200
    ),
    "marketing:segment-delete": page(
        "marketing:segment-delete",
        lambda w, r: w.fresh_segment().pk,
        get=MARKETERS,
        post=MARKETERS,
    ),
    "marketing:category-list": page("marketing:category-list", CATALOG, get=ALL_ROLES),
    # The inline edit's Cancel: a fragment for htmx, a redirect to the list otherwise.
    "marketing:category-row": page("marketing:category-row", CATEGORY, get=ALL_ROLES, hx=True),
    "marketing:category-rename": page(
        "marketing:category-rename",
        CATEGORY,
        get=ADMIN,
        post=ADMIN,
        post_ok=200,
        data={"name": ""},
        hx=True,
    ),
    "marketing:job-list": page("marketing:job-list", get=ALL_ROLES),
    "marketing:job-detail": page("marketing:job-detail", JOB, get=ALL_ROLES),
    "marketing:job-status": page("marketing:job-status", JOB, get=ALL_ROLES),
    "marketing:job-cancel": page("marketing:job-cancel", JOB, get=POST_ONLY, post=MARKETERS),
    "marketing:job-report": page("marketing:job-report", JOB, get=ALL_ROLES),
    "marketing:audit-log": page("marketing:audit-log", get=ADMIN),
    "marketing:audit-log-csv": page("marketing:audit-log-csv", get=ADMIN),
    # ------------------------------------------------------------------ recommendations
    "recommendations:run-list": page("recommendations:run-list", CATALOG, get=ALL_ROLES),
    "recommendations:run-create": page(
        "recommendations:run-create",
        CATALOG,
        get=MARKETERS,
        post=MARKETERS,
        post_ok=200,
        data={"budget_s": "-1"},
    ),
    "recommendations:run-detail": page("recommendations:run-detail", RUN, get=ALL_ROLES),
    "recommendations:run-status": page("recommendations:run-status", RUN, get=ALL_ROLES),
    "recommendations:run-cancel": page(
        "recommendations:run-cancel", RUN, get=POST_ONLY, post=MARKETERS
    ),
    # Fragments: plain GETs open them on the run's page.
    "recommendations:run-segments": page(
        "recommendations:run-segments", RUN, get=ALL_ROLES, get_ok=302
    ),
    "recommendations:run-customers": page(
        "recommendations:run-customers", RUN, get=ALL_ROLES, get_ok=302
    ),
    "recommendations:run-preview": page(
        "recommendations:run-preview", RUN, CUSTOMER, get=ALL_ROLES
    ),
    # ------------------------------------------------------------------ copy studio
    "copygen:brief-list": page("copygen:brief-list", get=ALL_ROLES),
    "copygen:brief-create": page(
        "copygen:brief-create", get=MARKETERS, post=MARKETERS, post_ok=200
    ),
    "copygen:brief-detail": page("copygen:brief-detail", BRIEF, get=ALL_ROLES),
    "copygen:brief-update": page(
        "copygen:brief-update", BRIEF, get=MARKETERS, post=MARKETERS, post_ok=200
    ),
    "copygen:brief-delete": page(
        "copygen:brief-delete", lambda w, r: w.fresh_brief().pk, get=MARKETERS, post=MARKETERS
    ),
    "copygen:brief-draft": page("copygen:brief-draft", BRIEF, get=POST_ONLY, post=MARKETERS),
    "copygen:brief-status": page("copygen:brief-status", BRIEF, get=ALL_ROLES),
    "copygen:export-create": page(
        "copygen:export-create", BRIEF, get=MARKETERS, post=MARKETERS, post_ok=200
    ),
    # Without htmx, the brief's export section sends people to the form or the history.
    "copygen:export-panel": page("copygen:export-panel", BRIEF, get=ALL_ROLES, get_ok=302),
    "copygen:export-list": page("copygen:export-list", get=ALL_ROLES),
    "copygen:export-detail": page("copygen:export-detail", EXPORT, get=ALL_ROLES),
    "copygen:export-status": page("copygen:export-status", EXPORT, get=ALL_ROLES),
    "copygen:export-download": page("copygen:export-download", EXPORT, get=MARKETERS),
    "copygen:results-import": page(
        "copygen:results-import", EXPORT, get=MARKETERS, post=MARKETERS, post_ok=200
    ),
    "copygen:results-import-mapping": page(
        "copygen:results-import-mapping",
        EXPORT,
        lambda w, r: w.own(w.results_uploads, r).pk,
        get=MARKETERS,
        post=MARKETERS,
        post_ok=200,
    ),
    "copygen:results-import-detail": page(
        "copygen:results-import-detail", RESULTS_JOB, get=ALL_ROLES
    ),
    "copygen:results-import-status": page(
        "copygen:results-import-status", RESULTS_JOB, get=ALL_ROLES
    ),
    "copygen:brief-results": page("copygen:brief-results", BRIEF, get=ALL_ROLES),
    "copygen:brief-results-panel": page("copygen:brief-results-panel", BRIEF, get=ALL_ROLES),
    "copygen:results-overview": page("copygen:results-overview", get=ALL_ROLES),
    "copygen:draft-list": page("copygen:draft-list", get=ALL_ROLES),
    "copygen:draft-bulk-approve": page("copygen:draft-bulk-approve", get=POST_ONLY, post=APPROVERS),
    "copygen:draft-detail": page("copygen:draft-detail", DRAFT, get=ALL_ROLES),
    "copygen:draft-check": page(
        "copygen:draft-check", DRAFT, get=POST_ONLY, post=MARKETERS, post_ok=200, hx=True
    ),
    "copygen:draft-edit": page(  # nothing posted: the editor again, with the reasons
        "copygen:draft-edit", DRAFT, get=POST_ONLY, post=MARKETERS, post_ok=200
    ),
    "copygen:draft-review": page(
        "copygen:draft-review", DRAFT, get=POST_ONLY, post=APPROVERS, post_ok=200
    ),
    "copygen:draft-reopen": page(
        "copygen:draft-reopen", DRAFT, get=POST_ONLY, post=APPROVERS, post_ok=200
    ),
    # ------------------------------------------------------------------ API token pages
    "api:token-list": page("api:token-list", get=MARKETERS),
    "api:token-create": page("api:token-create", get=MARKETERS, post=MARKETERS, post_ok=200),
    "api:token-revoke": page(
        "api:token-revoke", lambda w, r: w.own(w.tokens, r)[0].pk, get=POST_ONLY, post=MARKETERS
    ),
    # ------------------------------------------------------------------ JSON API (tokens)
    "api:brief-content": page("api:brief-content", BRIEF, get=MARKETERS, api=True),
    "api:segment-content": page("api:segment-content", SEGMENT, get=MARKETERS, api=True),
    "api:customer-content": page(
        "api:customer-content", lambda w, r: w.customer.external_id, get=MARKETERS, api=True
    ),
    "api:customer-recommendations": page(
        "api:customer-recommendations",
        lambda w, r: w.customer.external_id,
        get=MARKETERS,
        api=True,
    ),
    "api:events": page("api:events", get=POST_ONLY, post=MARKETERS, post_ok=200, api=True),
}

# Public by design: anyone, signed in or not, gets the same answer, except where an answer
# per role is given. (url, GET answer, POST answer)
Answer = int | str | dict[str, int | str]
PUBLIC: dict[str, tuple[Callable[[World], str], Answer, Answer]] = {
    "login": (lambda w: reverse("login"), 200, 200),  # POST: the form with its error
    # Logging out is a POST (GET: 405; the login middleware sends anonymous GETs to log in).
    "logout": (
        lambda w: reverse("logout"),
        {"anonymous": "login", **dict.fromkeys(SIGNED_IN, 405)},
        "login",  # logged out, on the login page
    ),
    "api:openapi": (lambda w: reverse("api:openapi"), 200, 405),
    # For load balancers; names no host, user or setting (degraded: no worker in tests).
    "marketing:health": (lambda w: reverse("marketing:health"), 200, 405),
    "api:not-found": (lambda w: "/api/v1/no/such/thing", 404, 404),
}

# The Django admin lets in staff only: everyone else (anonymous, and the roles, who are not
# staff) is sent to its login page. Inside, the (staff) admin role may use these actions of
# each registered model: its permissions, less what the ModelAdmin switches off (marketing.admin).
ADMIN_MODELS: dict[str, frozenset[str]] = {
    "auth.group": frozenset(),  # roles are data migrations, not edited in the admin
    "auth.user": frozenset({"view", "add", "change", "delete"}),
    "marketing.catalog": frozenset({"view", "add", "change", "delete"}),
    "marketing.product": frozenset({"view", "change"}),
    "marketing.customer": frozenset({"view", "change"}),  # erased by the action, never deleted
    "marketing.event": frozenset({"view"}),
    "marketing.upload": frozenset(),
    "marketing.job": frozenset({"view", "change"}),
    "marketing.profilerun": frozenset(),
    "marketing.profile": frozenset(),
    "marketing.segment": frozenset({"view"}),
    "marketing.segmentmembership": frozenset(),
    "marketing.auditevent": frozenset({"view"}),
    "marketing.derivedcategory": frozenset({"view", "change"}),
    "api.apitoken": frozenset({"view", "change"}),
}
# What a model URL of the admin needs: the action, or None for "any staff" (the object's
# address, which redirects to its change page).
ADMIN_ACTIONS = {
    "changelist": "view",
    "add": "add",
    "history": "view",
    "change": "view",  # read-only with the view permission alone
    "delete": "delete",
    "password_change": "change",
}


def staff(
    ok: int, others: int | str = "admin login", anonymous: int | str | None = None
) -> dict[str, int | str]:
    """The answers of an admin page: `ok` for the staff admin, `others` for everyone else
    (anonymous users: `anonymous`, when it differs)."""
    answers = {role: ok if role == "admin" else others for role in ROLES}
    if anonymous is not None:
        answers["anonymous"] = anonymous
    return answers


# Admin pages that are not one model's: GET answer per role.
ADMIN_SITE: dict[str, tuple[Callable[[World], str], dict[str, int | str]]] = {
    "admin:index": (lambda w: reverse("admin:index"), staff(200)),
    "admin:login": (
        lambda w: reverse("admin:login"),
        {**staff(302, 200)},  # staff are sent on to the index; others see the form
    ),
    # POST only; non-staff are sent to the index (and from there to the login page).
    "admin:logout": (lambda w: reverse("admin:logout"), staff(405, 302, "admin login")),
    "admin:password_change": (lambda w: reverse("admin:password_change"), staff(200)),
    "admin:password_change_done": (lambda w: reverse("admin:password_change_done"), staff(200)),
    "admin:autocomplete": (lambda w: reverse("admin:autocomplete"), staff(403)),  # no field
    "admin:jsi18n": (lambda w: reverse("admin:jsi18n"), staff(200)),
    "admin:view_on_site": (
        lambda w: reverse("admin:view_on_site", args=[w.catalog_type, w.catalog.pk]),
        staff(302),
    ),
    "admin:app_list": (lambda w: reverse("admin:app_list", args=["marketing"]), staff(200)),
    "admin:admin/(?P<url>.*)$": (lambda w: "/admin/no-such-page/", staff(404)),
}


# ----------------------------------------------------------------------------- helpers


def _key(pattern: URLPattern, namespace: str | None, route: str) -> str:
    name = pattern.name or route
    return f"{namespace}:{name}" if namespace else name


def url_patterns() -> list[tuple[str, str]]:
    """(key, route) of every URL pattern: `namespace:name`, or the route for unnamed ones."""
    found = []

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = namespace
                if p.namespace:
                    ns = f"{namespace}:{p.namespace}" if namespace else p.namespace
                walk(p.url_patterns, prefix + str(p.pattern), ns)
            else:
                route = prefix + str(p.pattern)
                found.append((_key(p, namespace, route), route))

    walk(get_resolver().url_patterns, "", None)
    return found


def client_for(world: World, role: str, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    if world.users[role] is not None:
        client.force_login(world.users[role])
    return client


HX = {"HTTP_HX_REQUEST": "true"}


def outcome(response) -> int | str:
    """The status, or "login" for a redirect to the login page (HX-Redirect for htmx)."""
    if response.status_code == 302 and response["Location"].startswith("/accounts/login/"):
        return "login"
    if response.get("HX-Redirect", "").startswith("/accounts/login/"):
        return "login"
    if response.status_code == 302 and response["Location"].startswith("/admin/login/"):
        return "admin login"
    return response.status_code


def expected(door: Door, role: str, method: str) -> int | str:
    allowed = door.get if method == "GET" else door.post
    if door.api:
        # The method is checked first; a session never authenticates the API (the answers to
        # each role's token are `expected_with_token`).
        return 405 if isinstance(allowed, str) else 401
    if role == "anonymous":
        return "login"
    if isinstance(allowed, str):  # the other method only
        return 405
    if role not in allowed:
        return 403
    return door.get_ok if method == "GET" else door.post_ok


def expected_with_token(door: Door, role: str, method: str) -> int:
    allowed = door.get if method == "GET" else door.post
    if isinstance(allowed, str):
        return 405
    return (door.get_ok if method == "GET" else door.post_ok) if role in allowed else 403


def request(client: Client, method: str, address: str, door: Door, **extra: Any):
    headers = {**(HX if door.hx else {}), **extra}
    if method == "GET":
        return client.get(address, **headers)
    if door.api:
        body = '{"event_id": "m-1", "kind": "view", "occurred_at": "2024-05-01T12:00:00Z"}\n'
        return client.generic("POST", address, body, content_type="application/x-ndjson", **headers)
    return client.post(address, door.data, **headers)


def _model_url(key: str, route: str) -> tuple[str, str] | None:
    """(model label, admin action) of an admin URL of one model; action "object" is the
    object's address (a redirect to its change page)."""
    m = re.fullmatch(r"admin:(?P<app>[a-z]+)_(?P<model>[a-z]+)_(?P<action>[a-z_]+)", key)
    if m and m["action"] in ADMIN_ACTIONS:
        return f"{m['app']}.{m['model']}", m["action"]
    m = re.fullmatch(r"admin/(?P<app>[a-z]+)/(?P<model>[a-z]+)/<path:object_id>/", route)
    if m:
        return f"{m['app']}.{m['model']}", "object"
    return None


# ----------------------------------------------------------------------------- tests


def test_every_url_pattern_has_an_entry():
    """A new view without an entry in the security matrix fails here: add it to MATRIX (or,
    if it is public by design, to PUBLIC; an admin model to ADMIN_MODELS)."""
    missing = []
    seen = set()
    for key, route in url_patterns():
        seen.add(key)
        if key.startswith("admin:"):
            model_url = _model_url(key, route)
            known = model_url[0] in ADMIN_MODELS if model_url else key in ADMIN_SITE
        else:
            known = key in MATRIX or key in PUBLIC
        if not known:
            missing.append(f"{key} ({route})")
    assert not missing, "URL patterns without an entry in the security matrix:\n" + "\n".join(
        missing
    )
    stale = sorted(k for k in [*MATRIX, *PUBLIC, *ADMIN_SITE] if k not in seen)
    assert not stale, f"entries for URL patterns that no longer exist: {stale}"
    assert len(seen) > 150  # the walk reached every app, the admin included


def test_every_page_answers_every_role_as_the_matrix_says():
    world = world_build()
    clients = {role: client_for(world, role) for role in ROLES}
    wrong = []
    for key, door in MATRIX.items():
        for role in ROLES:
            for method in ("GET", "POST"):
                address = door.url(world, role)
                response = request(clients[role], method, address, door)
                want, got = expected(door, role, method), outcome(response)
                if got != want:
                    wrong.append(f"{key} {method} {address} as {role}: {got}, expected {want}")
                if door.api and got == 401:
                    assert response["Content-Type"] == "application/json"
                    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not wrong, "\n".join(wrong)


def test_the_api_answers_each_roles_token_as_the_matrix_says():
    """Tokens of users who lost the permissions (approver, no role) get 403, never data."""
    world = world_build()
    client = Client()
    wrong = []
    for key, door in MATRIX.items():
        if not door.api:
            continue
        for role, (_token, secret) in world.tokens.items():
            for method in ("GET", "POST"):
                address = door.url(world, role)
                auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
                got = request(client, method, address, door, **auth).status_code
                want = expected_with_token(door, role, method)
                if got != want:
                    wrong.append(f"{key} {method} {address} with {role}'s token: {got} ≠ {want}")
    assert not wrong, "\n".join(wrong)


def test_public_doors_answer_everyone_alike():
    world = world_build()
    wrong = []
    for key, (url, get_ok, post_ok) in PUBLIC.items():
        for role in ROLES:
            client = client_for(world, role)
            for method, answer in (("GET", get_ok), ("POST", post_ok)):
                want = answer[role] if isinstance(answer, dict) else answer
                got = outcome(getattr(client, method.lower())(url(world)))
                if got != want:
                    wrong.append(f"{key} {method} as {role}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_the_admin_site_lets_in_staff_only_and_keeps_model_permissions():
    world = world_build()
    clients = {role: client_for(world, role) for role in ROLES}
    wrong = []
    for key, route in url_patterns():
        if not key.startswith("admin:"):
            continue
        model_url = _model_url(key, route)
        if model_url is None:
            url, answers = ADMIN_SITE[key]
            address = url(world)
        else:
            label, action = model_url
            address = world.admin_url(label, action)
            allowed = action == "object" or ADMIN_ACTIONS[action] in ADMIN_MODELS[label]
            # The login middleware answers anonymous requests before the admin does.
            answers = staff(
                302 if action == "object" else 200 if allowed else 403, anonymous="login"
            )
        for role in ROLES:
            got = outcome(clients[role].get(address))
            if got != answers[role]:
                wrong.append(f"{key} GET {address} as {role}: {got}, expected {answers[role]}")
    assert not wrong, "\n".join(wrong)


def _writes() -> list[tuple[str, Door]]:
    return [(k, d) for k, d in MATRIX.items() if not d.api and not isinstance(d.post, str)]


def test_every_write_refuses_a_post_without_csrf_token_also_from_htmx():
    """Session-authenticated writes (pages, admin, login, logout) need the CSRF token; the
    JSON API is exempt by design (bearer tokens, never cookies)."""
    world = world_build()
    wrong = []
    targets = [(key, door.url, sorted(door.post)[0], door.data) for key, door in _writes()]
    targets += [
        ("login", lambda w, r: reverse("login"), "anonymous", {"username": "x", "password": "y"}),
        ("logout", lambda w, r: reverse("logout"), "marketer", {}),
        (
            "admin:marketing_catalog_add",
            lambda w, r: w.admin_url("marketing.catalog", "add"),
            "admin",
            {},
        ),
        ("admin:auth_user_delete", lambda w, r: w.admin_url("auth.user", "delete"), "admin", {}),
    ]
    jobs_before = sorted(Job.objects.values_list("pk", "status"))
    for key, url, role, data in targets:
        client = client_for(world, role, enforce_csrf_checks=True)
        for headers in ({}, HX):
            response = client.post(url(world, role), data, **headers)
            if response.status_code != 403 or b"CSRF" not in response.content:
                wrong.append(f"{key} as {role} {headers}: {response.status_code}")
        if key == "logout":  # still signed in
            assert client.get(reverse("marketing:about")).status_code == 200
    assert not wrong, "POSTs without a CSRF token that were not refused:\n" + "\n".join(wrong)
    # Nothing was started or cancelled: no job, no drafting, no refresh, no cancel.
    assert sorted(Job.objects.values_list("pk", "status")) == jobs_before
    world.run.refresh_from_db()
    assert world.run.status == ModelRun.Status.QUEUED


def test_htmx_writes_pass_with_the_token_the_page_carries():
    """The other half of the CSRF check: htmx sends the token of `hx-headers` on <body>."""
    world = world_build()
    client = client_for(world, "marketer", enforce_csrf_checks=True)
    page_html = client.get(reverse("copygen:draft-detail", args=[world.draft.pk])).content
    token = re.search(rb'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page_html).group(1)
    address = reverse("copygen:draft-check", args=[world.draft.pk])
    response = client.post(address, {}, HTTP_X_CSRFTOKEN=token.decode(), **HX)
    assert response.status_code == 200
    assert client.post(address, {}, HTTP_X_CSRFTOKEN="forged" * 6, **HX).status_code == 403
