"""The keyring's lifecycle: load it (or create it once), rotate, rewrap, create and retire keys.

Rules that keep data safe:
* a keyring is generated only when the store holds nothing sealed or signed -- no version,
  no access key, no audit digest (`KeyUsage`); otherwise a missing keyring Secret is an
  error to fix, never a reason to start afresh;
* the keyring Secret is replaced only guarded by the resourceVersion read;
* rewrapping moves each data key to the newest version of *its* key (a secret's KmsKeyId,
  else the default key) and never touches payloads; whatever cannot be rewrapped is skipped
  and reported by place (secret ARN and version id, or access key id), never by value, and
  the rest is still done;
* a key version is retired (removed from the keyring) only when it is not the newest of its
  key and nothing in the store needs it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kustos.crypto import Keyring, key_of, rewrap
from kustos.errors import (
    ConflictError,
    DecryptionFailure,
    EncryptionFailure,
    InvalidRequestError,
    KeyringError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from kustos.kube.keyring_secret import KeyringSecret, StoredKeyring
from kustos.models.records import SealedPayload
from kustos.services.core import kms
from kustos.store.base import Store

__all__ = ["KeyRotation", "KeyService", "SealedItem", "Skipped", "Usage"]

#: {kind: {key id: how many rows need it}}, e.g. {"version": {"k1": 3}} (`store.key_usage`).
Usage = Mapping[str, Mapping[str, int]]

log = logging.getLogger(__name__)
_WHAT = {"version": "secret versions", "access-key": "access keys", "audit-digest": "audit digests"}


@dataclass(frozen=True)
class SealedItem:
    """Something else sealed with the keyring: an access key's secret, say. `ident` names it
    in reports; `store` saves the rewrapped payload."""

    kind: str
    ident: str
    sealed: SealedPayload
    store: Callable[[SealedPayload], None]


@dataclass(frozen=True)
class Skipped:
    """One sealed item a rewrap could not move; names its place and key, never its value."""

    kind: str  # version | access-key | ...
    key_id: str
    reason: str
    secret_arn: str | None = None
    version_id: str | None = None
    ident: str | None = None

    def to_json(self) -> dict[str, str]:
        body = {"Kind": self.kind, "KeyId": self.key_id, "Reason": self.reason}
        if self.secret_arn is not None:
            body["SecretArn"] = self.secret_arn
        if self.version_id is not None:
            body["VersionId"] = self.version_id
        if self.ident is not None:
            body["Id"] = self.ident
        return body


@dataclass(frozen=True)
class KeyRotation:
    new_key_id: str  # the newest version of the rotated key
    rewrapped: int
    skipped_items: tuple[Skipped, ...] = field(default=())

    @property
    def skipped(self) -> int:
        return len(self.skipped_items)


class KeyService:
    def __init__(
        self,
        store: Store,
        secret: KeyringSecret,
        refresh_seconds: float = 30.0,
        *,
        usage: Callable[[], Usage] | None = None,
    ) -> None:
        self._store = store
        self._secret = secret
        self._keyring: Keyring | None = None
        self._loaded_at = 0.0
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._other_sealed: list[Callable[[], Iterable[SealedItem]]] = []
        self._usage = usage

    def add_sealed_source(self, source: Callable[[], Iterable[SealedItem]]) -> None:
        """Register more sealed data for `rewrap_all` (stores of other features)."""
        self._other_sealed.append(source)

    def keyring(self) -> Keyring:
        """The keyring; loaded (or created) on first use, re-read every `refresh_seconds`
        so a key rotated by another process (`kustos keys rotate`) is picked up."""
        keyring = self._keyring
        if keyring is None or time.monotonic() - self._loaded_at > self._refresh_seconds:
            with self._lock:
                if self._keyring is None or (
                    time.monotonic() - self._loaded_at > self._refresh_seconds
                ):
                    self._keyring = self._load_or_create()
                    self._loaded_at = time.monotonic()
                keyring = self._keyring
        return keyring

    def reload(self) -> Keyring:
        with self._lock:
            self._keyring = self._load_or_create()
            self._loaded_at = time.monotonic()
        return self._keyring

    # -- usage ---------------------------------------------------------------------------
    def usage(self) -> Usage:
        """What in the store needs which key version (see `Usage`)."""
        if self._usage is not None:
            return self._usage()
        found: dict[str, dict[str, int]] = {}
        for _, _, sealed in self._store.iter_sealed():
            bucket = found.setdefault("version", {})
            bucket[sealed.key_id] = bucket.get(sealed.key_id, 0) + 1
        for source in self._other_sealed:
            for item in source():
                bucket = found.setdefault(item.kind, {})
                bucket[item.sealed.key_id] = bucket.get(item.sealed.key_id, 0) + 1
        return found

    def _load_or_create(self) -> Keyring:
        stored = self._secret.load()
        if stored is not None:
            keyring = Keyring.from_secret_data(stored.data)
            self._check_covers_store(keyring)
            return keyring
        usage = self.usage()
        if any(usage.values()):
            held = ", ".join(
                f"{_WHAT.get(kind, kind)} with keys {sorted(ids)}"
                for kind, ids in sorted(usage.items())
                if ids
            )
            raise KeyringError(
                f"keyring Secret {self._secret.ref} is missing, but the store holds {held}; "
                "restore the keyring Secret (Kustos will not generate a new one over "
                "existing data)"
            )
        keyring = Keyring.generate()
        try:
            self._secret.create(keyring.to_secret_data())
            log.info("generated keyring %s in Secret %s", keyring.newest_id, self._secret.ref)
        except ConflictError:
            # Another replica created it first: use theirs.
            again = self._secret.load()
            if again is None:
                raise KeyringError(f"keyring Secret {self._secret.ref} vanished") from None
            keyring = Keyring.from_secret_data(again.data)
        return keyring

    def _check_covers_store(self, keyring: Keyring) -> None:
        needed = {kid for ids in self.usage().values() for kid in ids}
        missing = needed - set(keyring.ids)
        if missing:
            # Not fatal for the whole operator: secrets sealed with known keys keep working;
            # the others report DecryptionFailed on their own status.
            log.error(
                "keyring Secret %s lacks keys %s used by the store; what they sealed "
                "cannot be read until the keys are restored",
                self._secret.ref,
                sorted(missing),
            )

    # -- changing the keyring --------------------------------------------------------------
    def _replace(self, change: Callable[[Keyring], Keyring]) -> Keyring:
        with self._lock:
            stored = self._load_stored()
            changed = change(Keyring.from_secret_data(stored.data))
            self._secret.replace(changed.to_secret_data(), stored.resource_version)
            self._keyring = changed
            self._loaded_at = time.monotonic()
        return changed

    def _load_stored(self) -> StoredKeyring:
        stored = self._secret.load()
        if stored is None:
            raise KeyringError(f"keyring Secret {self._secret.ref} is missing")
        return stored

    def rotate(self, key: str = "") -> KeyRotation:
        """Add a new newest version to `key` ("" the default key), then rewrap every data
        key to the newest version of its own key."""

        def add(current: Keyring) -> Keyring:
            if key and key not in current.key_names:
                raise ResourceNotFoundError(f"key {key!r} is not in the keyring")
            return current.with_new_key(key=key)

        rotated = self._replace(add)
        return self.rewrap_all(rotated.newest_of(key))

    def create_key(self, name: str) -> str:
        """Add a customer key `name` (first version ``<name>.1``) for secrets' KmsKeyId."""

        def add(current: Keyring) -> Keyring:
            if name in current.key_names:
                raise ResourceExistsError(f"key {name!r} is already in the keyring")
            return current.with_new_key(key=name)

        return self._replace(add).newest_of(name)

    def retire(self, key_id: str) -> None:
        """Remove the key version `key_id` from the keyring. Refused while it is the newest
        version of its key or anything in the store needs it (rotate first, and fix what
        the rotation reported as skipped)."""
        current = Keyring.from_secret_data(self._load_stored().data)
        if key_id not in current:
            raise ResourceNotFoundError(f"key {key_id!r} is not in the keyring")
        if key_id == current.newest_of(key_of(key_id)):
            raise InvalidRequestError(
                f"key {key_id!r} is the newest version of its key and seals new data; "
                "rotate the key first"
            )
        needed = {kind: ids[key_id] for kind, ids in self.usage().items() if ids.get(key_id)}
        if needed:
            held = ", ".join(
                f"{count} {_WHAT.get(kind, kind)}" for kind, count in sorted(needed.items())
            )
            raise InvalidRequestError(
                f"key {key_id!r} is still needed by {held}; run `kustos keys rotate` and "
                "resolve what it reports as skipped before retiring it"
            )
        self._replace(lambda keyring: keyring.without_key(key_id))

    # -- rewrapping ----------------------------------------------------------------------
    def rewrap_all(self, reported_key_id: str | None = None) -> KeyRotation:
        """Move every data key to the newest version of its key. Never stops at an item it
        cannot move: each is reported in `KeyRotation.skipped_items`."""
        keyring = self.keyring()
        targets: dict[str, str | None] = {}
        for record in self._store.list_secrets():
            try:
                targets[record.arn] = kms.newest_version(keyring, record.kms_key_id)
            except EncryptionFailure:
                targets[record.arn] = None
        rewrapped = 0
        skipped: list[Skipped] = []
        for arn, version_id, sealed in list(self._store.iter_sealed()):
            target = targets.get(arn)

            def skip(
                reason: str,
                arn: str = arn,
                version_id: str = version_id,
                key_id: str = sealed.key_id,
            ) -> None:
                skipped.append(
                    Skipped("version", key_id, reason, secret_arn=arn, version_id=version_id)
                )

            if target is None:
                skip(
                    "the secret's KmsKeyId names no key of the keyring"
                    if arn in targets
                    else "the secret's record is unreadable"
                )
                continue
            if sealed.key_id == target:
                continue
            try:
                fresh = rewrap(sealed, keyring, target)
            except (DecryptionFailure, KeyringError):
                skip(f"cannot unwrap the data key with key {sealed.key_id!r}")
                continue
            if self._store.replace_wrapped_key(
                arn, version_id, sealed.key_id, fresh.key_id, fresh.wrapped_key
            ):
                rewrapped += 1
            else:
                skip("the version changed during the rewrap; run the rotation again")
        newest = keyring.newest_id
        for source in self._other_sealed:
            for item in source():
                if item.sealed.key_id == newest:
                    continue
                try:
                    item.store(rewrap(item.sealed, keyring, newest))
                except (DecryptionFailure, KeyringError):
                    skipped.append(
                        Skipped(
                            item.kind,
                            item.sealed.key_id,
                            f"cannot unwrap the data key with key {item.sealed.key_id!r}",
                            ident=item.ident,
                        )
                    )
                    continue
                rewrapped += 1
        for miss in skipped:
            log.warning(
                "rewrap skipped %s %s: %s",
                miss.kind,
                miss.ident or f"{miss.secret_arn} {miss.version_id}",
                miss.reason,
            )
        # Operators re-check every secret (a key that was missing may be back).
        self._store.note_change("*", "keys")
        return KeyRotation(
            new_key_id=reported_key_id or newest, rewrapped=rewrapped, skipped_items=tuple(skipped)
        )
