"""Rate limits: a token bucket per OAuth client (callers with a valid token) and per IP address
(anonymous callers, and callers whose token is not valid). Over the limit: 429 with ``Retry-After``.

Limits come from ``HUB_RATE_LIMIT_CLIENT_PER_MINUTE`` and ``HUB_RATE_LIMIT_ANONYMOUS_PER_MINUTE``
(0 disables one). The buckets live in the process; behind a load balancer each process limits alone.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.auth import oidc, tokens
from hub.auth.keys import keyring
from hub.auth.resolve import extract_token
from hub.settings import Settings

EXEMPT = ("/healthz",)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by ``client:<id>`` or ``ip:<address>``."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, per_minute: int, now: float | None = None) -> float:
        """Take one request; returns 0 if allowed, else the seconds to wait."""
        if per_minute <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        rate = per_minute / 60.0
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) > 100_000:
                    self._buckets.clear()
                b = self._buckets[key] = _Bucket(float(per_minute), now)
            b.tokens = min(float(per_minute), b.tokens + (now - b.updated) * rate)
            b.updated = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / rate


def client_of(headers: dict[str, str], settings: Settings) -> str | None:
    """The client id of a request's token if its signature and claims are valid (no database)."""
    token = extract_token(headers)
    if not token or token.count(".") != 2:
        return None
    try:
        claims = tokens.unverified_claims(token)
        iss = claims.get("iss")
        header = tokens.unverified_header(token)
        if iss == tokens.issuer(settings):
            kid = header.get("kid")
            key = keyring(settings).published.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims = tokens.verify_signature(token, key)
            tokens.check_claims(claims, iss=tokens.issuer(settings), aud=tokens.audience(settings))
        elif isinstance(iss, str) and iss.rstrip("/") in oidc.configured(settings):
            claims = oidc.verify_external(settings, token, iss, header)
        else:
            return None
    except tokens.InvalidTokenError:
        return None
    for name in ("client_id", "azp", "sub"):
        cid = claims.get(name)
        if isinstance(cid, str) and cid:
            return cid
    return None


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, limiter: RateLimiter | None = None) -> None:
        self.app = app
        self.settings = settings
        self.limiter = limiter or RateLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in EXEMPT:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = client_of(headers, self.settings)
        if client is not None:
            wait = self.limiter.take(f"client:{client}", self.settings.rate_limit_client_per_minute)
        else:
            ip = (scope.get("client") or ("unknown", 0))[0]
            wait = self.limiter.take(f"ip:{ip}", self.settings.rate_limit_anonymous_per_minute)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        await _too_many(scope, send, math.ceil(wait))


async def _too_many(scope: Scope, send: Send, retry_after: int) -> None:
    path = scope.get("path", "")
    detail = (
        f"Too many requests: retry after {retry_after} s / Quá nhiều yêu cầu: thử lại sau {retry_after} giây"
    )
    if path.startswith("/api/") and not path.startswith("/api/v1"):
        body = {"help": "", "success": False, "error": {"__type": "Rate Limit", "message": detail}}
        ctype = "application/json;charset=utf-8"
    else:
        body = {"type": "about:blank", "title": "Too Many Requests", "status": 429, "detail": detail}
        ctype = "application/problem+json"
    raw = json.dumps(body, ensure_ascii=False).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 429,
        "headers": [
            (b"content-type", ctype.encode()),
            (b"retry-after", str(retry_after).encode()),
            (b"content-length", str(len(raw)).encode()),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": raw})
