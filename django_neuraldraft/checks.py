"""System checks for the ``NEURALDRAFT`` settings, run by ``manage.py check`` and at startup.

IDs are stable and listed in docs/checks.rst; a retired ID is never reused.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from . import conf
from .client.credentials import key_environment, mask_api_key
from .exceptions import NeuralDraftConfigurationError

_SETTINGS_DOC = "See docs/configuration.rst."


def _effective_settings() -> Mapping[str, Any] | None:
    """The settings as the app will see them, ignoring unknown keys (E006 reports those)."""
    try:
        user = conf.user_settings()
    except NeuralDraftConfigurationError:
        return None
    return {**conf.DEFAULTS, **{k: v for k, v in user.items() if k in conf.DEFAULTS}}


def check_settings_shape(app_configs=None, **kwargs) -> list[CheckMessage]:
    try:
        user = conf.user_settings()
    except NeuralDraftConfigurationError as err:
        return [
            Error(str(err), hint="Write NEURALDRAFT = {'API_KEY': ...}.", id="neuraldraft.E005")
        ]
    return [
        Error(
            conf.describe_unknown_key(key, suggestion),
            hint=f"Remove it or correct its spelling. {_SETTINGS_DOC}",
            id="neuraldraft.E006",
        )
        for key, suggestion in conf.unknown_keys(user).items()
    ]


def check_api_key(app_configs=None, **kwargs) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None:
        return []
    key = effective["API_KEY"] or os.environ.get(conf.API_KEY_ENV_VAR)
    if not key:
        return [
            Error(
                "No Neural Draft API key is configured.",
                hint=f"Set NEURALDRAFT['API_KEY'] or the {conf.API_KEY_ENV_VAR} environment "
                "variable to a key from your Neural Draft project settings.",
                id="neuraldraft.E001",
            )
        ]
    environment = key_environment(key)
    if environment is None:
        return [
            Error(
                f"The Neural Draft API key {mask_api_key(key)} is malformed.",
                hint="A key is 'ndsk_live_' or 'ndsk_test_' followed by 32 letters and digits; "
                "copy it again without spaces or quotes.",
                id="neuraldraft.E002",
            )
        ]
    if environment == "test" and not settings.DEBUG:
        return [
            Warning(
                f"A test API key ({mask_api_key(key)}) is used with DEBUG=False.",
                hint="Production sites need an ndsk_live_ key; test keys only reach the sandbox.",
                id="neuraldraft.W003",
            )
        ]
    if environment == "live" and settings.DEBUG:
        return [
            Warning(
                f"A live API key ({mask_api_key(key)}) is used with DEBUG=True.",
                hint="Live keys spend real credits; use an ndsk_test_ key in development.",
                id="neuraldraft.W004",
            )
        ]
    return []


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(app_configs=None, **kwargs) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None:
        return []
    url = effective["BASE_URL"]
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            Error(
                f"NEURALDRAFT['BASE_URL'] = {url!r} is not an absolute http(s) URL.",
                hint="Use the API root including the version, e.g. "
                f"{conf.DEFAULTS['BASE_URL']!r}.",
                id="neuraldraft.E007",
            )
        ]
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return [
            Error(
                f"NEURALDRAFT['BASE_URL'] = {url!r} sends the API key unencrypted.",
                hint="Use https; plain http is accepted only for a loopback sandbox.",
                id="neuraldraft.E008",
            )
        ]
    return []


def _positive_timeout(value: Any) -> bool:
    values = value if isinstance(value, (tuple, list)) else (value,)
    return len(values) in (1, 2) and all(_is_positive_number(v) for v in values)


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_positive_whole(value: Any) -> bool:
    return _is_count(value) and value > 0


def _is_optional_count(value: Any) -> bool:
    return value is None or _is_count(value)


#: Each numeric setting, with its test and the words for what it must be.
_NUMBER_RULES: Mapping[str, tuple[Callable[[Any], bool], str]] = {
    "TIMEOUT": (_positive_timeout, "a positive number of seconds or a (connect, read) pair"),
    "MAX_RETRIES": (_is_count, "a whole number, 0 or more"),
    "POLL_INITIAL": (_is_positive_number, "a positive number of seconds"),
    "POLL_MAX": (_is_positive_number, "a positive number of seconds"),
    "JOB_TIMEOUT": (_is_positive_number, "a positive number of seconds"),
    "MAX_DOWNLOAD_BYTES": (_is_positive_whole, "a positive whole number of bytes"),
    "MAX_PIXELS": (_is_positive_whole, "a positive whole number of pixels"),
    "CREDITS_PER_IMAGE": (_is_count, "a whole number, 0 or more"),
    "DAILY_CREDIT_BUDGET": (_is_optional_count, "None or a whole number, 0 or more"),
    "CACHE_TIMEOUT": (_is_positive_whole, "a positive whole number of seconds"),
}


def check_numbers(app_configs=None, **kwargs) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None:
        return []
    return [
        Error(
            f"NEURALDRAFT[{name!r}] = {effective[name]!r} is not {expected}.",
            hint=f"Fix the value or remove it to use the default, {conf.DEFAULTS[name]!r}.",
            id="neuraldraft.E009",
        )
        for name, (is_valid, expected) in _NUMBER_RULES.items()
        if not is_valid(effective[name])
    ]


def check_storage(app_configs=None, **kwargs) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None:
        return []
    alias = effective["STORAGE"]
    if alias in settings.STORAGES:
        return []
    return [
        Error(
            f"NEURALDRAFT['STORAGE'] = {alias!r} is not an alias in settings.STORAGES.",
            hint=f"Use one of {sorted(settings.STORAGES)} or add {alias!r} to STORAGES.",
            id="neuraldraft.E010",
        )
    ]


def check_cache(app_configs=None, **kwargs) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None:
        return []
    alias = effective["CACHE_ALIAS"]
    if alias in settings.CACHES:
        return []
    return [
        Error(
            f"NEURALDRAFT['CACHE_ALIAS'] = {alias!r} is not an alias in settings.CACHES.",
            hint=f"Use one of {sorted(settings.CACHES)} or add {alias!r} to CACHES.",
            id="neuraldraft.E011",
        )
    ]


ALL_CHECKS = (
    check_settings_shape,
    check_api_key,
    check_base_url,
    check_numbers,
    check_storage,
    check_cache,
)
