"""One renditions task at a time per version, in short steps, requeued when lost, given up on.

A version's renditions are followed like a job (:mod:`.chains`): the
row holds the token of the one task message allowed to work on it, written
by :func:`~django_neuraldraft.renditions.schedule` when the version is stored.
Each message makes a few widths (:data:`STEP_PIXELS`), records them and hands
the version to a new message for the smaller ones, so that a worker shared
with polls is never held by one version for long. A running step holds the
chain for its task's hard time limit, so a slow step is never doubled; the
sweep requeues a chain nobody touched past its due time and a grace. A step
that raised, or that the sweep finds dead, counts as an attempt; after
:data:`MAX_ATTEMPTS` the version keeps what was made and says why on
``renditions_error``. docs/renditions.rst explains the whole course.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from .. import renditions
from ..models import ImageVersion
from . import chains, rendition_slots
from .backoff import retry_delay

logger = logging.getLogger(__name__)

#: Attempts (steps that raised or were lost while running) before a version's renditions stop.
MAX_ATTEMPTS = 3
#: The renditions task's hard time limit, in seconds: how long a running step holds the chain.
STEP_TIME_LIMIT = 180
#: About how many pixels of renditions one step makes, each format counting them once:
#: a 2048x1152 rendition's worth, so the default widths of a generated image take three
#: steps of at most about a third of a second of CPU each (docs/renditions.rst).
STEP_PIXELS = 2_400_000
#: Seconds before a step that found every ``RENDITION_CONCURRENCY`` slot taken tries again
#: on its own. The step that frees a slot wakes the one that has waited longest at once
#: (:func:`_wake_a_waiter`), so this is the fallback for a wake-up that was lost, and
#: waiting steps cost a message each per this long rather than a stream of retries.
SLOT_WAIT = 30.0
#: Chains due within this many seconds are running or about to; a freed slot wakes none of them.
WAKE_AHEAD = 1.0
#: ``renditions_error`` is read by people; what exceptions say is cut to this length.
ERROR_MAX_LENGTH = 2000


def step_widths(version: ImageVersion, below: int | None) -> list[int]:
    """The widths the next step makes: the largest missing under ``below``, and smaller ones.

    Widths are taken largest first until they add up to :data:`STEP_PIXELS`
    (the first always, however large).
    """
    missing = {item.width for item in renditions.todo(version)}
    if below is not None:
        missing = {width for width in missing if width < below}
    widths: list[int] = []
    pixels = 0
    for width in sorted(missing, reverse=True):
        size = width * max(1, round(width * version.height / max(1, version.width)))
        if widths and pixels + size > STEP_PIXELS:
            break
        widths.append(width)
        pixels += size
    return widths


def run_step(version_pk: int, token: str | None, below: int | None = None) -> None:
    """Make the next step of widths under ``below`` if the message holding ``token`` may.

    ``token`` ``None`` (a message sent by hand, or queued before chains
    existed) takes the chain over.
    """
    version = chains.claim(version_pk, token, model=ImageVersion, hold=STEP_TIME_LIMIT)
    if version is None:
        logger.debug("Dropped a stale renditions message for version %s.", version_pk)
        return
    running = version.chain_token
    with rendition_slots.slot(STEP_TIME_LIMIT) as free:
        if not free:
            _wait_for_slot(version_pk, running, below)
            return
        _make_step(version, running, below)
    _wake_a_waiter(but=version_pk)


def _make_step(version: ImageVersion, running: str, below: int | None) -> None:
    version_pk = version.pk
    widths = step_widths(version, below)
    try:
        outcome = renditions.make_for(version, widths=widths) if widths else None
    except Exception as err:
        _failed_attempt(version, running, below, err)
        return
    if outcome is not None and outcome.failed:
        _note_failures(version, outcome.failed)
    smallest = min(widths, default=None)
    if smallest is not None and step_widths(version, smallest):
        token = chains.pass_on(version_pk, running, 0.0, model=ImageVersion)
        if token is not None:
            renditions.send_task(version_pk, token, below=smallest)
        return
    chains.end(version_pk, running, model=ImageVersion)


def make_now(version: ImageVersion, *, check_files: bool = False) -> renditions.Outcome:
    """Make every missing rendition of ``version`` in this process: a command, no worker needed.

    Takes the version's chain over, so a renditions task queued for it
    meanwhile is dropped instead of doing the same work again, and starts
    afresh: ``renditions_error`` ends up saying what this call could not
    make, or nothing. ``check_files`` as for :func:`.renditions.make_for`.
    """
    claimed = chains.claim(version.pk, None, model=ImageVersion, hold=STEP_TIME_LIMIT)
    if claimed is None:
        return renditions.Outcome(renditions=[])
    outcome = renditions.make_for(claimed, check_files=check_files)
    error = _clip("\n".join(_describe(outcome.failed)))
    ImageVersion.objects.filter(pk=claimed.pk, chain_token=claimed.chain_token).update(
        chain_token="", chain_due_at=None, renditions_error=error, renditions_attempts=0
    )
    version.renditions, version.renditions_writing = outcome.renditions, claimed.renditions_writing
    version.renditions_dropped = claimed.renditions_dropped
    version.renditions_error, version.renditions_attempts = error, 0
    version.chain_token, version.chain_due_at = "", None
    return outcome


def make_after_bind(version: ImageVersion) -> None:
    """:func:`make_now` for a command that just bound ``version``; a failure is logged, not raised.

    The image is bound whatever happens here; the version's chain is left
    to the sweep, or to ``neuraldraft_renditions --missing``.
    """
    try:
        make_now(version)
    except Exception:
        logger.warning(
            "Could not make the renditions of version %s now; "
            "neuraldraft_renditions --missing makes them.",
            version.pk,
            exc_info=True,
        )


def requeue_overdue(*, grace_seconds: float) -> int:
    """Requeue the renditions of every version whose chain is overdue by ``grace_seconds``.

    A message that was queued and never claimed (a broker down at commit, a
    message dropped) is simply sent again. A step that was claimed and never
    finished (a worker killed mid-task, past its hard time limit) counts as
    an attempt: the image itself may be what kills it, so after
    :data:`MAX_ATTEMPTS` the version is given up on with a reason. Returns
    how many versions were requeued.
    """
    before = timezone.now() - timedelta(seconds=grace_seconds)
    overdue = ImageVersion.objects.renditions_overdue(before=before)
    cursed = overdue.filter(chains.running(), renditions_attempts__gte=MAX_ATTEMPTS - 1)
    for version in cursed:
        _give_up(
            version,
            version.chain_token,
            f"{version.renditions_attempts + 1} attempts were interrupted before they ended "
            "(a worker killed, or past the task's time limit).",
        )
    requeued = chains.restart(
        overdue.filter(chains.running()), renditions_attempts=F("renditions_attempts") + 1
    )
    requeued += chains.restart(overdue.exclude(chains.running()))
    for version, token in requeued:
        renditions.send_task(version.pk, token)
    return len(requeued)


def _wait_for_slot(version_pk: int, running: str, below: int | None) -> None:
    """Hand the chain to a message sent :data:`SLOT_WAIT` s from now; no attempt is counted."""
    logger.debug("No free renditions slot for version %s; trying again.", version_pk)
    token = chains.pass_on(version_pk, running, SLOT_WAIT, model=ImageVersion)
    if token is not None:
        renditions.send_task(version_pk, token, below=below, countdown=SLOT_WAIT)


def _wake_a_waiter(*, but: int) -> None:
    """Send the chain that has waited longest for a slot a message now, for the slot just freed.

    Chains waiting after a failed attempt keep their backoff, and version
    ``but`` (the step that freed the slot) goes on by its own messages. A
    step sent on its way meanwhile may take the slot first; the woken one
    then waits again, behind the others.
    """
    soonest = timezone.now() + timedelta(seconds=WAKE_AHEAD)
    waiting = ImageVersion.objects.filter(
        chains.queued(), chain_due_at__gt=soonest, renditions_attempts=0
    ).exclude(pk=but)
    for version, token in chains.restart(waiting.order_by("chain_due_at")[:1]):
        renditions.send_task(version.pk, token)


def _failed_attempt(
    version: ImageVersion, running: str, below: int | None, err: Exception
) -> None:
    attempts = version.renditions_attempts + 1
    reason = f"{type(err).__name__}: {err}"
    if attempts >= MAX_ATTEMPTS:
        _give_up(version, running, f"{attempts} attempts failed; the last: {reason}")
        return
    logger.warning(
        "Renditions of version %s failed (attempt %d of %d), retrying: %s",
        version.pk,
        attempts,
        MAX_ATTEMPTS,
        reason,
    )
    ImageVersion.objects.filter(pk=version.pk, chain_token=running).update(
        renditions_attempts=attempts
    )
    delay = retry_delay(attempts)
    token = chains.pass_on(version.pk, running, delay, model=ImageVersion)
    if token is not None:
        renditions.send_task(version.pk, token, below=below, countdown=delay)


def _give_up(version: ImageVersion, running: str, reason: str) -> None:
    """End the chain holding ``running``, saying why on the row; what was made is kept."""
    logger.error("Gave up on the renditions of version %s: %s", version.pk, reason)
    ImageVersion.objects.filter(pk=version.pk, chain_token=running).update(
        chain_token="",
        chain_due_at=None,
        renditions_attempts=F("renditions_attempts") + 1,
        renditions_error=_clip(f"Gave up: {reason} Run neuraldraft_renditions --missing."),
    )


def _note_failures(version: ImageVersion, failed: list[tuple[str, int, str]]) -> None:
    """Add what this step could not make to ``renditions_error``; it is not retried."""
    text = "\n".join(filter(None, [version.renditions_error, *_describe(failed)]))
    version.renditions_error = _clip(text)
    ImageVersion.objects.filter(pk=version.pk).update(renditions_error=version.renditions_error)


def _describe(failed: list[tuple[str, int, str]]) -> list[str]:
    return [f"{image_format} {width}w: {reason}" for image_format, width, reason in failed]


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_MAX_LENGTH else text[: ERROR_MAX_LENGTH - 1] + "…"
