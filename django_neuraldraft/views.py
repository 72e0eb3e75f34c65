"""The webhook receiver: judge, store, acknowledge; the work happens in a task after commit."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import conf, webhooks


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> JsonResponse:
    """Receive one Neural Draft delivery; see docs/webhooks.rst for what each answer means.

    Every delivery is stored. A bad signature, a stale timestamp, no secret
    configured, a body over ``WEBHOOK_MAX_BODY_BYTES`` or one that is not
    JSON is answered 400 and changes nothing else. A verified body we cannot
    use is acknowledged (200) so the API does not retry it. One stored while
    the Celery broker is down is answered 503, so the API retries it.
    """
    # One byte over the limit is enough to know the body is too long.
    body = request.read(conf.webhook_max_body_bytes() + 1)
    try:
        _event, refusal = webhooks.receive(request.headers, body)
    except webhooks.NotQueuedError as err:
        return JsonResponse({"received": False, "error": str(err)}, status=503)
    if refusal is not None:
        return JsonResponse({"received": False, "error": refusal}, status=400)
    return JsonResponse({"received": True})
