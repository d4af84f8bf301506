"""A reference webhook rotation endpoint for tests: HTTPS on 127.0.0.1, checks signatures.

It rotates the credentials of a pretend service: `accepted` holds the values that "log in".
createSecret makes a value (the same again for the same token), setSecret starts accepting
it, testSecret checks it is accepted, finishSecret stops accepting every other value.
`mode` makes it misbehave: "500", "400", "timeout", "garbage", "empty-object", "redirect".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kustos.rotation.passwords import generate_password

SIGNING_KEY = "test-signing-key-0123456789"


def make_cert(directory: Path) -> tuple[Path, Path]:
    crt, key = directory / "hook.crt", directory / "hook.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


class WebhookServer:
    def __init__(self, cert: Path, key: Path) -> None:
        import ssl

        self.mode = "ok"
        self.delay = 0.0
        self.accepted: set[str] = set()
        self.created: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, answer = server.handle(self.headers.get("X-Kustos-Signature", ""), body)
                if server.mode == "timeout":
                    time.sleep(3)
                payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "https://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # refused TLS handshakes are expected by some tests

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/rotate"
        self.ca_data = cert.read_text()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, signature: str, body: bytes) -> tuple[int, Any]:
        parts = dict(p.split("=", 1) for p in signature.split(",") if "=" in p)
        expected = hmac.new(
            SIGNING_KEY.encode(), parts.get("t", "").encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        if (
            not hmac.compare_digest(expected, parts.get("v1", ""))
            or abs(time.time() - int(parts.get("t", "0"))) > 300
        ):
            return 401, {"error": "bad signature"}
        msg = json.loads(body)
        with self.lock:
            self.requests.append(msg)
            if self.mode in ("500", "400"):
                return int(self.mode), {"error": "nope", "echo": msg}
            if self.mode == "redirect":
                return 302, {}
            if self.mode == "garbage":
                return 200, b"<html>hello</html>"
            if self.mode == "empty-object":
                return 200, {}
            return self._step(msg)

    def _step(self, msg: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        token, step = msg["clientRequestToken"], msg["step"]
        if step == "createSecret":
            if token not in self.created:
                self.created[token] = json.dumps(
                    {"username": "svc", "password": generate_password()}
                )
            return 200, {"SecretString": self.created[token]}
        value = msg.get("pendingSecret", {}).get("SecretString")
        if step == "setSecret":
            self.accepted.add(value)
        elif step == "testSecret" and value not in self.accepted:
            return 409, {"error": "not accepted"}
        elif step == "finishSecret" and token in self.created:
            self.accepted = {self.created[token]}
        return 200, {}
