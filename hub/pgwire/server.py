"""The PostgreSQL-protocol endpoint: a listening socket and one thread per connection.

Owned by the runtime (``Hub.pg_server``); ``hub serve --pg-port`` and ``hub demo run`` start it.
Connections are plain threads: a statement blocks on its query worker's stream, which the worker
pool bounds (``HUB_QUERY_WORKERS``, ``HUB_QUERY_QUEUE``), and a connection waiting for its client costs
only a thread. ``HUB_PG_MAX_CONNECTIONS`` bounds the connections.

TLS: with ``HUB_PG_TLS_CERT`` and ``HUB_PG_TLS_KEY`` an SSLRequest is answered ``S`` and the
connection is wrapped; without them it is answered ``N`` and the client goes on in plain text (what
``sslmode=prefer``, libpq's default, expects). CancelRequests arrive on connections of their own and
name a connection by its backend process id and secret key.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import socket
import ssl
import threading
from typing import TYPE_CHECKING

from hub.auth.server import HubAuthorizationServer
from hub.pgwire.session import Connection, FatalError

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("hub.pgwire")


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class PgServer:
    """The endpoint of one hub (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        s = hub.settings
        self.tls = (
            tls_context(str(s.pg_tls_cert), str(s.pg_tls_key)) if s.pg_tls_cert and s.pg_tls_key else None
        )
        self.oauth = HubAuthorizationServer(s)
        self._lock = threading.Lock()
        self._connections: dict[int, Connection] = {}
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = 0
        self.host = ""

    def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen on ``host:port`` (default: the settings; port 0: a free one); the port listened on."""
        if self._sock is not None:
            return self.port
        self.host = host if host is not None else self.hub.settings.pg_host
        wanted = port if port is not None else self.hub.settings.pg_port
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, wanted))
        sock.listen(128)
        sock.settimeout(0.5)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept, name=f"pg-accept-{self.port}", daemon=True)
        self._thread.start()
        log.info("PostgreSQL protocol on %s:%s%s", self.host, self.port, " (TLS)" if self.tls else "")
        return self.port

    def _accept(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopping.is_set():
            try:
                client, address = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # room for a few batches of rows: the endpoint encodes ahead while the client parses (the
            # kernel caps this at net.core.wmem_max)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            client.settimeout(None)
            conn = Connection(self, client, address)
            threading.Thread(target=conn.run, name="pg-connection", daemon=True).start()

    def register(self, conn: Connection) -> tuple[int, int]:
        """A backend process id and secret key for ``conn`` (its identity for CancelRequests)."""
        with self._lock:
            if len(self._connections) >= self.hub.settings.pg_max_connections:
                raise FatalError("53300", "sorry, too many clients already")
            while True:
                pid = secrets.randbelow(2**31 - 2) + 1
                if pid not in self._connections:
                    break
            self._connections[pid] = conn
        return pid, secrets.randbelow(2**31)

    def forget(self, conn: Connection) -> None:
        with self._lock:
            if self._connections.get(conn.pid) is conn:
                del self._connections[conn.pid]

    def cancel(self, pid: int, secret: int) -> None:
        """A CancelRequest: stop what connection ``pid`` runs, if ``secret`` is its key."""
        with self._lock:
            conn = self._connections.get(pid)
        if conn is not None and hmac.compare_digest(
            conn.secret.to_bytes(4, "big"), (secret & 0xFFFFFFFF).to_bytes(4, "big")
        ):
            conn.cancel()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def stop(self) -> None:
        """Stop listening and end every connection."""
        self._stopping.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            connections = list(self._connections.values())
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
