"""The rotator registry, the request types and the generated rotator (no I/O)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar, cast

import pytest

from kustos.errors import InvalidParameterError, InvalidRequestError
from kustos.models import SecretValue
from kustos.rotation import (
    CreateSecretRequest,
    Rotator,
    SetSecretRequest,
    get_rotator,
    known_rotators,
    register_rotator,
)
from kustos.rotation.errors import sanitize

R = TypeVar("R")

BUILTINS = ["generated", "mysql", "postgresql", "webhook"]


def test_builtins_are_declared_as_entry_points() -> None:
    declared = {ep.name for ep in entry_points(group="kustos.rotators")}
    assert set(BUILTINS) <= declared


@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_are_rotators(name: str) -> None:
    rotator = get_rotator(name)
    assert isinstance(rotator, Rotator)
    assert rotator.name == name
    assert get_rotator(name) is rotator


def test_unknown_rotator_lists_the_known_ones() -> None:
    with pytest.raises(InvalidParameterError, match="unknown rotator 'nope'") as info:
        get_rotator("nope")
    for name in BUILTINS:
        assert name in info.value.message


def test_register_a_rotator_in_process() -> None:
    class Fake:
        name = "fake-for-test"

        def validate(self, config: object) -> None: ...
        def create_secret(self, req: object) -> object: ...
        def set_secret(self, req: object) -> object: ...
        def test_secret(self, req: object) -> object: ...
        def finish_secret(self, req: object) -> object: ...

    fake = cast(Rotator, Fake())  # a Rotator by duck typing; its steps are never called
    register_rotator(fake)
    assert get_rotator("fake-for-test") is fake
    assert "fake-for-test" in known_rotators()


def _req(cls: Callable[..., R], **kw: object) -> R:
    base = dict(secret_arn="arn:x", secret_name="n", namespace="ns", token="t")
    return cls(**{**base, **kw})


def test_requests_are_frozen_and_mask_values() -> None:
    req = _req(CreateSecretRequest, current=SecretValue('{"password": "hunter2"}'))
    assert "hunter2" not in repr(req)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(req, "token", "other")  # noqa: B010  (an assignment mypy rightly rejects)


def test_generated_rotator() -> None:
    rotator = get_rotator("generated")
    current = SecretValue.from_mapping({"username": "u", "password": "old", "api": "old"})
    req = _req(
        CreateSecretRequest,
        config={"keys": ["password", "api"]},
        current=current,
        generate={"PasswordLength": 20, "ExcludePunctuation": True},
    )
    new = rotator.create_secret(req).pending
    data = new.as_mapping() or {}
    assert data["username"] == "u"
    assert len(data["password"]) == 20
    assert data["password"] != data["api"]
    assert data["password"].isalnum()
    again = rotator.create_secret(dataclasses.replace(req, pending=new))
    assert again.pending == new
    rotator.set_secret(_req(SetSecretRequest, config={"keys": ["password", "api"]}, pending=new))
    with pytest.raises(InvalidRequestError, match="api"):
        rotator.set_secret(
            _req(SetSecretRequest, config={"keys": ["api"]}, pending=SecretValue("{}"))
        )


def test_generated_plain_format() -> None:
    rotator = get_rotator("generated")
    req = _req(CreateSecretRequest, config={"format": "plain"}, generate={"PasswordLength": 8})
    assert len(rotator.create_secret(req).pending) == 8


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("generated", {"keys": []}),
        ("generated", {"format": "yaml"}),
        ("postgresql", {"strategy": "both"}),
        ("postgresql", {"strategy": "alternating-users"}),
        ("postgresql", {"port": 70000}),
        ("postgresql", {"tls": "verify-ca"}),
        ("postgresql", {"tls": {"mode": "require", "caData": "x"}}),
        ("mysql", {"connectTimeoutSeconds": -1}),
        ("mysql", {"userHost": ""}),
        ("mysql", {"host": ""}),
    ],
)
def test_bad_configs(name: str, config: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        get_rotator(name).validate(config)


def test_sanitize() -> None:
    assert (
        sanitize("login as bob with s3cr3t-pw\nfailed", [SecretValue("s3cr3t-pw"), None])
        == "login as bob with ********** failed"
    )
    assert len(sanitize("x" * 1000, [])) == 300
