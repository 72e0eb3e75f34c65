"""What the ``neuraldraft_*`` commands share: exit codes, turning errors into messages, JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from ..exceptions import NeuralDraftError
from ..keys import validate_image_key
from ..models import ImageKey

#: Exit codes documented in docs/commands.rst; Django's own are 1 (CommandError) and 2 (usage).
EXIT_FAILED = 1
EXIT_TIMED_OUT = 3
EXIT_INTERRUPTED = 130


def validation_messages(err: ValidationError) -> str:
    return " ".join(err.messages)


def user_error(err: Exception) -> CommandError:
    """The ``CommandError`` for an error the user can act on, with the library's message."""
    if isinstance(err, ValidationError):
        return CommandError(validation_messages(err))
    if isinstance(err, NeuralDraftError):
        return CommandError(_("Neural Draft refused: %(error)s") % {"error": err})
    return CommandError(str(err))


def checked_keys(keys: list[str]) -> list[str]:
    """``keys`` without repeats, every one valid, or a ``CommandError`` naming the bad ones."""
    problems = []
    for key in keys:
        try:
            validate_image_key(key)
        except ValidationError as err:
            problems.append(validation_messages(err))
    if problems:
        raise CommandError(" ".join(problems))
    return list(dict.fromkeys(keys))


def existing_image_keys(keys: list[str]) -> list[ImageKey]:
    """The ``ImageKey`` rows of ``keys``, in order; ``CommandError`` naming missing ones."""
    found = {image_key.key: image_key for image_key in ImageKey.objects.filter(key__in=keys)}
    missing = [key for key in keys if key not in found]
    if missing:
        raise CommandError(
            _("No image key %(keys)s. List them with manage.py neuraldraft_status.")
            % {"keys": ", ".join(missing)}
        )
    return [found[key] for key in keys]


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)
