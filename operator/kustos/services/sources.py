"""Materializes a ManagedSecret's declared value source into a value.

`generate` makes fresh random passwords (AWS GetRandomPassword semantics); `valueFrom`
copies an existing Secret from the same namespace — a reference into another namespace is
refused, so a ManagedSecret cannot be used to read Secrets its author could not read.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from kustos.errors import ClientError, InvalidParameterError
from kustos.kube.secrets import SecretGateway
from kustos.models.sensitive import SecretValue
from kustos.models.spec import GenerateSpec, ManagedSecretSpec, SecretKeySelector
from kustos.rotation.passwords import PasswordParams, generate_password

__all__ = ["SourceError", "SourceService", "SourceValue", "generate_value"]


class SourceError(ClientError):
    """The value source cannot be used (missing, other namespace, bad content). Retried
    slowly, since the user can fix it by creating or fixing the Secret."""

    retryable = True
    retry_delay = 30.0


@dataclass(frozen=True)
class SourceValue:
    value: SecretValue
    #: The source object's resourceVersion (valueFrom only), to notice later changes.
    revision: str = ""


def generate_value(spec: GenerateSpec) -> SecretValue:
    params = PasswordParams.model_validate(spec.aws_parameters())
    return SecretValue.from_mapping({key: generate_password(params) for key in spec.keys})


class SourceService:
    def __init__(self, secrets: SecretGateway) -> None:
        self._secrets = secrets

    def revision(self, namespace: str, spec: ManagedSecretSpec) -> str | None:
        """The source Secret's resourceVersion, or None when the source is not a Secret."""
        if spec.value_from is None:
            return None
        ref = self._check_ref(namespace, spec.value_from.secret_ref)
        obj = self._secrets.get(namespace, ref.name)
        return None if obj is None else str(obj["metadata"].get("resourceVersion", ""))

    def materialize(self, namespace: str, spec: ManagedSecretSpec) -> SourceValue:
        if spec.generate is not None:
            try:
                return SourceValue(generate_value(spec.generate))
            except ValueError as exc:
                raise InvalidParameterError(f"generate: {exc}") from None
        if spec.value_from is not None:
            return self._from_secret(namespace, spec.value_from.secret_ref)
        raise InvalidParameterError("the spec declares no value source")

    def _check_ref(self, namespace: str, ref: SecretKeySelector) -> SecretKeySelector:
        if ref.namespace not in (None, "", namespace):
            raise SourceError(
                f"valueFrom.secretRef points into namespace {ref.namespace!r}; only Secrets "
                f"in {namespace!r} may be used"
            )
        return ref

    def _from_secret(self, namespace: str, ref: SecretKeySelector) -> SourceValue:
        self._check_ref(namespace, ref)
        obj = self._secrets.get(namespace, ref.name)
        if obj is None:
            raise SourceError(f"valueFrom.secretRef: Secret {namespace}/{ref.name} not found")
        data: dict[str, str] = dict(obj.get("data") or {})
        wanted = list(ref.keys) if ref.keys else sorted(data)
        missing = [k for k in wanted if k not in data]
        if missing:
            raise SourceError(
                f"valueFrom.secretRef: Secret {namespace}/{ref.name} lacks keys {missing}"
            )
        if not wanted:
            raise SourceError(f"valueFrom.secretRef: Secret {namespace}/{ref.name} is empty")
        values: dict[str, str] = {}
        for key in wanted:
            try:
                values[key] = base64.b64decode(data[key], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise SourceError(
                    f"valueFrom.secretRef: key {key!r} of {namespace}/{ref.name} is not UTF-8 "
                    "text; binary keys are not supported"
                ) from None
        revision = str(obj["metadata"].get("resourceVersion", ""))
        return SourceValue(SecretValue.from_mapping(values), revision=revision)


