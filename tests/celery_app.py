"""The Celery app of the test suite; a real worker started by integration tests uses it too.

Unit tests publish to kombu's in-memory transport, so nothing leaves the
process; integration tests point ``NEURALDRAFT_TEST_BROKER_URL`` at Redis.

Only a worker reads ``imports``: Celery's Django fixup (active whenever
``DJANGO_SETTINGS_MODULE`` is set) runs ``django.setup()`` first, then the
task module is imported. The test process never imports it through here.
"""

import os

from celery import Celery

app = Celery("tests")
app.conf.update(
    broker_url=os.environ.get("NEURALDRAFT_TEST_BROKER_URL", "memory://"),
    imports=("django_neuraldraft.tasks",),
    task_always_eager=False,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=False,
)
