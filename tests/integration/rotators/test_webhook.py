"""The webhook rotator against a local HTTPS endpoint: wire format and failure modes."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest
from tests.integration.rotators.rotation_harness import Engine, RotationCase, build_case
from tests.integration.rotators.webhook_server import SIGNING_KEY, WebhookServer

from kustos.errors import InvalidParameterError, ServerError
from kustos.models import SecretValue
from kustos.rotation import CreateSecretRequest, SetSecretRequest, TestSecretRequest
from kustos.rotation.errors import TargetError, TargetUnreachableError, WebhookRejectedError
from kustos.rotation.rotators.webhook import WebhookRotator, sign


@pytest.fixture
def wcase(request: pytest.FixtureRequest) -> RotationCase:
    return build_case(request, "webhook")


def test_wire_format(wcase: RotationCase, hook: WebhookServer) -> None:
    hook.requests.clear()
    engine = Engine(wcase, wcase.current)
    engine.rotate()
    steps = [r["step"] for r in hook.requests]
    assert steps == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    first = hook.requests[0]
    assert set(first) == {
        "version",
        "step",
        "secretId",
        "secretName",
        "namespace",
        "clientRequestToken",
    }
    assert first["secretId"].startswith("arn:kustos:secretsmanager:")
    assert hook.requests[1]["pendingSecret"] == {"SecretString": engine.current.reveal()}
    assert len({r["clientRequestToken"] for r in hook.requests}) == 1
    assert all("pendingSecret" not in hook.requests[i] for i in (0, 3))


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(b"k" * 16, 1700000000, body) == f"t=1700000000,v1={expected}"


def test_create_with_a_stored_pending_value_does_not_call_the_hook(
    wcase: RotationCase, hook: WebhookServer
) -> None:
    hook.requests.clear()
    stored = SecretValue("already-stored")
    req = wcase.request(CreateSecretRequest, Engine(wcase, wcase.current), "t", pending=stored)
    assert wcase.rotator.create_secret(req).pending == stored
    assert hook.requests == []


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("500", TargetError, "HTTP 500"),
        ("redirect", TargetError, "HTTP 302"),
        ("400", WebhookRejectedError, "HTTP 400"),
        ("timeout", TargetUnreachableError, "within 1s"),
        ("garbage", TargetError, "not a JSON object"),
    ],
)
def test_failures_are_clear_and_never_echo_the_value(
    wcase: RotationCase, hook: WebhookServer, mode: str, error: type[Exception], text: str
) -> None:
    engine = Engine(wcase, wcase.current)
    token = str(uuid.uuid4())
    engine.create(token)
    pending = engine.pending[token]
    hook.mode = mode
    for cls in (SetSecretRequest, TestSecretRequest):
        with pytest.raises(error, match=text) as info:
            engine.step(cls, token)
        assert pending.reveal() not in str(info.value)
        assert (pending.as_mapping() or {})["password"] not in str(info.value)
        assert SIGNING_KEY not in str(info.value)
        assert info.value.__cause__ is None


def test_create_without_a_secret_string_fails(wcase: RotationCase, hook: WebhookServer) -> None:
    hook.mode = "empty-object"
    with pytest.raises(TargetError, match="SecretString") as info:
        Engine(wcase, wcase.current).create(str(uuid.uuid4()))
    assert isinstance(info.value, ServerError)


def test_wrong_signing_key_is_rejected(wcase: RotationCase) -> None:
    wcase.config = {**wcase.config, "signingKey": SecretValue("another-key-0123456789")}
    with pytest.raises(WebhookRejectedError, match="HTTP 401"):
        Engine(wcase, wcase.current).create(str(uuid.uuid4()))


def test_untrusted_certificate_is_refused(wcase: RotationCase) -> None:
    wcase.config = {k: v for k, v in wcase.config.items() if k != "caData"}
    with pytest.raises(TargetUnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
        Engine(wcase, wcase.current).create(str(uuid.uuid4()))


def test_nothing_listening(wcase: RotationCase) -> None:
    wcase.config = {**wcase.config, "url": "https://127.0.0.1:1/rotate"}
    with pytest.raises(TargetUnreachableError, match=r"127\.0\.0\.1:1/rotate"):
        Engine(wcase, wcase.current).create(str(uuid.uuid4()))


@pytest.mark.parametrize(
    "config",
    [
        {"url": "http://127.0.0.1/x", "signingKeySecretRef": {"name": "k"}},
        {"url": "https://h/x"},
        {"url": "https://h/x", "signingKey": "k" * 16, "timeoutSeconds": 0},
        {"url": "https://h/x", "signingKey": "k" * 16, "caData": "not pem"},
    ],
)
def test_validate_rejects(config: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        WebhookRotator().validate(config)


def test_short_signing_key_is_refused_at_call_time(wcase: RotationCase) -> None:
    wcase.config = {**wcase.config, "signingKey": "short"}
    with pytest.raises(InvalidParameterError, match="16 characters"):
        Engine(wcase, wcase.current).create("t")


def test_binary_pending_values_travel_as_base64(wcase: RotationCase, hook: WebhookServer) -> None:
    hook.requests.clear()
    req = wcase.request(
        SetSecretRequest, Engine(wcase, wcase.current), "t", pending=SecretValue(b"\x00\xffbin")
    )
    wcase.rotator.set_secret(req)
    assert hook.requests[-1]["pendingSecret"] == {"SecretBinary": "AP9iaW4="}
    assert json.dumps(hook.requests[-1])
