"""Settings for a command run in a child process: a SQLite file it shares with the test."""

import os

from django_neuraldraft.testing import SANDBOX_API_KEY
from tests.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["NEURALDRAFT_COMMAND_DB"],
    }
}
NEURALDRAFT = {
    "API_KEY": SANDBOX_API_KEY,
    "BASE_URL": os.environ["NEURALDRAFT_COMMAND_BASE_URL"],
    "POLL_INITIAL": 0.1,
    "POLL_MAX": 0.5,
}
