"""The daily credit budget holds when many requesters ask at the same moment, on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from django_neuraldraft import services
from django_neuraldraft.exceptions import CreditBudgetExceededError
from django_neuraldraft.models import ImageKey, Job
from tests.celery_app import app as memory_app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REQUESTERS = 10
ROUNDS = 12
AFFORDABLE = 3


def request_at_once(keys: list[str]) -> list[BaseException]:
    """Call ``request_generation`` for every key from its own thread and connection, together."""
    barrier = threading.Barrier(len(keys))
    unexpected: list[BaseException] = []

    def requester(key: str) -> None:
        memory_app.set_current()
        try:
            barrier.wait(timeout=10)
            services.request_generation(key, prompt=f"A picture for {key}")
        except CreditBudgetExceededError:
            pass
        except BaseException as err:
            unexpected.append(err)
        finally:
            connection.close()

    threads = [threading.Thread(target=requester, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return unexpected


def test_concurrent_requesters_never_pass_the_budget(postgresql, neuraldraft_settings, settings):
    cost = 40
    settings.NEURALDRAFT = {
        **neuraldraft_settings,
        "CREDITS_PER_IMAGE": cost,
        "DAILY_CREDIT_BUDGET": AFFORDABLE * cost,
    }
    keys = [f"budget.key-{number}" for number in range(REQUESTERS)]
    for key in keys:
        ImageKey.objects.create(key=key, prompt="x")

    created_per_round = []
    for _round in range(ROUNDS):
        Job.objects.all().delete()
        assert request_at_once(keys) == []
        created_per_round.append(Job.objects.count())

    assert max(created_per_round) <= AFFORDABLE, f"jobs created per round: {created_per_round}"
    assert min(created_per_round) == AFFORDABLE, f"jobs created per round: {created_per_round}"
