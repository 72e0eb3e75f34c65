"""Image keys, the Neural Draft jobs that fill them, and every image ever bound to a key."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf
from .choices import (
    IN_FLIGHT_STATUSES,
    TERMINAL_STATUSES,
    AspectRatio,
    ImageOrigin,
    JobStatus,
    JobType,
    WebhookOutcome,
)
from .keys import MAX_KEY_LENGTH, validate_image_key
from .limits import (
    ALT_TEXT_MAX_LENGTH,
    ERROR_CODE_MAX_LENGTH,
    JOB_MESSAGE_MAX_LENGTH,
    REMOTE_ID_MAX_LENGTH,
    SOURCE_URL_MAX_LENGTH,
    STYLE_MAX_LENGTH,
    prompt_validators,
    text_validators,
)
from .managers import CreditSpendQuerySet, ImageKeyQuerySet, ImageVersionQuerySet, JobQuerySet
from .storage import ConfiguredStorage, RecordedStorageImageField


class ImageKey(models.Model):
    """One addressable image slot, such as ``hero.background``, and how to generate it."""

    key = models.CharField(
        _("key"),
        max_length=MAX_KEY_LENGTH,
        unique=True,
        validators=[validate_image_key],
        help_text=_("Lowercase letters, digits, '.', '-' and '_', e.g. hero.background."),
    )
    prompt = models.TextField(
        _("prompt"),
        blank=True,
        validators=prompt_validators(),
        help_text=_("What Neural Draft should draw for this key."),
    )
    style = models.CharField(
        _("style"),
        max_length=STYLE_MAX_LENGTH,
        blank=True,
        validators=text_validators(),
        help_text=_("Free-form style hint, e.g. photorealistic. Empty: the site default."),
    )
    aspect_ratio = models.CharField(
        _("aspect ratio"),
        max_length=5,
        choices=AspectRatio.choices,
        blank=True,
        help_text=_("Empty: the site default."),
    )
    alt_text = models.CharField(
        _("alternative text"),
        max_length=ALT_TEXT_MAX_LENGTH,
        blank=True,
        validators=text_validators(),
        help_text=_("Describes the image for screen readers; rendered as the alt attribute."),
    )
    current = models.ForeignKey(
        "ImageVersion",
        verbose_name=_("image on show"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = ImageKeyQuerySet.as_manager()

    class Meta:
        verbose_name = _("image key")
        verbose_name_plural = _("image keys")
        ordering = ["key"]
        permissions = [("generate_image", _("Can generate and upload images (spends credits)"))]

    def __str__(self) -> str:
        return self.key


class Job(models.Model):
    """The local mirror of one remote Neural Draft job, of any type.

    The row is written, with its idempotency key, before anything is sent, so
    a submit that is retried after a lost response asks for the same remote job.
    """

    remote_id = models.CharField(
        _("remote id"),
        max_length=REMOTE_ID_MAX_LENGTH,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The job_… id at Neural Draft; empty until the job is submitted."),
    )
    type = models.CharField(
        _("type"), max_length=32, choices=JobType.choices, default=JobType.IMAGE_GENERATE
    )
    status = models.CharField(
        _("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    progress = models.PositiveSmallIntegerField(_("progress"), default=0)
    message = models.CharField(_("message"), max_length=JOB_MESSAGE_MAX_LENGTH, blank=True)
    steps = models.JSONField(_("steps"), default=list, blank=True)
    result = models.JSONField(_("result"), null=True, blank=True)
    error_code = models.CharField(_("error code"), max_length=ERROR_CODE_MAX_LENGTH, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    last_error = models.TextField(
        _("last error"),
        blank=True,
        help_text=_(
            "Why the last call to Neural Draft for this job failed, while it is retried; "
            "empty once a call succeeds."
        ),
    )
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True)
    failed_attempts = models.PositiveIntegerField(
        _("failed attempts"),
        default=0,
        help_text=_("Calls to Neural Draft that failed in a row, for the last error."),
    )
    raw = models.JSONField(
        _("last remote response"),
        null=True,
        blank=True,
        help_text=_("The job exactly as Neural Draft last described it."),
    )
    params = models.JSONField(
        _("request parameters"),
        default=dict,
        blank=True,
        help_text=_("What was sent to Neural Draft to create the job."),
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=64, unique=True)
    credits = models.PositiveIntegerField(
        _("credits"), default=0, help_text=_("Credits this job costs.")
    )
    image_key = models.ForeignKey(
        ImageKey,
        verbose_name=_("image key"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    remote_created_at = models.DateTimeField(_("created at Neural Draft"), null=True, blank=True)
    remote_updated_at = models.DateTimeField(_("updated at Neural Draft"), null=True, blank=True)
    sent_at = models.DateTimeField(
        _("first sent"),
        null=True,
        blank=True,
        help_text=_("When the job was first sent to Neural Draft, answered or not."),
    )
    cancel_requested_at = models.DateTimeField(
        _("cancel requested"),
        null=True,
        blank=True,
        help_text=_(
            "A cancel not yet delivered to Neural Draft: the job was being sent, or the "
            "cancel call failed for now. The job's next step delivers it."
        ),
    )
    chain_token = models.CharField(
        _("chain token"),
        max_length=32,
        blank=True,
        help_text=_("The one task message allowed to work on this job next."),
    )
    chain_due_at = models.DateTimeField(
        _("chain due"),
        null=True,
        blank=True,
        help_text=_(
            "When the job's task chain should next touch it; the sweep restarts it after."
        ),
    )
    polls = models.PositiveIntegerField(_("polls"), default=0)
    last_polled_at = models.DateTimeField(_("last polled"), null=True, blank=True)
    next_poll_at = models.DateTimeField(_("next poll"), null=True, blank=True)
    finished_at = models.DateTimeField(
        _("finished"), null=True, blank=True, help_text=_("When the job was seen to end.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["-created_at", "-pk"]
        permissions = [("cancel_job", _("Can cancel a running job"))]
        indexes = [
            models.Index(fields=["status", "next_poll_at"], name="neuraldraft_job_due_idx"),
            models.Index(fields=["created_at"], name="neuraldraft_job_created_idx"),
        ]
        constraints = [
            # One generation per key at a time: a double click or a second editor
            # gets the running job back instead of paying twice.
            models.UniqueConstraint(
                fields=["image_key"],
                condition=Q(status__in=IN_FLIGHT_STATUSES),
                name="neuraldraft_job_one_in_flight_per_key",
            ),
        ]

    def __str__(self) -> str:
        return self.remote_id or _("unsubmitted job #%(pk)s") % {"pk": self.pk}

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ImageVersion(models.Model):
    """One image file bound, now or once, to a key; never overwritten, so rollback is free."""

    image_key = models.ForeignKey(
        ImageKey, verbose_name=_("image key"), on_delete=models.CASCADE, related_name="versions"
    )
    file = RecordedStorageImageField(_("file"), storage=ConfiguredStorage(), max_length=300)
    storage_alias = models.CharField(
        _("storage"),
        max_length=100,
        default=conf.storage_alias,
        editable=False,
        help_text=_("The alias in settings.STORAGES the file was saved to."),
    )
    width = models.PositiveIntegerField(_("width"))
    height = models.PositiveIntegerField(_("height"))
    bytes = models.PositiveBigIntegerField(_("size in bytes"))
    mime_type = models.CharField(_("MIME type"), max_length=50)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    dominant_color = models.CharField(
        _("dominant colour"),
        max_length=7,
        blank=True,
        help_text=_("#rrggbb, painted while the image loads."),
    )
    origin = models.CharField(
        _("origin"), max_length=16, choices=ImageOrigin.choices, default=ImageOrigin.GENERATED
    )
    source_url = models.URLField(_("source URL"), max_length=SOURCE_URL_MAX_LENGTH)
    prompt = models.TextField(_("prompt"), blank=True)
    style = models.CharField(_("style"), max_length=STYLE_MAX_LENGTH, blank=True)
    aspect_ratio = models.CharField(
        _("aspect ratio"), max_length=5, choices=AspectRatio.choices, blank=True
    )
    credits_charged = models.PositiveIntegerField(_("credits charged"), default=0)
    candidate = models.BooleanField(
        _("awaiting review"),
        default=False,
        help_text=_(
            "A finished image kept for an editor to publish or discard "
            "(NEURALDRAFT['AUTO_PUBLISH'] = False); never on show while set."
        ),
    )
    renditions = models.JSONField(
        _("renditions"),
        default=list,
        blank=True,
        help_text=_(
            "Smaller copies made at ingest: a list of {width, height, format, name, bytes}, "
            "name being the file's path in the same storage."
        ),
    )
    renditions_error = models.TextField(
        _("renditions error"),
        blank=True,
        help_text=_(
            "Why some renditions could not be made, when the last attempt ended; "
            "neuraldraft_renditions tries again."
        ),
    )
    renditions_attempts = models.PositiveSmallIntegerField(
        _("renditions attempts"),
        default=0,
        help_text=_("Renditions tasks that failed or were lost since the version was stored."),
    )
    renditions_writing = models.JSONField(
        _("renditions being written"),
        default=list,
        blank=True,
        help_text=_(
            "Names of rendition files being written and not yet recorded; the next run "
            "records those the settings plan and moves the others to the dropped renditions."
        ),
    )
    renditions_dropped = models.JSONField(
        _("dropped renditions"),
        default=list,
        blank=True,
        help_text=_(
            "Names of rendition files the settings no longer plan, kept for pages cached "
            "with them; neuraldraft_cleanup deletes them with the version."
        ),
    )
    chain_token = models.CharField(
        _("renditions chain token"),
        max_length=32,
        blank=True,
        help_text=_("The one renditions task message allowed to work on this version next."),
    )
    chain_due_at = models.DateTimeField(
        _("renditions chain due"),
        null=True,
        blank=True,
        help_text=_(
            "When the renditions task should next touch this version; the sweep requeues it after."
        ),
    )
    job = models.OneToOneField(
        Job,
        verbose_name=_("job"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="image_version",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ImageVersionQuerySet.as_manager()

    class Meta:
        verbose_name = _("image version")
        verbose_name_plural = _("image versions")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["image_key", "-created_at"], name="neuraldraft_version_key_idx"),
            # The sweep's query: the few versions whose renditions are still on their way.
            models.Index(
                fields=["chain_due_at"],
                condition=~models.Q(chain_token=""),
                name="neuraldraft_version_chain_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.file.name or ""


class CreditSpend(models.Model):
    """Credits Neural Draft charged, or is about to charge for an upload: the budget's ledger.

    ``DAILY_CREDIT_BUDGET`` is read from these rows, not from the jobs and
    versions they paid for, because those may be deleted (a finished job in
    the admin, an old version by ``neuraldraft_cleanup``, a key with its
    versions) and the credits stay spent. So a row outlives what it records:
    deleting its job only empties the link, and an upload's row has no link to
    its version, since a version something points at is one cleanup keeps.
    """

    credits = models.PositiveIntegerField(_("credits"))
    spent_at = models.DateTimeField(_("spent"), default=timezone.now)
    job = models.OneToOneField(
        Job,
        verbose_name=_("job"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="credit_spend",
    )

    objects = CreditSpendQuerySet.as_manager()

    class Meta:
        verbose_name = _("credit spend")
        verbose_name_plural = _("credit spends")
        ordering = ["-spent_at", "-pk"]
        indexes = [models.Index(fields=["spent_at"], name="neuraldraft_spend_at_idx")]

    def __str__(self) -> str:
        return _("%(credits)d credits on %(date)s") % {
            "credits": self.credits,
            "date": self.spent_at.date(),
        }


class WebhookEvent(models.Model):
    """One webhook delivery as it arrived, stored before anything acts on it.

    Its body is kept (up to ``WEBHOOK_MAX_BODY_BYTES``) so it can be replayed;
    its headers are kept without credentials. It holds no secret.
    """

    delivery_id = models.CharField(
        _("delivery id"), max_length=64, blank=True, help_text=_("The whd_… id, if sent.")
    )
    event_id = models.CharField(
        _("event id"),
        max_length=64,
        blank=True,
        db_index=True,
        help_text=_("The evt_… id: the same event delivered twice is processed once."),
    )
    event_type = models.CharField(_("event type"), max_length=64, blank=True)
    remote_job_id = models.CharField(_("remote job id"), max_length=64, blank=True)
    job = models.ForeignKey(
        Job,
        verbose_name=_("job"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_events",
    )
    verified = models.BooleanField(
        _("signature verified"), default=False, help_text=_("Whether the signature was valid.")
    )
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    body = models.TextField(_("body"), blank=True)
    body_truncated = models.BooleanField(_("body truncated"), default=False)
    outcome = models.CharField(_("outcome"), max_length=16, choices=WebhookOutcome.choices)
    error = models.TextField(_("error"), blank=True)
    replays = models.PositiveIntegerField(_("replays"), default=0)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-pk"]
        indexes = [
            models.Index(fields=["outcome", "received_at"], name="neuraldraft_webhook_out_idx"),
        ]
        permissions = [("replay_webhookevent", _("Can replay webhook deliveries"))]

    def __str__(self) -> str:
        return self.event_id or self.delivery_id or _("delivery #%(pk)s") % {"pk": self.pk}


class ChangeToken(models.Model):
    """One row whose random value is replaced after every change to what any key shows.

    Processes whose image cache is their own (``LocMemCache``) read it once
    per render to know whether what they cached is still current; see
    docs/templatetags.rst.
    """

    value = models.BigIntegerField(_("value"))

    class Meta:
        verbose_name = _("change token")
        verbose_name_plural = _("change tokens")

    def __str__(self) -> str:
        return str(self.value)
