"""HTTP with retries: exponential backoff with jitter on 429, 5xx, timeouts and broken connections,
honouring ``Retry-After`` (seconds or an HTTP date). After the last attempt a ``ConnectorError`` with
``retryable=True`` names the URL, the status and the number of attempts."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

from hub.errors import ConnectorError, SourceDataError, SourceUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class PageUnreadableError(SourceDataError):
    """A page arrived but its body cannot be parsed (e.g. JSON cut off mid-page): retry the page."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for: delta-seconds or an HTTP date; None if absent/garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Retrier:
    """Runs one HTTP exchange with retries. ``sleep`` is injectable so tests can count the waits."""

    def __init__(
        self,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        max_retry_after_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.sleep = sleep
        self.waits: list[float] = []

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for ``attempt`` (1-based)."""
        cap = min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** (attempt - 1))
        return cap / 2 + random.uniform(0, cap / 2)

    def call(
        self,
        url: str,
        send: Callable[[], httpx.Response],
        parse: Callable[[httpx.Response], T],
    ) -> T:
        """``send`` the request and ``parse`` the answer, retrying transient failures."""
        problem = ""
        status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            try:
                response = send()
            except httpx.TimeoutException as exc:
                problem, status = f"timed out ({type(exc).__name__})", None
            except httpx.TransportError as exc:
                problem, status = f"connection failed ({type(exc).__name__}: {exc})", None
            else:
                status = response.status_code
                if status in RETRY_STATUSES:
                    problem = f"HTTP {status}"
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                    if wait is not None and wait > self.max_retry_after_seconds:
                        raise ConnectorError(
                            f"GET {url}: HTTP {status} asks to retry after {wait:.0f} s, longer than "
                            f"max_retry_after_seconds={self.max_retry_after_seconds:.0f}",
                            retryable=True,
                        )
                elif status >= 400:
                    raise ConnectorError(
                        f"GET {url}: HTTP {status} {_reason(response)}", retryable=False, status=status
                    )
                else:
                    try:
                        return parse(response)
                    except PageUnreadableError as exc:
                        problem = f"unreadable body ({exc})"
                    except httpx.TransportError as exc:
                        problem = f"connection broke while reading ({type(exc).__name__})"
            if attempt == self.max_attempts:
                break
            delay = wait if wait is not None else self.backoff(attempt)
            log.warning(
                "GET %s: %s; attempt %d of %d, next in %.2f s",
                url,
                problem,
                attempt,
                self.max_attempts,
                delay,
            )
            self.waits.append(delay)
            self.sleep(delay)
        raise SourceUnavailableError(
            f"GET {url}: {problem} after {self.max_attempts} attempt{'s' if self.max_attempts != 1 else ''}",
            retryable=True,
            url=url,
            status=status,
            attempts=self.max_attempts,
        )


def _reason(response: httpx.Response) -> str:
    text = response.text[:200].strip() if response.content else ""
    hint = {
        401: "authentication failed (check the key or token)",
        403: "access refused by the source",
        404: "no such path on the source",
    }.get(response.status_code, response.reason_phrase)
    return f"{hint}: {text}" if text else hint
