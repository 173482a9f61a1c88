"""A real hub server for client tests: ``with live_server(settings) as base_url: ...``.

It runs ``hub.api.app.create_app(settings)`` under uvicorn on 127.0.0.1 with a free port (the socket is
bound before the server starts, so there is no race for the port) in a background thread, waits until
it accepts requests, yields ``http://127.0.0.1:<port>``, and stops it on exit.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from hub.settings import Settings


@contextmanager
def live_server(settings: Settings, *, port: int = 0, startup_timeout: float = 30.0) -> Iterator[str]:
    """Serve the hub for ``settings`` on a free local port; yields the base URL (no trailing slash).

    ``settings.site_url`` is not changed; when links must point to the live server, take a port with
    ``free_port()``, build ``Settings(site_url=f"http://127.0.0.1:{port}")`` and pass ``port=port``.
    """
    from hub.api.app import create_app
    from hub.db import get_engine

    get_engine(settings)  # migrate before the first request
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def _run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)

    thread = threading.Thread(target=_run, name=f"hub-live-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if errors or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the live server did not start: {errors[0] if errors else 'thread ended'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the live server did not start within {startup_timeout} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
