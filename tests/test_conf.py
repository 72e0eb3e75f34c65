"""The NEURALDRAFT settings: defaults, overrides, the env fallback and unknown keys."""

import pytest
from django.http import HttpResponse
from django.template import Context, RequestContext, Template
from django.test import override_settings
from django.urls import path

from django_neuraldraft import conf
from django_neuraldraft.exceptions import NeuralDraftConfigurationError
from tests.helpers import create_image_key

KEY = "ndsk_test_" + "a" * 32


class TestGetSettings:
    def test_defaults_fill_what_the_project_leaves_out(self):
        with override_settings(NEURALDRAFT={"API_KEY": KEY}):
            assert conf.get_settings()["BASE_URL"] == "https://api.neuraldraft.io/v1"
            assert conf.max_retries() == 3

    def test_override_settings_is_seen_at_call_time(self):
        with override_settings(NEURALDRAFT={"API_KEY": KEY, "MAX_RETRIES": 7}):
            assert conf.max_retries() == 7
        with override_settings(NEURALDRAFT={"API_KEY": KEY, "MAX_RETRIES": 1}):
            assert conf.max_retries() == 1

    def test_unknown_key_is_ignored_with_a_warning_naming_it_and_a_suggestion(self):
        with override_settings(NEURALDRAFT={"API_KEY": KEY, "TIMEOUTS": 3, "MAX_RETRIES": 5}):
            with pytest.warns(conf.NeuralDraftSettingsWarning) as record:
                current = conf.get_settings()
            assert current["MAX_RETRIES"] == 5
            assert "TIMEOUTS" not in current
            assert conf.request_timeout() == (5.0, 30.0)
        assert [str(warning.message) for warning in record] == [
            "Unknown NEURALDRAFT key 'TIMEOUTS'; did you mean 'TIMEOUT'? It is ignored."
        ]

    def test_unknown_key_without_a_near_match(self):
        with override_settings(NEURALDRAFT={"COLOUR": "red"}):
            with pytest.warns(conf.NeuralDraftSettingsWarning, match=r"'COLOUR'\. It is ignored"):
                conf.get_settings()

    def test_the_warning_comes_once_while_the_settings_stay_the_same(self, recwarn):
        with override_settings(NEURALDRAFT={"API_KEY": KEY, "CACHE_ALIASES": "x"}):
            for _ in range(3):
                conf.cache_alias()
                conf.placeholder()
        assert len(recwarn.list) == 1

    def test_settings_that_are_not_a_dict_give_the_defaults_with_a_warning(self):
        with override_settings(NEURALDRAFT=["API_KEY"]):
            with pytest.warns(conf.NeuralDraftSettingsWarning, match="must be a dict, not list"):
                assert conf.get_settings() == conf.DEFAULTS

    def test_result_is_read_only(self):
        with pytest.raises(TypeError):
            conf.get_settings()["API_KEY"] = "x"


class TestInvalidValues:
    """A value that breaks its rule gives way at run time; checks.py reports it."""

    @pytest.mark.parametrize(
        ("name", "value", "accessor", "expected"),
        [
            ("CACHE_TIMEOUT", "a day", conf.cache_timeout, 86400),
            ("TIMEOUT", [5], conf.request_timeout, (5.0, 30.0)),
            ("ALLOWED_DOWNLOAD_HOSTS", "cdn.example.com", conf.allowed_download_hosts,
             ("cdn.neuraldraft.io", "api.neuraldraft.io")),
            ("DEFAULT_ASPECT_RATIO", "21:9", conf.default_aspect_ratio, "16:9"),
            ("PLACEHOLDER", 0, conf.placeholder, None),
            ("UPLOAD_TO", "../etc", conf.upload_to, "neuraldraft"),
            ("STORAGE", ["default"], conf.storage_alias, "default"),
        ],
    )  # fmt: skip
    def test_the_default_is_used_with_a_warning(self, name, value, accessor, expected):
        with override_settings(NEURALDRAFT={"API_KEY": KEY, name: value}):
            with pytest.warns(conf.NeuralDraftSettingsWarning) as record:
                assert accessor() == expected
        assert [str(warning.message) for warning in record] == [
            f"NEURALDRAFT[{name!r}] = {value!r} is not {conf.RULES[name].expected}; "
            f"{conf.DEFAULTS[name]!r} is used instead."
        ]

    def test_an_unreadable_budget_spends_nothing_rather_than_everything(self):
        with override_settings(NEURALDRAFT={"API_KEY": KEY, "DAILY_CREDIT_BUDGET": "2000"}):
            with pytest.warns(conf.NeuralDraftSettingsWarning, match="0 is used instead"):
                assert conf.daily_credit_budget() == 0

    @pytest.mark.parametrize(
        ("name", "value"),
        [("TIMEOUT", 7.5), ("TIMEOUT", (1, 2)), ("ALLOWED_DOWNLOAD_HOSTS", ["a.example"]),
         ("UPLOAD_TO", "site/images/"), ("DAILY_CREDIT_BUDGET", 0), ("PLACEHOLDER", "")],
    )  # fmt: skip
    def test_valid_values_are_kept_without_a_warning(self, name, value, recwarn):
        with override_settings(NEURALDRAFT={"API_KEY": KEY, name: value}):
            assert conf.get_settings()[name] == value
        assert recwarn.list == []


class TestApiKey:
    def test_setting_wins_over_environment(self, monkeypatch):
        monkeypatch.setenv("NEURALDRAFT_API_KEY", "ndsk_test_" + "e" * 32)
        with override_settings(NEURALDRAFT={"API_KEY": KEY}):
            assert conf.api_key() == KEY

    def test_environment_is_the_fallback(self, monkeypatch):
        monkeypatch.setenv("NEURALDRAFT_API_KEY", "ndsk_test_" + "e" * 32)
        with override_settings(NEURALDRAFT={}):
            assert conf.api_key() == "ndsk_test_" + "e" * 32

    def test_missing_key_says_what_to_set(self, monkeypatch):
        monkeypatch.delenv("NEURALDRAFT_API_KEY", raising=False)
        with override_settings(NEURALDRAFT={}):
            with pytest.raises(NeuralDraftConfigurationError, match="NEURALDRAFT_API_KEY"):
                conf.api_key()


class TestAccessors:
    @pytest.mark.parametrize(
        ("value", "expected"), [(10, (10.0, 10.0)), ((3, 60), (3.0, 60.0)), ([1.5, 2], (1.5, 2.0))]
    )
    def test_timeout_is_always_a_pair(self, value, expected):
        with override_settings(NEURALDRAFT={"API_KEY": KEY, "TIMEOUT": value}):
            assert conf.request_timeout() == expected

    def test_base_url_loses_its_trailing_slash(self):
        with override_settings(NEURALDRAFT={"BASE_URL": "http://127.0.0.1:9/v1/"}):
            assert conf.base_url() == "http://127.0.0.1:9/v1"

    def test_storage_alias(self):
        with override_settings(NEURALDRAFT={"STORAGE": "images"}):
            assert conf.storage_alias() == "images"


@pytest.mark.django_db
@pytest.mark.usefixtures("cold_cache")
class TestSettingsNeverBreakAPage:
    TEMPLATE = (
        '{% load neuraldraft %}{% neuraldraft_image "hero.background" %}'
        '|{% neuraldraft_url "missing.key" %}'
    )

    @pytest.mark.parametrize(
        "typo",
        [
            {"CACHE_TIMEOUTS": 60},
            {"PLACEHOLDER": ["x"], "CACHE_TIMEOUT": "1 day", "CACHE_ALIAS": None},
            {"DEFAULT_ASPECT_RATIO": "21:9"},
        ],
    )
    def test_a_tag_renders_with_broken_settings_and_warns(self, typo):
        create_image_key("hero.background", file="neuraldraft/hero.background/a.png")
        with override_settings(NEURALDRAFT={"API_KEY": KEY, **typo}):
            with pytest.warns(conf.NeuralDraftSettingsWarning):
                html = Template(self.TEMPLATE).render(Context())
        assert html.startswith('<img src="/media/neuraldraft/hero.background/a.png"')
        assert "|data:image/svg+xml," in html

    def test_a_page_with_a_tag_answers_200_with_a_typo(self, client):
        create_image_key("hero.background", file="neuraldraft/hero.background/a.png")
        with override_settings(NEURALDRAFT={"API_KEY": KEY, "TIMEOUTS": 3}, ROOT_URLCONF=__name__):
            with pytest.warns(conf.NeuralDraftSettingsWarning, match="'TIMEOUTS'"):
                response = client.get("/page/")
        assert response.status_code == 200
        assert b'src="/media/neuraldraft/hero.background/a.png"' in response.content


def _page(request):
    return HttpResponse(
        Template('{% load neuraldraft %}{% neuraldraft_image "hero.background" %}').render(
            RequestContext(request)
        )
    )


urlpatterns = [path("page/", _page)]
