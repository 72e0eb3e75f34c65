"""Every system check, compared as whole CheckMessage objects."""

import pytest
from celery import _state as celery_state
from django.core.checks import Error, Warning
from django.test import override_settings

from django_neuraldraft import checks, conf
from django_neuraldraft.models import ImageKey, ImageVersion
from tests.helpers import add_version

TEST_KEY = "ndsk_test_" + "a" * 31 + "Q"
LIVE_KEY = "ndsk_live_" + "b" * 28 + "7yQp"


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch):
    monkeypatch.delenv("NEURALDRAFT_API_KEY", raising=False)


@pytest.fixture(autouse=True)
def _shared_cache(settings):
    """A cache every process shares, so that W018 speaks only in the tests about it."""
    settings.CACHES = SHARED_CACHES


#: A cache every process shares; never connected to by the checks.
SHARED_CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}


def run_all():
    return [message for check in checks.ALL_CHECKS for message in check()]


class TestCleanConfiguration:
    @override_settings(DEBUG=True, NEURALDRAFT={"API_KEY": TEST_KEY})
    def test_test_key_in_development_passes_every_check(self):
        assert run_all() == []

    @override_settings(DEBUG=False, NEURALDRAFT={"API_KEY": LIVE_KEY})
    def test_live_key_in_production_passes_every_check(self):
        assert run_all() == []


class TestApiKeyChecks:
    @override_settings(NEURALDRAFT={})
    def test_e001_missing_key(self):
        assert checks.check_api_key() == [
            Error(
                "No Neural Draft API key is configured.",
                hint="Set NEURALDRAFT['API_KEY'] or the NEURALDRAFT_API_KEY environment "
                "variable to a key from your Neural Draft project settings.",
                id="neuraldraft.E001",
            )
        ]

    @override_settings(DEBUG=True, NEURALDRAFT={})
    def test_key_from_environment_counts(self, monkeypatch):
        monkeypatch.setenv("NEURALDRAFT_API_KEY", TEST_KEY)
        assert checks.check_api_key() == []

    @override_settings(NEURALDRAFT={"API_KEY": "ndsk_live_tooShort7yQp"})
    def test_e002_malformed_key_is_reported_without_echoing_it(self):
        assert checks.check_api_key() == [
            Error(
                "The Neural Draft API key … is malformed.",
                hint="A key is 'ndsk_live_' or 'ndsk_test_' followed by 32 letters and digits; "
                "copy it again without spaces or quotes.",
                id="neuraldraft.E002",
            )
        ]

    @override_settings(DEBUG=False, NEURALDRAFT={"API_KEY": TEST_KEY})
    def test_w003_test_key_in_production(self):
        assert checks.check_api_key() == [
            Warning(
                "A test API key (ndsk_test_…aaaQ) is used with DEBUG=False.",
                hint="Production sites need an ndsk_live_ key; test keys only reach the sandbox.",
                id="neuraldraft.W003",
            )
        ]

    @override_settings(DEBUG=True, NEURALDRAFT={"API_KEY": LIVE_KEY})
    def test_w004_live_key_in_development(self):
        assert checks.check_api_key() == [
            Warning(
                "A live API key (ndsk_live_…7yQp) is used with DEBUG=True.",
                hint="Live keys spend real credits; use an ndsk_test_ key in development.",
                id="neuraldraft.W004",
            )
        ]


class TestSettingsShapeChecks:
    @override_settings(NEURALDRAFT="ndsk_test_x")
    def test_e005_not_a_dict_and_the_other_checks_stand_back(self):
        assert run_all() == [
            Error(
                "settings.NEURALDRAFT must be a dict, not str.",
                hint="Write NEURALDRAFT = {'API_KEY': ...}.",
                id="neuraldraft.E005",
            )
        ]

    @override_settings(DEBUG=True, NEURALDRAFT={"API_KEY": TEST_KEY, "MAX_RETRY": 2})
    def test_e006_unknown_key(self):
        assert run_all() == [
            Error(
                "Unknown NEURALDRAFT key 'MAX_RETRY'; did you mean 'MAX_RETRIES'?",
                hint="Remove it or correct its spelling. See docs/configuration.rst.",
                id="neuraldraft.E006",
            )
        ]


class TestBaseUrlChecks:
    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "BASE_URL": "api.neuraldraft.io/v1"})
    def test_e007_not_absolute(self):
        assert checks.check_base_url() == [
            Error(
                "NEURALDRAFT['BASE_URL'] = 'api.neuraldraft.io/v1' is not an absolute "
                "http(s) URL.",
                hint="Use the API root including the version, e.g. "
                "'https://api.neuraldraft.io/v1'.",
                id="neuraldraft.E007",
            )
        ]

    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "BASE_URL": "http://api.example.com/v1"})
    def test_e008_plain_http_to_a_remote_host(self):
        assert checks.check_base_url() == [
            Error(
                "NEURALDRAFT['BASE_URL'] = 'http://api.example.com/v1' sends the API key "
                "unencrypted.",
                hint="Use https; plain http is accepted only for a loopback sandbox.",
                id="neuraldraft.E008",
            )
        ]

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8765/v1", "http://localhost:8765/v1", "http://[::1]:8765/v1"]
    )
    def test_plain_http_to_loopback_is_fine(self, url):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "BASE_URL": url}):
            assert checks.check_base_url() == []


class TestNumberChecks:
    @pytest.mark.parametrize(
        ("name", "value", "expected", "default"),
        [
            ("TIMEOUT", -1, "a positive number of seconds or a (connect, read) pair", (5, 30)),
            ("TIMEOUT", (5, 0), "a positive number of seconds or a (connect, read) pair", (5, 30)),
            ("TIMEOUT", "30", "a positive number of seconds or a (connect, read) pair", (5, 30)),
            ("MAX_RETRIES", -2, "a whole number, 0 or more", 3),
            ("MAX_RETRIES", True, "a whole number, 0 or more", 3),
            ("CACHE_TIMEOUT", 0, "a positive whole number of seconds", 86400),
            ("CACHE_TIMEOUT", None, "a positive whole number of seconds", 86400),
        ],
    )
    def test_e009_nonsensical_number(self, name, value, expected, default):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, name: value}):
            assert checks.check_numbers() == [
                Error(
                    f"NEURALDRAFT[{name!r}] = {value!r} is not {expected}.",
                    hint=f"Fix the value or remove it to use the default, {default!r}.",
                    id="neuraldraft.E009",
                )
            ]


class TestValueChecks:
    @pytest.mark.parametrize(
        ("name", "value", "expected", "default"),
        [
            ("TIMEOUT", [5], "a positive number of seconds or a (connect, read) pair", (5, 30)),
            ("POLL_INITIAL", 0, "a positive number of seconds, a week at most", 2),
            ("POLL_MAX", "30", "a positive number of seconds, a week at most", 30),
            ("JOB_TIMEOUT", -5, "a positive number of seconds, a week at most", 1800),
            ("JOB_TIMEOUT", 10**12, "a positive number of seconds, a week at most", 1800),
            ("MAX_DOWNLOAD_BYTES", 0, "a positive whole number of bytes", 26214400),
            ("MAX_PIXELS", 1.5e7, "a positive whole number of pixels", 50000000),
            ("CREDITS_PER_IMAGE", -40, "a whole number, 0 or more", 40),
            ("DAILY_CREDIT_BUDGET", "2000", "None or a whole number, 0 or more", None),
            ("WEBHOOK_TOLERANCE", 0, "a positive number of seconds", 300),
            ("WEBHOOK_MAX_BODY_BYTES", 1.5, "a positive whole number of bytes", 65536),
            ("WEBHOOK_SAFETY_POLL", -1, "a positive number of seconds, a week at most", 120),
            ("RENDITION_CONCURRENCY", 0, "a positive whole number of steps", 1),
            ("RENDITION_CONCURRENCY", 2.5, "a positive whole number of steps", 1),
        ],
    )
    def test_e009_every_number_by_type_and_range(self, name, value, expected, default):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, name: value}):
            assert checks.check_numbers() == [
                Error(
                    f"NEURALDRAFT[{name!r}] = {value!r} is not {expected}.",
                    hint=f"Fix the value or remove it to use the default, {default!r}.",
                    id="neuraldraft.E009",
                )
            ]

    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "ALLOWED_DOWNLOAD_HOSTS": "cdn.a.io"})
    def test_e012_a_bare_string_of_hosts(self):
        assert checks.check_download_hosts() == [
            Error(
                "NEURALDRAFT['ALLOWED_DOWNLOAD_HOSTS'] = 'cdn.a.io' is a string, not a list of "
                "host names.",
                hint="Write ['cdn.a.io'].",
                id="neuraldraft.E012",
            )
        ]

    @pytest.mark.parametrize("hosts", [["cdn.a.io", ""], ("cdn.a.io", 7), 42])
    def test_e012_not_a_list_of_host_names(self, hosts):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "ALLOWED_DOWNLOAD_HOSTS": hosts}):
            assert checks.check_download_hosts() == [
                Error(
                    f"NEURALDRAFT['ALLOWED_DOWNLOAD_HOSTS'] = {hosts!r} is not None or a list "
                    "of host names.",
                    hint="Write a list of host names, parent domains ('.example.com') or IP "
                    "networks, or None for the API CDN and BASE_URL's host.",
                    id="neuraldraft.E012",
                )
            ]

    @pytest.mark.parametrize("hosts", [None, [], ["cdn.a.io", ".a.io", "10.0.0.0/8"]])
    def test_host_lists_pass(self, hosts):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "ALLOWED_DOWNLOAD_HOSTS": hosts}):
            assert checks.check_download_hosts() == []

    @pytest.mark.parametrize("ratio", ["21:9", "16/9", None])
    def test_e013_unknown_default_aspect_ratio(self, ratio):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "DEFAULT_ASPECT_RATIO": ratio}):
            assert checks.check_aspect_ratio() == [
                Error(
                    f"NEURALDRAFT['DEFAULT_ASPECT_RATIO'] = {ratio!r} is not an aspect ratio "
                    "Neural Draft generates.",
                    hint="Use one of '1:1', '16:9', '9:16', '4:5', '4:3', '3:2', or remove the "
                    "setting to use '16:9'.",
                    id="neuraldraft.E013",
                )
            ]

    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "POLL_INITIAL": 60, "POLL_MAX": 30})
    def test_e014_first_poll_wait_longer_than_the_longest(self):
        assert checks.check_poll_schedule() == [
            Error(
                "NEURALDRAFT['POLL_INITIAL'] = 60 is longer than NEURALDRAFT['POLL_MAX'] = 30.",
                hint="POLL_INITIAL is the first wait between polls of a job and POLL_MAX the "
                "longest; make POLL_INITIAL the smaller.",
                id="neuraldraft.E014",
            )
        ]

    @pytest.mark.parametrize(("initial", "longest"), [(30, 30), (0.5, 2), ("x", 1)])
    def test_e014_stays_quiet_when_in_order_or_when_e009_reports(self, initial, longest):
        with override_settings(
            NEURALDRAFT={"API_KEY": TEST_KEY, "POLL_INITIAL": initial, "POLL_MAX": longest}
        ):
            assert checks.check_poll_schedule() == []

    @pytest.mark.parametrize(
        ("name", "value", "expected", "default"),
        [
            ("API_KEY", 12345, "a string", None),
            ("STORAGE", "", "the name of an alias in settings.STORAGES", "default"),
            ("STORAGE", ["s3"], "the name of an alias in settings.STORAGES", "default"),
            ("UPLOAD_TO", "../media", "a relative folder such as 'neuraldraft'", "neuraldraft"),
            ("UPLOAD_TO", "", "a relative folder such as 'neuraldraft'", "neuraldraft"),
            ("UPLOAD_TO", "a\\b", "a relative folder such as 'neuraldraft'", "neuraldraft"),
            ("DEFAULT_STYLE", 3, "None or a string", None),
            ("CACHE_ALIAS", None, "the name of an alias in settings.CACHES", "default"),
            ("PLACEHOLDER", False, "None or a string", None),
        ],
    )
    def test_e015_text_setting_of_the_wrong_type(self, name, value, expected, default):
        with override_settings(DEBUG=True, NEURALDRAFT={"API_KEY": TEST_KEY, name: value}):
            assert run_all() == [
                Error(
                    f"NEURALDRAFT[{name!r}] = {value!r} is not {expected}.",
                    hint=f"Fix the value or remove it to use the default, {default!r}.",
                    id="neuraldraft.E015",
                )
            ]


class TestStorageCheck:
    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "STORAGE": "images"})
    def test_e010_unknown_alias(self):
        assert checks.check_storage() == [
            Error(
                "NEURALDRAFT['STORAGE'] = 'images' is not an alias in settings.STORAGES.",
                hint="Use one of ['default', 'staticfiles'] or add 'images' to STORAGES.",
                id="neuraldraft.E010",
            )
        ]


class TestCacheCheck:
    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "CACHE_ALIAS": "images"})
    def test_e011_unknown_alias(self):
        assert checks.check_cache() == [
            Error(
                "NEURALDRAFT['CACHE_ALIAS'] = 'images' is not an alias in settings.CACHES.",
                hint="Use one of ['default'] or add 'images' to CACHES.",
                id="neuraldraft.E011",
            )
        ]


@pytest.mark.django_db
class TestVersionStorageCheck:
    @pytest.fixture
    def versions(self):
        image_key = ImageKey.objects.create(key="hero.background")
        for alias in ("default", "old-s3", "old-s3", "gone"):
            version = add_version(image_key, f"neuraldraft/hero.background/{alias}.png")
            ImageVersion.objects.filter(pk=version.pk).update(storage_alias=alias)

    @pytest.mark.usefixtures("versions")
    def test_w016_versions_in_a_storage_no_longer_configured(self):
        hint = (
            "back in STORAGES: after NEURALDRAFT['STORAGE'] changes, older images are still "
            "served from the storage they were saved to. See docs/configuration.rst."
        )
        assert checks.check_version_storages(databases=["default"]) == [
            Warning(
                "1 image version(s) in the database 'default' were saved to the storage "
                "'gone', which is no longer in settings.STORAGES; their images cannot be shown.",
                hint=f"Put 'gone' {hint}",
                id="neuraldraft.W016",
            ),
            Warning(
                "2 image version(s) in the database 'default' were saved to the storage "
                "'old-s3', which is no longer in settings.STORAGES; their images cannot be "
                "shown.",
                hint=f"Put 'old-s3' {hint}",
                id="neuraldraft.W016",
            ),
        ]

    @pytest.mark.usefixtures("versions")
    def test_w016_is_quiet_while_every_storage_is_configured(self, settings):
        settings.STORAGES = {
            **settings.STORAGES,
            "old-s3": settings.STORAGES["default"],
            "gone": settings.STORAGES["default"],
        }
        assert checks.check_version_storages(databases=["default"]) == []

    @pytest.mark.usefixtures("versions")
    def test_w016_reads_the_database_only_when_django_asks_for_database_checks(self):
        assert checks.check_version_storages() == []

    def test_w016_is_registered_as_a_database_check(self):
        from django.core.checks.registry import registry

        assert checks.check_version_storages in registry.get_checks()
        assert set(checks.check_version_storages.tags) == {"neuraldraft", "database"}


class TestWebhookSecretCheck:
    @pytest.mark.parametrize("secret", [None, "whsec_abc123XYZ"])
    def test_no_secret_or_a_whsec_secret_passes(self, secret):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "WEBHOOK_SECRET": secret}):
            assert checks.check_webhook_secret() == []

    @pytest.mark.parametrize("secret", ["abc123", "whsec_", "whsec_ spaces", 42])
    def test_e030_not_a_signing_secret(self, secret):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "WEBHOOK_SECRET": secret}):
            assert checks.check_webhook_secret() == [
                Error(
                    "NEURALDRAFT['WEBHOOK_SECRET'] is not a whsec_ signing secret.",
                    hint="Set it to the signing_secret neuraldraft_webhook_register printed, "
                    "or to None to turn webhooks off. See docs/webhooks.rst.",
                    id="neuraldraft.E030",
                )
            ]


def test_every_setting_has_a_rule_and_a_check():
    """A new key in conf.DEFAULTS needs a rule in conf.RULES and a check that reports it."""
    checked = {
        *checks._NUMBERS,
        *checks._TEXTS,
        *checks._FLAGS,
        *checks._RENDITIONS,  # E020
        "ALLOWED_DOWNLOAD_HOSTS",  # E012
        "DEFAULT_ASPECT_RATIO",  # E013
        "BASE_URL",  # E007
        "WEBHOOK_SECRET",  # E030
    }
    assert set(conf.RULES) == set(conf.DEFAULTS) == checked
    assert all(conf.is_valid(name, default) for name, default in conf.DEFAULTS.items())


class TestSharedCacheCheck:
    @pytest.mark.parametrize("backend", ["locmem.LocMemCache", "dummy.DummyCache"])
    def test_w012_a_per_process_cache(self, backend):
        caches = {"default": {"BACKEND": f"django.core.cache.backends.{backend}"}}
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY}, CACHES=caches):
            assert checks.check_cache_is_shared() == [
                Warning(
                    "NEURALDRAFT['CACHE_ALIAS'] = 'default' is a per-process cache "
                    f"({backend.partition('.')[2]}): every page that shows images makes one "
                    "small database query, so that an image bound by another process (the "
                    "worker) shows at once.",
                    hint="Use a cache that every process shares (Redis, Memcached) for no "
                    "query per render, or set NEURALDRAFT['SHARED_CACHE'] = False to accept "
                    "the query. See docs/templatetags.rst.",
                    id="neuraldraft.W018",
                )
            ]

    @pytest.mark.parametrize("shared", [True, False])
    def test_an_explicit_choice_is_respected(self, shared):
        with override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "SHARED_CACHE": shared}):
            assert checks.check_cache_is_shared() == []

    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY})
    def test_a_shared_cache_passes(self):
        assert checks.check_cache_is_shared() == []


class TestCeleryAppCheck:
    def test_the_projects_app_passes(self):
        """The suite's own app (tests/celery_app.py) is current, as a project's is."""
        assert checks.check_celery_app() == []

    def test_w019_only_celerys_fallback_app(self, monkeypatch):
        """What a process sees when no module of the project created a Celery app."""
        monkeypatch.setattr(celery_state, "default_app", None)
        monkeypatch.setattr(celery_state._tls, "current_app", None)
        (warning,) = checks.check_celery_app()
        assert (warning.id, type(warning)) == ("neuraldraft.W019", Warning)
        assert "amqp://localhost" in warning.msg


class TestFlagCheck:
    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "AUTO_PUBLISH": "no"})
    def test_e017_auto_publish_not_a_boolean(self):
        assert checks.check_flags() == [
            Error(
                "NEURALDRAFT['AUTO_PUBLISH'] = 'no' is not True or False.",
                hint="Fix the value or remove it to use the default, True.",
                id="neuraldraft.E017",
            )
        ]

    @override_settings(NEURALDRAFT={"API_KEY": TEST_KEY, "AUTO_PUBLISH": False})
    def test_false_passes(self):
        assert checks.check_flags() == []


def test_checks_are_registered_with_django():
    from django.core.checks.registry import registry

    registered = registry.get_checks()
    assert all(check in registered for check in checks.ALL_CHECKS)
