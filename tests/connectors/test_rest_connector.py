"""The rest connector against a real HTTP server on 127.0.0.1 (connectors.rest.fakeapi)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pyarrow as pa
import pytest

from connectors.rest.connector import RestConnector
from connectors.rest.fakeapi import FakeApi
from connectors.rest.http import retry_after_seconds
from hub.errors import ConfigError, ConnectorError
from hub.ingest.connector import ConnectorContext
from hub.testing.conformance import ConformanceCase, ConnectorConformance


def make_records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f"Nguyễn Văn {i}",
            "ward_code": f"{i % 50:05d}",
            "weight": 2500.5 + i,
            "alive": i % 7 != 0,
            "updated_at": f"2025-01-{1 + i % 28:02d}T00:00:{i % 60:02d}",
        }
        for i in range(1, n + 1)
    ]


def connector(url: str, pagination: dict[str, Any], **extra: Any) -> RestConnector:
    stream = {"name": "items", "path": "/items", "cursor_field": "updated_at"}
    stream.update(extra.pop("stream", {}))
    config = {
        "base_url": url,
        "streams": [stream],
        "pagination": pagination,
        "backoff_seconds": 0.01,
        "max_backoff_seconds": 0.05,
        **extra,
    }
    c = RestConnector.from_dict(config, ConnectorContext())
    assert isinstance(c, RestConnector)
    return c


def read_all(c: RestConnector, state: dict[str, Any] | None = None) -> pa.Table:
    batches = list(c.read("items", state))
    return pa.Table.from_batches(batches) if batches else pa.table({})


@pytest.mark.parametrize(
    "pagination",
    [
        {"type": "page", "page_size": 40},
        {"type": "offset", "page_size": 40},
        {"type": "cursor", "page_size": 40, "size_param": "limit"},
        {"type": "link", "page_size": 40},
    ],
    ids=lambda p: p["type"],
)
def test_every_pagination_style_reads_every_record_once(pagination: dict[str, Any]) -> None:
    records = make_records(250)
    with FakeApi(records) as api:
        params = (
            {"limit": "40", "mode": pagination["type"]} if pagination["type"] in ("cursor", "link") else {}
        )
        c = connector(api.url, pagination, stream={"params": params})
        table = read_all(c)
    assert table.column("id").to_pylist() == list(range(1, 251))
    assert table.schema.field("weight").type == pa.float64()
    assert table.schema.field("alive").type == pa.bool_()
    assert table.column("name")[0].as_py() == "Nguyễn Văn 1"
    assert len(api.requests) == 7  # 6 full or partial pages (+1 empty for page/offset, or stop on no cursor)


def test_incremental_sends_the_committed_cursor() -> None:
    with FakeApi(make_records(100)) as api:
        c = connector(
            api.url, {"type": "offset", "page_size": 1000}, stream={"updated_since_param": "updated_since"}
        )
        table = read_all(c, {"cursor": "2025-01-27T00:00:59"})
    assert "updated_since=2025-01-27T00%3A00%3A59" in api.requests[0]
    assert set(table.column("updated_at").to_pylist()) <= {f"2025-01-28T00:00:{s:02d}" for s in range(60)}
    assert table.num_rows == 3  # ids 27, 55, 83


def test_nested_values_become_json_text_and_mixed_types_text() -> None:
    records = [
        {"id": 1, "address": {"ward": "00004", "street": "Lê Lợi"}, "code": 5},
        {"id": 2, "address": None, "code": "A5"},
    ]
    with FakeApi(records) as api:
        table = read_all(connector(api.url, {"type": "none"}))
    assert table.column("address").to_pylist() == ['{"ward":"00004","street":"Lê Lợi"}', None]
    assert table.column("code").to_pylist() == ["5", "A5"]


def test_500_then_429_with_retry_after_are_retried() -> None:
    with FakeApi(make_records(30)) as api:
        api.faults.extend([500, 503, 429])
        api.retry_after = "1"
        c = connector(api.url, {"type": "page", "page_size": 100})
        started = time.monotonic()
        table = read_all(c)
        elapsed = time.monotonic() - started
    assert table.num_rows == 30
    assert len(api.requests) == 4
    assert elapsed >= 1.0  # Retry-After: 1 was honoured


def test_persistent_500_fails_clearly_after_max_attempts() -> None:
    with FakeApi(make_records(30)) as api:
        api.faults.extend([500] * 10)
        c = connector(api.url, {"type": "page", "page_size": 100}, max_attempts=3)
        with pytest.raises(ConnectorError) as info:
            read_all(c)
    err = info.value
    assert err.retryable is True
    assert f"{api.url}/items" in err.message
    assert "HTTP 500" in err.message
    assert "3 attempts" in err.message
    assert len(api.requests) == 3


def test_truncated_json_mid_page_is_fetched_again() -> None:
    with FakeApi(make_records(120)) as api:
        c = connector(api.url, {"type": "page", "page_size": 50})
        api.healthy_first = 1  # the first page arrives whole,
        api.truncate = 1  # the second one cut off once (the connector reads ahead: set it up before)
        batches = list(c.read("items", None))
    ids = [i for b in batches for i in b.column("id").to_pylist()]
    assert ids == list(range(1, 121))
    assert sum("page=2" in r for r in api.requests) == 2


def test_truncated_json_every_time_fails_naming_the_problem() -> None:
    with FakeApi(make_records(120)) as api:
        api.truncate = 100
        c = connector(api.url, {"type": "page", "page_size": 50}, max_attempts=2)
        with pytest.raises(ConnectorError) as info:
            read_all(c)
    assert "not valid JSON" in info.value.message
    assert "2 attempts" in info.value.message
    assert info.value.retryable


def test_slow_source_times_out_and_retries_then_fails() -> None:
    with FakeApi(make_records(5)) as api:
        api.delay = 0.6
        c = connector(api.url, {"type": "none"}, timeout_seconds=0.2, max_attempts=2)
        with pytest.raises(ConnectorError) as info:
            read_all(c)
        assert "timed out" in info.value.message
        api.delay = 0.05
        assert read_all(c).num_rows == 5  # a merely slow answer within the timeout is fine


def test_401_is_not_retried_and_check_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REST_TEST_KEY", "wrong")
    with FakeApi(make_records(5), api_key="right") as api:
        c = connector(api.url, {"type": "none"}, auth={"type": "api_key", "key": {"$env": "REST_TEST_KEY"}})
        result = c.check()
        assert not result.ok
        assert "HTTP 401" in result.message
        assert "authentication failed" in result.message
        assert len(api.requests) == 1
        monkeypatch.setenv("REST_TEST_KEY", "right")
        ok = c.check()
    assert ok.ok
    assert ok.details["rows_first_page"] == 5


def test_check_on_a_closed_port_says_the_source_is_unreachable() -> None:
    with FakeApi([]) as api:
        url = api.url
    c = connector(url, {"type": "none"}, max_attempts=1)
    result = c.check()
    assert not result.ok
    assert "connection failed" in result.message
    assert url in result.message


def test_bearer_and_oauth_client_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = {"tok": "s3cret-bearer", "cs": "s3cret-client"}
    with FakeApi(make_records(3), bearer="s3cret-bearer") as api:
        c = RestConnector.from_dict(
            {
                "base_url": api.url,
                "streams": [{"name": "items", "path": "/items"}],
                "auth": {"type": "bearer", "token": {"$secret": "tok"}},
            },
            ConnectorContext(secret_resolver=secrets.__getitem__),
        )
        assert pa.Table.from_batches(list(c.read("items", None))).num_rows == 3
    with FakeApi(make_records(3), client=("agency", "s3cret-client")) as api:
        api.faults.append(500)
        c = RestConnector.from_dict(
            {
                "base_url": api.url,
                "streams": [{"name": "items", "path": "/items"}],
                "backoff_seconds": 0.01,
                "auth": {
                    "type": "oauth_client_credentials",
                    "token_url": f"{api.url}/oauth/token",
                    "client_id": "agency",
                    "client_secret": {"$secret": "cs"},
                },
            },
            ConnectorContext(secret_resolver=secrets.__getitem__),
        )
        assert pa.Table.from_batches(list(c.read("items", None))).num_rows == 3
        api.tokens.clear()  # the token is revoked: the connector fetches a new one
        assert pa.Table.from_batches(list(c.read("items", None))).num_rows == 3
        assert api.token_requests == 2
    assert "s3cret" not in caplog.text


def test_literal_secret_in_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="never a literal"):
        RestConnector.from_dict(
            {
                "base_url": "http://x",
                "streams": [{"name": "a", "path": "/a"}],
                "auth": {"type": "bearer", "token": "plain"},
            }
        )


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds("soon") is None


def test_fast_path_and_slow_path_agree() -> None:
    records = make_records(3000)
    with FakeApi(records) as api:
        c = connector(api.url, {"type": "page", "page_size": 500})
        table = read_all(c)
    assert table.to_pylist() == records


class TestRestConformance(ConnectorConformance):
    @pytest.fixture
    def case(self) -> Iterator[ConformanceCase]:
        records = make_records(120)
        with FakeApi(records, api_key="conformance-key") as api:

            def add_rows() -> None:
                records.append({**records[-1], "id": 999, "updated_at": "2025-02-01T00:00:00"})

            closed = FakeApi([])
            closed_url = closed.url
            closed.__exit__(None, None, None)
            stream = {
                "name": "items",
                "path": "/items",
                "cursor_field": "updated_at",
                "updated_since_param": "updated_since",
                "primary_key": ["id"],
            }
            yield ConformanceCase(
                RestConnector,
                config={
                    "base_url": api.url,
                    "streams": [stream],
                    "pagination": {"type": "offset", "page_size": 50},
                    "auth": {"type": "api_key", "key": {"$env": "REST_CONFORMANCE_KEY"}},
                    "backoff_seconds": 0,
                },
                unreachable_config={
                    "base_url": closed_url,
                    "streams": [stream],
                    "max_attempts": 2,
                    "backoff_seconds": 0,
                },
                add_rows=add_rows,
            )

    @pytest.fixture(autouse=True)
    def _key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REST_CONFORMANCE_KEY", "conformance-key")
