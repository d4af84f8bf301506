"""TLS for the API server: the serving certificate from a Kubernetes Secret.

By default the Secret `kustos-api-tls` in Kustos's namespace; when it does not exist, a
private CA and a serving certificate are generated into it (`kubernetes.io/tls`, with the
CA as `ca.crt` for clients). A Secret the user supplies is read, never overwritten. The key
is handed to `ssl` through a private temporary file (mode 0600) deleted right after loading.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
import tempfile
from pathlib import Path

from kustos.crypto.certs import issue_serving_cert
from kustos.errors import ConflictError, KustosError
from kustos.kube.secrets import SecretGateway

__all__ = ["DEFAULT_SECRET", "default_hosts", "ensure_tls_secret", "server_context"]

log = logging.getLogger(__name__)
DEFAULT_SECRET = "kustos-api-tls"


def default_hosts(namespace: str, service: str = "kustos-api") -> list[str]:
    extra = [h.strip() for h in os.environ.get("KUSTOS_API_HOSTS", "").split(",") if h.strip()]
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local", "localhost", "127.0.0.1", "::1", *extra]


def ensure_tls_secret(
    secrets: SecretGateway, namespace: str, name: str, hosts: list[str]
) -> dict[str, bytes]:
    """The Secret's `tls.crt`, `tls.key` (and `ca.crt` if present); generated if absent."""
    existing = secrets.get(namespace, name)
    if existing is None:
        issued = issue_serving_cert(hosts)
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/part-of": "kustos",
                                    "kustos.io/api-tls": "generated"}},
            "data": {"tls.crt": _b64(issued.cert_pem), "tls.key": _b64(issued.key_pem),
                     "ca.crt": _b64(issued.ca_pem)},
        }  # fmt: skip
        try:
            existing = secrets.create(namespace, body)
            log.info("generated a CA and serving certificate into Secret %s/%s", namespace, name)
        except ConflictError:  # another replica was first: use theirs
            existing = secrets.get(namespace, name)
    data = (existing or {}).get("data") or {}
    if "tls.crt" not in data or "tls.key" not in data:
        raise KustosError(f"Secret {namespace}/{name} lacks tls.crt or tls.key")
    return {k: base64.b64decode(v) for k, v in data.items()}


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="kustos-tls-") as tmp:
        cert, key = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert.write_bytes(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        context.load_cert_chain(cert, key)
    return context


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
