"""Graceful shutdown of the API server (kustos.cli.api_cmd.drain), on a real socket: readiness
goes false first, requests arriving during the drain delay are still served (with
`Connection: close`), a request in flight when the listener closes gets its answer, and only
then are new connections refused."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from typing import Any

from tests.unit.fakes import stand_in

from kustos.api.server import ApiBackend, build_app
from kustos.cli.api_cmd import drain, start_site
from kustos.errors import AccessDeniedError
from kustos.services.api.service import SecretsApi


class _SlowDenier:
    """Answers every API call with AccessDenied, after `delay` seconds (a request in flight)."""

    operations = frozenset[str]()
    audit_queue = None  # every request on a worker thread

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def authenticate(self, req: Any) -> Any:
        time.sleep(self.delay)
        raise AccessDeniedError("nobody")

    def reject(self, *_: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(port: int, method: str, path: str) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = b"{}" if method == "POST" else None
        conn.request(
            method, path, body=body, headers={"X-Amz-Target": "secretsmanager.GetSecretValue"}
        )
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def test_drain_turns_unready_serves_on_then_finishes_in_flight_and_stops() -> None:
    port = _free_port()
    slow = _SlowDenier(delay=1.5)
    results: dict[str, Any] = {}

    def in_flight() -> None:
        results["slow"] = _request(port, "POST", "/")

    async def scenario() -> None:
        backend = ApiBackend(slow, stand_in(SecretsApi, slow))
        runner = await start_site(build_app(backend), "127.0.0.1", port, None)
        assert (await asyncio.to_thread(_request, port, "GET", "/readyz"))[0] == 200
        flying = threading.Thread(target=in_flight)
        flying.start()
        await asyncio.sleep(0.2)  # the slow request is in its handler now
        draining = asyncio.create_task(drain(runner, 0.6))
        await asyncio.sleep(0.1)
        results["ready"] = await asyncio.to_thread(_request, port, "GET", "/readyz")
        results["alive"] = await asyncio.to_thread(_request, port, "GET", "/healthz")
        slow.delay = 0.0
        results["during"] = await asyncio.to_thread(_request, port, "POST", "/")
        await draining
        await asyncio.to_thread(flying.join)
        try:
            await asyncio.to_thread(_request, port, "GET", "/healthz")
        except OSError as exc:
            results["after"] = type(exc).__name__

    asyncio.run(scenario())
    assert results["ready"][0] == 503  # the Service stops sending new connections first
    assert results["alive"][0] == 200  # alive all along: no restart while draining
    status, headers = results["during"]
    assert status == 400 and headers["connection"] == "close"  # served, then reconnect
    status, headers = results["slow"]
    assert status == 400 and "x-amzn-requestid" in headers  # in flight: answered in full
    assert results["after"] == "ConnectionRefusedError"  # only now: nobody listens
