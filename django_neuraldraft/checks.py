"""System checks for the ``NEURALDRAFT`` settings, run by ``manage.py check`` and at startup.

IDs are stable and listed in docs/checks.rst; a retired ID is never reused.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.db import connections, router
from django.db.models import Count

from . import conf
from .client.credentials import key_environment, mask_api_key
from .exceptions import NeuralDraftConfigurationError

_SETTINGS_DOC = "See docs/configuration.rst."

#: What Django passes a check: the apps to check, or None for all of them.
AppConfigs = Sequence[AppConfig] | None


def _effective_settings() -> Mapping[str, Any] | None:
    """The settings as the app will see them, ignoring unknown keys (E006 reports those)."""
    try:
        user = conf.user_settings()
    except NeuralDraftConfigurationError:
        return None
    return {**conf.DEFAULTS, **{k: v for k, v in user.items() if k in conf.DEFAULTS}}


def check_settings_shape(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
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


def check_api_key(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None:
        return []
    key = effective["API_KEY"] or os.environ.get(conf.API_KEY_ENV_VAR)
    if not isinstance(key, (str, type(None))):
        return []
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


def check_base_url(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
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


def _broken(names: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``(name, value)`` of each of ``names`` whose value breaks its rule in ``conf.RULES``."""
    effective = _effective_settings()
    if effective is None:
        return []
    return [(name, effective[name]) for name in names if not conf.is_valid(name, effective[name])]


def _not_expected(name: str, value: Any, check_id: str) -> Error:
    return Error(
        f"NEURALDRAFT[{name!r}] = {value!r} is not {conf.RULES[name].expected}.",
        hint=f"Fix the value or remove it to use the default, {conf.DEFAULTS[name]!r}.",
        id=check_id,
    )


_NUMBERS = (
    "TIMEOUT",
    "MAX_RETRIES",
    "POLL_INITIAL",
    "POLL_MAX",
    "JOB_TIMEOUT",
    "MAX_DOWNLOAD_BYTES",
    "MAX_PIXELS",
    "CREDITS_PER_IMAGE",
    "DAILY_CREDIT_BUDGET",
    "CACHE_TIMEOUT",
    "RENDITION_CONCURRENCY",
    "WEBHOOK_TOLERANCE",
    "WEBHOOK_MAX_BODY_BYTES",
    "WEBHOOK_SAFETY_POLL",
)

# BASE_URL's type is checked by E007 and API_KEY's content by E002.
_TEXTS = (
    "API_KEY",
    "STORAGE",
    "UPLOAD_TO",
    "DEFAULT_STYLE",
    "CACHE_ALIAS",
    "PLACEHOLDER",
    "DEFAULT_SIZES",
    "SHARED_CACHE",
)


def check_numbers(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    return [_not_expected(name, value, "neuraldraft.E009") for name, value in _broken(_NUMBERS)]


def check_texts(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    return [_not_expected(name, value, "neuraldraft.E015") for name, value in _broken(_TEXTS)]


_FLAGS = ("AUTO_PUBLISH",)


def check_flags(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    return [_not_expected(name, value, "neuraldraft.E017") for name, value in _broken(_FLAGS)]


def check_download_hosts(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    for _name, hosts in _broken(("ALLOWED_DOWNLOAD_HOSTS",)):
        if isinstance(hosts, str):
            # list("cdn.example.com") would allow the hosts "c", "d", "n", ...
            return [
                Error(
                    f"NEURALDRAFT['ALLOWED_DOWNLOAD_HOSTS'] = {hosts!r} is a string, not a "
                    "list of host names.",
                    hint=f"Write [{hosts!r}].",
                    id="neuraldraft.E012",
                )
            ]
        return [
            Error(
                f"NEURALDRAFT['ALLOWED_DOWNLOAD_HOSTS'] = {hosts!r} is not None or a list of "
                "host names.",
                hint="Write a list of host names, parent domains ('.example.com') or IP "
                "networks, or None for the API CDN and BASE_URL's host.",
                id="neuraldraft.E012",
            )
        ]
    return []


def check_aspect_ratio(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            f"NEURALDRAFT['DEFAULT_ASPECT_RATIO'] = {ratio!r} is not an aspect ratio "
            "Neural Draft generates.",
            hint=f"Use {conf.RULES['DEFAULT_ASPECT_RATIO'].expected}, or remove the setting "
            f"to use {conf.DEFAULTS['DEFAULT_ASPECT_RATIO']!r}.",
            id="neuraldraft.E013",
        )
        for _name, ratio in _broken(("DEFAULT_ASPECT_RATIO",))
    ]


def check_poll_schedule(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None or _broken(("POLL_INITIAL", "POLL_MAX")):
        return []
    initial, longest = effective["POLL_INITIAL"], effective["POLL_MAX"]
    if initial <= longest:
        return []
    return [
        Error(
            f"NEURALDRAFT['POLL_INITIAL'] = {initial!r} is longer than "
            f"NEURALDRAFT['POLL_MAX'] = {longest!r}.",
            hint="POLL_INITIAL is the first wait between polls of a job and POLL_MAX the "
            "longest; make POLL_INITIAL the smaller.",
            id="neuraldraft.E014",
        )
    ]


def check_storage(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None:
        return []
    alias = effective["STORAGE"]
    if not conf.is_valid("STORAGE", alias) or alias in settings.STORAGES:
        return []
    return [
        Error(
            f"NEURALDRAFT['STORAGE'] = {alias!r} is not an alias in settings.STORAGES.",
            hint=f"Use one of {sorted(settings.STORAGES)} or add {alias!r} to STORAGES.",
            id="neuraldraft.E010",
        )
    ]


def check_cache(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    effective = _effective_settings()
    if effective is None:
        return []
    alias = effective["CACHE_ALIAS"]
    if not conf.is_valid("CACHE_ALIAS", alias) or alias in settings.CACHES:
        return []
    return [
        Error(
            f"NEURALDRAFT['CACHE_ALIAS'] = {alias!r} is not an alias in settings.CACHES.",
            hint=f"Use one of {sorted(settings.CACHES)} or add {alias!r} to CACHES.",
            id="neuraldraft.E011",
        )
    ]


_RENDITIONS = ("RENDITION_WIDTHS", "RENDITION_FORMATS", "RENDITION_QUALITY")


def check_renditions(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    from .renditions import pillow_can_write

    messages: list[CheckMessage] = [
        _not_expected(name, value, "neuraldraft.E020") for name, value in _broken(_RENDITIONS)
    ]
    effective = _effective_settings()
    if effective is None or not conf.is_valid("RENDITION_FORMATS", effective["RENDITION_FORMATS"]):
        return messages
    return messages + [
        Warning(
            f"NEURALDRAFT['RENDITION_FORMATS'] asks for {name.upper()}, which the installed "
            "Pillow cannot write; renditions are made without it.",
            hint="Install a Pillow that can (AVIF: 11.2 or later built with libavif; "
            "PIL.features.check() tells), or remove the format from RENDITION_FORMATS. "
            "See docs/renditions.rst.",
            id="neuraldraft.W021",
        )
        for name in dict.fromkeys(effective["RENDITION_FORMATS"])
        if not pillow_can_write(name)
    ]


def check_version_storages(
    app_configs: AppConfigs = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Image versions whose storage alias has left ``STORAGES`` can no longer be shown.

    A database check: Django runs it for ``migrate`` and ``check --database``.
    """
    from .models import ImageVersion

    messages: list[CheckMessage] = []
    for database in databases or ():
        if not router.allow_migrate_model(database, ImageVersion) or not _has_column(
            database, ImageVersion._meta.db_table, "storage_alias"
        ):
            continue
        counts = (
            ImageVersion.objects.using(database)
            .exclude(storage_alias__in=list(settings.STORAGES))
            .values_list("storage_alias")
            .annotate(count=Count("pk"))
            .order_by("storage_alias")
        )
        messages += [
            Warning(
                f"{count} image version(s) in the database {database!r} were saved to the "
                f"storage {alias!r}, which is no longer in settings.STORAGES; their images "
                "cannot be shown.",
                hint=f"Put {alias!r} back in STORAGES: after NEURALDRAFT['STORAGE'] changes, "
                "older images are still served from the storage they were saved to. "
                "See docs/configuration.rst.",
                id="neuraldraft.W016",
            )
            for alias, count in counts
        ]
    return messages


def _has_column(database: str, table: str, column: str) -> bool:
    """Whether ``table`` has ``column`` yet: before ``migrate`` it may have neither."""
    connection = connections[database]
    with connection.cursor() as cursor:
        if table not in connection.introspection.table_names(cursor):
            return False
        description = connection.introspection.get_table_description(cursor, table)
    return any(field.name == column for field in description)


def check_cache_is_shared(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    """A per-process image cache costs a query per render; say so, and how to avoid it."""
    effective = _effective_settings()
    if effective is None or effective["SHARED_CACHE"] is not None:
        return []
    alias = effective["CACHE_ALIAS"]
    if not isinstance(alias, str) or alias not in settings.CACHES:
        return []
    from django.core.cache import caches

    from .resolver import is_per_process

    if not is_per_process(caches[alias]):
        return []
    backend = settings.CACHES[alias].get("BACKEND", "").rpartition(".")[2]
    return [
        Warning(
            f"NEURALDRAFT['CACHE_ALIAS'] = {alias!r} is a per-process cache ({backend}): "
            "every page that shows images makes one small database query, so that an image "
            "bound by another process (the worker) shows at once.",
            hint="Use a cache that every process shares (Redis, Memcached) for no query per "
            "render, or set NEURALDRAFT['SHARED_CACHE'] = False to accept the query. "
            "See docs/templatetags.rst.",
            id="neuraldraft.W018",
        )
    ]


def check_celery_app(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    """Tasks go out through Celery's current app; when the project loaded none, that is
    Celery's fallback, which publishes to ``amqp://localhost`` whatever the settings say.

    Celery names the app it falls back on ``default`` and gives it no fix-ups (an
    app of the project's has the Django one), which tells the two apart; the
    fallback may also be Celery's default app, as a project's may be.
    """
    from celery import current_app

    if current_app.main != "default" or getattr(current_app, "fixups", None):
        return []
    return [
        Warning(
            "No Celery app of this project is loaded: generate() and the admin queue their "
            "tasks through Celery's default app, to amqp://localhost, where no worker of "
            "this site reads, and the jobs stay pending.",
            hint="Load your Celery app from your project package's __init__.py "
            "(from .celery import app as celery_app), as the Quickstart shows. A site that "
            "runs without Celery (neuraldraft_refresh from cron) can silence this with "
            "SILENCED_SYSTEM_CHECKS. See docs/installation.rst.",
            id="neuraldraft.W019",
        )
    ]


def check_webhook_secret(app_configs: AppConfigs = None, **kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            "NEURALDRAFT['WEBHOOK_SECRET'] is not a whsec_ signing secret.",
            hint="Set it to the signing_secret neuraldraft_webhook_register printed, or to "
            "None to turn webhooks off. See docs/webhooks.rst.",
            id="neuraldraft.E030",
        )
        for _name, _secret in _broken(("WEBHOOK_SECRET",))
    ]


ALL_CHECKS = (
    check_settings_shape,
    check_api_key,
    check_base_url,
    check_numbers,
    check_texts,
    check_download_hosts,
    check_aspect_ratio,
    check_poll_schedule,
    check_storage,
    check_cache,
    check_flags,
    check_renditions,
    check_webhook_secret,
    check_cache_is_shared,
    check_celery_app,
)

#: Checks that read the database: registered with the ``database`` tag.
DATABASE_CHECKS = (check_version_storages,)
