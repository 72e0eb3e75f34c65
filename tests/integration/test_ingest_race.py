"""Two workers ingesting the same job at the same moment store one file and one version.

PostgreSQL only: the guarantee rests on the row lock that ``services.ingest``
takes on the job, which SQLite does not have.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from django_neuraldraft import services
from django_neuraldraft.models import ImageKey, ImageVersion, Job
from tests.integration.conftest import stored_files

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DOWNLOAD_SECONDS = 1.0


def test_racing_ingests_store_one_file_and_return_the_same_version(
    postgresql, sandbox, media_root, completed_job
):
    job = completed_job("race.hero", "Two herons fighting over one fish")
    # Both downloads sit in the CDN for a second, so both callers are past
    # the "already ingested?" check before either of them stores anything.
    sandbox.set_fault("latency", path="/cdn/", seconds=DOWNLOAD_SECONDS)
    start = threading.Barrier(2, timeout=10)
    versions: dict[int, ImageVersion] = {}
    errors: list[BaseException] = []

    def ingest(slot: int) -> None:
        try:
            start.wait()
            versions[slot] = services.ingest(Job.objects.get(pk=job.pk))
        except BaseException as err:
            errors.append(err)
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "an ingest did not finish in 30 s"
    assert not errors, errors

    cdn_downloads = [r for r in sandbox.requests if r.path.startswith("/cdn/")]
    assert len(cdn_downloads) == 2, "the two ingests did not overlap"
    assert versions[0].pk == versions[1].pk
    assert list(ImageVersion.objects.filter(job=job)) == [versions[0]]
    assert ImageKey.objects.get(key="race.hero").current_id == versions[0].pk
    assert stored_files(media_root) == [media_root / versions[0].file.name]
