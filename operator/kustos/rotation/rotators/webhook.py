"""`webhook`: custom rotation, the four steps forwarded to an HTTPS endpoint.

This is Kustos's counterpart of the AWS rotation Lambda. For each step Kustos sends

    POST <url>
    Content-Type: application/json
    X-Kustos-Step: createSecret | setSecret | testSecret | finishSecret
    X-Kustos-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>." + body)>

    {"version": "1", "step": "...", "secretId": "<ARN>", "secretName": "...",
     "namespace": "...", "clientRequestToken": "<rotation token>",
     "pendingSecret": {"SecretString": "..."} | {"SecretBinary": "<base64>"}}

`pendingSecret` is present for setSecret and testSecret only; no step receives the current
value. Receivers must check the signature (constant-time) and reject old timestamps (replays),
and must treat every step as idempotent for its `clientRequestToken`.

The answer must be 2xx with a JSON object: for createSecret `{"SecretString": "..."}` (or
`{"SecretBinary": "<base64>"}`), the new value, which should be the same when the same token
is asked again; for the other steps any object, e.g. `{}`. Any other answer fails the step:
5xx, timeouts and garbage as retryable ServerErrors, 4xx as WebhookRejectedError. Redirects
are not followed. createSecret is not sent again once the engine holds a pending value for
the token: that value is returned as is.

Config: `url` (https), `signingKey` (str or SecretValue, at least 16 characters; the engine
resolves `signingKeySecretRef` into it), `caData` (PEM, to trust instead of the system CAs),
`timeoutSeconds` (per connect/read, default 10).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from kustos.errors import InvalidParameterError
from kustos.models import SecretValue
from kustos.rotation.errors import (
    TargetError,
    TargetUnreachableError,
    WebhookRejectedError,
    sanitize,
)
from kustos.rotation.rotator import (
    CreateSecretRequest,
    CreateSecretResponse,
    FinishSecretRequest,
    FinishSecretResponse,
    SetSecretRequest,
    SetSecretResponse,
    StepRequest,
    TestSecretRequest,
    TestSecretResponse,
)
from kustos.rotation.rotators._config import check_keys, get_timeout

__all__ = ["SIGNATURE_HEADER", "WebhookRotator", "sign"]

SIGNATURE_HEADER = "X-Kustos-Signature"
MAX_RESPONSE = 1 << 20
_KEYS = {"url", "signingKey", "signingKeySecretRef", "caData", "timeoutSeconds"}


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Kustos-Signature` header value for `body` sent at `timestamp`."""
    mac = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookRotator:
    name: ClassVar[str] = "webhook"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def validate(self, config: Mapping[str, Any]) -> None:
        check_keys(self.name, config, _KEYS)
        url = config.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != "https" or not parts.hostname:
            raise InvalidParameterError("webhook rotator: url must be an https:// URL")
        if "signingKey" not in config and "signingKeySecretRef" not in config:
            raise InvalidParameterError("webhook rotator: signingKeySecretRef is required")
        ca = config.get("caData")
        if ca is not None and (not isinstance(ca, str) or "BEGIN CERTIFICATE" not in ca):
            raise InvalidParameterError("webhook rotator: caData must be PEM certificates")
        get_timeout(self.name, config, "timeoutSeconds", 10.0)

    @staticmethod
    def _key(config: Mapping[str, Any]) -> bytes:
        key = config.get("signingKey")
        raw = key.reveal_bytes() if isinstance(key, SecretValue) else key
        if isinstance(raw, str):
            raw = raw.encode()
        if not isinstance(raw, bytes) or len(raw) < 16:
            raise InvalidParameterError(
                "webhook rotator: signingKey (resolved from signingKeySecretRef) must hold at "
                "least 16 characters"
            )
        return raw

    def _call(
        self, req: StepRequest, extra: Mapping[str, Any], pending: SecretValue | None = None
    ) -> dict[str, Any]:
        self.validate(req.config)
        key = self._key(req.config)
        url = urlsplit(req.config["url"])
        where = f"webhook https://{url.netloc}{url.path}"
        timeout = get_timeout(self.name, req.config, "timeoutSeconds", 10.0)
        body = json.dumps(
            {
                "version": "1",
                "step": req.step,
                "secretId": req.secret_arn,
                "secretName": req.secret_name,
                "namespace": req.namespace,
                "clientRequestToken": req.token,
                **extra,
            }
        ).encode()
        ctx = ssl.create_default_context(cadata=req.config.get("caData"))
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        secrets = [pending, req.config.get("signingKey")]
        conn = http.client.HTTPSConnection(
            url.hostname or "", url.port, timeout=timeout, context=ctx
        )
        try:
            conn.request(
                "POST",
                path,
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "kustos-rotator/1",
                    "X-Kustos-Step": req.step,
                    SIGNATURE_HEADER: sign(key, int(self._clock()), body),
                },
            )
            resp = conn.getresponse()
            status, payload = resp.status, resp.read(MAX_RESPONSE + 1)
        except TimeoutError:
            raise TargetUnreachableError(
                f"{where}: no answer to {req.step} within {timeout:g}s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            detail = sanitize(f"{type(exc).__name__}: {exc}", secrets)
            raise TargetUnreachableError(f"{where}: {req.step} failed: {detail}") from None
        finally:
            conn.close()
        if 400 <= status < 500:
            raise WebhookRejectedError(f"{where} rejected {req.step} with HTTP {status}")
        if not 200 <= status < 300:
            raise TargetError(f"{where} answered {req.step} with HTTP {status}")
        try:
            answer = json.loads(payload) if len(payload) <= MAX_RESPONSE else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise TargetError(f"{where} answered {req.step} with a body that is not a JSON object")
        return answer

    @staticmethod
    def _wire(value: SecretValue) -> dict[str, str]:
        if value.is_binary:
            return {"SecretBinary": base64.b64encode(value.reveal_bytes()).decode()}
        return {"SecretString": value.reveal()}

    def create_secret(self, req: CreateSecretRequest) -> CreateSecretResponse:
        if req.pending is not None:
            self.validate(req.config)
            return CreateSecretResponse(pending=req.pending, message="pending value exists")
        answer = self._call(req, {})
        text, blob = answer.get("SecretString"), answer.get("SecretBinary")
        if isinstance(text, str) and text and blob is None:
            return CreateSecretResponse(pending=SecretValue(text), message="webhook created it")
        if isinstance(blob, str) and text is None:
            try:
                return CreateSecretResponse(
                    pending=SecretValue(base64.b64decode(blob, validate=True)),
                    message="webhook created it",
                )
            except binascii.Error:
                pass
        raise TargetError(
            f"webhook answered createSecret for {req.secret_arn} without exactly one of a "
            "non-empty SecretString or a base64 SecretBinary"
        )

    def set_secret(self, req: SetSecretRequest) -> SetSecretResponse:
        self._call(req, {"pendingSecret": self._wire(req.pending)}, req.pending)
        return SetSecretResponse(message="webhook applied it")

    def test_secret(self, req: TestSecretRequest) -> TestSecretResponse:
        self._call(req, {"pendingSecret": self._wire(req.pending)}, req.pending)
        return TestSecretResponse(message="webhook tested it")

    def finish_secret(self, req: FinishSecretRequest) -> FinishSecretResponse:
        self._call(req, {}, req.pending)
        return FinishSecretResponse(message="webhook finished")
