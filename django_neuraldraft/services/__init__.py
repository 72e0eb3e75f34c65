"""The only place where models meet the Neural Draft client.

Admin actions, management commands, tasks and site code call these functions;
none of them talks HTTP or moves a job's state by itself. Every function is
safe to call again with the same arguments: a retried task, a second worker or
a double click ends in the same state as one call.

Each concern has one module: :mod:`.remote` the configured client,
:mod:`.generation` asking for images, :mod:`.polling` following a job to its
end, :mod:`.jobs` a job's transitions, :mod:`.chains` the one chain of task
messages per job, :mod:`.backoff` the retry policy, :mod:`.ingest` bringing a
finished image into storage, :mod:`.versions` which image a key shows and
:mod:`.publishing` what an editor decides about it (upload, publish, discard),
:mod:`.history` which past images may go and their files, :mod:`.deletion`
deleting a key with its images, :mod:`.announce` the signals that tell the site.
"""

from .deletion import check_deletable, delete_keys
from .generation import (
    credits_left_today,
    generate,
    generation_params,
    get_or_create_image_key,
    request_generation,
    submit,
)
from .ingest import ingest, pull
from .jobs import fail, reject_result
from .polling import (
    PollOutcome,
    cancel,
    give_up_if_overdue,
    poll_once,
    postpone_poll,
    refresh_job,
    schedule_next_poll,
)
from .publishing import discard, publish, upload
from .remote import TRANSIENT_ERRORS, get_client
from .versions import rollback

__all__ = [
    "TRANSIENT_ERRORS",
    "PollOutcome",
    "cancel",
    "check_deletable",
    "credits_left_today",
    "delete_keys",
    "discard",
    "fail",
    "generate",
    "generation_params",
    "get_client",
    "get_or_create_image_key",
    "give_up_if_overdue",
    "ingest",
    "poll_once",
    "postpone_poll",
    "publish",
    "pull",
    "refresh_job",
    "reject_result",
    "request_generation",
    "rollback",
    "schedule_next_poll",
    "submit",
    "upload",
]
