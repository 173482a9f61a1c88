"""The server shell: /healthz, /docs, slash collapsing, error envelopes, the live server helper."""

from __future__ import annotations

import httpx
import pytest

from hub.settings import Settings
from hub.testing.live import live_server


@pytest.mark.integration
def test_live_server_serves_health_docs_and_collapses_slashes(settings: Settings) -> None:
    with live_server(settings) as base:
        assert base.startswith("http://127.0.0.1:")
        r = httpx.get(f"{base}/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "version": "0.1.0", "database": "ok"}
        assert httpx.get(f"{base}//healthz").status_code == 200
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "Liên Thông hub"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=2)
