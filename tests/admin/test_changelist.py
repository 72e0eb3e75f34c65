"""The image key change list and the JSON status view: what they show, for how many queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, ImageVersion, Job
from tests.helpers import add_version

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]

CHANGELIST = reverse("admin:neuraldraft_imagekey_changelist")
STATUS = reverse("admin:neuraldraft_imagekey_status")

#: Queries of one change list page: session, user, the filtered and the full count, the page;
#: none of them per row.
CHANGELIST_QUERIES = 5
#: Session, user, the keys.
STATUS_QUERIES = 3


def make_keys(count: int, start: int = 0) -> list[ImageKey]:
    """Keys in every state: ready, generating, failed, empty, each with a job history."""
    keys = []
    for number in range(start, start + count):
        image_key = ImageKey.objects.create(key=f"page.key-{number:03d}", prompt="A harbour")
        state = number % 4
        if state in (0, 2):
            image_key.current = add_version(image_key, f"neuraldraft/{number}.png")
            image_key.save()
        if state == 1:
            make_job(image_key, JobStatus.PROCESSING, progress=number % 100)
        if state == 2:
            make_job(image_key, JobStatus.FAILED, error_code="content_policy")
        keys.append(image_key)
    return keys


def make_job(image_key, status, **fields) -> Job:
    return Job.objects.create(
        image_key=image_key,
        status=status,
        idempotency_key=f"{image_key.key}-{status}",
        remote_id=f"job_{image_key.pk}_{status}",
        **fields,
    )


def count_queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


class TestChangeList:
    def test_shows_thumbnail_key_badge_progress_and_error_code(self, admin_client):
        ready, generating, failed, empty = make_keys(4)
        page = admin_client.get(CHANGELIST).content.decode()
        assert f'data-nd-image="{ready.pk}"><img src="/media/neuraldraft/0.png"' in page
        assert f'data-nd-status="{generating.pk}" data-nd-state="generating"' in page
        assert '<progress class="nd-progress" max="100" value="1">' in page
        assert f'data-nd-status="{failed.pk}" data-nd-state="failed"' in page
        assert '<code class="nd-error-code">content_policy</code>' in page
        assert f'data-nd-status="{empty.pk}" data-nd-state="empty"' in page
        assert "neuraldraft/admin.js" in page

    def test_a_page_of_100_keys_costs_a_constant_number_of_queries(self, admin_client):
        make_keys(10)
        few = count_queries(admin_client, CHANGELIST)
        make_keys(90, start=10)
        hundred = count_queries(admin_client, CHANGELIST)
        assert hundred == few
        assert hundred <= CHANGELIST_QUERIES

    @pytest.mark.parametrize(
        ("state", "expected"),
        [
            ("ready", ["page.key-000", "page.key-004"]),
            ("generating", ["page.key-001", "page.key-005"]),
            ("failed", ["page.key-002", "page.key-006"]),
            ("empty", ["page.key-003", "page.key-007"]),
        ],
    )
    def test_status_filter(self, admin_client, state, expected):
        make_keys(8)
        response = admin_client.get(CHANGELIST, {"status": state})
        shown = [key.key for key in response.context["cl"].result_list]
        assert shown == expected

    def test_aspect_ratio_filter_and_search(self, admin_client):
        ImageKey.objects.create(key="hero.background", prompt="harbour", aspect_ratio="16:9")
        ImageKey.objects.create(key="team.portrait", alt_text="Our teachers", aspect_ratio="1:1")
        by_ratio = admin_client.get(CHANGELIST, {"aspect_ratio__exact": "1:1"})
        assert [key.key for key in by_ratio.context["cl"].result_list] == ["team.portrait"]
        for term, key in [("harbour", "hero.background"), ("teachers", "team.portrait")]:
            found = admin_client.get(CHANGELIST, {"q": term})
            assert [found_key.key for found_key in found.context["cl"].result_list] == [key]

    def test_facet_counts(self, admin_client):
        make_keys(8)
        page = admin_client.get(CHANGELIST, {"_facets": "True"}).content.decode()
        for label in ("ready", "generating", "failed", "no image"):
            assert f"{label} (2)" in page


class TestStatusView:
    def test_shape(self, admin_client):
        ready, generating, failed, _empty = make_keys(4)
        data = admin_client.get(STATUS, {"id": [ready.pk, generating.pk, failed.pk]}).json()
        assert data["in_flight"] is True
        entries = {entry["key"]: entry for entry in data["keys"]}
        assert set(entries) == {ready.key, generating.key, failed.key}
        assert entries[ready.key] == {
            "id": ready.pk,
            "key": ready.key,
            "state": "ready",
            "progress": None,
            "error_code": "",
            "image": "/media/neuraldraft/0.png",
            "badge": entries[ready.key]["badge"],
        }
        assert entries[ready.key]["badge"].startswith(
            f'<span class="nd-status" data-nd-status="{ready.pk}" data-nd-state="ready"'
        )
        assert entries[generating.key]["progress"] == 1
        assert entries[generating.key]["image"] is None
        assert entries[failed.key]["error_code"] == "content_policy"

    def test_a_key_without_image_and_a_key_that_is_gone(self, admin_client):
        _ready, _generating, _failed, empty = make_keys(4)
        data = admin_client.get(STATUS, {"id": [empty.pk, 999_999]}).json()
        assert data["in_flight"] is False
        (entry,) = data["keys"]
        assert (entry["state"], entry["image"], entry["progress"], entry["error_code"]) == (
            "empty",
            None,
            None,
            "",
        )
        assert 'data-nd-state="empty"' in entry["badge"]

    def test_a_finished_job_whose_image_is_not_stored_yet_is_still_generating(self, admin_client):
        """Between Neural Draft's 'completed' and the ingest step the key has no new image:
        the live update must keep asking, or it stops before the image arrives."""
        ready = make_keys(1)[0]
        job = make_job(ready, JobStatus.COMPLETED, progress=100)
        data = admin_client.get(STATUS, {"id": ready.pk}).json()
        assert data["in_flight"] is True
        assert (data["keys"][0]["state"], data["keys"][0]["progress"]) == ("generating", 100)
        filtered = admin_client.get(CHANGELIST, {"status": "generating"})
        assert [key.key for key in filtered.context["cl"].result_list] == [ready.key]
        page = admin_client.get(reverse("admin:neuraldraft_imagekey_change", args=[ready.pk]))
        assert "/cancel/" not in page.content.decode()  # nothing left to cancel
        ImageVersion.objects.filter(pk=ready.current_id).update(job=job)
        data = admin_client.get(STATUS, {"id": ready.pk}).json()
        assert (data["in_flight"], data["keys"][0]["state"]) == (False, "ready")
        for state, expected in (("ready", [ready.key]), ("generating", []), ("empty", [])):
            shown = admin_client.get(CHANGELIST, {"status": state}).context["cl"].result_list
            assert [key.key for key in shown] == expected, state

    def test_nothing_in_flight(self, admin_client):
        ready = make_keys(1)[0]
        assert admin_client.get(STATUS, {"id": ready.pk}).json()["in_flight"] is False

    def test_100_keys_cost_a_constant_number_of_queries(self, admin_client):
        keys = make_keys(100)
        few = count_queries(admin_client, f"{STATUS}?" + "&".join(f"id={k.pk}" for k in keys[:5]))
        hundred = count_queries(admin_client, f"{STATUS}?" + "&".join(f"id={k.pk}" for k in keys))
        assert hundred == few
        assert hundred <= STATUS_QUERIES

    def test_needs_the_view_permission(self, client, django_user_model):
        from tests.admin.conftest import staff_user

        client.force_login(staff_user(django_user_model, "jobs-only", "view_job"))
        assert client.get(STATUS, {"id": 1}).status_code == 403

    def test_anonymous_users_get_the_login_page(self, client):
        response = client.get(STATUS, {"id": 1})
        assert response.status_code == 302

    @pytest.mark.parametrize(
        "ids",
        [["x"], [str(n) for n in range(1, 502)], ["1", "0"], ["1", str(2**63)], [str(-(2**70))]],
        ids=["not-a-number", "too-many", "zero", "past-64-bits", "negative"],
    )
    def test_bad_ids_are_refused(self, admin_client, ids):
        assert admin_client.get(STATUS, {"id": ids}).status_code == 400
