"""Tailor settings: every value comes from the environment (see .env.example).

The defaults give the embedded mode: SQLite in DATA_DIR and a Celery broker on the
filesystem, so `make run` needs no server. Production sets DATABASE_URL (PostgreSQL
through psycopg 3) and CELERY_BROKER_URL (Redis or RabbitMQ).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

from marketing.analytics.sensitive import DEFAULT_SENSITIVE
from marketing.env import env_bool, env_int, env_list, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("DATA_DIR", BASE_DIR / "data")

DEBUG = env_bool("DEBUG", False)


def _generated_secret_key(path: Path) -> str:
    """The key kept in DATA_DIR (made on first use, readable only by its owner).

    Embedded and development mode only; production sets SECRET_KEY (REQUIRE_SECRET_KEY=1
    makes a missing one an error). A key that cannot be kept is an error too: a new key on
    every start would log everyone out and break signed data.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Written in full to a private file first, then linked into place: a process that
            # starts at the same moment sees either no key file or the whole key.
            draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(50))
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # the other process won; use its key
            finally:
                draft.unlink()
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        key = path.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set and the generated key file {path} cannot be written or "
            f"read ({exc.strerror or exc}). Set SECRET_KEY, or make DATA_DIR writable."
        ) from exc
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it, or set SECRET_KEY")
    return key


SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if env_bool("REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY must be set (REQUIRE_SECRET_KEY=1)")
    _key_file = DATA_DIR / ".secret_key"
    SECRET_KEY = _generated_secret_key(_key_file)
    logging.getLogger("marketing.settings").warning(
        "SECRET_KEY not set: using a generated key from %s; set SECRET_KEY in production",
        _key_file,
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",  # login throttling (see "Security" below)
    "marketing",
    "recommendations",
    "copygen",
    "api",
]

MIDDLEWARE = [
    # An id per request for its log lines, returned as X-Request-ID (marketing.logs).
    "marketing.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every answer (see "Security" below).
    "marketing.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A database that is busy (SQLite: an import holds the lock) or out of reach (PostgreSQL
    # restarting) answers a friendly 503; before LoginRequiredMiddleware, whose user lookup
    # it guards.
    "marketing.middleware.DatabaseUnavailableMiddleware",
    # Django's LoginRequiredMiddleware, plus HX-Redirect for htmx requests.
    "marketing.middleware.LoginRequiredMiddleware",
    # Turns a locked-out login into the lock-out page (django-axes); last, as its docs ask.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "marketing.urls"
WSGI_APPLICATION = "marketing.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "marketing.context_processors.roles",
                "marketing.context_processors.sensitive_attributes",
            ],
        },
    },
]

_sqlite_path = DATA_DIR / "tailor.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{_sqlite_path}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0),
        # A persistent connection (DB_CONN_MAX_AGE > 0) that died with a database restart is
        # noticed and replaced on its next use, instead of failing one request per process.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; the init command runs per connection.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(DATA_DIR / "test.sqlite3")
    # An import holds SQLite's only write lock for its whole transaction. Sessions in a
    # signed cookie let people log in and out meanwhile; PostgreSQL keeps database sessions
    # (they can be revoked on the server).
    SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if env_bool("FAST_PASSWORD_HASHER", False):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "marketing:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.js is served from the installed plotly package, so the browser bundle always
    # matches the figures the Python side builds; nothing is loaded from a CDN.
    ("vendor/plotly", Path(plotly.__file__).parent / "package_data"),
]

MEDIA_ROOT = env_path("MEDIA_ROOT", DATA_DIR / "media")
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Uploads: stream big files to disk; the import limit is checked before anything is read.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 200 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None
IMPORT_CHUNK_ROWS = env_int("IMPORT_CHUNK_ROWS", 100_000, minimum=1)

# Celery. Embedded default: a filesystem broker in DATA_DIR (no server needed).
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "data_folder_processed": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Longer than the longest task, so a slow import is not redelivered while it runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600, minimum=1)
    }
# Chords (recommendation scoring in customer batches on many workers) need a result backend;
# task results themselves are ignored (CELERY_TASK_IGNORE_RESULT), so it only holds chord
# counters. Default: the broker itself when it is Redis; none with the filesystem broker
# (embedded mode scores in one task instead, see recommendations.services).
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None
)
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3 * 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3 * 3600 + 300, minimum=1)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A job whose running worker stopped sending heartbeats for this long may be claimed again.
JOB_STALE_AFTER_S = env_int("JOB_STALE_AFTER_S", 120, minimum=5)
# A job runs at most this often (worker deaths and transient database errors); then it fails.
MAX_JOB_ATTEMPTS = env_int("MAX_JOB_ATTEMPTS", 3, minimum=1)

# Recommendation runs: customers per scoring batch; "chord" (batches spread over workers,
# needs CELERY_RESULT_BACKEND), "inline" (one task scores every batch) or "auto" (chord when
# a result backend is configured).
RECOMMENDATION_BATCH_SIZE = env_int("RECOMMENDATION_BATCH_SIZE", 5000, minimum=1)
RECOMMENDATION_SCORING = env_str("RECOMMENDATION_SCORING", "auto")
if RECOMMENDATION_SCORING not in ("auto", "chord", "inline"):
    raise ImproperlyConfigured("RECOMMENDATION_SCORING must be auto, chord or inline")
# The largest model file (MB) a run may store; every scoring worker loads it into memory.
RECOMMENDATION_MAX_ARTIFACT_MB = env_int("RECOMMENDATION_MAX_ARTIFACT_MB", 2048, minimum=1)

# Copy drafting jobs: audience items (customers) drafted and written per transaction, and how
# many tasks share a job's chunks when the broker reaches several workers (not the embedded
# filesystem broker, whose one worker drafts alone). 1 = the job's own task only.
COPY_DRAFT_CHUNK_SIZE = env_int("COPY_DRAFT_CHUNK_SIZE", 500, minimum=1)
COPY_DRAFT_PARALLEL = env_int("COPY_DRAFT_PARALLEL", 2, minimum=1)

# Copy review: when on, an approver cannot approve a draft they edited last ("four eyes");
# another approver must (README "Copy studio: review and approval").
COPY_FOUR_EYES = env_bool("COPY_FOUR_EYES", True)
# Live checks while someone types reuse the catalog's index of product titles and attribute
# values for this many seconds before asking whether the catalog changed (a draft's own
# products are always read fresh).
COPY_CHECK_INDEX_TTL_S = env_int("COPY_CHECK_INDEX_TTL_S", 30, minimum=0)

# Optional LLM provider for copy drafts (OpenAI-compatible chat completions; README
# "Optional LLM provider"). Empty base URL = templates only.
COPY_LLM_BASE_URL = env_str("COPY_LLM_BASE_URL", "").strip()
COPY_LLM_MODEL = env_str("COPY_LLM_MODEL", "").strip()
COPY_LLM_API_KEY = env_str("COPY_LLM_API_KEY", "")
try:
    COPY_LLM_TIMEOUT_S = float(env_str("COPY_LLM_TIMEOUT_S", "20"))
except ValueError:
    raise ImproperlyConfigured("COPY_LLM_TIMEOUT_S must be a number of seconds") from None
if not 0 < COPY_LLM_TIMEOUT_S < float("inf"):
    raise ImproperlyConfigured("COPY_LLM_TIMEOUT_S must be positive")
COPY_LLM_MAX_RETRIES = env_int("COPY_LLM_MAX_RETRIES", 2, minimum=0)
if COPY_LLM_BASE_URL and not COPY_LLM_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("COPY_LLM_BASE_URL must start with http:// or https://")
if COPY_LLM_BASE_URL and not COPY_LLM_MODEL:
    raise ImproperlyConfigured("COPY_LLM_MODEL is required when COPY_LLM_BASE_URL is set")

# Campaign results: a customer's purchases count for a brief's uplift against its control
# group from the export that sent (or held out) them until this many days later.
CAMPAIGN_ATTRIBUTION_DAYS = env_int("CAMPAIGN_ATTRIBUTION_DAYS", 14, minimum=1)

# Customer attributes never used as features of any model or learned segment (plus their
# close synonyms, see marketing.analytics.sensitive). Replacing the list drops the defaults.
SENSITIVE_ATTRIBUTES = tuple(env_list("SENSITIVE_ATTRIBUTES", list(DEFAULT_SENSITIVE)))

# Roles are Django groups (created by a data migration).
ROLE_ADMIN = "admin"
ROLE_MARKETER = "marketer"
ROLE_APPROVER = "approver"

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# text: one readable line per record; json: one JSON object per line (time, level, logger,
# message, request_id, job_id) for a log collector. Both mask e-mail addresses (marketing.logs).
LOG_FORMAT = env_str("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "marketing.logs.ContextFilter"},
        "template_context": {"()": "marketing.logs.TemplateContextFilter"},
    },
    "formatters": {
        "text": {
            "()": "marketing.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "marketing.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # At DEBUG, a missing template variable logs the whole template context (customers'
        # names and addresses included); the filter keeps the message without it.
        "django.template": {"filters": ["template_context"]},
        # gensim logs every training epoch at INFO: noise in a worker's log.
        "gensim": {"level": "WARNING"},
        # django-axes logs every login attempt at INFO (masked); failures still log a warning.
        "axes": {"level": "WARNING"},
    },
}

# --------------------------------------------------------------------------- Security
# HTTPS, cookies, headers and login throttling; `manage.py check --deploy` is clean with the
# production environment (REQUIRE_SECRET_KEY=1, DEBUG=0, ALLOWED_HOSTS, a Redis cache).
# Production defaults to HTTPS=1: redirect http to https, HSTS, secure cookies. Embedded and
# development runs (make run, tests) stay on plain HTTP unless HTTPS=1.
PRODUCTION = env_bool("REQUIRE_SECRET_KEY", False) and not DEBUG
HTTPS = env_bool("HTTPS", PRODUCTION)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
# Load balancers and orchestrators probe /health/ over plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Asking browsers to preload HSTS commits the whole domain to HTTPS: the operator's choice.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Behind a proxy that terminates TLS, trust its X-Forwarded-Proto (only then: a client could
# send the header itself).
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = []
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS.append("security.W021")  # preload off by choice (above)

# No inline scripts, no eval: scripts are static files (htmx, plotly.js, app.js; charts read
# their figures from json_script data blocks). style-src allows inline styles because
# plotly.js styles the charts it draws with inline style attributes and <style> elements;
# images allow data: and blob: for plotly's "download as PNG".
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one username from
# one address, that pair is refused for LOGIN_COOLOFF_MINUTES (counted from the lock-out; more
# attempts do not extend it), with the lock-out page (429). Counters live in the Django cache,
# not the database, so logging in never waits for SQLite while an import writes (see
# marketing.signals); keys are hashes and logs mask usernames and addresses.
AXES_ENABLED = env_bool("LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_ENABLE_ADMIN = False  # the cache handler stores nothing in axes' tables
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out pair before the password
    "django.contrib.auth.backends.ModelBackend",
]
if not PRODUCTION:
    # axes wants an atomic shared cache (Redis) for its counters. The embedded file cache is
    # shared by the processes of one host; two failures at the same instant may count once.
    # Production gets the warning until CACHE_BACKEND points at Redis.
    SILENCED_SYSTEM_CHECKS.append("axes.W001")
# ------------------------------------------------------------------------ end Security

# The cache carries live progress of SQLite jobs between the worker and the web process,
# so the default is a file cache in DATA_DIR; production may point it at Redis.
CACHES = {
    "default": {
        "BACKEND": env_str("CACHE_BACKEND", "django.core.cache.backends.filebased.FileBasedCache"),
        "LOCATION": env_str("CACHE_LOCATION", str(DATA_DIR / "cache")),
    }
}
