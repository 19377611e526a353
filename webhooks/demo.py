"""The demo receiver of `make run`: an endpoint served by the service itself, so a newcomer sees deliveries arrive.

It verifies each delivery as a real receiver would (the `standardwebhooks` package, with the endpoint's secrets),
remembers the last ones in the cache, and answers what it found, which the delivery log then shows. Local use
only: it answers 404 unless WEBHOOKS_DEMO_RECEIVER (on with DEBUG).
"""

import json

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from .models import WebhookEndpoint
from .services import signing_secrets

KEPT = 50
BODY_LIMIT = 64 * 1024


def _cache_key(endpoint_id: int) -> str:
    return f"webhooks-demo-receiver:{endpoint_id}"


@csrf_exempt
@require_http_methods(["GET", "POST"])
def demo_receiver(request, endpoint_id: int):
    if not settings.COUPONS["WEBHOOKS_DEMO_RECEIVER"]:
        raise Http404("The demo receiver is off.")
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise Http404("No such endpoint.")
    if request.method == "GET":
        return JsonResponse({"received": cache.get(_cache_key(endpoint.pk), [])})
    body = request.body[:BODY_LIMIT].decode("utf-8", errors="replace")
    headers = {name: request.headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    verified = False
    for secret in signing_secrets(endpoint, now=timezone.now()):
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            continue
        verified = True
        break
    try:
        event_type = json.loads(body).get("type", "")
    except (ValueError, AttributeError):
        event_type = ""
    receipt = {"webhook_id": headers["webhook-id"], "type": event_type, "verified": verified, "at": timezone.now().isoformat()}
    cache.set(_cache_key(endpoint.pk), ([receipt] + cache.get(_cache_key(endpoint.pk), []))[:KEPT], None)
    return JsonResponse(receipt, status=200 if verified else 400)
