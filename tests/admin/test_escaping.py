"""Text from editors and from the API is shown as text: a hostile prompt or error runs nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_neuraldraft.choices import JobStatus
from django_neuraldraft.models import ImageKey, ImageVersion, Job
from tests.helpers import add_version

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("neuraldraft_settings")]

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


@pytest.fixture
def hostile():
    image_key = ImageKey.objects.create(
        key="evil.key", prompt=f"A harbour {SCRIPT}. More", alt_text=f"Alt {IMG}"
    )
    version = add_version(image_key, "neuraldraft/evil.key/a.png")
    ImageVersion.objects.filter(pk=version.pk).update(prompt=f"Old {SCRIPT}", style=IMG)
    add_version(image_key, "neuraldraft/evil.key/b.png")
    job = Job.objects.create(
        image_key=image_key,
        status=JobStatus.FAILED,
        idempotency_key="evil",
        remote_id="job_evil",
        error_code=f"bad{IMG}",
        error_message=f"The API said {SCRIPT}",
        message=SCRIPT,
        steps=[{"name": SCRIPT, "completed": True}],
        raw={"error": {"message": SCRIPT}},
    )
    return image_key, job


def assert_inert(page: str, shown: str = "&lt;script&gt;alert(1)&lt;/script&gt;") -> None:
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert shown in page


def test_the_change_list(admin_client, hostile):
    page = admin_client.get(reverse("admin:neuraldraft_imagekey_changelist")).content.decode()
    assert_inert(page, shown="bad&lt;img src=x")


def test_the_change_page(admin_client, hostile):
    image_key, _job = hostile
    url = reverse("admin:neuraldraft_imagekey_change", args=[image_key.pk])
    page = admin_client.get(url).content.decode()
    assert_inert(page)
    assert "The last generation failed: The API said &lt;script&gt;" in page


def test_the_generate_page_with_its_alt_text_proposal(admin_client, hostile):
    image_key, _job = hostile
    ImageKey.objects.filter(pk=image_key.pk).update(alt_text="")
    url = reverse("admin:neuraldraft_imagekey_generate", args=[image_key.pk])
    page = admin_client.get(url).content.decode()
    assert_inert(page)
    assert "Use “A harbour &lt;script&gt;alert(1)&lt;/script&gt;” as alternative text" in page


def test_the_json_status_view(admin_client, hostile):
    image_key, _job = hostile
    data = admin_client.get(
        reverse("admin:neuraldraft_imagekey_status"), {"id": image_key.pk}
    ).json()
    (entry,) = data["keys"]
    assert entry["error_code"] == f"bad{IMG}"  # data, for the script to treat as text
    assert "<img src=x" not in entry["badge"]  # HTML, swapped in as it is
    assert "bad&lt;img src=x" in entry["badge"]


def test_the_job_page(admin_client, hostile):
    _image_key, job = hostile
    page = admin_client.get(reverse("admin:neuraldraft_job_change", args=[job.pk])).content
    assert_inert(page.decode())
