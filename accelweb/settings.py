"""AccelWeb settings, read from the environment with safe defaults.

Two modes share every line of code and differ only in transports:
- embedded (default): SQLite, a filesystem Celery broker, an in-process channel layer;
  `manage.py up` serves the web app and a runner in one process.
- production / CI: DATABASE_URL (PostgreSQL), REDIS_URL (Celery broker and channels_redis).
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str = "0") -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0/true/false), not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Everything the app writes (SQLite database, broker folder, uploads, artifacts) lives here.
DATA_DIR = Path(os.environ.get("ACCELWEB_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    # Without SECRET_KEY, keep a random key per data folder, so sessions survive restarts
    # and no installation shares a key with another.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = envbool("DEBUG", "0")
if os.environ.get("REDIS_URL") and not os.environ.get("SECRET_KEY") and not DEBUG:
    # Production transports mean several processes, often on several hosts: a key kept
    # in one host's data folder would differ between them. Say so instead of guessing.
    raise ImproperlyConfigured(
        "SECRET_KEY must be set in production mode (REDIS_URL is set, DEBUG is off)."
    )
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "axes",
    "experiments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "accelweb.urls"
ASGI_APPLICATION = "accelweb.asgi.application"
WSGI_APPLICATION = None

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

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the runner thread and `manage.py submit` write concurrently.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Failed logins are counted per username and address; after ACCELWEB_LOGIN_FAILURES of
# them the pair is locked out for ACCELWEB_LOGIN_COOLOFF_MINUTES (django-axes).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("ACCELWEB_LOGIN_FAILURES", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("ACCELWEB_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# A locked-out login (the site's or the admin's) gets a page that says how long to wait,
# with 429 Too Many Requests rather than a bare 403.
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "experiments.api.views.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AccelWeb API",
    "DESCRIPTION": "Experiments, runs, metrics, recipes, datasets, models, comments, "
                   "sign-offs, compare and team members of your teams.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # 3.1: JSON Schema 2020-12, the dialect runners.engine.schema describes the spec in.
    "OAS_VERSION": "3.1.0",
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = Path(os.environ.get("ACCELWEB_MEDIA_ROOT", DATA_DIR / "media")).resolve()
MEDIA_URL = "media/"
# The public datasets' files (MNIST, Fashion-MNIST, CIFAR): Keras' own cache by default, so
# a machine where keras.datasets ran has them already. Runs only read them; `manage.py
# dataset fetch` downloads them, from ACCELWEB_DATASET_MIRROR when set (upstream otherwise).
ACCELWEB_DATASET_DIR = Path(
    os.environ.get("ACCELWEB_DATASET_DIR")
    or Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"
).expanduser().resolve()
ACCELWEB_DATASET_MIRROR = os.environ.get("ACCELWEB_DATASET_MIRROR", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Every request body is bounded before it is read (accelweb.bodylimit): this much
# anywhere, plus ACCELWEB_MAX_UPLOAD_BYTES on the upload endpoints for a logged-in user.
ACCELWEB_MAX_BODY_BYTES = envint("ACCELWEB_MAX_BODY_BYTES", 12 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = ACCELWEB_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
ACCELWEB_MAX_UPLOAD_BYTES = envint("ACCELWEB_MAX_UPLOAD_BYTES", 200 * 1024 * 1024)
# The size limit first, so a file over ACCELWEB_MAX_UPLOAD_BYTES is not written to disk.
FILE_UPLOAD_HANDLERS = [
    "experiments.uploadhandlers.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Redis (production) or nothing (embedded default).
REDIS_URL = os.environ.get("REDIS_URL", "")
EMBEDDED = not REDIS_URL

# channels_redis waits for a socket's next message with a blocking BZPOPMIN of
# RedisChannelLayer.brpop_timeout (5 s in channels_redis 4.3); redis-py 8 gives up on any
# read after socket_timeout, 5 s by default. The two raced: an idle websocket's receive
# failed with TimeoutError and the server closed it with 1011 after 5-6 s. The read timeout
# must outlast the blocking wait (tests/test_settings.py checks it against the installed
# channels_redis); keepalive and health checks find a dead connection instead.
CHANNEL_LAYER_SOCKET_TIMEOUT = 15
# The consumers send {"type": "heartbeat"} this often, so a proxy that closes idle
# connections (nginx's proxy_read_timeout) sees traffic on a quiet socket.
ACCELWEB_WS_HEARTBEAT_SECONDS = envint("ACCELWEB_WS_HEARTBEAT_SECONDS", 20)

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{
                    "address": REDIS_URL,
                    "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT,
                    "socket_connect_timeout": 5,
                    "socket_keepalive": True,
                    "health_check_interval": 30,
                }],
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "experiments.layers.EmbeddedChannelLayer"}}

# Limits a spec must respect (form, API and CLI alike).
ACCELWEB_MAX_PARAMS = envint("ACCELWEB_MAX_PARAMS", 20_000_000)
ACCELWEB_MAX_RUN_SECONDS = envint("ACCELWEB_MAX_RUN_SECONDS", 6 * 3600)
# Runners beat every ACCELWEB_HEARTBEAT_SECONDS; a run or worker silent for
# ACCELWEB_HEARTBEAT_TIMEOUT seconds is taken for dead (the run ends "failed").
ACCELWEB_HEARTBEAT_SECONDS = envint("ACCELWEB_HEARTBEAT_SECONDS", 10)
ACCELWEB_HEARTBEAT_TIMEOUT = envint("ACCELWEB_HEARTBEAT_TIMEOUT", 60)
# A run or benchmark queued this long whose message the broker no longer holds (Redis
# restarted without persistence, or was flushed) is sent again by a worker's heartbeat.
ACCELWEB_REQUEUE_SECONDS = envint("ACCELWEB_REQUEUE_SECONDS", 60)
ACCELWEB_DEMO_PASSWORD = os.environ.get("ACCELWEB_DEMO_PASSWORD", "")

# Celery. JSON only, late acks and one message at a time: a run is long and must not be
# lost when a worker dies; a second delivery is harmless because Run.claim() is conditional.
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    # Redis re-delivers an unacked message after the visibility timeout: it must exceed
    # the longest run, or a healthy long run would be delivered twice.
    {"visibility_timeout": ACCELWEB_MAX_RUN_SECONDS + 3600}
    if REDIS_URL
    else {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
)
if not REDIS_URL:
    for folder in ("queue", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Behind TLS (ACCELWEB_HTTPS=1): secure cookies, HSTS, and redirects to https. The proxy
# in front must set X-Forwarded-Proto.
ACCELWEB_HTTPS = envbool("ACCELWEB_HTTPS", "0")
if ACCELWEB_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("ACCELWEB_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
