"""Secret lifecycle: create secrets, seal and add versions, read values, move labels.

The only place values are sealed and opened. Callers get `SecretValue`s back, which cannot
leak by being printed. Each version's data key is wrapped by the newest version of the
secret's own key (its `kms_key_id`, see `kustos.services.core.kms`; the default key if none).
"""

from __future__ import annotations

import secrets as _random
import string
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kustos.crypto import Keyring, open_sealed, rewrap, seal
from kustos.errors import (
    DecryptionFailure,
    EncryptionFailure,
    InvalidParameterError,
    InvalidRequestError,
    KeyringError,
    ResourceNotFoundError,
)
from kustos.models.records import AWSCURRENT, SecretRecord, VersionRecord
from kustos.models.sensitive import SecretValue
from kustos.services.core import kms
from kustos.store.base import Store

__all__ = ["SecretService", "make_arn"]

Clock = Callable[[], datetime]
_SUFFIX_ALPHABET = string.ascii_letters + string.digits


def make_arn(cluster: str, namespace: str, name: str) -> str:
    """arn:kustos:secretsmanager:<cluster>:<namespace>:secret:<name>-<6 random chars>."""
    suffix = "".join(_random.choice(_SUFFIX_ALPHABET) for _ in range(6))
    return f"arn:kustos:secretsmanager:{cluster}:{namespace}:secret:{name}-{suffix}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SecretService:
    def __init__(
        self,
        store: Store,
        keyring: Callable[[], Keyring],
        cluster: str,
        clock: Clock = _utcnow,
        reload: Callable[[], Keyring] | None = None,
    ) -> None:
        self.store = store
        self._keyring = keyring
        self._reload = reload
        self.cluster = cluster
        self.clock = clock

    # -- secrets -------------------------------------------------------------------------
    def find(self, namespace: str, name: str) -> SecretRecord | None:
        return self.store.get_secret(namespace, name)

    def require(self, namespace: str, name: str) -> SecretRecord:
        record = self.store.get_secret(namespace, name)
        if record is None:
            raise ResourceNotFoundError(
                f"Secrets Manager can't find the specified secret: {namespace}/{name}"
            )
        return record

    def create(
        self,
        namespace: str,
        name: str,
        *,
        description: str = "",
        tags: dict[str, str] | None = None,
        object_name: str | None = None,
        extra: dict[str, object] | None = None,
        arn: str | None = None,
        kms_key_id: str = "",
        spec_generation: int = 0,
        spec_uid: str | None = None,
    ) -> SecretRecord:
        """`arn` may be chosen beforehand (see `make_arn`), e.g. to audit it before writing.
        `spec_generation`/`spec_uid`: the description and tags are those of that generation
        of the object's spec (as `apply_spec` would record them, in the same insert)."""
        now = self.clock()
        record = SecretRecord(
            arn=arn or make_arn(self.cluster, namespace, name),
            namespace=namespace,
            name=name,
            created_at=now,
            updated_at=now,
            description=description,
            tags=dict(tags or {}),
            object_name=object_name,
            kms_key_id=kms_key_id,
            extra=dict(extra or {}),
            spec_generation=spec_generation,
            spec_uid=spec_uid,
        )
        self.store.create_secret(record)
        return record

    def update(self, record: SecretRecord) -> SecretRecord:
        """Write the record's non-spec fields (spec-owned ones go through `apply_spec`)."""
        updated = record.evolve(updated_at=self.clock())
        self.store.update_secret(updated)
        return updated

    def apply_spec(
        self,
        record: SecretRecord,
        generation: int,
        fields: dict[str, Any],
        uid: str | None = None,
    ) -> bool:
        """Write spec-owned fields as of spec `generation` (compare-and-set; False when the
        store reflects a newer generation already). See `kustos.services.core.spec_fields`.
        LastChangedDate moves only if a field differs from `record`'s."""
        changed = any(getattr(record, key) != value for key, value in fields.items())
        when = self.clock() if changed else record.updated_at
        return self.store.apply_spec(record.arn, generation, fields, when, uid)

    def merge_extra(self, record: SecretRecord, **items: Any) -> None:
        """Set (None: remove) bookkeeping keys in the record's `extra`, nothing else."""
        self.store.merge_extra(record.arn, items)

    # -- versions ------------------------------------------------------------------------
    def add_version(
        self,
        record: SecretRecord,
        value: SecretValue,
        *,
        stages: Sequence[str] = (AWSCURRENT,),
        version_id: str | None = None,
        fingerprint: str = "",
        extra: dict[str, Any] | None = None,
    ) -> VersionRecord:
        """`extra`: bookkeeping keys merged into the record in the same transaction."""
        if len(value) == 0:
            raise InvalidParameterError("a secret value must not be empty")
        if len(value) > 65536:
            raise InvalidParameterError("a secret value is at most 65536 bytes")
        vid = version_id or str(uuid.uuid4())
        keyring, key_id = self.key_for(record.kms_key_id)
        sealed = seal(
            value.reveal_bytes(),
            arn=record.arn,
            version_id=vid,
            keyring=keyring,
            binary=value.is_binary,
            key_id=key_id,
        )
        return self.store.add_version(
            record.arn, vid, sealed, stages, self.clock(), fingerprint=fingerprint, extra=extra
        )

    def version(
        self, record: SecretRecord, *, version_id: str | None = None, stage: str | None = None
    ) -> VersionRecord:
        """The version GetSecretValue names, with AWS's errors: ResourceNotFoundException
        for a version id or label that is not there, InvalidRequestException when both are
        given and the label is on another version."""
        if version_id is None:
            found = self.store.get_version(record.arn, stage=stage or AWSCURRENT)
            if found is None:
                raise ResourceNotFoundError(
                    "Secrets Manager can't find the specified secret "
                    f"value for staging label: {stage or AWSCURRENT}"
                )
            return found
        found = self.store.get_version(record.arn, version_id=version_id)
        if found is None:
            raise ResourceNotFoundError(
                f"Secrets Manager can't find the specified secret value for VersionId: {version_id}"
            )
        if stage is not None and stage not in found.stages:
            raise InvalidRequestError(
                "You provided a VersionStage that is not associated to the provided VersionId."
            )
        return found

    def current(self, record: SecretRecord) -> VersionRecord | None:
        return self.store.get_version(record.arn, stage=AWSCURRENT)

    def open(self, version: VersionRecord) -> SecretValue:
        keyring = self._keyring()
        if version.sealed.key_id not in keyring and self._reload is not None:
            # Sealed with a key added since we loaded the keyring (`kustos keys rotate`).
            keyring = self._reload()
        plaintext = open_sealed(
            version.sealed,
            arn=version.arn,
            version_id=version.version_id,
            keyring=keyring,
        )
        return SecretValue(plaintext if version.sealed.binary else plaintext.decode("utf-8"))

    def versions(self, record: SecretRecord) -> list[VersionRecord]:
        return self.store.list_versions(record.arn)

    # -- keys ----------------------------------------------------------------------------
    def key_for(self, kms_key_id: str | None) -> tuple[Keyring, str]:
        """The keyring and the key version that new data keys under `kms_key_id` get.

        A key unknown to the loaded keyring is looked up once more after a reload (it may
        have been created since, by `kustos keys create`); EncryptionFailure if still unknown.
        """
        keyring = self._keyring()
        try:
            return keyring, kms.newest_version(keyring, kms_key_id)
        except EncryptionFailure:
            if self._reload is None:
                raise
        keyring = self._reload()
        return keyring, kms.newest_version(keyring, kms_key_id)

    def rewrap_labelled(self, record: SecretRecord) -> int:
        """Move the data keys of the versions carrying a label (AWSCURRENT, AWSPENDING,
        AWSPREVIOUS, custom) to the newest version of the record's key, as AWS re-encrypts
        them when UpdateSecret changes KmsKeyId. Payloads are untouched. Returns how many
        moved; a version whose key is unavailable is left for `kustos keys rotate` to
        report."""
        keyring, target = self.key_for(record.kms_key_id)
        moved = 0
        for version in self.store.list_versions(record.arn):
            if not version.stages or version.sealed.key_id == target:
                continue
            try:
                fresh = rewrap(version.sealed, keyring, target)
            except (DecryptionFailure, KeyringError):
                continue
            moved += self.store.replace_wrapped_key(
                record.arn,
                version.version_id,
                version.sealed.key_id,
                fresh.key_id,
                fresh.wrapped_key,
            )
        return moved
