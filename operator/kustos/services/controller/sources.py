"""Materializes a ManagedSecret's declared value source into a value.

`generate` makes fresh random passwords (AWS GetRandomPassword semantics); `valueFrom`
copies an existing Secret from the same namespace — a reference into another namespace is
refused.

The operator may read every Secret it is pointed at, and the author of a ManagedSecret may
not (creating a ManagedSecret is a weaker right than reading Secrets). So that a ManagedSecret
cannot be used to copy, and then read through its projection or the API, a Secret its author
could not read (a confused deputy), the source Secret must opt in (`kustos.services.core.
opt_in`: its annotation `kustos.io/allow-import-by` lists the ManagedSecrets allowed to
import it). An import that was made before this rule (the record already holds a version from
this source) keeps working; `inspect` reports it as not opted in, and the controller warns.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from kustos.errors import (
    InvalidParameterError,
    SourceError,
    SourceNotAllowedError,
    SourceNotFoundError,
)
from kustos.kube.secrets import SecretGateway
from kustos.models.sensitive import SecretValue
from kustos.models.spec import GenerateSpec, ManagedSecretSpec, SecretKeySelector
from kustos.rotation.passwords import PasswordParams, generate_password
from kustos.services.core.opt_in import ANNOTATION_ALLOW_IMPORT, import_allowed, opt_in_command

__all__ = [
    "ANNOTATION_ALLOW_IMPORT",
    "SourceError",
    "SourceNotAllowedError",
    "SourceService",
    "SourceState",
    "SourceValue",
    "generate_value",
    "import_allowed",
    "not_allowed_message",
]


@dataclass(frozen=True)
class SourceValue:
    value: SecretValue
    #: The source object's resourceVersion (valueFrom only), to notice later changes.
    revision: str = ""
    #: Whether the source Secret opted in to this import (always true for `generate`).
    opted_in: bool = True


@dataclass(frozen=True)
class SourceState:
    """A valueFrom source Secret as it is now: its resourceVersion and whether it opted in."""

    revision: str
    opted_in: bool


def not_allowed_message(namespace: str, source: str, importer: str) -> str:
    return (
        f"valueFrom.secretRef: Secret {namespace}/{source} does not allow import by "
        f"ManagedSecret {importer}; whoever may write that Secret opts in with "
        f"{opt_in_command(source, importer)}"
    )


def generate_value(spec: GenerateSpec) -> SecretValue:
    params = PasswordParams.model_validate(spec.aws_parameters())
    return SecretValue.from_mapping({key: generate_password(params) for key in spec.keys})


class SourceService:
    def __init__(self, secrets: SecretGateway) -> None:
        self._secrets = secrets

    def inspect(self, namespace: str, spec: ManagedSecretSpec, importer: str) -> SourceState | None:
        """The source Secret's state, or None when the source is not a Secret or is gone."""
        if spec.value_from is None:
            return None
        ref = self._check_ref(namespace, spec.value_from.secret_ref)
        obj = self._secrets.get(namespace, ref.name)
        if obj is None:
            return None
        return SourceState(
            str(obj["metadata"].get("resourceVersion", "")), import_allowed(obj, importer)
        )

    def materialize(
        self, namespace: str, spec: ManagedSecretSpec, importer: str, *, existing: bool = False
    ) -> SourceValue:
        """The declared value. `importer` is the ManagedSecret's name; a valueFrom source
        must name it in its opt-in annotation unless the import is `existing` (made before
        the opt-in rule: then the value comes with `opted_in=False`)."""
        if spec.generate is not None:
            try:
                return SourceValue(generate_value(spec.generate))
            except ValueError as exc:
                raise InvalidParameterError(f"generate: {exc}") from None
        if spec.value_from is not None:
            return self._from_secret(namespace, spec.value_from.secret_ref, importer, existing)
        raise InvalidParameterError("the spec declares no value source")

    def _check_ref(self, namespace: str, ref: SecretKeySelector) -> SecretKeySelector:
        if ref.namespace not in (None, "", namespace):
            raise SourceError(
                f"valueFrom.secretRef points into namespace {ref.namespace!r}; only Secrets "
                f"in {namespace!r} may be used"
            )
        return ref

    def _from_secret(
        self, namespace: str, ref: SecretKeySelector, importer: str, existing: bool
    ) -> SourceValue:
        self._check_ref(namespace, ref)
        obj = self._secrets.get(namespace, ref.name)
        if obj is None:
            raise SourceNotFoundError(
                f"valueFrom.secretRef: Secret {namespace}/{ref.name} not found"
            )
        opted_in = import_allowed(obj, importer)
        if not opted_in and not existing:  # checked before anything of the content is read
            raise SourceNotAllowedError(not_allowed_message(namespace, ref.name, importer))
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
        return SourceValue(SecretValue.from_mapping(values), revision=revision, opted_in=opted_in)
