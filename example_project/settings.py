"""Settings of the example CMS site: SQLite, local media and a file-based Celery broker.

Everything lives under ``example_project/var`` and needs no server. The demo
(``make demo``) points ``NEURALDRAFT_DEMO_BASE_URL`` at the sandbox it starts.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(os.environ.get("NEURALDRAFT_DEMO_VAR", BASE_DIR / "var"))

SECRET_KEY = "example-project-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "example_project.urls"
USE_TZ = True
TIME_ZONE = "UTC"

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
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

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
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "db.sqlite3",
        # The site, the worker and the demo script write to one file at once.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": VAR_DIR / "cache",
    }
}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
STATIC_URL = "/static/"

NEURALDRAFT = {
    "API_KEY": os.environ.get("NEURALDRAFT_API_KEY", "ndsk_test_" + "Demo" * 8),
    "BASE_URL": os.environ.get("NEURALDRAFT_DEMO_BASE_URL", "http://127.0.0.1:8765/v1"),
    "POLL_INITIAL": 1,
    "POLL_MAX": 5,
}

CELERY_BROKER_URL = "filesystem://localhost/"
CELERY_BROKER_TRANSPORT = "example_project.broker:Transport"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(VAR_DIR / "broker" / "queue"),
    "data_folder_out": str(VAR_DIR / "broker" / "queue"),
    "processed_folder": str(VAR_DIR / "broker" / "processed"),
    "control_folder": str(VAR_DIR / "broker" / "control"),
}
CELERY_TASK_ACKS_LATE = True
CELERY_BEAT_SCHEDULE = {
    "neuraldraft-sweep": {"task": "neuraldraft.sweep_stale_jobs", "schedule": 60.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_neuraldraft": {"handlers": ["console"], "level": "INFO"}},
}
