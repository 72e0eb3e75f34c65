"""The receiver attacked over real HTTP, and by concurrent workers, on PostgreSQL.

A live server takes the deliveries a hostile or broken sender would make;
PostgreSQL refuses what SQLite accepts (NUL characters) and takes row locks
for real, so these tests run there.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from django_neuraldraft import webhooks
from django_neuraldraft.choices import WebhookOutcome
from django_neuraldraft.models import WebhookEvent
from tests.webhooks.conftest import SECRET

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

#: Pairs of deliveries processed at the same moment: before deliveries of one
#: event were locked in one statement, about one pair in four deadlocked.
CONCURRENT_PAIRS = 20


@pytest.fixture
def webhook_secret(postgresql, settings, neuraldraft_settings) -> str:
    settings.NEURALDRAFT = {**neuraldraft_settings, "WEBHOOK_SECRET": SECRET}
    return SECRET


def test_concurrent_deliveries_of_one_event_never_deadlock(webhook_secret):
    errors: list[BaseException] = []

    def process(pk: int, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            webhooks.process(pk)
        except Exception as err:
            errors.append(err)
        finally:
            connection.close()

    for pair in range(CONCURRENT_PAIRS):
        deliveries = [
            WebhookEvent.objects.create(
                event_id=f"evt_pair{pair}",
                event_type="image.generated",
                remote_job_id="job_notours",
                verified=True,
                outcome=WebhookOutcome.QUEUED,
            )
            for _ in range(2)
        ]
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=process, args=(d.pk, barrier)) for d in deliveries]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert not WebhookEvent.objects.filter(outcome=WebhookOutcome.QUEUED).exists()
