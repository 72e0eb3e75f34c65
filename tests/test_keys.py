"""Image key validation: one rule for forms, services and commands."""

import pytest
from django.core.exceptions import ValidationError

from django_neuraldraft.keys import is_valid_image_key, validate_image_key


@pytest.mark.parametrize(
    "key", ["hero.background", "a", "team_photo-2", "x" * 128, "home.hero.v2", "404"]
)
def test_valid_keys(key):
    validate_image_key(key)
    assert is_valid_image_key(key)


@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("", "empty"),
        ("x" * 129, "max_length"),
        ("Hero.Background", "invalid"),
        ("hero/background", "invalid"),
        ("/etc/passwd", "invalid"),
        ("hero background", "invalid"),
        ("héro", "invalid"),
        ("hero%2e", "invalid"),
        (".hidden", "leading_dot"),
        ("a..b", "double_dot"),
        ("..", "leading_dot"),
    ],
)
def test_invalid_keys_say_why(key, code):
    with pytest.raises(ValidationError) as excinfo:
        validate_image_key(key)
    assert excinfo.value.code == code
    assert not is_valid_image_key(key)


def test_message_names_the_rule():
    with pytest.raises(ValidationError) as excinfo:
        validate_image_key("Hero")
    assert excinfo.value.messages == [
        "'Hero' is not a valid image key: use lowercase letters, digits, '.', '-' and '_' "
        "only, e.g. 'hero.background'."
    ]
