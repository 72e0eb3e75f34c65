"""The renditions chain: one task per version, in steps, requeued when lost, given up on."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.cache import caches
from django.core.cache.backends import locmem
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import call_command
from django.utils import timezone

from django_neuraldraft import renditions, services, tasks
from django_neuraldraft.models import ImageKey, ImageVersion
from django_neuraldraft.services import chains, history, rendition_chain, rendition_slots
from django_neuraldraft.services.refreshing import refresh_jobs
from django_neuraldraft.services.watching import wait_for
from django_neuraldraft.testing import SANDBOX_API_KEY
from tests.helpers import run_published
from tests.test_renditions import configure, make_version, photo

pytestmark = pytest.mark.django_db

TASK = renditions.TASK_NAME


@pytest.fixture(autouse=True)
def small_renditions(settings):
    """An empty storage and two small widths: six renditions of a 400x225 photograph."""
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"]}}
    settings.NEURALDRAFT = {"API_KEY": SANDBOX_API_KEY, "RENDITION_WIDTHS": (80, 160)}


def scheduled(commit) -> ImageVersion:
    """A stored version whose renditions task was queued as its row committed."""
    with commit():
        version = make_version(photo())
        renditions.schedule(version)
    return version


def overdue(version: ImageVersion, seconds: float = 61) -> None:
    """Let ``seconds`` pass beyond the version's chain's due time."""
    ImageVersion.objects.filter(pk=version.pk).update(
        chain_due_at=timezone.now() - timedelta(seconds=seconds)
    )


def run(message) -> None:
    tasks.make_renditions(*message.args, **message.kwargs)


def sweep(grace_seconds: float = 60) -> int:
    return tasks.sweep_stale_jobs(grace_seconds=grace_seconds)["renditions"]


class TestLostMessages:
    def test_a_message_the_broker_never_got_is_requeued_by_the_sweep(self, published, commit):
        version = scheduled(commit)
        published.clear()
        assert sweep() == 0
        overdue(version)

        assert sweep() == 1
        assert run_published(published) == [TASK]
        version.refresh_from_db()
        assert len(version.renditions) == 6
        assert (version.chain_token, version.renditions_attempts) == ("", 0)
        assert sweep(grace_seconds=0) == 0

    def test_the_original_message_arriving_late_is_dropped(self, settings, published, commit):
        version = scheduled(commit)
        late = published.pop()
        overdue(version)
        assert sweep() == 1
        run_published(published)
        configure(settings, RENDITION_WIDTHS=(40, 80, 160))

        run(late)

        version.refresh_from_db()
        assert sorted({r["width"] for r in version.renditions}) == [80, 160]


class TestOneTaskAtATime:
    def test_a_slow_step_is_neither_requeued_nor_doubled(self, published, commit):
        version = scheduled(commit)
        message = published.pop()
        step = chains.claim(
            version.pk,
            message.kwargs["token"],
            model=ImageVersion,
            hold=rendition_chain.STEP_TIME_LIMIT,
        )
        assert step is not None
        assert sweep() == 0

        run(message)

        version.refresh_from_db()
        assert version.renditions == [] and version.chain_token == step.chain_token
        assert published == []

    def test_a_step_killed_mid_task_is_requeued_twice_then_given_up(self, published, commit):
        version = scheduled(commit)
        for attempt in (1, 2, 3):
            message = published.pop()
            chains.claim(
                version.pk, message.kwargs["token"], model=ImageVersion, hold=0
            )  # and the worker is killed
            overdue(version)
            assert sweep() == (1 if attempt < 3 else 0)
            version.refresh_from_db()
            assert version.renditions_attempts == attempt

        assert published == []
        assert version.chain_token == "" and version.renditions == []
        assert version.renditions_error == (
            "Gave up: 3 attempts were interrupted before they ended (a worker killed, or past "
            "the task's time limit). Run neuraldraft_renditions --missing."
        )
        assert sweep(grace_seconds=0) == 0

        call_command("neuraldraft_renditions", "--missing", stdout=StringIO())
        version.refresh_from_db()
        assert len(version.renditions) == 6
        assert (version.renditions_error, version.renditions_attempts) == ("", 0)

    def test_a_rendition_that_cannot_be_made_is_said_and_not_retried(
        self, monkeypatch, published, commit
    ):
        encode = renditions.encode

        def without_avif(image, image_format):
            if image_format == "avif":
                raise ValueError("The encoder crashed.")
            return encode(image, image_format)

        monkeypatch.setattr(renditions, "encode", without_avif)
        version = scheduled(commit)

        assert run_published(published) == [TASK]

        version.refresh_from_db()
        assert {r["format"] for r in version.renditions} == {"webp", "jpeg"}
        assert version.renditions_error == (
            "avif 160w: The encoder crashed.\navif 80w: The encoder crashed."
        )
        assert version.chain_token == ""
        assert sweep(grace_seconds=0) == 0


class TestConcurrency:
    """``RENDITION_CONCURRENCY`` slots, here in the per-process cache the tests use."""

    @pytest.fixture(autouse=True)
    def free_slots(self):
        caches["default"].clear()
        self.held = []
        yield
        caches["default"].clear()

    @pytest.fixture
    def quick_retries(self, monkeypatch):
        """Steps that found no slot try again on their own in a moment, not half a minute."""
        monkeypatch.setattr(rendition_chain, "SLOT_WAIT", 0.05)

    def another_step_running(self):
        """A slot taken as a running step takes it, kept until the test gives it back."""
        held = rendition_slots.slot(rendition_chain.STEP_TIME_LIMIT)
        assert held.__enter__() is True
        self.held.append(held)  # a context left unreferenced would be closed, freeing its slot
        return held

    def test_a_step_without_a_free_slot_is_sent_again_and_no_attempt_counted(
        self, published, commit, quick_retries
    ):
        version = scheduled(commit)
        message = published.pop()
        held = self.another_step_running()

        run(message)

        version.refresh_from_db()
        assert version.renditions == [] and version.renditions_attempts == 0
        [again] = published
        assert again.args == (version.pk,) and again.eta is not None
        assert again.kwargs["token"] == version.chain_token != message.kwargs["token"]
        assert not ImageVersion.objects.filter(chains.running(), pk=version.pk).exists()
        assert sweep() == 0

        held.__exit__(None, None, None)
        assert run_published(published) == [TASK]
        version.refresh_from_db()
        assert len(version.renditions) == 6
        assert (version.chain_token, version.renditions_attempts) == ("", 0)

    def test_a_step_that_frees_its_slot_wakes_the_step_waiting_longest(
        self, settings, published, commit
    ):
        configure(settings, RENDITION_WIDTHS=(80, 160), RENDITION_CONCURRENCY=1)
        first, longest, latest = scheduled(commit), scheduled(commit), scheduled(commit)
        messages = {message.args[0]: message for message in published}
        held = self.another_step_running()
        run(messages[longest.pk])
        run(messages[latest.pk])
        waiting = {message.args[0]: message for message in published[3:]}
        assert all(message.eta is not None for message in waiting.values())
        published.clear()
        held.__exit__(None, None, None)

        run(messages[first.pk])

        [woken] = published
        assert woken.args == (longest.pk,) and woken.eta is None
        run(woken)
        longest.refresh_from_db()
        assert len(longest.renditions) == 6 and longest.chain_token == ""
        run(waiting[longest.pk])  # the fallback message it was woken before: dropped
        assert ImageVersion.objects.get(pk=latest.pk).renditions == []
        [woken] = published[1:]
        assert woken.args == (latest.pk,)

    def test_a_freed_slot_is_taken_by_the_next_step(self, settings, published, commit):
        configure(settings, RENDITION_WIDTHS=(80, 160), RENDITION_CONCURRENCY=1)
        first, second = scheduled(commit), scheduled(commit)

        assert run_published(published) == [TASK, TASK]

        for version in (first, second):
            version.refresh_from_db()
            assert len(version.renditions) == 6 and version.renditions_attempts == 0
        assert caches["default"].get(rendition_slots.SLOT_KEY.format(0)) is None

    def test_a_slot_held_to_its_expiry_is_left_to_expire(self, settings):
        """Between reading the holder and deleting, the cache could let another step take
        it: a slot this close to its end is not deleted."""
        configure(settings, RENDITION_CONCURRENCY=2)
        key = rendition_slots.SLOT_KEY.format(0)
        with rendition_slots.slot(rendition_slots.EXPIRY_MARGIN) as free:
            assert free
        assert caches["default"].get(key) is not None
        with rendition_slots.slot(rendition_chain.STEP_TIME_LIMIT) as free:
            assert free
        assert caches["default"].get(rendition_slots.SLOT_KEY.format(1)) is None

    def test_as_many_steps_run_as_there_are_slots(self, settings, published, commit):
        configure(settings, RENDITION_WIDTHS=(80, 160), RENDITION_CONCURRENCY=2)
        version = scheduled(commit)
        self.another_step_running()

        run(published.pop())

        version.refresh_from_db()
        assert len(version.renditions) == 6 and published == []

    def test_the_slot_of_a_killed_step_frees_itself_after_the_time_limit(
        self, monkeypatch, published, commit, quick_retries
    ):
        self.another_step_running()
        version = scheduled(commit)
        run(published.pop())
        version.refresh_from_db()
        assert version.renditions == [] and len(published) == 1

        later = time.time() + rendition_chain.STEP_TIME_LIMIT + 1
        monkeypatch.setattr(locmem, "time", SimpleNamespace(time=lambda: later))
        assert run_published(published) == [TASK]

        version.refresh_from_db()
        assert len(version.renditions) == 6 and version.renditions_attempts == 0


class TestSteps:
    def test_the_default_widths_of_a_generated_image_take_three_steps(self, settings):
        settings.NEURALDRAFT = {"API_KEY": SANDBOX_API_KEY}
        version = ImageVersion(
            file="neuraldraft/hero/abc.jpg", width=2048, height=1152, mime_type="image/jpeg"
        )
        steps, below = [], None
        while widths := rendition_chain.step_widths(version, below):
            steps.append(widths)
            below = min(widths)
        assert steps == [[2048], [1600, 1280], [960, 640, 480, 320]]

    def test_each_step_records_its_widths_and_queues_the_smaller_ones(
        self, settings, monkeypatch, published, commit
    ):
        configure(settings, RENDITION_WIDTHS=(80, 160, 320))
        monkeypatch.setattr(rendition_chain, "STEP_PIXELS", 160 * 90 + 80 * 45)
        version = scheduled(commit)

        run(published.pop())

        version.refresh_from_db()
        assert {r["width"] for r in version.renditions} == {320}
        assert [message.kwargs["below"] for message in published] == [320]
        assert run_published(published) == [TASK]
        version.refresh_from_db()
        assert {r["width"] for r in version.renditions} == {80, 160, 320}
        assert version.chain_token == ""


class TestLeftovers:
    def test_files_an_interrupted_run_left_are_recorded_or_dropped(self, settings):
        version = make_version(photo())
        storage = storages["default"]
        folder = f"neuraldraft/hero.background/{version.sha256}"
        no_longer_planned = f"{folder}/640w-q80.webp"
        planned = f"{folder}/160w-q80.webp"
        recorded_once = f"{folder}/320w-q50.avif"
        for name in (no_longer_planned, planned, recorded_once):
            storage.save(name, ContentFile(b"half-written"))
        ImageVersion.objects.filter(pk=version.pk).update(
            renditions_writing=[no_longer_planned, planned, "neuraldraft/elsewhere/1w.jpg"]
        )
        storage.save("neuraldraft/elsewhere/1w.jpg", ContentFile(b"not ours"))
        version.refresh_from_db()

        renditions.make_for(version)

        assert storage.exists(recorded_once)
        assert storage.exists("neuraldraft/elsewhere/1w.jpg")
        assert planned in {r["name"] for r in version.renditions}
        assert storage.size(planned) != len(b"half-written")
        row = ImageVersion.objects.get(pk=version.pk)
        assert row.renditions_writing == []
        assert row.renditions_dropped == [no_longer_planned]

    def test_a_planned_name_stays_noted_until_a_step_records_it(self):
        version = make_version(photo())
        name = f"{version.file.name[:-4]}/80w-q80.webp"
        ImageVersion.objects.filter(pk=version.pk).update(renditions_writing=[name])
        version.refresh_from_db()

        renditions.make_for(version, widths=[160])
        assert ImageVersion.objects.get(pk=version.pk).renditions_writing == [name]
        renditions.make_for(version, widths=[80])
        assert ImageVersion.objects.get(pk=version.pk).renditions_writing == []
        assert name in {r["name"] for r in version.renditions}

    def test_removing_a_version_deletes_the_files_it_was_writing(self, commit):
        version = make_version(photo(), bind=False)
        make_version(photo(prompt="A newer harbour"))
        name = f"{version.file.name[:-4]}/160w-q80.webp"
        storages["default"].save(name, ContentFile(b"half-written"))
        ImageVersion.objects.filter(pk=version.pk).update(renditions_writing=[name])

        with commit():
            cleanup = history.remove_old_versions(keep=1)

        assert [removed.pk for removed in cleanup.versions] == [version.pk]
        assert not storages["default"].exists(name)

    def test_a_name_another_version_records_is_never_deleted(self, settings):
        """Identical images share one rendition folder: a name one version's killed step
        noted may be a file the other records, which pages still show."""
        older = make_version(photo())
        renditions.make_for(older)
        newer = make_version(photo())
        assert newer.file.name == older.file.name
        noted = [item.name for item in renditions.plan(newer)]
        ImageVersion.objects.filter(pk=newer.pk).update(renditions_writing=noted)
        newer.refresh_from_db()

        configure(settings, RENDITION_WIDTHS=(120,))
        renditions.make_for(newer)

        recorded = [r["name"] for r in older.renditions]
        assert recorded and all(storages["default"].exists(name) for name in recorded)
        assert ImageVersion.objects.get(pk=newer.pk).renditions_dropped == noted


@pytest.mark.usefixtures("neuraldraft_settings")
class TestWithoutAWorker:
    """``neuraldraft_refresh`` and ``neuraldraft_generate --wait`` make them as they bind."""

    @pytest.fixture
    def finished(self, sandbox, settings):
        configure(settings, RENDITION_WIDTHS=(160, 320))
        hero = ImageKey.objects.create(key="hero.background", prompt="A quiet harbour at dawn")
        job = services.submit(services.request_generation(hero))
        sandbox.finish_job(job.remote_id)
        return job

    def test_refresh(self, finished, published, commit):
        with commit():
            (result,) = refresh_jobs()
        version = ImageVersion.objects.get(pk=result.version.pk)
        assert len(version.renditions) == 6 and version.chain_token == ""
        assert run_published(published) == [TASK]
        assert ImageVersion.objects.get(pk=version.pk).renditions == version.renditions

    def test_wait(self, finished):
        outcome = wait_for(finished, timeout=10, stream=False)
        assert len(outcome.version.renditions) == 6
        assert outcome.version.chain_token == ""
