"""The ``NEURALDRAFT`` settings dict: every default in one place, read at call time."""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .choices import AspectRatio
from .exceptions import NeuralDraftConfigurationError

API_KEY_ENV_VAR = "NEURALDRAFT_API_KEY"

DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        # Required: from here or from the NEURALDRAFT_API_KEY environment variable.
        "API_KEY": None,
        "BASE_URL": "https://api.neuraldraft.io/v1",
        # Seconds: a number for both, or a (connect, read) pair.
        "TIMEOUT": (5, 30),
        # Retries of one HTTP call on 429, 5xx and transport errors.
        "MAX_RETRIES": 3,
        # Alias in settings.STORAGES.
        "STORAGE": "default",
        # Folder inside that storage; files land at <UPLOAD_TO>/<key>/<sha256>.<ext>.
        "UPLOAD_TO": "neuraldraft",
        # Used when an image key sets none.
        "DEFAULT_STYLE": None,
        "DEFAULT_ASPECT_RATIO": "16:9",
        # Seconds: first poll after POLL_INITIAL, growing to POLL_MAX; give up after JOB_TIMEOUT.
        "POLL_INITIAL": 2,
        "POLL_MAX": 30,
        "JOB_TIMEOUT": 1800,
        # Download caps: bytes, and width x height (decompression bombs).
        "MAX_DOWNLOAD_BYTES": 25 * 1024 * 1024,
        "MAX_PIXELS": 50_000_000,
        # Hosts (or IP networks) images may come from; None: the API CDN and BASE_URL's host.
        "ALLOWED_DOWNLOAD_HOSTS": None,
        # Credits one generation costs, and an optional cap on credits committed per day.
        "CREDITS_PER_IMAGE": 40,
        "DAILY_CREDIT_BUDGET": None,
        # True: a finished image goes on show at once; False: it waits as a candidate for review.
        "AUTO_PUBLISH": True,
        # Alias in settings.CACHES where the template tags keep resolved images.
        "CACHE_ALIAS": "default",
        # Seconds an image stays cached (less for signed storage URLs).
        "CACHE_TIMEOUT": 24 * 60 * 60,
        # Shown for a key without an image: None, the aspect-ratio SVG; "", nothing; or a URL.
        "PLACEHOLDER": None,
        # Pixels: the widths of the renditions made at ingest (never wider than the original).
        "RENDITION_WIDTHS": (320, 480, 640, 960, 1280, 1600, 2048),
        # Rendition formats besides the original's own, which is always made as the fallback.
        "RENDITION_FORMATS": ("avif", "webp"),
        # Encoder quality (1-100) per rendition format; a partial dict keeps the other defaults.
        "RENDITION_QUALITY": {"avif": 50, "webp": 80, "jpeg": 80},
        # Renditions steps running at once across the workers (per process with LocMemCache).
        "RENDITION_CONCURRENCY": 1,
        # whsec_... secret of the registered webhook endpoint; None: webhooks off.
        "WEBHOOK_SECRET": None,
        # Seconds a delivery's signature timestamp may be off; bytes a delivery body may have.
        "WEBHOOK_TOLERANCE": 300,
        "WEBHOOK_MAX_BODY_BYTES": 64 * 1024,
        # Seconds between the polls that still follow a job while webhooks are on.
        "WEBHOOK_SAFETY_POLL": 120,
        # The sizes attribute used when a tag gives none, e.g. "100vw"; None: none.
        "DEFAULT_SIZES": None,
        # Whether CACHE_ALIAS is shared by every process (Redis, Memcached); None: guess
        # from its backend (LocMemCache and DummyCache are not).
        "SHARED_CACHE": None,
    }
)

#: Where the API serves finished images (docs: result URLs on cdn.neuraldraft.io).
API_CDN_HOST = "cdn.neuraldraft.io"


def user_settings() -> Mapping[str, Any]:
    """Return the project's ``NEURALDRAFT`` dict as written, without defaults."""
    value = getattr(settings, "NEURALDRAFT", {})
    if not isinstance(value, Mapping):
        raise NeuralDraftConfigurationError(
            f"settings.NEURALDRAFT must be a dict, not {type(value).__name__}."
        )
    return value


def unknown_keys(user: Mapping[str, Any]) -> dict[str, str | None]:
    """Map each key of ``user`` that we do not know to its closest known key, if any."""
    return {
        key: next(iter(difflib.get_close_matches(str(key), DEFAULTS, n=1)), None)
        for key in user
        if key not in DEFAULTS
    }


def describe_unknown_key(key: str, suggestion: str | None) -> str:
    hint = f"; did you mean {suggestion!r}?" if suggestion else "."
    return f"Unknown NEURALDRAFT key {key!r}{hint}"


class NeuralDraftSettingsWarning(UserWarning):
    """A ``NEURALDRAFT`` key or value is ignored at run time; the system checks say why."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0


#: The longest a schedule's setting may be: it is added to the current time,
#: and a typo of a few more digits would overflow a datetime in the worker.
_LONGEST_DURATION = 7 * 24 * 60 * 60


def _is_duration(value: Any) -> bool:
    return _is_positive_number(value) and value <= _LONGEST_DURATION


def _is_timeout(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return len(value) == 2 and all(_is_positive_number(v) for v in value)
    return _is_positive_number(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_positive_whole(value: Any) -> bool:
    return _is_count(value) and value > 0


def _is_optional_count(value: Any) -> bool:
    return value is None or _is_count(value)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_folder(value: Any) -> bool:
    if not isinstance(value, str) or "\\" in value:
        return False
    parts = value.strip("/").split("/")
    return all(part.strip() and part not in (".", "..") for part in parts)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_host_list(value: Any) -> bool:
    return value is None or (
        isinstance(value, (list, tuple, set, frozenset))
        and all(isinstance(host, str) and host.strip() for host in value)
    )


#: The formats ``RENDITION_FORMATS`` may name; all but PNG take a ``RENDITION_QUALITY``.
RENDITION_FORMAT_NAMES = ("avif", "webp", "jpeg", "png")
LOSSY_RENDITION_FORMATS = ("avif", "webp", "jpeg")
#: The widest rendition every format can hold (WebP's limit).
MAX_RENDITION_WIDTH = 16383


def _is_width_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        _is_positive_whole(width) and width <= MAX_RENDITION_WIDTH for width in value
    )


def _is_format_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        name in RENDITION_FORMAT_NAMES for name in value
    )


def _is_quality_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        name in LOSSY_RENDITION_FORMATS and _is_positive_whole(quality) and quality <= 100
        for name, quality in value.items()
    )


def _is_optional_webhook_secret(value: Any) -> bool:
    return value is None or (
        isinstance(value, str) and re.fullmatch(r"whsec_\w+", value) is not None
    )


class Rule(NamedTuple):
    """What one setting must be, tested where it is read and reported by the system checks."""

    #: Whether a value is usable.
    accepts: Callable[[Any], bool]
    #: What the value must be, in words that follow "is not".
    expected: str


#: The rule of each setting. Keys without a rule are used as they are written.
RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "API_KEY": Rule(_is_optional_text, "a string"),
        "BASE_URL": Rule(_is_http_url, "an absolute http(s) URL"),
        "TIMEOUT": Rule(_is_timeout, "a positive number of seconds or a (connect, read) pair"),
        "MAX_RETRIES": Rule(_is_count, "a whole number, 0 or more"),
        "STORAGE": Rule(_is_name, "the name of an alias in settings.STORAGES"),
        "UPLOAD_TO": Rule(_is_folder, "a relative folder such as 'neuraldraft'"),
        "DEFAULT_STYLE": Rule(_is_optional_text, "None or a string"),
        "DEFAULT_ASPECT_RATIO": Rule(
            AspectRatio.values.__contains__, f"one of {', '.join(map(repr, AspectRatio.values))}"
        ),
        "POLL_INITIAL": Rule(_is_duration, "a positive number of seconds, a week at most"),
        "POLL_MAX": Rule(_is_duration, "a positive number of seconds, a week at most"),
        "JOB_TIMEOUT": Rule(_is_duration, "a positive number of seconds, a week at most"),
        "MAX_DOWNLOAD_BYTES": Rule(_is_positive_whole, "a positive whole number of bytes"),
        "MAX_PIXELS": Rule(_is_positive_whole, "a positive whole number of pixels"),
        "ALLOWED_DOWNLOAD_HOSTS": Rule(_is_host_list, "None or a list of host names"),
        "CREDITS_PER_IMAGE": Rule(_is_count, "a whole number, 0 or more"),
        "DAILY_CREDIT_BUDGET": Rule(_is_optional_count, "None or a whole number, 0 or more"),
        "AUTO_PUBLISH": Rule(_is_bool, "True or False"),
        "CACHE_ALIAS": Rule(_is_name, "the name of an alias in settings.CACHES"),
        "CACHE_TIMEOUT": Rule(_is_positive_whole, "a positive whole number of seconds"),
        "PLACEHOLDER": Rule(_is_optional_text, "None or a string"),
        "RENDITION_WIDTHS": Rule(
            _is_width_list, f"a list of widths in pixels, each from 1 to {MAX_RENDITION_WIDTH}"
        ),
        "RENDITION_FORMATS": Rule(
            _is_format_list,
            f"a list of formats among {', '.join(map(repr, RENDITION_FORMAT_NAMES))}",
        ),
        "RENDITION_QUALITY": Rule(
            _is_quality_map,
            "a dict of qualities from 1 to 100 for "
            f"{', '.join(map(repr, LOSSY_RENDITION_FORMATS))}",
        ),
        "RENDITION_CONCURRENCY": Rule(_is_positive_whole, "a positive whole number of steps"),
        "WEBHOOK_SECRET": Rule(_is_optional_webhook_secret, "None or a whsec_ signing secret"),
        "WEBHOOK_TOLERANCE": Rule(_is_positive_number, "a positive number of seconds"),
        "WEBHOOK_MAX_BODY_BYTES": Rule(_is_positive_whole, "a positive whole number of bytes"),
        "WEBHOOK_SAFETY_POLL": Rule(_is_duration, "a positive number of seconds, a week at most"),
        "DEFAULT_SIZES": Rule(_is_optional_text, "None or a string"),
        "SHARED_CACHE": Rule(
            lambda value: value is None or isinstance(value, bool), "None, True or False"
        ),
    }
)

#: What replaces an unusable value at run time where the default would be less safe:
#: a budget that cannot be read spends nothing rather than everything.
_FALLBACKS: Mapping[str, Any] = MappingProxyType({"DAILY_CREDIT_BUDGET": 0})


def is_valid(name: str, value: Any) -> bool:
    """Whether ``value`` is usable for the setting ``name``."""
    rule = RULES.get(name)
    return rule is None or rule.accepts(value)


def _warn(message: str) -> None:
    # Python shows a given warning once per process by default.
    warnings.warn(message, NeuralDraftSettingsWarning, stacklevel=2)


@lru_cache(maxsize=1)
def get_settings() -> Mapping[str, Any]:
    """Return the defaults overlaid with ``settings.NEURALDRAFT``, read-only.

    Cached until Django's ``setting_changed`` fires, so ``override_settings``
    works. Settings are read while pages render, so nothing here raises: an
    unknown key (a typo such as ``TIMEOUTS``) is ignored and a value that
    breaks its rule gives way to its default, each with a
    :class:`NeuralDraftSettingsWarning`. The system checks report both as
    errors (docs/checks.rst), which stops ``runserver`` and ``migrate``.
    """
    try:
        user = user_settings()
    except NeuralDraftConfigurationError as err:
        _warn(f"{err} Every NEURALDRAFT setting takes its default.")
        return DEFAULTS
    for key, suggestion in unknown_keys(user).items():
        _warn(f"{describe_unknown_key(key, suggestion)} It is ignored.")
    merged = dict(DEFAULTS)
    for name, value in user.items():
        if name not in DEFAULTS:
            continue
        if is_valid(name, value):
            merged[name] = value
            continue
        fallback = _FALLBACKS.get(name, DEFAULTS[name])
        _warn(
            f"NEURALDRAFT[{name!r}] = {value!r} is not {RULES[name].expected}; "
            f"{fallback!r} is used instead."
        )
        merged[name] = fallback
    return MappingProxyType(merged)


@receiver(setting_changed)
def _clear_cache_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "NEURALDRAFT":
        get_settings.cache_clear()


def api_key() -> str:
    """Return the API key: ``NEURALDRAFT["API_KEY"]``, else the environment variable."""
    key = get_settings()["API_KEY"] or os.environ.get(API_KEY_ENV_VAR)
    if not key:
        raise NeuralDraftConfigurationError(
            f"No Neural Draft API key: set NEURALDRAFT['API_KEY'] or the {API_KEY_ENV_VAR} "
            "environment variable."
        )
    return key


def base_url() -> str:
    return get_settings()["BASE_URL"].rstrip("/")


def request_timeout() -> tuple[float, float]:
    """Return ``(connect, read)`` seconds; a single number applies to both."""
    value = get_settings()["TIMEOUT"]
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    connect, read = value
    return (float(connect), float(read))


def max_retries() -> int:
    return int(get_settings()["MAX_RETRIES"])


def storage_alias() -> str:
    return get_settings()["STORAGE"]


def upload_to() -> str:
    return get_settings()["UPLOAD_TO"].strip("/")


def default_style() -> str:
    return get_settings()["DEFAULT_STYLE"] or ""


def default_aspect_ratio() -> str:
    return get_settings()["DEFAULT_ASPECT_RATIO"]


def poll_schedule() -> tuple[float, float]:
    """Return ``(POLL_INITIAL, POLL_MAX)`` in seconds, the bounds of the poll schedule."""
    current = get_settings()
    return float(current["POLL_INITIAL"]), float(current["POLL_MAX"])


def webhook_secret() -> str | None:
    """The ``whsec_`` secret deliveries are signed with; ``None`` when webhooks are off."""
    return get_settings()["WEBHOOK_SECRET"] or None


def webhook_safety_poll() -> float | None:
    """Seconds between safety-net polls while webhooks are on; ``None`` when they are off."""
    if webhook_secret() is None:
        return None
    return float(get_settings()["WEBHOOK_SAFETY_POLL"])


def webhook_tolerance() -> float:
    return float(get_settings()["WEBHOOK_TOLERANCE"])


def webhook_max_body_bytes() -> int:
    return int(get_settings()["WEBHOOK_MAX_BODY_BYTES"])


def job_timeout() -> float:
    return float(get_settings()["JOB_TIMEOUT"])


def max_download_bytes() -> int:
    return int(get_settings()["MAX_DOWNLOAD_BYTES"])


def max_pixels() -> int:
    return int(get_settings()["MAX_PIXELS"])


def allowed_download_hosts() -> tuple[str, ...]:
    """Hosts images may be fetched from: the setting, else the API CDN and BASE_URL's host."""
    configured = get_settings()["ALLOWED_DOWNLOAD_HOSTS"]
    if configured is not None:
        return tuple(configured)
    api_host = urlsplit(base_url()).hostname
    return tuple(host for host in (API_CDN_HOST, api_host) if host)


def credits_per_image() -> int:
    return int(get_settings()["CREDITS_PER_IMAGE"])


def daily_credit_budget() -> int | None:
    budget = get_settings()["DAILY_CREDIT_BUDGET"]
    return None if budget is None else int(budget)


def auto_publish() -> bool:
    return get_settings()["AUTO_PUBLISH"]


def cache_alias() -> str:
    return get_settings()["CACHE_ALIAS"]


def cache_timeout() -> int:
    return int(get_settings()["CACHE_TIMEOUT"])


def placeholder() -> str | None:
    """Return ``None`` for the built-in SVG, ``""`` for no placeholder, or a URL or static path."""
    return get_settings()["PLACEHOLDER"]


def rendition_widths() -> tuple[int, ...]:
    """The configured rendition widths, ascending and without repeats."""
    return tuple(sorted(set(get_settings()["RENDITION_WIDTHS"])))


def rendition_formats() -> tuple[str, ...]:
    """The configured rendition formats in the order given, without repeats."""
    return tuple(dict.fromkeys(get_settings()["RENDITION_FORMATS"]))


def rendition_quality(image_format: str) -> int:
    """The encoder quality of ``image_format``: the setting's, else the default's."""
    configured = get_settings()["RENDITION_QUALITY"]
    return int(configured.get(image_format, DEFAULTS["RENDITION_QUALITY"][image_format]))


def rendition_concurrency() -> int:
    return int(get_settings()["RENDITION_CONCURRENCY"])


def default_sizes() -> str | None:
    return get_settings()["DEFAULT_SIZES"] or None


def shared_cache() -> bool | None:
    """``True``/``False`` as configured, or ``None`` to decide from the cache's backend."""
    return get_settings()["SHARED_CACHE"]
