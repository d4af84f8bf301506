"""TLS for the API server: the serving certificate from a Kubernetes Secret, renewed and
reloaded without a restart.

By default the Secret `kustos-api-tls` in Kustos's namespace; when it does not exist, a
private CA and a serving certificate are generated into it (`kubernetes.io/tls`, with the
CA as `ca.crt` for clients and its key as `ca.key`, label ``kustos.io/api-tls=generated``).
A Secret the user supplies (e.g. by cert-manager) is read, never overwritten.

`ServingTls.run` looks at the Secret every `check_seconds`:
* a *generated* certificate with less than a third of its life left is renewed in place by
  the same CA (clients keep trusting ``ca.crt``); a generated Secret from before the CA key
  was kept gets a new CA, and ``ca.crt`` then holds the new and the old CA;
* whenever the Secret's certificate differs from the one being served (renewed here, by
  another replica, or by cert-manager), it is loaded into the live `ssl.SSLContext`:
  connections already open keep their session, every new TLS handshake gets the new one.
The key is handed to `ssl` through a private temporary file (mode 0600) deleted right after
loading. Failures are logged and retried at the next look; they never stop the server.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kustos.crypto.certs import issue_serving_cert, needs_renewal, not_after, renew_serving_cert
from kustos.errors import ConflictError, KustosError
from kustos.kube.secrets import SecretGateway

__all__ = [
    "CHECK_SECONDS",
    "DEFAULT_SECRET",
    "ServingTls",
    "default_hosts",
    "ensure_tls_secret",
    "server_context",
]

log = logging.getLogger(__name__)
DEFAULT_SECRET = "kustos-api-tls"
GENERATED_LABEL = "kustos.io/api-tls"
#: Seconds between looks at the TLS Secret (renewal, reload).
CHECK_SECONDS = 300.0


def default_hosts(
    namespace: str, extra: Sequence[str] = (), service: str = "kustos-api"
) -> list[str]:
    """The names a generated certificate is valid for: the Service's, loopback, `extra`."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        "localhost",
        "127.0.0.1",
        "::1",
        *extra,
    ]


def ensure_tls_secret(
    secrets: SecretGateway, namespace: str, name: str, hosts: list[str]
) -> dict[str, bytes]:
    """The Secret's `tls.crt`, `tls.key` (and `ca.crt` if present); generated if absent."""
    existing = secrets.get(namespace, name)
    if existing is None:
        issued = issue_serving_cert(hosts)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "kustos", GENERATED_LABEL: "generated"},
            },
            "data": {
                "tls.crt": _b64(issued.cert_pem),
                "tls.key": _b64(issued.key_pem),
                "ca.crt": _b64(issued.ca_pem),
                "ca.key": _b64(issued.ca_key_pem),
            },
        }
        try:
            existing = secrets.create(namespace, body)
            log.info("generated a CA and serving certificate into Secret %s/%s", namespace, name)
        except ConflictError:  # another replica was first: use theirs
            existing = secrets.get(namespace, name)
    return _pems(existing, namespace, name)


def _pems(secret: dict[str, Any] | None, namespace: str, name: str) -> dict[str, bytes]:
    data = (secret or {}).get("data") or {}
    if "tls.crt" not in data or "tls.key" not in data:
        raise KustosError(f"Secret {namespace}/{name} lacks tls.crt or tls.key")
    return {k: base64.b64decode(v) for k, v in data.items()}


def _load_into(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="kustos-tls-") as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert.write_bytes(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        context.load_cert_chain(cert, key)


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_into(context, cert_pem, key_pem)
    return context


class ServingTls:
    """The API's serving certificate: one live `ssl.SSLContext`, kept current."""

    def __init__(
        self,
        secrets: SecretGateway,
        namespace: str,
        name: str,
        hosts: list[str],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secrets = secrets
        self.namespace = namespace
        self.name = name
        self._hosts = hosts
        self._clock = clock
        self._serving: bytes = b""
        #: The CA of the Secret when it was loaded (``ca.crt``; empty if it has none).
        self.ca_pem: bytes = b""
        self.context: ssl.SSLContext | None = None

    def start(self) -> ssl.SSLContext:
        """The context, from the Secret (generated when absent)."""
        pems = ensure_tls_secret(self._secrets, self.namespace, self.name, self._hosts)
        self.context = server_context(pems["tls.crt"], pems["tls.key"])
        self._serving = pems["tls.crt"]
        self.ca_pem = pems.get("ca.crt", b"")
        return self.context

    @property
    def serving_until(self) -> datetime:
        return not_after(self._serving)

    def refresh(self) -> tuple[bytes, bytes] | None:
        """Renew a generated certificate that is due; (cert, key) when the Secret's
        certificate is not the one being served. Blocking: run it off the event loop."""
        secret = self._secrets.get(self.namespace, self.name)
        if secret is None:
            log.warning(
                "TLS Secret %s/%s is gone; still serving the loaded certificate",
                self.namespace,
                self.name,
            )
            return None
        pems = _pems(secret, self.namespace, self.name)
        generated = ((secret.get("metadata") or {}).get("labels") or {}).get(GENERATED_LABEL)
        if generated == "generated" and needs_renewal(pems["tls.crt"], self._clock()):
            pems = self._renew(secret, pems)
        if pems["tls.crt"] == self._serving:
            return None
        return pems["tls.crt"], pems["tls.key"]

    def _renew(self, secret: dict[str, Any], pems: dict[str, bytes]) -> dict[str, bytes]:
        now = self._clock()
        if "ca.key" in pems and "ca.crt" in pems:
            issued = renew_serving_cert(pems["ca.crt"], pems["ca.key"], self._hosts, now)
            ca_bundle = pems["ca.crt"]
        else:  # generated before the CA key was kept: a new CA, trusted beside the old one
            issued = issue_serving_cert(self._hosts, now)
            ca_bundle = issued.ca_pem + pems.get("ca.crt", b"")
            log.warning(
                "TLS Secret %s/%s had no CA key: renewed with a new CA; clients that "
                "pinned the old ca.crt must fetch it again",
                self.namespace,
                self.name,
            )
        data = dict(secret.get("data") or {})
        data.update(
            {
                "tls.crt": _b64(issued.cert_pem),
                "tls.key": _b64(issued.key_pem),
                "ca.crt": _b64(ca_bundle),
                "ca.key": _b64(issued.ca_key_pem),
            }
        )
        body = {**secret, "data": data}  # metadata.resourceVersion guards the replace
        try:
            replaced = self._secrets.replace(self.namespace, self.name, body)
        except KustosError:  # another replica renewed first: theirs is as good
            again = self._secrets.get(self.namespace, self.name)
            return _pems(again, self.namespace, self.name)
        log.info(
            "renewed the serving certificate in Secret %s/%s (valid until %s)",
            self.namespace,
            self.name,
            not_after(issued.cert_pem).isoformat(),
        )
        return _pems(replaced, self.namespace, self.name)

    def apply(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve `cert_pem` from the next handshake on (call on the event loop's thread)."""
        if self.context is None:
            raise RuntimeError("ServingTls.start() first")
        _load_into(self.context, cert_pem, key_pem)
        self._serving = cert_pem
        log.info(
            "serving the certificate of Secret %s/%s, valid until %s",
            self.namespace,
            self.name,
            not_after(cert_pem).isoformat(),
        )

    async def run(self, check_seconds: float = CHECK_SECONDS) -> None:
        """Keep the served certificate current until cancelled."""
        while True:
            await asyncio.sleep(check_seconds)
            try:
                fresh = await asyncio.to_thread(self.refresh)
                if fresh is not None:
                    self.apply(*fresh)
            except (KustosError, ValueError, ssl.SSLError, OSError) as exc:
                log.warning(
                    "TLS Secret %s/%s: %s; retrying in %.0f s",
                    self.namespace,
                    self.name,
                    exc,
                    check_seconds,
                )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
