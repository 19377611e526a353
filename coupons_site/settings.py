"""Settings for the coupon service.

Every value that differs per deployment comes from the environment (read with django-environ), with a safe local
default, so that `make run` works on a fresh machine (embedded PostgreSQL, a broker that needs no server) and
production only sets variables. The project's own settings are the COUPONS dict below ("Project settings"): each
has its default there and nowhere else, and code reads settings.COUPONS["NAME"].

Importing this module has no side effect: it creates no folder and starts nothing (the filesystem broker's folders
are made by the Celery app when it is configured, coupons_site/celery.py).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import environ

from coupons_site import embedded_db

env = environ.Env()

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime files of the embedded defaults (PostgreSQL data, broker folders, uploads, exports).
VAR_DIR = Path(env.str("COUPONS_VAR_DIR", default=str(BASE_DIR / "var")))


# --- Core -------------------------------------------------------------------------------------------------

# Off unless asked for: `make run` (scripts/run.sh) and the tests (pytest.ini) turn it on themselves, so a process
# started any other way (gunicorn, celery, manage.py on a server) runs with production behaviour.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The development key is published in this file and also signs API tokens: it is accepted only with DEBUG on.
DEVELOPMENT_SECRET_KEY = "insecure-local-development-key-change-me-in-production"
# The two keys are read verbatim, not through django-environ, which takes a value starting with "$" for a reference
# to another variable: a generated key may well start with "$".
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY or SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    if not DEBUG:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set (or is the published development key) and DJANGO_DEBUG is off: refusing to "
            "start. Set DJANGO_SECRET_KEY to a long random value (or DJANGO_DEBUG=1 on a development machine)."
        )
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
# Comma-separated lists; spaces around an item are dropped.
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", cast=str.strip, default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", cast=str.strip, default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "core",
    "tenants",
    "books",
    "redemptions",
    "api",
    "webhooks",
]

MIDDLEWARE = [
    # Outermost: turns database unavailability anywhere in a request into a 503 JSON answer.
    "core.middleware.ServiceErrorMiddleware",
    # A NUL byte in the path or query string is a 400 here, before any view or filter (PostgreSQL cannot hold it).
    "core.middleware.NulByteMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# --- HTTPS and proxies (production) ------------------------------------------------------------------------
# Each comes from the environment; with DEBUG off the defaults are the safe ones (see README "Security").
# SECURE_PROXY_SSL_HEADER: "HTTP_X_FORWARDED_PROTO,https" when a TLS-terminating proxy sets that header (only then:
# a client could send it itself otherwise).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
_proxy_ssl_header = env.tuple("DJANGO_SECURE_PROXY_SSL_HEADER", cast=str.strip, default=())
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header if len(_proxy_ssl_header) == 2 else None
# Proxies in front of the service that append to X-Forwarded-For (0: none; the address is REMOTE_ADDR). Rate
# limits (DRF's NUM_PROXIES) and the admin sign-in lockout (django-axes) read the client's address through it.
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)

ROOT_URLCONF = "coupons_site.urls"
WSGI_APPLICATION = "coupons_site.wsgi.application"

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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------------------
# PostgreSQL only, through psycopg 3. Without DATABASE_URL: the embedded server of `make run` (data in
# var/pgdata, a unix socket, no TCP; coupons_site/embedded_db.py starts it, settings only say where it is).
# `make test` without DATABASE_URL moves to a throw-away server of its own (conftest.py).

DATABASE_URL = env.str("DATABASE_URL", default="") or embedded_db.database_url(VAR_DIR / "pgdata")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env.int("DB_CONN_MAX_AGE", default=60))}
# Server-side parameters let psycopg 3 prepare the statements a connection repeats (the hot lock and redeem
# queries), sparing PostgreSQL a parse and plan each time: a statement sent prepare_threshold times is prepared.
# Django turns preparing off unless OPTIONS sets the threshold; on, PostgreSQL's time per hot redeem went from 2.3
# to 1.3 ms (README "Performance"). 0 turns it off (PgBouncer in transaction mode).
DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env.bool("DB_SERVER_SIDE_BINDING", default=True)
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = env.int("DB_PREPARE_THRESHOLD", default=5) or None
# Services own their transactions (STYLE.md): a request never wraps them in one big transaction.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------------------------------------
# Shared between processes: job progress and (later) throttling counters must be seen by every web process
# and worker. Redis when REDIS_URL is set; otherwise a file cache, which every local process shares.

REDIS_URL = env.str("REDIS_URL", default="")
# A dead Redis must cost milliseconds, not a hung request: short connect and read timeouts (seconds).
REDIS_SOCKET_OPTIONS = {
    "socket_connect_timeout": env.float("REDIS_CONNECT_TIMEOUT", default=0.25),
    "socket_timeout": env.float("REDIS_SOCKET_TIMEOUT", default=0.5),
}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": dict(REDIS_SOCKET_OPTIONS),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": VAR_DIR / "cache",
        }
    }

# --- Auth and i18n ----------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "tenants.passwords.NotOnlyWhitespaceValidator"},
]
# Admin sign-in lockout (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one user name from one address,
# that pair is refused (429) for AXES_COOLOFF_TIME, whatever the password. Attempts are stored in the database.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.addresses.client_address"

# The integrator API's requests (API_PATH_PREFIX) run through this shorter list in the WSGI application
# (coupons_site/wsgi.py): bearer tokens, no cookie, so sessions, CSRF (DRF's views are exempt), Django's auth user,
# messages and the admin sign-in lockout have nothing to do there, and together they cost about 0.5 ms of CPU per
# checkout cycle (README "Performance"). The others keep their order from MIDDLEWARE.
API_PATH_PREFIX = "/api/v1/"  # where coupons_site/urls.py mounts the API
BROWSER_ONLY_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
]
API_MIDDLEWARE = [name for name in MIDDLEWARE if name not in BROWSER_ONLY_MIDDLEWARE]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media")))

# --- Celery -----------------------------------------------------------------------------------------------
# The default broker is kombu's filesystem transport: it needs no server, and the web process, the worker
# and beat on one machine share its folders (made by the Celery app when it is configured, coupons_site/celery.py).
# CELERY_BROKER_URL switches to Redis or RabbitMQ.

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcast exchanges (Celery's control commands); kombu's default is ./control in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True  # tasks report through the database (jobs, reservations), not a result store
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# --- Celery: lost workers and a lost broker ----------------------------------------------------------------
# A job's row is the truth and its message only a wake-up call (core/services.py): a worker running a job holds
# a lease on the row (COUPONS["JOB_LEASE_SECONDS"]) and the beat sweeper takes the job back when the lease runs out. The
# settings here only decide how fast a *message* comes back; they are tuned together with that lease:
# - acks late: a message is acknowledged when its task ends, so one whose worker died is delivered again rather
#   than lost. Every task is idempotent (a job's claim lets one run at a time; expiry and purges are
#   conditional updates), so a second delivery is harmless.
# - reject on worker lost: when a pool process is killed (SIGKILL, out of memory) its parent hands the message
#   back to the broker at once instead of acknowledging it. A job's message delivered again while the job's
#   lease still holds does nothing (the job is running), so a task that kills its worker cannot loop: the
#   sweeper restarts such a job at most COUPONS["JOB_MAX_ATTEMPTS"] times.
# - visibility timeout (Redis transport): an unacknowledged message of a worker that vanished whole (machine
#   lost) is delivered again after this long; kombu's default is an hour. Jobs do not wait for it (the lease,
#   60 s, brings them back sooner); beat's own tasks do, and a job running longer than it only gets a second
#   delivery that finds the job claimed. Five minutes.
# - a short connect timeout and a short publish retry: a dead broker costs a request about a second, not a
#   hang; the job is already committed and the sweeper sends its message later.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=300),
        "socket_connect_timeout": 2,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# Workers wait for a lost broker as long as it takes (the default gives up after 100 tries and exits), and
# keep a running job going meanwhile: its result is in the database, not in the broker.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

CELERY_BEAT_SCHEDULE = {
    # Marks reservations whose time has passed as expired and records their "lock expired" events.
    # Correctness never waits for it (an expired reservation stops counting at once); it keeps the
    # reservation table and the code history tidy. Every 30 seconds, so history lags by half a minute at most.
    "expire-reservations": {
        "task": "books.tasks.expire_reservations",
        "schedule": timedelta(seconds=env.int("COUPONS_EXPIRY_INTERVAL", default=30)),
    },
    # Takes back jobs whose worker vanished (lease ran out) and re-sends jobs whose message never came
    # (core.services.jobs_sweep). Every 30 seconds: with the 60 s lease, a dead worker's job restarts within 90 s.
    "sweep-jobs": {
        "task": "core.tasks.sweep_jobs",
        "schedule": timedelta(seconds=env.int("COUPONS_JOB_SWEEP_INTERVAL", default=30)),
    },
}

# --- Project settings ---------------------------------------------------------------------------------------
# The project's own settings, all in this one dict with their defaults (code reads settings.COUPONS["NAME"]; a test
# overrides with settings.COUPONS = {**settings.COUPONS, "NAME": value}). The environment variable that sets one,
# when there is one, is COUPONS_<NAME> (API_<NAME> for the API_ entries), listed in README "Configuration".

_JOB_LEASE_SECONDS = env.int("COUPONS_JOB_LEASE_SECONDS", default=60)
COUPONS = {
    # Bounds on a reservation's time to live, in seconds (a book's lock_ttl_seconds and a lock's ttl_seconds).
    "LOCK_TTL_MIN": 10,
    "LOCK_TTL_MAX": 3600,
    # Above this many codes, generation and upload run as a Celery job (SPEC: "over 10,000 codes").
    "SYNC_CODES_LIMIT": env.int("COUPONS_SYNC_CODES_LIMIT", default=10000),
    # Largest single generation or upload request.
    "MAX_CODES_PER_REQUEST": 5_000_000,
    # Uploaded files (books/parsers.py): an XLSX's parts inflate to at most this many bytes in total (5,000,000 codes
    # written by openpyxl take about 420 MB), and no large part more than this many times its compressed size.
    "UPLOAD_MAX_INFLATED_BYTES": env.int("COUPONS_UPLOAD_MAX_INFLATED_BYTES", default=512 * 1024 * 1024),
    "UPLOAD_MAX_INFLATE_RATIO": 100,
    # A file that reads to more than this many bytes (a CSV's size, an XLSX's inflated size) is parsed in the
    # upload job, not in the request: about 40,000 codes of an XLSX, more of a CSV.
    "SYNC_UPLOAD_BYTES": env.int("COUPONS_SYNC_UPLOAD_BYTES", default=4 * 1024 * 1024),
    # Largest file accepted by the upload endpoint and the admin import (CSV or XLSX).
    "API_UPLOAD_MAX_BYTES": env.int("API_UPLOAD_MAX_BYTES", default=64 * 1024 * 1024),
    # Warn when a random guess would hit a valid code with a chance above 1 in this many.
    "GUESS_WARNING_RATIO": 10_000,
    # Distribution (books/services/distribution.py): at most this many end-user ids a list, and above this many
    # it runs as a job (SPEC: "up to 1,000,000", "as a job above 10,000 users").
    "MAX_DISTRIBUTION_USERS": 1_000_000,
    "SYNC_DISTRIBUTION_LIMIT": env.int("COUPONS_SYNC_DISTRIBUTION_LIMIT", default=10000),
    # Job leases and the sweeper (core/services.py). A running job's worker renews its lease every HEARTBEAT
    # seconds; a lease not renewed for LEASE seconds means the worker is gone. Beat sweeps every
    # COUPONS_JOB_SWEEP_INTERVAL seconds (CELERY_BEAT_SCHEDULE), so a job of a dead worker runs again (or fails,
    # after MAX_ATTEMPTS runs) within LEASE + SWEEP seconds: 90 s by default. A pending job whose message was
    # refused by the broker is sent again at the next sweep; one whose message was accepted but lost (the broker
    # restarted empty) after RESEND_AFTER seconds without a worker taking it. A second message for a job that is
    # busy or done costs a look-up and nothing else.
    "JOB_LEASE_SECONDS": _JOB_LEASE_SECONDS,
    "JOB_HEARTBEAT_SECONDS": max(1, _JOB_LEASE_SECONDS // 4),
    "JOB_RESEND_AFTER_SECONDS": env.int("COUPONS_JOB_RESEND_SECONDS", default=60),
    "JOB_MAX_ATTEMPTS": 3,
    # Redemption exports above this many rows run as a Celery job that ends in a download link (SPEC: 50,000).
    "EXPORT_SYNC_ROWS": env.int("COUPONS_EXPORT_SYNC_ROWS", default=50000),
    # Rows fetched per database round trip while an export streams (memory stays flat whatever the row count).
    "EXPORT_CHUNK_ROWS": env.int("COUPONS_EXPORT_CHUNK_ROWS", default=5000),
    # An admin upload preview left unconfirmed this long is deleted by beat (a confirmed or refused one at once).
    "IMPORT_PREVIEW_MAX_AGE_HOURS": env.int("COUPONS_IMPORT_PREVIEW_MAX_AGE_HOURS", default=6),
    # End-user tokens: the longest lifetime accepted (exp - now), so a leaked token cannot live for ever.
    "API_END_USER_TOKEN_MAX_SECONDS": env.int("API_END_USER_TOKEN_MAX_SECONDS", default=24 * 3600),
    # API client and signing-key rows are kept per web process and checked against a version in the shared cache
    # on every request (api/credentials.py); each is read again after this many seconds whatever its version, which
    # bounds how long a revocation goes unseen if its new version could not be written to the cache.
    "API_CREDENTIALS_MAX_AGE": env.int("API_CREDENTIALS_MAX_AGE", default=60),
    # Seconds a client is told to wait (Retry-After) when the database is unavailable.
    "API_UNAVAILABLE_RETRY_AFTER": 5,
    # How long a stored Idempotency-Key answer is replayed (hours). Retries come within minutes; a day is ample.
    "API_IDEMPOTENCY_KEY_HOURS": env.int("API_IDEMPOTENCY_KEY_HOURS", default=24),
    # Webhooks (webhooks/; environment variables WEBHOOKS_<NAME> without the prefix repeated). Plain http and
    # private, loopback or link-local addresses are refused unless ALLOW_INSECURE is on. It follows DEBUG by default:
    # on for local work, `make run` and the tests (which post to receivers on 127.0.0.1), off in production
    # (DJANGO_DEBUG=0), where only https URLs of public addresses are called.
    "WEBHOOKS_ALLOW_INSECURE": env.bool("WEBHOOKS_ALLOW_INSECURE", default=DEBUG),
    "WEBHOOKS_TIMEOUT_SECONDS": 10.0,  # SPEC: an attempt that takes longer fails
    # How long a sender holds a delivery it is sending; a worker lost mid-send delays it by this much at most. More
    # than the timeout plus reading 1 KB, so a live sender never loses its hold.
    "WEBHOOKS_LEASE_SECONDS": env.int("WEBHOOKS_LEASE_SECONDS", default=60),
    # A new delivery is sent at once by the Celery message queued on commit; if that message is lost, the sweeper
    # sends it once it is this many seconds old.
    "WEBHOOKS_STRANDED_SECONDS": env.int("WEBHOOKS_STRANDED_SECONDS", default=30),
    # The demo receiver of `make run` (/webhooks/demo-receiver/<endpoint id>/): only when DEBUG is on.
    "WEBHOOKS_DEMO_RECEIVER": env.bool("WEBHOOKS_DEMO_RECEIVER", default=DEBUG),
}

# --- Logging ----------------------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}

# --- Integrator REST API (api/) ---------------------------------------------------------------------------
# DRF with our own JWT authentication (api.authentication): API-client tokens issued by simplejwt and end-user
# tokens signed with a tenant's registered key. One exception handler shapes every error as
# {"error": {"code", "message", "details"}}; see api/exceptions.py.

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.IsApiClient"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiThrottle"],
    # Requests per caller and scope (see api/throttling.py). Every rate can be changed per deployment; counters are
    # atomic (`limits`, fixed one-minute windows) in Redis when REDIS_URL is set, so every web process counts together.
    "DEFAULT_THROTTLE_RATES": {
        # Token requests per address and client id tried; and per address whatever the client id.
        "auth": env.str("API_RATE_AUTH", default="30/min"),
        "auth_address": env.str("API_RATE_AUTH_ADDRESS", default="300/min"),
        "read": env.str("API_RATE_READ", default="1200/min"),
        "write": env.str("API_RATE_WRITE", default="600/min"),
        # Failed code look-ups (404 code_not_found) per end user: stops guessing codes by brute force.
        "lookup_failed": env.str("API_RATE_LOOKUP_FAILED", default="30/min"),
        # ... and per API client, all its end users together: a far higher ceiling, logged when reached.
        "lookup_failed_client": env.str("API_RATE_LOOKUP_FAILED_CLIENT", default="1000/min"),
    },
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.ApiJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.ApiContentNegotiation",
    "DEFAULT_METADATA_CLASS": "api.metadata.ApiMetadata",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "api.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SIMPLE_JWT = {
    # Short-lived access tokens: a revoked client is refused at once anyway (checked on every request).
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env.int("JWT_REFRESH_HOURS", default=24)),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY", SECRET_KEY),  # verbatim, as SECRET_KEY
    "AUTH_HEADER_TYPES": ("Bearer",),
    "ISSUER": "coupon-service",
    "LEEWAY": 30,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Coupon service API",
    "DESCRIPTION": "The integrator REST API: coupon books, codes, locks, redemptions. Errors are always "
    '{"error": {"code", "message", "details"}} with a stable code (see the ErrorCodeEnum schema).',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI's assets come from drf-spectacular-sidecar, served by Django: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "BookStatusEnum": "books.models.CouponBook.Status",
        "CodeStateEnum": "books.models.Code.State",
        "JobStatusEnum": "core.models.Job.Status",
        "ErrorCodeEnum": "api.schema.ERROR_CODES",
        "ActorTypeEnum": "core.actors.ACTOR_KIND_CHOICES",
        "JobKindEnum": "core.models.Job.Kind",
        "ValidationReasonEnum": "api.serializers.VALIDATION_REASONS",
    },
}

# Largest request body read into memory (JSON bodies; files of an upload stream to disk past 2.5 MB). 10 MB
# holds a JSON upload of several hundred thousand codes; larger lists go as a CSV/XLSX file.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
# Forgets Idempotency-Key answers past their retention, so the table stays small. Hourly.
CELERY_BEAT_SCHEDULE["purge-idempotency-keys"] = {
    "task": "api.tasks.purge_idempotency_keys",
    "schedule": timedelta(hours=1),
}

# --- Back office (Django admin) and django-import-export ---------------------------------------------------
# dashboard: the tenant dashboard and the job pages. backoffice holds the shared admin toolkit (tenant scoping,
# paginator, actions, filters, safety); its post_migrate hook creates the role groups once the last app with
# models has its permissions (backoffice/apps.py), wherever an app is listed.
INSTALLED_APPS += ["dashboard", "backoffice"]
# Code upload in the admin (CSV and XLSX, see books/admin.py): the uploaded file waits for the confirm step in
# the media storage, which every web process shares (one machine's temp folder is not seen by another).
IMPORT_EXPORT_TMP_STORAGE_CLASS = "import_export.tmp_storages.MediaStorage"
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"  # importing codes needs books.add_code
IMPORT_EXPORT_SKIP_ADMIN_LOG = True  # one upload can hold millions of codes; the book's event records it
# A preview file left unconfirmed for COUPONS["IMPORT_PREVIEW_MAX_AGE_HOURS"] is deleted by beat.
CELERY_BEAT_SCHEDULE["purge-import-previews"] = {
    "task": "backoffice.tasks.purge_import_previews",
    "schedule": timedelta(hours=1),
}

# --- Webhooks (webhooks/) ------------------------------------------------------------------------------------
# Events pushed to the tenants' endpoints (SPEC "Webhooks"); their settings are COUPONS["WEBHOOKS_*"] above.
# httpx logs every request at INFO: one line per delivery attempt, which the attempt log already records.
LOGGING.setdefault("loggers", {})["httpx"] = {"level": "WARNING"}
# Sends the deliveries that are due: retries whose backoff has passed, and deliveries whose message or worker was
# lost. Every 10 seconds, so a retry is at most that late and a lost message delays a delivery by well under a minute.
CELERY_BEAT_SCHEDULE["sweep-webhook-deliveries"] = {
    "task": "webhooks.tasks.sweep_deliveries",
    "schedule": timedelta(seconds=env.int("WEBHOOKS_SWEEP_INTERVAL", default=10)),
}
