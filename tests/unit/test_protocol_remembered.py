"""Parsed parameters of small read requests are remembered by body; everything else, and
every invalid body, is parsed and validated each time (kustos.api.protocol.parse_params)."""

from __future__ import annotations

import json

import pytest
from botocore.model import OperationModel

from kustos.api import protocol
from kustos.api.protocol import operation_for, parse_params
from kustos.errors import KustosError
from kustos.services.api.service import OPERATIONS


def _op(name: str) -> OperationModel:
    return operation_for(f"secretsmanager.{name}", frozenset(OPERATIONS))


def test_a_read_is_remembered_and_handed_out_as_a_copy() -> None:
    body = json.dumps({"SecretId": "remembered/one", "VersionStage": "AWSCURRENT"}).encode()
    first = parse_params(_op("GetSecretValue"), body)
    assert ("GetSecretValue", body) in protocol._remembered
    first["SecretId"] = "changed by the caller"
    again = parse_params(_op("GetSecretValue"), body)
    assert again == {"SecretId": "remembered/one", "VersionStage": "AWSCURRENT"}


def test_invalid_bodies_fail_every_time_and_values_are_never_kept() -> None:
    bad = json.dumps({"SecretId": ""}).encode()  # below the model's minimum length
    for _ in range(2):
        with pytest.raises(KustosError) as raised:
            parse_params(_op("GetSecretValue"), bad)
        assert raised.value.aws_code == "ValidationException"
    assert ("GetSecretValue", bad) not in protocol._remembered
    put = json.dumps({"SecretId": "s", "SecretString": "remember-me-not"}).encode()
    assert parse_params(_op("PutSecretValue"), put)["SecretString"] == "remember-me-not"
    assert not any(b"remember-me-not" in key[1] for key in protocol._remembered)
