"""The NEURALDRAFT settings: defaults, overrides, the env fallback and unknown keys."""

import pytest
from django.test import override_settings

from django_neuraldraft import conf
from django_neuraldraft.exceptions import NeuralDraftConfigurationError

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

    def test_unknown_key_is_rejected_by_name_with_a_suggestion(self):
        with override_settings(NEURALDRAFT={"TIMEOUTS": 3}):
            with pytest.raises(NeuralDraftConfigurationError) as excinfo:
                conf.get_settings()
        assert str(excinfo.value) == "Unknown NEURALDRAFT key 'TIMEOUTS'; did you mean 'TIMEOUT'?"

    def test_unknown_key_without_a_near_match(self):
        with override_settings(NEURALDRAFT={"COLOUR": "red"}):
            with pytest.raises(NeuralDraftConfigurationError, match=r"'COLOUR'\.$"):
                conf.get_settings()

    def test_settings_must_be_a_dict(self):
        with override_settings(NEURALDRAFT=["API_KEY"]):
            with pytest.raises(NeuralDraftConfigurationError, match="must be a dict, not list"):
                conf.get_settings()

    def test_result_is_read_only(self):
        with pytest.raises(TypeError):
            conf.get_settings()["API_KEY"] = "x"


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
