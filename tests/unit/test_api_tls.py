"""The API's serving certificate is renewed before it expires and reloaded without a restart:
real TLS handshakes against a live server before and after, with the Secret held in memory
(the cluster tests use the real apiserver's Secret)."""

from __future__ import annotations

import asyncio
import base64
import copy
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from tests.unit.fakes import stand_in

from kustos.api.tls import GENERATED_LABEL, ServingTls
from kustos.crypto.certs import issue_serving_cert, needs_renewal, not_after
from kustos.errors import ServerError
from kustos.kube.secrets import SecretGateway

HOSTS = ["localhost", "127.0.0.1"]
NS, NAME = "kustos-system", "kustos-api-tls"


class MemorySecrets:
    """Stands in for `SecretGateway`, with resourceVersion-guarded replace."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.version = 0

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.obj)

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.obj)

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.obj is not None
        if body["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            raise ServerError("changed meanwhile")
        return self.create(namespace, body)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _served_cert(port: int, cafile: Path) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def _with_server(tls: ServingTls, body: Any) -> Any:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.context).start()
    try:
        return await body(port)
    finally:
        await runner.cleanup()


def test_a_generated_certificate_near_its_end_is_renewed_and_served_without_a_restart(
    tmp_path: Path,
) -> None:
    secrets = MemorySecrets()
    old = issue_serving_cert(HOSTS, now=datetime.now(UTC) - timedelta(days=364))
    secrets.create(
        NS,
        {
            "metadata": {"name": NAME, "labels": {GENERATED_LABEL: "generated"}},
            "data": {
                "tls.crt": _b64(old.cert_pem),
                "tls.key": _b64(old.key_pem),
                "ca.crt": _b64(old.ca_pem),
                "ca.key": _b64(old.ca_key_pem),
            },
        },
    )
    assert needs_renewal(old.cert_pem)
    cafile = tmp_path / "ca.crt"
    cafile.write_bytes(old.ca_pem)  # what clients trust, fetched once
    tls = ServingTls(stand_in(SecretGateway, secrets), NS, NAME, HOSTS)
    tls.start()

    async def scenario(port: int) -> tuple[x509.Certificate, x509.Certificate]:
        before = await asyncio.to_thread(_served_cert, port, cafile)
        fresh = await asyncio.to_thread(tls.refresh)
        assert fresh is not None
        tls.apply(*fresh)
        after = await asyncio.to_thread(_served_cert, port, cafile)
        return before, after

    before, after = asyncio.run(_with_server(tls, scenario))
    assert before.not_valid_after_utc - datetime.now(UTC) < timedelta(days=2)
    assert after.serial_number != before.serial_number
    assert after.not_valid_after_utc - datetime.now(UTC) > timedelta(days=360)
    stored = secrets.get(NS, NAME)
    assert stored is not None
    assert base64.b64decode(stored["data"]["ca.crt"]) == old.ca_pem  # same CA: still trusted
    assert not needs_renewal(base64.b64decode(stored["data"]["tls.crt"]))
    assert tls.refresh() is None  # nothing more to do until the next renewal is due


def test_a_supplied_certificate_is_never_renewed_but_reloaded_when_it_changes(
    tmp_path: Path,
) -> None:
    secrets = MemorySecrets()
    first = issue_serving_cert(HOSTS, now=datetime.now(UTC) - timedelta(days=364))
    secrets.create(
        NS,
        {
            "metadata": {"name": NAME},  # e.g. cert-manager's, no label
            "data": {
                "tls.crt": _b64(first.cert_pem),
                "tls.key": _b64(first.key_pem),
                "ca.crt": _b64(first.ca_pem),
            },
        },
    )
    tls = ServingTls(stand_in(SecretGateway, secrets), NS, NAME, HOSTS)
    tls.start()
    assert tls.refresh() is None  # near its end, but not ours to renew
    assert secrets.version == 1
    second = issue_serving_cert(HOSTS)  # cert-manager renews the Secret
    stored = secrets.get(NS, NAME)
    assert stored is not None
    stored["data"].update(
        {
            "tls.crt": _b64(second.cert_pem),
            "tls.key": _b64(second.key_pem),
            "ca.crt": _b64(second.ca_pem),
        }
    )
    secrets.replace(NS, NAME, stored)
    cafile = tmp_path / "ca.crt"
    cafile.write_bytes(first.ca_pem + second.ca_pem)

    async def scenario(port: int) -> tuple[x509.Certificate, x509.Certificate]:
        before = await asyncio.to_thread(_served_cert, port, cafile)
        fresh = await asyncio.to_thread(tls.refresh)
        assert fresh is not None
        tls.apply(*fresh)
        return before, await asyncio.to_thread(_served_cert, port, cafile)

    before, after = asyncio.run(_with_server(tls, scenario))
    assert before.serial_number == x509.load_pem_x509_certificate(first.cert_pem).serial_number
    assert after.serial_number == x509.load_pem_x509_certificate(second.cert_pem).serial_number
    assert tls.serving_until == not_after(second.cert_pem)


def test_a_generated_secret_without_its_ca_key_gets_a_new_ca_beside_the_old() -> None:
    secrets = MemorySecrets()
    old = issue_serving_cert(HOSTS, now=datetime.now(UTC) - timedelta(days=300))
    secrets.create(
        NS,
        {
            "metadata": {"name": NAME, "labels": {GENERATED_LABEL: "generated"}},
            "data": {
                "tls.crt": _b64(old.cert_pem),
                "tls.key": _b64(old.key_pem),
                "ca.crt": _b64(old.ca_pem),
            },
        },
    )
    tls = ServingTls(stand_in(SecretGateway, secrets), NS, NAME, HOSTS)
    tls.start()
    assert tls.refresh() is not None
    stored = secrets.get(NS, NAME)
    assert stored is not None
    bundle = base64.b64decode(stored["data"]["ca.crt"])
    assert old.ca_pem in bundle and len(x509.load_pem_x509_certificates(bundle)) == 2
    assert "ca.key" in stored["data"]
