"""The client's network address, read behind the configured number of trusted proxies.

One rule for the API's rate limits and the admin's sign-in lockout: with DJANGO_TRUSTED_PROXY_COUNT=0 (the default)
the address is the connection's (REMOTE_ADDR) and X-Forwarded-For is ignored, since any client can write it. With
N proxies, each appending the address it saw, the client's address is the N-th entry from the right: entries further
left were written by the client and prove nothing.
"""

from django.conf import settings


def client_address(request) -> str:
    meta = getattr(request, "META", {})
    remote = meta.get("REMOTE_ADDR") or ""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    return hops[-min(proxies, len(hops))][:64]
