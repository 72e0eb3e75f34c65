"""Settings for the test suite: an in-memory SQLite database unless PostgreSQL is asked for."""

import os
import socket

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "django_neuraldraft",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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


def _postgresql_reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


_PGHOST = os.environ.get("PGHOST", "127.0.0.1")
_PGPORT = int(os.environ.get("PGPORT", "5432"))

# NEURALDRAFT_TEST_DATABASE=postgresql asks for PostgreSQL; when it is not running,
# the suite falls back to SQLite and the tests that need PostgreSQL skip (or fail
# under NEURALDRAFT_REQUIRE_SERVICES=1). A worker process started by an integration
# test gets NEURALDRAFT_TEST_DB_NAME, the name of the test database it must share.
if os.environ.get("NEURALDRAFT_TEST_DATABASE") == "postgresql" and _postgresql_reachable(
    _PGHOST, _PGPORT
):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": _PGHOST,
            "PORT": _PGPORT,
            "NAME": os.environ.get(
                "NEURALDRAFT_TEST_DB_NAME", os.environ.get("PGDATABASE", "test")
            ),
            "USER": os.environ.get("PGUSER", "postgres"),
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.InMemoryStorage",
        "OPTIONS": {"base_url": "/media/"},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_URL = "/static/"
MEDIA_URL = "/media/"

NEURALDRAFT = {
    "API_KEY": "ndsk_test_" + "T" * 32,
}
SILENCED_SYSTEM_CHECKS = ["neuraldraft.W003"]  # the suite runs with DEBUG=False and a sandbox key
