"""Request body rules: JSON envelopes, generation fields, image keys, webhook endpoints, paging.

Messages follow the style of the docs' one example ("The starts at field must
be a valid ISO 8601 date."), and every failing field is reported at once so a
client can show all of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django_neuraldraft.sandbox.images import ASPECT_RATIOS
from django_neuraldraft.sandbox.messages import Request
from django_neuraldraft.sandbox.problems import bad_request, validation_failed

PROMPT_MAX_LENGTH = 4000
KEY_MAX_LENGTH = 128
DEFAULT_ASPECT_RATIO = "16:9"

# The docs only say "any URL-safe identifier" (§12.18): lower-case, digits, ".", "_", "-".
_KEY_PATTERN = re.compile(r"[a-z0-9._-]+")

#: Every webhook topic the docs list (§5.1).
WEBHOOK_TOPICS = (
    "blog_post.published",
    "blog_post.translated",
    "social_post.published",
    "social_post.failed",
    "order.created",
    "order.paid",
    "order.fulfilled",
    "order.cancelled",
    "order.refunded",
    "booking.confirmed",
    "booking.cancelled",
    "booking.completed",
    "content.changed",
    "image.generated",
    "connect.account_updated",
)

DELIVERY_STATUSES = ("success", "failed", "pending")
MAX_PAGE_SIZE = 100


def json_object(request: Request) -> dict[str, Any]:
    """Return the body as a JSON object, or raise the 400 the catalog describes."""
    if request.media_type != "application/json":
        raise bad_request("The request body must be sent as application/json.")
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, ValueError) as err:
        raise bad_request(f"The request body is not valid JSON: {err}.") from err
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a JSON object.")
    return payload


def key_errors(key: Any) -> list[str]:
    """Return what is wrong with an image key (empty when it is acceptable)."""
    if not isinstance(key, str):
        return ["The key field must be a string."]
    if not 1 <= len(key) <= KEY_MAX_LENGTH:
        return [f"The key field must be between 1 and {KEY_MAX_LENGTH} characters."]
    if not _KEY_PATTERN.fullmatch(key) or key.startswith(".") or ".." in key:
        return [
            "The key field may contain only a-z, 0-9, '.', '_' and '-', "
            "must not start with '.' and must not contain '..'."
        ]
    return []


@dataclass(frozen=True)
class Generation:
    """The validated inputs of one image generation."""

    prompt: str
    style: str | None
    aspect_ratio: str
    key: str | None


def generation(body: dict[str, Any], *, path_key: str | None = None) -> Generation:
    """Validate a generation body; a ``path_key`` (``PUT /images/{key}``) wins over the body's."""
    errors: dict[str, list[str]] = {}
    prompt: Any = body.get("prompt")
    if prompt is None:
        errors["prompt"] = ["The prompt field is required."]
    elif not isinstance(prompt, str):
        errors["prompt"] = ["The prompt field must be a string."]
    elif not prompt.strip():
        errors["prompt"] = ["The prompt field must not be empty."]
    elif len(prompt) > PROMPT_MAX_LENGTH:
        errors["prompt"] = [f"The prompt field must not exceed {PROMPT_MAX_LENGTH} characters."]
    style = body.get("style")
    if style is not None and not isinstance(style, str):
        errors["style"] = ["The style field must be a string or null."]
    aspect_ratio = body.get("aspect_ratio")
    if aspect_ratio is None:
        aspect_ratio = DEFAULT_ASPECT_RATIO
    elif aspect_ratio not in ASPECT_RATIOS:
        errors["aspect_ratio"] = [
            "The aspect ratio field must be one of: " + ", ".join(ASPECT_RATIOS) + "."
        ]
    key = path_key if path_key is not None else body.get("key")
    if path_key is None and key is not None and (problems := key_errors(key)):
        errors["key"] = problems
    if errors:
        raise validation_failed(errors)
    return Generation(prompt, style, aspect_ratio, key)


def regeneration(body: dict[str, Any], key: str) -> Generation:
    """Validate a ``PUT /images/{key}`` JSON body, which must ask to regenerate."""
    if body.get("regenerate") is not True:
        raise validation_failed(
            {
                "regenerate": [
                    "The regenerate field must be true; upload a file to replace the bytes."
                ]
            }
        )
    return generation(body, path_key=key)


def _url_errors(url: Any) -> list[str]:
    if not isinstance(url, str):
        return ["The url field must be a string."]
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when it is read)
    except ValueError:
        return ["The url field has an invalid port."]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ["The url field must be an absolute http or https URL."]
    return []


def _events_errors(events: Any) -> list[str]:
    if not isinstance(events, list) or not events:
        return ["The events field must be a non-empty list of topics."]
    unknown = [event for event in events if event not in WEBHOOK_TOPICS]
    if unknown:
        return [f"Unknown topic {event!r}." for event in unknown]
    return []


def endpoint_fields(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate a webhook endpoint body; ``partial`` (PATCH) makes every field optional."""
    errors: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    for name, check in (("url", _url_errors), ("events", _events_errors)):
        if name not in body:
            if not partial:
                errors[name] = [f"The {name} field is required."]
            continue
        if problems := check(body[name]):
            errors[name] = problems
        else:
            fields[name] = body[name]
    if "is_active" in body:
        if isinstance(body["is_active"], bool):
            fields["is_active"] = body["is_active"]
        else:
            errors["is_active"] = ["The is active field must be true or false."]
    if errors:
        raise validation_failed(errors)
    if "events" in fields:
        fields["events"] = list(dict.fromkeys(fields["events"]))
    return fields


@dataclass(frozen=True)
class DeliveryQuery:
    """Filters and page of ``GET /webhook-deliveries``."""

    endpoint_id: str | None
    status: str | None
    event: str | None
    page: int
    page_size: int


def _positive_int(query: dict[str, str], name: str, default: int, maximum: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if value < 1 or (maximum is not None and value > maximum):
        limit = f" and at most {maximum}" if maximum else ""
        raise validation_failed(
            {
                name: [
                    f"The {name.replace('_', ' ')} field must be an integer of at least 1{limit}."
                ]
            }
        )
    return value


def delivery_query(query: dict[str, str]) -> DeliveryQuery:
    """Validate the list filters; unknown status or event values are 422, not silently empty."""
    status = query.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise validation_failed(
            {"status": ["The status field must be one of: success, failed, pending."]}
        )
    event = query.get("event")
    if event is not None and event not in WEBHOOK_TOPICS:
        raise validation_failed({"event": [f"Unknown topic {event!r}."]})
    return DeliveryQuery(
        endpoint_id=query.get("endpoint_id"),
        status=status,
        event=event,
        page=_positive_int(query, "page", 1, None),
        page_size=_positive_int(query, "page_size", 20, MAX_PAGE_SIZE),
    )
