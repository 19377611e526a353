"""A small real-HTTP client for the live-server tests (urllib, bounded by a timeout)."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass
class HttpAnswer:
    status: int
    headers: dict
    content: bytes

    def json(self):
        return json.loads(self.content)


def http_call(base: str, method: str, path: str, body=None, token: str = "", headers: dict | None = None, timeout: float = 30):
    data = None
    all_headers = {"Accept": "application/json", **(headers or {})}
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method.upper(), headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpAnswer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, dict(error.headers), error.read())
