"""The `ManagedSecret` spec as pydantic models (field names as in the CRD, camelCase).

The CRD's schema and CEL rules reject most bad specs at admission; these models are the
operator's second line (a spec written before a CRD upgrade, or a cluster without CEL), and
the one place spec semantics are defined for the services. Fields, types, required fields,
defaults and bounds match the CRD's schema (tests/unit/test_crd_models.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "SECRET_NAME_PATTERN",
    "GenerateSpec",
    "ManagedSecretSpec",
    "SecretKeySelector",
    "TargetSpec",
    "TemplateSpec",
    "ValueFromSpec",
    "WorkloadName",
    "tag_key_clashes",
]

#: AWS Secrets Manager's allowed characters for secret names.
SECRET_NAME_PATTERN = r"^[A-Za-z0-9/_+=.@-]{1,512}$"
_KEY_PATTERN = r"^[-._a-zA-Z0-9]{1,253}$"


def tag_key_clashes(keys: Iterable[str]) -> list[tuple[str, ...]]:
    """The groups of tag keys that are equal ignoring case (each sorted), if any.

    IAM matches condition key names case-insensitively, so `secretsmanager:ResourceTag/Env`
    and `.../env` are one key; tags `Env` and `env` on one secret would merge into it, and a
    tag-based Deny could be escaped. Such tag sets are refused everywhere tags are written.
    """
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key.lower(), []).append(key)
    return [tuple(sorted(g)) for g in groups.values() if len(g) > 1]


class _Spec(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class GenerateSpec(_Spec):
    """Parameters of AWS GetRandomPassword, plus the keys to generate."""

    password_length: int = Field(32, alias="passwordLength", ge=1, le=4096)
    exclude_characters: str = Field("", alias="excludeCharacters", max_length=4096)
    exclude_numbers: bool = Field(False, alias="excludeNumbers")
    exclude_punctuation: bool = Field(False, alias="excludePunctuation")
    exclude_uppercase: bool = Field(False, alias="excludeUppercase")
    exclude_lowercase: bool = Field(False, alias="excludeLowercase")
    include_space: bool = Field(False, alias="includeSpace")
    require_each_included_type: bool = Field(True, alias="requireEachIncludedType")
    keys: tuple[str, ...] = Field(("password",), min_length=1, max_length=64)

    @model_validator(mode="after")
    def _check(self) -> GenerateSpec:
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("generate.keys must be unique")
        for key in self.keys:
            if not re.match(_KEY_PATTERN, key):
                raise ValueError(f"generate.keys: {key!r} is not a valid Secret data key")
        if (
            self.exclude_numbers
            and self.exclude_punctuation
            and self.exclude_uppercase
            and self.exclude_lowercase
            and not self.include_space
        ):
            raise ValueError("generate excludes every character type")
        return self

    def aws_parameters(self) -> dict[str, Any]:
        """The GetRandomPassword request parameters these settings stand for."""
        return {
            "PasswordLength": self.password_length,
            "ExcludeCharacters": self.exclude_characters,
            "ExcludeNumbers": self.exclude_numbers,
            "ExcludePunctuation": self.exclude_punctuation,
            "ExcludeUppercase": self.exclude_uppercase,
            "ExcludeLowercase": self.exclude_lowercase,
            "IncludeSpace": self.include_space,
            "RequireEachIncludedType": self.require_each_included_type,
        }


class SecretKeySelector(_Spec):
    name: str = Field(min_length=1, max_length=253)
    #: Present only so a cross-namespace reference is refused with a clear error
    #: instead of being silently pruned by the API server.
    namespace: str | None = None
    keys: tuple[str, ...] | None = None


class ValueFromSpec(_Spec):
    secret_ref: SecretKeySelector = Field(alias="secretRef")


#: The template sources of one ManagedSecret together (characters).
TEMPLATE_MAX_SOURCE = 64 * 1024


class TemplateSpec(_Spec):
    """Keys of the projected Secret rendered with Jinja2 (sandboxed) from the secret's keys
    (`secret`) and `target.staticData` (`static`); see services/consumers/templates.py."""

    data: dict[str, str] = Field(min_length=1, max_length=64)
    #: Replace: the Secret holds only the rendered keys. Merge: the secret's keys and the
    #: static data too, rendered keys winning.
    merge_policy: Literal["Replace", "Merge"] = Field("Replace", alias="mergePolicy")

    @model_validator(mode="after")
    def _check(self) -> TemplateSpec:
        for key in self.data:
            if not re.match(_KEY_PATTERN, key):
                raise ValueError(f"template.data: {key!r} is not a valid Secret data key")
        if sum(len(source) for source in self.data.values()) > TEMPLATE_MAX_SOURCE:
            raise ValueError(
                f"template.data: the templates exceed {TEMPLATE_MAX_SOURCE} characters together"
            )
        return self


class WorkloadName(_Spec):
    """A workload of the ManagedSecret's namespace to restart when the projected data changes."""

    kind: Literal["Deployment", "StatefulSet", "DaemonSet"]
    name: str = Field(min_length=1, max_length=253)


_NAMESPACE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class NamespaceSelector(_Spec):
    """Which namespaces, by label (matchLabels only: every label must be present and equal)."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")


class ShareSpec(_Spec):
    """Other namespaces that get a copy of the projected Secret, if they consent (see
    services/consumers/sharing): listed by name, or chosen by their labels."""

    namespaces: tuple[str, ...] = Field((), max_length=64)
    namespace_selector: NamespaceSelector | None = Field(None, alias="namespaceSelector")

    @model_validator(mode="after")
    def _check(self) -> ShareSpec:
        for ns in self.namespaces:
            if len(ns) > 63 or not re.fullmatch(_NAMESPACE, ns):
                raise ValueError(f"shareWith.namespaces: {ns[:64]!r} is not a namespace name")
        return self


class TargetSpec(_Spec):
    name: str | None = Field(None, max_length=253)
    type: str = Field("Opaque", max_length=253)
    static_data: dict[str, str] = Field(default_factory=dict, alias="staticData")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    template: TemplateSpec | None = None
    restart_on_change: tuple[WorkloadName, ...] = Field((), alias="restartOnChange", max_length=64)
    share_with: ShareSpec | None = Field(None, alias="shareWith")


class ManagedSecretSpec(_Spec):
    name: str | None = Field(None, min_length=1, max_length=512, pattern=SECRET_NAME_PATTERN)
    description: str = Field("", max_length=2048)
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)
    generate: GenerateSpec | None = None
    value_from: ValueFromSpec | None = Field(None, alias="valueFrom")
    target: TargetSpec = Field(default_factory=TargetSpec)
    #: Sections owned by later layers (rotation, access, deletion); validated there.
    rotation: dict[str, Any] | None = None
    resource_policy: dict[str, Any] | str | None = Field(None, alias="resourcePolicy")
    recovery_window_in_days: int | None = Field(None, alias="recoveryWindowInDays", ge=0, le=30)

    @model_validator(mode="after")
    def _check(self) -> ManagedSecretSpec:
        if self.generate is not None and self.value_from is not None:
            raise ValueError("generate and valueFrom are mutually exclusive")
        if self.generate is not None:
            clash = set(self.generate.keys) & set(self.target.static_data)
            if clash:
                raise ValueError(f"target.staticData repeats generated keys: {sorted(clash)}")
        clashes = tag_key_clashes(self.tags)
        if clashes:
            raise ValueError(f"tag keys must differ other than in case: {clashes}")
        return self

    def secret_name(self, object_name: str) -> str:
        return self.name or object_name

    def target_name(self, object_name: str) -> str:
        return self.target.name or object_name

    def source_fingerprint(self) -> str:
        """Identifies the declared value source; a new version is made when it changes.

        Built from the spec only (never from values), so it is safe to keep in the store.
        """
        if self.generate is not None:
            source: dict[str, Any] = {"generate": self.generate.model_dump(by_alias=True)}
        elif self.value_from is not None:
            source = {"valueFrom": self.value_from.model_dump(by_alias=True)}
        else:
            return ""
        blob = json.dumps(source, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:32]
