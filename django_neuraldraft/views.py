"""The webhook receiver: verify, store, acknowledge; the work happens in a task after commit."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import conf, webhooks


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> JsonResponse:
    """Receive one Neural Draft delivery; see docs/webhooks.rst for what each answer means.

    Every delivery is stored first. A bad signature, a stale timestamp, no
    secret configured, a body over ``WEBHOOK_MAX_BODY_BYTES`` or one that is
    not JSON is answered 400 and changes nothing else. A verified body we
    cannot use is acknowledged (200) so the API does not retry it.
    """
    limit = conf.webhook_max_body_bytes()
    body = request.read(limit + 1)
    truncated = len(body) > limit
    event = webhooks.record(request.headers, body[:limit], truncated=truncated)
    try:
        if truncated:
            raise webhooks.RejectedError(f"The body is over {limit} bytes.")
        webhooks.verify(request.headers.get(webhooks.SIGNATURE_HEADER), body)
        envelope = webhooks.parse(body)
    except webhooks.RejectedError as err:
        webhooks.reject(event, str(err))
        return JsonResponse({"received": False, "error": str(err)}, status=400)
    webhooks.accept(event, envelope)
    return JsonResponse({"received": True})
