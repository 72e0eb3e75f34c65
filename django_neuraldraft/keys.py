"""What a valid image key looks like: one rule for models, forms, services and commands."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

MAX_KEY_LENGTH = 128

_KEY_PATTERN = re.compile(r"[a-z0-9._-]+")


def validate_image_key(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is a key such as ``hero.background``.

    Keys end up in storage paths (``<UPLOAD_TO>/<key>/...``) and in API URLs
    (``GET /images/{key}``), so anything that could climb out of a folder or
    need escaping is refused here, once, for every way in.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(_("An image key cannot be empty."), code="empty")
    if len(value) > MAX_KEY_LENGTH:
        raise ValidationError(
            _("An image key has at most %(limit)d characters; this one has %(length)d."),
            code="max_length",
            params={"limit": MAX_KEY_LENGTH, "length": len(value)},
        )
    if not _KEY_PATTERN.fullmatch(value):
        raise ValidationError(
            _(
                "%(key)r is not a valid image key: use lowercase letters, digits, "
                "'.', '-' and '_' only, e.g. 'hero.background'."
            ),
            code="invalid",
            params={"key": value},
        )
    if value.startswith("."):
        raise ValidationError(_("An image key cannot start with a dot."), code="leading_dot")
    if ".." in value:
        raise ValidationError(_("An image key cannot contain '..'."), code="double_dot")


def is_valid_image_key(value: str) -> bool:
    """Whether :func:`validate_image_key` accepts ``value``, for code that skips bad keys."""
    try:
        validate_image_key(value)
    except ValidationError:
        return False
    return True
