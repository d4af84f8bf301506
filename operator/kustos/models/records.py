"""Records the store keeps: secrets (metadata, never values) and their sealed versions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "SPEC_FIELDS",
    "SealedPayload",
    "SecretRecord",
    "VersionRecord",
]

AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
AWSPREVIOUS = "AWSPREVIOUS"
#: Record fields whose authority is the ManagedSecret's spec (guarded by spec_generation).
SPEC_FIELDS = ("description", "tags", "resource_policy")


@dataclass(frozen=True)
class SealedPayload:
    """An envelope-encrypted value: what the store keeps instead of plaintext.

    `key_id` names the key-encryption key that wrapped `wrapped_key` (the per-version data
    key); `nonce` and `ciphertext` are the AES-256-GCM payload. The associated data (secret
    ARN, version id) is not stored: it is recomputed at decryption, which is what binds the
    ciphertext to its place.
    """

    key_id: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes
    binary: bool = False

    def __repr__(self) -> str:
        return f"SealedPayload(key_id={self.key_id!r}, {len(self.ciphertext)} bytes)"


@dataclass(frozen=True)
class SecretRecord:
    """A secret's metadata. `namespace` is the AWS account, `name` the hierarchical name."""

    arn: str
    namespace: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    kms_key_id: str = ""
    #: The ManagedSecret object (metadata.name) that declares this secret, if any.
    object_name: str | None = None
    resource_policy: str | None = None
    #: Set when deletion is scheduled: the date after which the versions are purged.
    deletion_date: datetime | None = None
    last_accessed_at: datetime | None = None
    last_rotated_at: datetime | None = None
    next_rotation_at: datetime | None = None
    rotation_enabled: bool = False
    rotation_rules: dict[str, Any] = field(default_factory=dict)
    #: Free-form bookkeeping owned by services (e.g. the hash of the value source).
    extra: dict[str, Any] = field(default_factory=dict)
    #: The ManagedSecret `metadata.generation` that description, tags and resource policy
    #: were taken from (0: none yet, or a secret without an object). The store writes those
    #: fields only from a record whose generation is not older than the stored one.
    spec_generation: int = 0
    #: The uid of the object `spec_generation` counts in (a recreated object starts over).
    spec_uid: str | None = None

    def evolve(self, **changes: Any) -> SecretRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class VersionRecord:
    """One immutable version of a secret; only its `stages` (labels) change over time."""

    arn: str
    version_id: str
    created_at: datetime
    stages: tuple[str, ...]
    sealed: SealedPayload
    #: The ClientRequestToken hash / value-source fingerprint used for idempotency.
    fingerprint: str = ""
