"""One HTTP POST of a webhook, with the safety rules of SPEC "Webhooks".

- https only, and only to public addresses, unless WEBHOOKS_ALLOW_INSECURE (tests, `make run`);
- the host is resolved once, every address is checked, and the connection goes to the address that was checked
  (the URL's host stays in the Host header and, for TLS, in SNI and the certificate check), so a DNS answer that
  changes between the check and the connection cannot point the request at an internal service;
- no redirects are followed (a 3xx is a failed attempt), 10 s timeouts, and at most 1 KB of the answer is read,
  undecoded (Accept-Encoding: identity), so neither a large nor a compressed answer can use up memory.
"""

import functools
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings

ANSWER_BYTES = 1024
USER_AGENT = "coupon-service-webhooks/1"


class UnsafeUrl(Exception):
    """The URL or the address it resolves to may not be called (scheme, private address, bad host)."""


@dataclass
class SendResult:
    status_code: int | None
    duration_ms: int
    answer: str = ""
    error: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Built once per process: loading the CA bundle costs tens of milliseconds, far more than a local send.
    return httpx.create_ssl_context()


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def url_check(url: str, *, allow_insecure: bool) -> tuple[str, str, int]:
    """Check the URL's form (scheme, host, port). Returns (scheme, host, port). Raises UnsafeUrl."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"Not a valid URL: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeUrl("The URL must start with https://.")
    if scheme == "http" and not allow_insecure:
        raise UnsafeUrl("Only https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("The URL may not hold a user name or password.")
    host = parts.hostname
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if not allow_insecure and ((literal is not None and not _address_allowed(literal)) or host.lower() == "localhost"):
        raise UnsafeUrl("The URL points at a private, loopback or link-local address.")
    return scheme, host, port or (443 if scheme == "https" else 80)


def resolve_checked(host: str, port: int, *, allow_insecure: bool) -> str:
    """Resolve the host once and return an address that may be called (the first one, in the resolver's order)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrl(f"The host {host!r} does not resolve: {exc}.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeUrl(f"The host {host!r} does not resolve.")
    # Any disallowed address refuses the host: a name that resolves to a public and an internal address at once
    # is how DNS rebinding hides.
    if not allow_insecure and any(not _address_allowed(address) for address in addresses):
        raise UnsafeUrl(f"The host {host!r} resolves to a private, loopback or link-local address.")
    return str(addresses[0])


def post(url: str, *, body: str, headers: dict[str, str], timeout: float | None = None) -> SendResult:
    """POST the body; never raises for network trouble (it is the attempt's result)."""
    allow_insecure = settings.COUPONS["WEBHOOKS_ALLOW_INSECURE"]
    timeout = settings.COUPONS["WEBHOOKS_TIMEOUT_SECONDS"] if timeout is None else timeout
    started = time.monotonic()

    def result(**kwargs) -> SendResult:
        return SendResult(duration_ms=int((time.monotonic() - started) * 1000), **kwargs)

    try:
        scheme, host, port = url_check(url, allow_insecure=allow_insecure)
        address = resolve_checked(host, port, allow_insecure=allow_insecure)
    except UnsafeUrl as exc:
        return result(status_code=None, error=str(exc))
    target = httpx.URL(url).copy_with(host=address)
    request_headers = {
        **headers,
        "Host": httpx.URL(url).netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
    }
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    deadline = started + timeout
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls_context()) as client:
            request = client.build_request("POST", target, content=body.encode(), headers=request_headers, extensions=extensions)
            response = client.send(request, stream=True)
            try:
                answer = b""
                for chunk in response.iter_raw():
                    answer += chunk
                    if len(answer) >= ANSWER_BYTES or time.monotonic() > deadline:
                        break
            finally:
                response.close()
    except httpx.TimeoutException:
        return result(status_code=None, error=f"Timed out after {timeout:g} s.")
    except httpx.HTTPError as exc:
        return result(status_code=None, error=f"{type(exc).__name__}: {exc}"[:500])
    return result(status_code=response.status_code, answer=answer[:ANSWER_BYTES].decode("utf-8", errors="replace"))
