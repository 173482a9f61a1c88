"""A minimal OpenID Connect provider on 127.0.0.1 (discovery + JWKS), standing in for a provincial SSO."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey


class FakeIdP:
    """A minimal OIDC provider: /realms/tinh/.well-known/openid-configuration and /realms/tinh/certs."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, private=True, auto_kid=True)]
        self.requests: list[str] = []
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                idp.requests.append(self.path)
                if self.path == "/realms/tinh/.well-known/openid-configuration":
                    body: dict[str, Any] = {"issuer": idp.issuer, "jwks_uri": f"{idp.issuer}/certs"}
                elif self.path == "/realms/tinh/certs":
                    body = {"keys": [k.as_dict(private=False) for k in idp.keys]}
                else:
                    self.send_error(404)
                    return
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/realms/tinh"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, key: RSAKey | None = None, **over: Any) -> str:
        key = key or self.keys[-1]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": "lien-thong-hub",
            "sub": "f1e2d3c4",
            "azp": "cong-dich-vu-cong",
            "preferred_username": "nguyen.van.a",
            "scope": "openid catalog:read datastore:read",
            "iat": now,
            "exp": now + 300,
            "jti": f"ext-{now}-{len(self.requests)}",
        }
        claims.update(over)
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
