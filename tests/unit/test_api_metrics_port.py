"""Metrics are served on a port of their own, never on the API port every caller reaches."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tests.unit.fakes import stand_in

from kustos import metrics
from kustos.api.server import ApiBackend, build_app
from kustos.services.api.service import SecretsApi


class _Nobody:
    operations = frozenset[str]()
    audit_queue = None  # every request on a worker thread

    def authenticate(self, req: Any) -> Any:
        raise AssertionError("no API call in this test")


def _get(path: str) -> tuple[int, str]:
    async def go() -> tuple[int, str]:
        backend = ApiBackend(_Nobody(), stand_in(SecretsApi, _Nobody()))
        async with TestClient(TestServer(build_app(backend))) as client:
            resp = await client.get(path)
            return resp.status, await resp.text()

    return asyncio.run(go())


def test_the_api_port_does_not_serve_metrics() -> None:
    metrics.observe_api("GetSecretValue", "success", 0.001)
    status, body = _get("/metrics")
    assert status == 404
    assert "kustos_" not in body and "UnknownOperationException" in body
    assert _get("/healthz") == (200, "ok\n")


def test_metrics_have_their_own_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.observe_api("GetSecretValue", "success", 0.001)
    assert metrics.start_metrics_server(port, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'kustos_api_requests_total{operation="GetSecretValue",outcome="success"}' in text
