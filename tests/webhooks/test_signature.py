"""The signature check alone: the scheme, the tolerance, rotation, and what is refused."""

from __future__ import annotations

import time

import pytest

from django_neuraldraft import webhooks
from django_neuraldraft.sandbox.webhooks import signature

from .conftest import SECRET, sign

BODY = b'{"id":"evt_1","type":"image.generated","data":{"job_id":"job_1"}}'

pytestmark = pytest.mark.usefixtures("webhook_settings")


def test_a_body_signed_with_our_secret_passes():
    webhooks.verify(sign(BODY), BODY)


def test_any_of_several_v1_values_may_match_during_a_rotation():
    ours = sign(BODY).split(",")[1]
    other = sign(BODY, secret="whsec_old").split(",")[1]
    webhooks.verify(f"t={int(time.time())},{other},{ours},v2=ignored", BODY)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "No X-Neural-Draft-Signature"),
        ("", "No X-Neural-Draft-Signature"),
        ("v1=" + "0" * 64, "Malformed"),
        ("t=abc,v1=" + "0" * 64, "Malformed"),
        (f"t={int(time.time())}", "Malformed"),
        (f"t={int(time.time())},v1=" + "0" * 64, "does not match"),
    ],
)
def test_a_missing_malformed_or_wrong_signature_is_refused(header, reason):
    with pytest.raises(webhooks.RejectedError, match=reason):
        webhooks.verify(header, BODY)


def test_a_changed_body_is_refused():
    with pytest.raises(webhooks.RejectedError, match="does not match"):
        webhooks.verify(sign(BODY), BODY + b" ")


def test_another_secret_is_refused():
    with pytest.raises(webhooks.RejectedError, match="does not match"):
        webhooks.verify(sign(BODY, secret="whsec_someone_else"), BODY)


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused(skew):
    now = time.time()
    with pytest.raises(webhooks.RejectedError, match="tolerance"):
        webhooks.verify(signature(SECRET, int(now) + skew, BODY), BODY, now=now)


def test_the_tolerance_is_a_setting(settings):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "WEBHOOK_TOLERANCE": 10}
    now = time.time()
    webhooks.verify(signature(SECRET, int(now) - 9, BODY), BODY, now=now)
    with pytest.raises(webhooks.RejectedError, match="tolerance"):
        webhooks.verify(signature(SECRET, int(now) - 11, BODY), BODY, now=now)


def test_without_a_secret_nothing_is_accepted(settings):
    settings.NEURALDRAFT = {**settings.NEURALDRAFT, "WEBHOOK_SECRET": None}
    with pytest.raises(webhooks.RejectedError, match="WEBHOOK_SECRET"):
        webhooks.verify(sign(BODY), BODY)
