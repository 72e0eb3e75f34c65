"""The fixed vocabularies of the Neural Draft API, as Django choices."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class AspectRatio(models.TextChoices):
    SQUARE = "1:1", _("1:1 square")
    LANDSCAPE = "16:9", _("16:9 widescreen")
    PORTRAIT = "9:16", _("9:16 story")
    SOCIAL_PORTRAIT = "4:5", _("4:5 social portrait")
    CLASSIC = "4:3", _("4:3 classic")
    PHOTO = "3:2", _("3:2 photo")


class JobType(models.TextChoices):
    IMAGE_GENERATE = "image.generate", _("image")
    BLOG_POST_GENERATE = "blog_post.generate", _("blog post")
    SOCIAL_POST_GENERATE = "social_post.generate", _("social post")
    TRANSLATION_BATCH = "translation.batch", _("translation batch")
    CONTENT_PLAN_GENERATE = "content_plan.generate", _("content plan")
    WEBSITE_GENERATE = "website.generate", _("website")


class JobStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    PROCESSING = "processing", _("processing")
    COMPLETED = "completed", _("completed")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


IN_FLIGHT_STATUSES = (JobStatus.PENDING, JobStatus.PROCESSING)
TERMINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class ImageOrigin(models.TextChoices):
    GENERATED = "generated", _("generated")
    PULLED = "pulled", _("pulled from Neural Draft")
    UPLOADED = "uploaded", _("uploaded by an editor")


class WebhookOutcome(models.TextChoices):
    """What became of one webhook delivery: the receiver's verdict, then its processing."""

    REJECTED = "rejected", _("rejected")
    IGNORED = "ignored", _("ignored")
    QUEUED = "queued", _("queued")
    PROCESSED = "processed", _("processed")
    DUPLICATE = "duplicate", _("duplicate")
    FAILED = "failed", _("failed")
