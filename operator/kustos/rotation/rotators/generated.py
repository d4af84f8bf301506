"""`generated`: rotation to freshly generated random values, with no target to update.

Config:
    keys:   [str, ...]   JSON keys to regenerate (default ["password"]); other keys of the
                         current JSON value are kept as they are
    format: "json" | "plain"   "plain" makes the value one bare generated string

Passwords follow the request's `generate` parameters (AWS GetRandomPassword semantics).
setSecret and testSecret only check that the pending value has the configured shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from kustos.errors import InvalidParameterError, InvalidRequestError
from kustos.models import SecretValue
from kustos.rotation.passwords import generate_password
from kustos.rotation.rotator import (
    CreateSecretRequest,
    CreateSecretResponse,
    FinishSecretRequest,
    FinishSecretResponse,
    PendingStepRequest,
    SetSecretRequest,
    SetSecretResponse,
    TestSecretRequest,
    TestSecretResponse,
)
from kustos.rotation.rotators._config import check_keys

__all__ = ["GeneratedRotator"]


class GeneratedRotator:
    name: ClassVar[str] = "generated"

    def validate(self, config: Mapping[str, Any]) -> None:
        self._settings(config)

    def _settings(self, config: Mapping[str, Any]) -> tuple[list[str], bool]:
        check_keys(self.name, config, {"keys", "format"})
        fmt = config.get("format", "json")
        if fmt not in ("json", "plain"):
            raise InvalidParameterError("generated rotator: format must be 'json' or 'plain'")
        keys = config.get("keys", ["password"])
        if fmt == "json" and (
            not isinstance(keys, list)
            or not keys
            or not all(isinstance(k, str) and k for k in keys)
            or len(set(keys)) != len(keys)
        ):
            raise InvalidParameterError(
                "generated rotator: keys must be a non-empty list of distinct non-empty strings"
            )
        return list(keys), fmt == "plain"

    def create_secret(self, req: CreateSecretRequest) -> CreateSecretResponse:
        keys, plain = self._settings(req.config)
        if req.pending is not None:
            return CreateSecretResponse(pending=req.pending, message="pending value exists")
        params = req.password_params()
        if plain:
            return CreateSecretResponse(pending=SecretValue(generate_password(params)))
        base = (req.current.as_mapping() if req.current is not None else None) or {}
        value = {**base, **{key: generate_password(params) for key in keys}}
        return CreateSecretResponse(
            pending=SecretValue.from_mapping(value),
            message=f"generated {len(keys)} key(s)",
        )

    def _check_pending(self, req: PendingStepRequest) -> None:
        keys, plain = self._settings(req.config)
        pending = req.pending
        if plain:
            return
        data = pending.as_mapping()
        if data is None or any(not isinstance(data.get(k), str) for k in keys):
            raise InvalidRequestError(
                f"{req.step}: the AWSPENDING value of {req.secret_arn} is not a JSON object "
                f"with string keys {', '.join(keys)}"
            )

    def set_secret(self, req: SetSecretRequest) -> SetSecretResponse:
        self._check_pending(req)
        return SetSecretResponse(changed=False, message="nothing to apply")

    def test_secret(self, req: TestSecretRequest) -> TestSecretResponse:
        self._check_pending(req)
        return TestSecretResponse(message="value has the configured shape")

    def finish_secret(self, req: FinishSecretRequest) -> FinishSecretResponse:
        self._settings(req.config)
        return FinishSecretResponse()
