"""The `rotation` section of a ManagedSecret spec, as pydantic models (CRD names, camelCase).

Exactly one rotator section: `generated`, `postgresql`, `mysql`, `webhook`, or `custom`
(a rotator registered by name, e.g. a third-party plugin, with free-form config). References
to Secrets (`masterSecretRef`, `signingKeySecretRef`, `tls.caSecretRef`) name a Secret in the
ManagedSecret's own namespace; a `namespace` field is accepted only to be refused with a
clear error (no confused deputy). Schedule expressions are checked by
`kustos.rotation.schedule`; rotator configs by the rotator itself. No I/O here. The CRD's
schema says the same (tests/unit/test_crd_models.py).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kustos.errors import InvalidParameterError

__all__ = [
    "CustomRotationSpec",
    "DatabaseRotationSpec",
    "GeneratedRotationSpec",
    "MySQLRotationSpec",
    "RotationSpec",
    "SecretKeyRef",
    "SecretRef",
    "TlsSpec",
    "WebhookRotationSpec",
    "parse_ref",
    "parse_rotation_spec",
]

ROTATORS = ("generated", "postgresql", "mysql", "webhook", "custom")


class _Spec(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class SecretRef(_Spec):
    """A Secret in the same namespace (`namespace` is there only to be refused)."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None

    def check_namespace(self, namespace: str, field: str) -> None:
        if self.namespace not in (None, "", namespace):
            raise InvalidParameterError(
                f"rotation {field} points into namespace {self.namespace!r}; only Secrets in "
                f"{namespace!r} may be used"
            )


class SecretKeyRef(SecretRef):
    """A Secret in the same namespace and the data key (`key`) holding the one value needed."""

    key: str | None = Field(None, min_length=1, max_length=253)


class TlsSpec(_Spec):
    """TLS to a database: `verify-full` (default) checks the server; `require` (encrypted,
    unverified) and `disable` are explicit opt-outs. The CA is `caData` or a Secret's key."""

    mode: Literal["disable", "require", "verify-full"] = "verify-full"
    ca_data: str | None = Field(None, alias="caData")
    ca_secret_ref: SecretKeyRef | None = Field(None, alias="caSecretRef")

    @model_validator(mode="after")
    def _check(self) -> TlsSpec:
        if self.ca_data is not None and self.ca_secret_ref is not None:
            raise ValueError("tls: caData and caSecretRef are mutually exclusive")
        return self


class DatabaseRotationSpec(_Spec):
    host: str | None = Field(None, min_length=1, max_length=253)
    port: int | None = Field(None, ge=1, le=65535)
    database: str | None = Field(None, min_length=1, max_length=253)
    strategy: Literal["single-user", "alternating-users"] = "single-user"
    tls: TlsSpec | None = None
    connect_timeout_seconds: float | None = Field(None, alias="connectTimeoutSeconds", gt=0, le=300)
    master_secret_ref: SecretRef | None = Field(None, alias="masterSecretRef")

    @model_validator(mode="after")
    def _check(self) -> DatabaseRotationSpec:
        if self.strategy == "alternating-users" and self.master_secret_ref is None:
            raise ValueError("alternating-users needs masterSecretRef")
        return self


class MySQLRotationSpec(DatabaseRotationSpec):
    user_host: str | None = Field(None, alias="userHost", min_length=1, max_length=255)
    auth_plugin: Literal["mysql_native_password", "ed25519"] | None = Field(
        None, alias="authPlugin"
    )


class GeneratedRotationSpec(_Spec):
    keys: tuple[str, ...] | None = Field(None, min_length=1, max_length=64)
    format: Literal["json", "plain"] = "json"


class WebhookRotationSpec(_Spec):
    url: str = Field(pattern=r"^https://", max_length=2048)
    signing_key_secret_ref: SecretKeyRef = Field(alias="signingKeySecretRef")
    ca_data: str | None = Field(None, alias="caData")
    timeout_seconds: float | None = Field(None, alias="timeoutSeconds", gt=0, le=300)


class CustomRotationSpec(_Spec):
    rotator: str = Field(min_length=1, max_length=63)
    config: dict[str, Any] = Field(default_factory=dict)


class RotationSpec(_Spec):
    schedule: str | None = Field(None, max_length=256)
    window: str | None = Field(None, min_length=2, max_length=32)
    rotate_immediately: bool = Field(False, alias="rotateImmediately")
    #: How long the consumers may take to roll out a new version (awaitRollout) before the
    #: rotation holds and AWSCURRENT moves back.
    rollout_timeout_seconds: int = Field(600, alias="rolloutTimeoutSeconds", ge=5, le=86400)
    generated: GeneratedRotationSpec | None = None
    postgresql: DatabaseRotationSpec | None = None
    mysql: MySQLRotationSpec | None = None
    webhook: WebhookRotationSpec | None = None
    custom: CustomRotationSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> RotationSpec:
        chosen = [name for name in ROTATORS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "choose exactly one rotator: generated, postgresql, mysql, webhook or custom"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if self.window is not None and self.schedule is None:
            raise ValueError("window needs a schedule")
        return self

    @property
    def section(self) -> str:
        return next(name for name in ROTATORS if getattr(self, name) is not None)

    @property
    def rotator_name(self) -> str:
        return self.custom.rotator if self.custom is not None else self.section

    def rotator_config(self) -> dict[str, Any]:
        """The rotator's config as its `validate` expects it (references unresolved)."""
        if self.custom is not None:
            return dict(self.custom.config)
        section: BaseModel = getattr(self, self.section)
        config = section.model_dump(by_alias=True, exclude_none=True)
        if self.postgresql is not None or self.mysql is not None:
            tls = config.get("tls")
            if isinstance(tls, dict) and set(tls) == {"mode"}:
                config["tls"] = tls["mode"]
        if self.generated is not None and "keys" in config:
            config["keys"] = list(config["keys"])
        return config


def parse_ref(raw: Any, where: str) -> SecretKeyRef:
    """A Secret reference from a rotator config (e.g. a custom rotator's masterSecretRef)."""
    ref: SecretKeyRef = _model(SecretKeyRef, raw, where)
    return ref


def _model(cls: type[Any], raw: Any, where: str) -> Any:
    try:
        return cls.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join((where, *(str(p) for p in err['loc'])))}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise InvalidParameterError(f"invalid {where}: {problems}") from None


def parse_rotation_spec(raw: Any) -> RotationSpec | None:
    """The spec's `rotation` section as a model (None when absent); InvalidParameterError
    naming fields and problems, never values."""
    if raw is None:
        return None
    spec: RotationSpec = _model(RotationSpec, raw, "rotation")
    return spec
