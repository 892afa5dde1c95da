"""API-key checks that run before the request body is read.

Why a middleware: FastAPI reads and parses a JSON body before it resolves `Security` dependencies, so a keyless
50 MB POST would be read and `json.loads`-ed on the event loop before it is refused. This ASGI middleware looks at
the headers only and answers 401/403 at once for every write method (and for every request when reads need the
key too); the route dependencies still check the key (and document it in the OpenAPI schema).
"""
from __future__ import annotations

import hmac
import json
from typing import Any, Optional

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MIN_KEY_CHARS = 16
READ_PATHS = ("/search", "/docs/", "/indexes")  # the data reads (the page, /health and the schema stay open)


def key_matches(given: Optional[str | bytes], expected: str) -> bool:
    """Constant-time comparison of a presented key with the server's (bytes, so non-ASCII keys compare too)."""
    if not given:
        return False
    raw = given if isinstance(given, bytes) else given.encode("utf-8", "replace")
    return hmac.compare_digest(raw, expected.encode("utf-8"))


def refusal(api_key: Optional[str], given: Optional[str | bytes]) -> Optional[tuple[int, str]]:
    """(status, message) when a request presenting `given` must be refused, else None."""
    if api_key is None:
        return 403, "live updates are disabled: the server was started without an API key (set XSEARCH_API_KEY)"
    if not key_matches(given, api_key):
        return 401, "missing or wrong X-API-Key header"
    return None


class KeyBeforeBody:
    """ASGI middleware: refuse keyless or wrong-key writes (and reads, with read_auth) from the headers alone."""

    def __init__(self, app: Any, api_key: Optional[str], read_auth: bool = False):
        self.app, self.api_key, self.read_auth = app, api_key, read_auth

    def _guarded(self, method: str, path: str) -> bool:
        if method in WRITE_METHODS:
            return True
        return self.read_auth and path.startswith(READ_PATHS)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._guarded(scope.get("method", "GET"), scope.get("path", "")):
            return await self.app(scope, receive, send)
        given = next((v for k, v in scope.get("headers", []) if k == b"x-api-key"), None)
        refused = refusal(self.api_key, given)
        if refused is None:
            return await self.app(scope, receive, send)
        status, message = refused
        body = json.dumps({"detail": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        if status == 401:
            headers.append((b"www-authenticate", b"X-API-Key"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
