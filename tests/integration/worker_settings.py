"""Settings of a Celery worker that an integration test starts as a subprocess.

The worker must share the test's database, storage and Neural Draft settings,
which only exist once the test runs, so the test passes them in environment
variables (see ``tests/integration/conftest.py``):

- ``NEURALDRAFT_TEST_DB_NAME``: the PostgreSQL test database pytest-django created;
- ``NEURALDRAFT_TEST_STORAGE``: JSON, the ``STORAGES["default"]`` entry;
- ``NEURALDRAFT_TEST_NEURALDRAFT``: JSON, the ``NEURALDRAFT`` dict (sandbox URL, key, polls).
"""

import json
import os

from tests.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": int(os.environ.get("PGPORT", "5432")),
        "NAME": os.environ["NEURALDRAFT_TEST_DB_NAME"],
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
    }
}

STORAGES = {
    **STORAGES,  # noqa: F405
    "default": json.loads(os.environ["NEURALDRAFT_TEST_STORAGE"]),
}

NEURALDRAFT = json.loads(os.environ["NEURALDRAFT_TEST_NEURALDRAFT"])
