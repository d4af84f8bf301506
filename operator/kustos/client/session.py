"""`connect()`: a botocore `secretsmanager` client pointed at a Kustos endpoint.

Owns only how the client is built: endpoint, CA bundle, region, retries and which
credentials sign the requests. Everything on the wire is botocore's own (serializers,
validation, SigV4, the container-credentials provider), so the client behaves exactly as the
AWS SDK does against AWS. Credentials, first match wins:

1. explicit access keys (``access_key_id`` + ``secret_access_key`` [+ ``session_token``]);
2. a ServiceAccount token (``token_file``/``token``, or ``$KUSTOS_TOKEN_FILE``): requests are
   sent unsigned with ``Authorization: Bearer <token>``; the file is re-read when it changes,
   because the kubelet rotates projected tokens;
3. botocore's standard chain: ``AWS_ACCESS_KEY_ID``..., shared config files, and the
   container provider (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` +
   ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` -> short-lived keys from ``/v1/credentials``).

No I/O here beyond reading the token file; never logs a token or a value.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import botocore
import botocore.session
from botocore.config import Config

from kustos.config import client_environment

__all__ = ["DEFAULT_ENDPOINT", "BearerToken", "connect", "default_endpoint"]

DEFAULT_ENDPOINT = "https://127.0.0.1:8443"
DEFAULT_REGION = "local"  # Kustos's default cluster name (region ~ cluster)


def default_endpoint() -> str:
    """``$KUSTOS_ENDPOINT``, else the local default."""
    return client_environment().endpoint or DEFAULT_ENDPOINT


class BearerToken:
    """Adds ``Authorization: Bearer <token>`` to each request (botocore `request-created`).

    With a file, the token is re-read whenever the file's mtime or size changes.
    """

    def __init__(
        self, *, token: str | None = None, token_file: str | os.PathLike[str] | None = None
    ) -> None:
        if (token is None) == (token_file is None):
            raise ValueError("give exactly one of token and token_file")
        self._token = token.strip() if token is not None else None
        self._path = Path(token_file) if token_file is not None else None
        self._stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()

    def current(self) -> str:
        if self._path is None:
            return self._token or ""
        stat = self._path.stat()
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:
            if stamp != self._stamp or self._token is None:
                self._token = self._path.read_text().strip()
                self._stamp = stamp
            return self._token

    def __call__(self, request: Any, **_: Any) -> None:
        request.headers["Authorization"] = f"Bearer {self.current()}"

    def __repr__(self) -> str:
        return f"BearerToken(file={str(self._path) if self._path else None!r})"


def connect(
    endpoint_url: str | None = None,
    *,
    ca_bundle: str | bool | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    max_attempts: int | None = None,
    config: Config | None = None,
) -> Any:
    """A botocore ``secretsmanager`` client for Kustos at `endpoint_url`.

    `ca_bundle`: a CA file to verify the server with (default ``$KUSTOS_CA_BUNDLE``, then
    ``$AWS_CA_BUNDLE``, then the system store); ``False`` disables verification.
    """
    session = botocore.session.get_session()
    endpoint = endpoint_url or default_endpoint()
    verify: str | bool | None = ca_bundle
    if verify is None:
        verify = client_environment().ca_bundle
    region = region or session.get_config_variable("region") or DEFAULT_REGION
    retries: dict[str, Any] = {"mode": "standard"}
    if max_attempts is not None:  # else botocore's own default ($AWS_MAX_ATTEMPTS, then 3)
        retries["max_attempts"] = max_attempts
    base = Config(retries=retries, user_agent_extra="kustos-client")
    if config is not None:
        base = base.merge(config)
    bearer: BearerToken | None = None
    if access_key_id is None:
        if token is not None:
            bearer = BearerToken(token=token)
        else:
            token_file = token_file or client_environment().token_file
            if token_file is not None:
                bearer = BearerToken(token_file=token_file)
    if bearer is not None:
        base = base.merge(Config(signature_version=botocore.UNSIGNED))
    client = session.create_client(
        "secretsmanager",
        region_name=region,
        endpoint_url=endpoint,
        verify=verify,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        config=base,
    )
    if bearer is not None:
        client.meta.events.register("request-created.secrets-manager", bearer)
    return client
