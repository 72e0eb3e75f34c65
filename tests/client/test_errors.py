"""The error tree: the status/code mapping, what each error carries, and the real error paths."""

from __future__ import annotations

import pickle

import pytest

from django_neuraldraft.client import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    NeuralDraftClient,
    NeuralDraftError,
    NotFoundError,
    PermissionDeniedError,
    PlanRequiredError,
    RateLimitedError,
    ServerError,
    ValidationFailedError,
    error_for_response,
)

KEY = "ndsk_live_2NgcaXxFqLPo7K3vR8zHwT5sE9bM1nDc"


def problem(status: int, code: str, **extra: object) -> dict:
    return {
        "type": f"https://api.neuraldraft.io/errors/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": f"Detail for {code}.",
        "instance": "req_2Nh4PqRsTuVw",
        **extra,
    }


class TestMapping:
    @pytest.mark.parametrize(
        ("status", "code", "cls"),
        [
            (400, "bad_request", BadRequestError),
            (401, "unauthorized", AuthenticationError),
            (402, "insufficient_credits", InsufficientCreditsError),
            (402, "out_of_credits", InsufficientCreditsError),
            (402, "plan_required", PlanRequiredError),
            (403, "forbidden", PermissionDeniedError),
            (404, "not_found", NotFoundError),
            (409, "conflict", ConflictError),
            (409, "slot_unavailable", ConflictError),
            (409, "idempotency_conflict", IdempotencyConflictError),
            (422, "validation_failed", ValidationFailedError),
            (429, "rate_limited", RateLimitedError),
            (500, "internal_error", ServerError),
            (502, "bad_gateway", ServerError),
            (503, "service_unavailable", ServerError),
            (504, "gateway_timeout", ServerError),
            (418, "teapot", APIError),
        ],
    )
    def test_status_and_code(self, status, code, cls):
        error = error_for_response(status, problem(status, code))
        assert type(error) is cls
        assert (error.status, error.code) == (status, code)
        assert error.detail == f"Detail for {code}."
        assert error.request_id == "req_2Nh4PqRsTuVw"
        assert error.type == f"https://api.neuraldraft.io/errors/{code}"

    def test_code_wins_over_status(self):
        assert type(error_for_response(400, problem(400, "not_found"))) is NotFoundError

    def test_builtin_bases(self):
        assert issubclass(NotFoundError, LookupError)
        assert issubclass(ValidationFailedError, ValueError)
        assert issubclass(IdempotencyConflictError, ConflictError)
        assert all(
            issubclass(cls, NeuralDraftError) for cls in (APIError, ServerError, PlanRequiredError)
        )

    def test_non_problem_body(self):
        error = error_for_response(502, "  <html>Bad gateway</html>\n", request_id="req_x")
        assert type(error) is ServerError
        assert error.code is None
        assert error.detail == "<html>Bad gateway</html>"
        assert error.problem is None
        assert error.request_id == "req_x"

    def test_json_that_is_not_an_object(self):
        error = error_for_response(404, ["not", "a", "problem"])
        assert type(error) is NotFoundError
        assert error.detail is None
        assert str(error) == "404"

    def test_header_request_id_wins_over_instance(self):
        error = error_for_response(404, problem(404, "not_found"), request_id="req_header")
        assert error.request_id == "req_header"

    def test_validation_errors_map(self):
        errors = {"aspect_ratio": ["Must be one of 1:1, 16:9."]}
        error = error_for_response(422, problem(422, "validation_failed", errors=errors))
        assert error.errors == errors
        assert "aspect_ratio: Must be one of 1:1, 16:9." in str(error)

    def test_rate_limited_retry_after(self):
        error = error_for_response(429, problem(429, "rate_limited"), retry_after=14.0)
        assert error.retry_after == 14.0


class TestPresentation:
    def test_str_has_status_code_detail_target_and_request_id(self):
        error = error_for_response(
            404, problem(404, "not_found"), method="GET", url="http://x/v1/jobs/job_1?a=b"
        )
        assert str(error) == (
            "404 not_found: Detail for not_found. (GET http://x/v1/jobs/job_1, request "
            "req_2Nh4PqRsTuVw)"
        )

    def test_key_masked_in_str_and_repr(self):
        error = error_for_response(401, problem(401, "unauthorized", detail=f"Bad key {KEY}"))
        for text in (str(error), repr(error)):
            assert KEY not in text
            assert "ndsk_live_…1nDc" in text

    def test_pickle_drops_response(self):
        error = error_for_response(
            422,
            problem(422, "validation_failed", errors={"prompt": ["Required."]}),
            response=object(),
        )
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is ValidationFailedError
        assert copy.response is None
        assert (copy.errors, copy.code, str(copy)) == (error.errors, error.code, str(error))


class TestFromSandbox:
    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, BadRequestError),
            (401, AuthenticationError),
            (402, InsufficientCreditsError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (409, ConflictError),
            (422, ValidationFailedError),
        ],
    )
    def test_status_fault(self, client, sandbox, status, cls):
        sandbox.set_fault("status", status=status, path="/v1/jobs")
        with pytest.raises(cls) as caught:
            client.get_job("job_000000000000")
        assert caught.value.status == status
        assert caught.value.request_id.startswith("req_")
        assert caught.value.method == "GET"
        assert len(sandbox.requests) == 1

    @pytest.mark.parametrize(
        ("code", "cls"),
        [
            ("out_of_credits", InsufficientCreditsError),
            ("plan_required", PlanRequiredError),
            ("idempotency_conflict", IdempotencyConflictError),
        ],
    )
    def test_code_fault(self, client, sandbox, code, cls):
        status = 409 if code == "idempotency_conflict" else 402
        sandbox.set_fault("status", status=status, code=code)
        with pytest.raises(cls) as caught:
            client.create_image("x")
        assert caught.value.code == code

    def test_server_error_after_retries(self, client, sandbox):
        sandbox.set_fault("status", status=500)
        with pytest.raises(ServerError) as caught:
            client.get_job("job_000000000000")
        assert caught.value.code == "internal_error"

    def test_bad_key(self, sandbox):
        bad = "ndsk_live_" + "A" * 32
        with (
            NeuralDraftClient(bad, sandbox.base_url) as client,
            pytest.raises(AuthenticationError) as caught,
        ):
            client.get_job("job_000000000000")
        assert caught.value.code == "unauthorized"
        assert bad not in str(caught.value) and bad not in repr(caught.value)
        assert len(sandbox.requests) == 1

    def test_unknown_job(self, client):
        with pytest.raises(NotFoundError) as caught:
            client.get_job("job_000000000000")
        assert caught.value.code == "not_found"
        assert caught.value.detail

    def test_unknown_image(self, client):
        with pytest.raises(NotFoundError):
            client.get_image("no.such.key")

    def test_bad_aspect_ratio(self, client, sandbox):
        with pytest.raises(ValidationFailedError) as caught:
            client.create_image("A cat", aspect_ratio="2:1")
        error = caught.value
        assert error.code == "validation_failed"
        assert list(error.errors) == ["aspect_ratio"]
        assert all(isinstance(message, str) for message in error.errors["aspect_ratio"])
        assert len(sandbox.requests) == 1

    def test_several_bad_fields(self, client):
        with pytest.raises(ValidationFailedError) as caught:
            client.create_image("", aspect_ratio="2:1", key="../up")
        assert set(caught.value.errors) == {"prompt", "aspect_ratio", "key"}

    def test_idempotency_key_reused_with_another_prompt(self, client, sandbox):
        client.create_image("A cat", idempotency_key="order-42")
        with pytest.raises(IdempotencyConflictError) as caught:
            client.create_image("A dog", idempotency_key="order-42")
        assert caught.value.status == 409
        assert len(sandbox.jobs) == 1

    def test_cancel_finished_job(self, client, sandbox):
        job = client.create_image("A cat")
        sandbox.finish_job(job.id)
        with pytest.raises(ConflictError) as caught:
            client.cancel_job(job.id)
        assert caught.value.code == "conflict"
        assert type(caught.value) is ConflictError
