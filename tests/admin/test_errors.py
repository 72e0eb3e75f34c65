"""Admin messages about errors: code, detail and request id, and never an API key."""

from django.core.exceptions import ValidationError

from django_neuraldraft.admin.errors import describe_error
from django_neuraldraft.exceptions import InsufficientCreditsError, TransportError

LIVE_KEY = "ndsk_live_" + "b" * 28 + "7yQp"


def test_api_error_reads_code_detail_and_request_id():
    err = InsufficientCreditsError(
        "402", code="insufficient_credits", detail="Balance too low.", request_id="req_2Nh4"
    )
    assert describe_error(err) == "insufficient_credits: Balance too low. (request id req_2Nh4)"


def test_a_key_quoted_back_is_masked():
    err = InsufficientCreditsError("402", code="forbidden", detail=f"Key {LIVE_KEY} lacks a scope")
    message = describe_error(err)
    assert LIVE_KEY not in message
    assert "ndsk_live_…7yQp" in message


def test_an_error_without_code_or_request_id():
    assert describe_error(TransportError("Connection refused")) == "Connection refused"


def test_validation_errors_read_as_their_messages():
    assert describe_error(ValidationError("Write a prompt first.")) == "Write a prompt first."
