"""The `Store` interface: everything Kustos persists, behind one protocol.

Secrets, their versions, labels and the change feed are methods of `Store` itself; the rest
of what Kustos persists lives in the store's parts, one object each on the same database
(`rotations`, `audit`, `access_keys`, `revocations`, `key_usage`), so a caller holding a
`Store` reaches all of it without knowing the implementation. Implementations (SQLite
embedded, PostgreSQL) live beside this module and share schema migrations. The store never
sees plaintext: versions arrive sealed. Versions are immutable; only their staging labels
move, and every label move happens in the same transaction as the change that causes it, so
AWSCURRENT is always on exactly one version.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from kustos.models.records import SealedPayload, SecretRecord, VersionRecord
from kustos.store.access_keys import AccessKeyStore
from kustos.store.audit import AuditStore
from kustos.store.key_usage import KeyUsage
from kustos.store.revocations import RevocationStore
from kustos.store.rotations import RotationStore

__all__ = ["Store"]


class Store(Protocol):
    # -- parts: one each, made when the store opens, sharing its database -----------------
    @property
    def rotations(self) -> RotationStore:
        """The rotation state machine's rows and the rotation schedules."""

    @property
    def audit(self) -> AuditStore:
        """The hash-chained audit log and its digests (closed with the store)."""

    @property
    def access_keys(self) -> AccessKeyStore:
        """Issued access keys, their secrets sealed."""

    @property
    def revocations(self) -> RevocationStore:
        """Revoked principals."""

    @property
    def key_usage(self) -> KeyUsage:
        """How many rows each key-encryption key seals or signs (before retiring a key)."""

    # -- secrets ------------------------------------------------------------------------
    def create_secret(self, record: SecretRecord) -> None:
        """Insert a new secret. ResourceExistsError if (namespace, name) or the ARN is taken."""

    def update_secret(self, record: SecretRecord) -> None:
        """Replace the metadata of an existing secret (matched by ARN), except the
        spec-owned fields (`SPEC_FIELDS`) and `spec_generation`: only `apply_spec` writes
        those, so a writer holding a stale record cannot undo a newer spec."""

    def apply_spec(
        self,
        arn: str,
        generation: int,
        fields: dict[str, Any],
        updated_at: datetime,
        uid: str | None = None,
    ) -> bool:
        """Compare-and-set: write the spec-owned `fields` and `generation` unless the stored
        generation of the same object `uid` is newer (then False: an older spec never
        overwrites a newer one; another uid — a recreated object — always writes)."""

    def merge_extra(self, arn: str, items: dict[str, Any]) -> None:
        """Set (None: remove) keys of the record's `extra`, atomically, touching nothing else."""

    def get_secret(self, namespace: str, name: str) -> SecretRecord | None: ...

    def get_secret_by_arn(self, arn: str) -> SecretRecord | None: ...

    def get_secret_by_object(self, namespace: str, object_name: str) -> SecretRecord | None:
        """The secret the ManagedSecret `namespace/object_name` declares (one lookup, not a
        listing: event emitters resolve every new object's secret through it)."""

    def list_secrets(self, namespace: str | None = None) -> list[SecretRecord]: ...

    def secrets_deleted_by(self, moment: datetime) -> list[SecretRecord]:
        """Secrets whose deletion date is at or before `moment` (one filtered query: the
        operator looks every resync, and nothing else is decoded)."""

    def purge_secret(self, arn: str) -> None:
        """Remove the secret and all its versions for good. No error if absent."""

    # -- change feed --------------------------------------------------------------------
    def note_change(self, arn: str, kind: str) -> None:
        """Append to the change feed (`add_version` and `move_stage` do it themselves, in
        their own transaction). `arn` may be "*" for a change that concerns every secret."""

    def changes_since(self, seq: int, limit: int = 500) -> list[tuple[int, str, str]]:
        """Feed entries (seq, arn, kind) after `seq`, oldest first."""

    def last_change(self) -> int:
        """The newest feed sequence number (0 when empty)."""

    def prune_changes(self, before: datetime) -> int:
        """Remove feed entries older than `before`; returns how many."""

    def leader_term(self) -> int:
        """The largest operator leader term that has written (-1: none yet; see
        kustos.models.fencing)."""

    # -- versions -----------------------------------------------------------------------
    def add_version(
        self,
        arn: str,
        version_id: str,
        sealed: SealedPayload,
        stages: Sequence[str],
        created_at: datetime,
        fingerprint: str = "",
        extra: dict[str, Any] | None = None,
    ) -> VersionRecord:
        """Insert an immutable version carrying `stages`, moving each label off any other
        version in the same transaction. Moving AWSCURRENT makes the version that held it
        AWSPREVIOUS (and AWSPREVIOUS leaves the version that held it before).
        `extra`: keys merged into the record's `extra` in that transaction too, as
        `merge_extra` does (one commit instead of two for a new object's first version).
        ResourceExistsError if `version_id` exists already for this secret."""

    def get_version(
        self, arn: str, *, version_id: str | None = None, stage: str | None = None
    ) -> VersionRecord | None:
        """By id, by stage, or both (then both must match). Stage AWSCURRENT by default."""

    def list_versions(self, arn: str) -> list[VersionRecord]:
        """All versions, newest first."""

    def move_stage(
        self, arn: str, stage: str, *, to_version: str | None, from_version: str | None
    ) -> None:
        """Move (or attach, or with to_version None remove) a label, as AWS
        UpdateSecretVersionStage. Moving AWSCURRENT gives AWSPREVIOUS to the version that
        held it. InvalidParameterError when from_version does not hold the label."""

    def delete_versions(self, arn: str, version_ids: Sequence[str]) -> None:
        """Remove versions that carry no label (AWS deprecates unlabelled versions)."""

    # -- keys ---------------------------------------------------------------------------
    def iter_sealed(self) -> Iterator[tuple[str, str, SealedPayload]]:
        """Every (arn, version_id, sealed) in the store, for rewrapping."""

    def replace_wrapped_key(
        self, arn: str, version_id: str, old_key_id: str, new_key_id: str, wrapped_key: bytes
    ) -> bool:
        """Swap a version's wrapped data key (compare-and-set on old_key_id); payload bytes
        are untouched. Returns False if the row changed meanwhile."""

    def pinned_reads(self) -> AbstractContextManager[None]:
        """A block whose reads may share one freshness check taken as it starts (each still
        sees every write committed before the block began, and the block's own writes)."""
        ...

    def close(self) -> None: ...
