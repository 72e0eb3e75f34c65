"""The bulk action "Generate images for the selected keys": a plan, a confirmation, a run."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _, ngettext

from .. import conf, services
from ..exceptions import BrokerUnavailableError, CreditBudgetExceededError, NeuralDraftError
from ..models import ImageKey
from .errors import describe_error
from .status import state_of, with_status


@dataclass
class BulkPlan:
    """Which selected keys a bulk generation would start, which it skips and why."""

    to_start: list[ImageKey] = field(default_factory=list)
    skipped: list[tuple[ImageKey, str]] = field(default_factory=list)
    credits_per_image: int = 0
    budget_left: int | None = None

    @property
    def cost(self) -> int:
        return len(self.to_start) * self.credits_per_image

    @property
    def over_budget(self) -> bool:
        return self.budget_left is not None and self.cost > self.budget_left

    @property
    def within_budget(self) -> int:
        """How many of the generations today's budget pays for: the first ones, in key order."""
        if self.budget_left is None or not self.credits_per_image:
            return len(self.to_start)
        return min(len(self.to_start), self.budget_left // self.credits_per_image)


def plan(queryset: QuerySet[ImageKey]) -> BulkPlan:
    result = BulkPlan(
        credits_per_image=conf.credits_per_image(), budget_left=services.credits_left_today()
    )
    for image_key in with_status(queryset.order_by("key")):
        if state_of(image_key).in_flight:
            result.skipped.append((image_key, _("a generation is already running")))
        elif not image_key.prompt.strip():
            result.skipped.append((image_key, _("no prompt")))
        else:
            result.to_start.append(image_key)
    return result


def run(model_admin: ModelAdmin, request: HttpRequest, bulk: BulkPlan) -> None:
    """Start each planned generation and report each key's outcome in its own message.

    No message starts with a key or an id: the admin capitalises a message's
    first letter, and ``Hero.background`` is not the key.
    """
    for image_key, reason in bulk.skipped:
        model_admin.message_user(
            request,
            _("Skipped %(key)s: %(reason)s.") % {"key": image_key.key, "reason": reason},
            messages.WARNING,
        )
    for image_key in bulk.to_start:
        try:
            job = services.request_generation(image_key, requested_by=request.user)
        except (ValidationError, CreditBudgetExceededError, NeuralDraftError) as err:
            model_admin.message_user(
                request,
                _("Did not start %(key)s: %(reason)s")
                % {"key": image_key.key, "reason": describe_error(err)},
                messages.ERROR,
            )
            continue
        except BrokerUnavailableError as err:
            model_admin.message_user(
                request,
                _("Generation of %(key)s: %(reason)s")
                % {"key": image_key.key, "reason": describe_error(err)},
                messages.WARNING,
            )
            continue
        model_admin.message_user(
            request,
            ngettext(
                "Generation of %(key)s started (job #%(job)d, %(credits)d credit).",
                "Generation of %(key)s started (job #%(job)d, %(credits)d credits).",
                job.credits,
            )
            % {"key": image_key.key, "job": job.pk, "credits": job.credits},
            messages.SUCCESS,
        )
