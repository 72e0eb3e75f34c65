"""The bulk action: a confirmation page with counts and cost, then one message per key."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.urls import reverse

from django_neuraldraft import services
from django_neuraldraft.models import ImageKey, Job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]

CHANGELIST = reverse("admin:neuraldraft_imagekey_changelist")


@pytest.fixture
def keys(sandbox):
    ready = [
        ImageKey.objects.create(key=f"classes.{name}", prompt=f"A {name} class")
        for name in ("morning", "evening", "weekend")
    ]
    no_prompt = ImageKey.objects.create(key="banner.retreat")
    running = ImageKey.objects.create(key="hero.background", prompt="A harbour")
    services.request_generation(running)
    return ready, no_prompt, running


def select(keys, **extra):
    return {
        "action": "generate_selected",
        ACTION_CHECKBOX_NAME: [key.pk for key in keys],
        **extra,
    }


class TestConfirmation:
    def test_counts_cost_skipped_keys_and_budget(self, admin_client, keys, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 1000}
        ready, no_prompt, running = keys
        response = admin_client.post(CHANGELIST, select([*ready, no_prompt, running]))
        page = response.content.decode()
        assert response.status_code == 200
        assert "This starts 3 generations, costing 120 credits." in page
        assert "Today's budget has 960 credits left." in page
        assert "banner.retreat: no prompt" in page
        assert "hero.background: a generation is already running" in page
        assert Job.objects.count() == 1  # the page spends nothing

    def test_warns_when_the_cost_passes_the_budget(self, admin_client, keys, settings):
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 100}
        ready, _no_prompt, _running = keys
        page = admin_client.post(CHANGELIST, select(ready)).content.decode()
        # The running generation holds 40 of the 100: 60 left, one more image.
        assert "That is more than today's budget: it pays for 1 generation," in page


class TestConfirmed:
    def test_one_message_per_key(self, admin_client, keys, admin_user):
        ready, no_prompt, running = keys
        response = admin_client.post(
            CHANGELIST, select([*ready, no_prompt, running], post="yes"), follow=True
        )
        messages = [str(message) for message in get_messages(response.wsgi_request)]
        jobs = {job.image_key.key: job for job in Job.objects.filter(image_key__in=ready)}
        assert messages == [
            "Skipped banner.retreat: no prompt.",
            "Skipped hero.background: a generation is already running.",
            *(
                f"Generation of {key} started (job #{jobs[key].pk}, 40 credits)."
                for key in ("classes.evening", "classes.morning", "classes.weekend")
            ),
        ]
        assert all(job.requested_by == admin_user for job in jobs.values())

    def test_keys_past_the_budget_are_refused_each_with_its_reason(
        self, admin_client, keys, settings
    ):
        # The running generation holds 40 of the 80: room for one more.
        settings.NEURALDRAFT = {**settings.NEURALDRAFT, "DAILY_CREDIT_BUDGET": 80}
        ready, _no_prompt, _running = keys
        page = admin_client.post(CHANGELIST, select(ready)).content.decode()
        assert "it pays for 1 generation," in page  # what the confirmation promises…
        response = admin_client.post(CHANGELIST, select(ready, post="yes"), follow=True)
        messages = [str(message) for message in get_messages(response.wsgi_request)]
        assert messages[0].startswith("Generation of classes.evening started")
        assert messages[1].startswith("Did not start classes.morning: This generation costs 40")
        assert messages[2].startswith("Did not start classes.weekend: ")
        assert Job.objects.count() == 2  # …is what happens

    def test_the_page_shows_each_message_as_written(self, admin_client, keys):
        """The admin capitalises a message's first letter: none starts with a key."""
        ready, _no_prompt, _running = keys
        response = admin_client.post(CHANGELIST, select(ready, post="yes"), follow=True)
        page = response.content.decode()
        assert "Generation of classes.evening started" in page
        assert "Classes." not in page


class TestPermission:
    def test_not_offered_and_refused_without_generate_image(self, editor_client, keys):
        ready, _no_prompt, _running = keys
        page = editor_client.get(CHANGELIST).content.decode()
        assert "generate_selected" not in page
        response = editor_client.post(CHANGELIST, select(ready, post="yes"))
        assert response.status_code in (200, 302)
        assert Job.objects.count() == 1

    def test_offered_with_generate_image(self, producer_client, keys):
        page = producer_client.get(CHANGELIST).content.decode()
        assert 'value="generate_selected"' in page
