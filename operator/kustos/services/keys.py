"""The keyring's lifecycle: load it (or create it once), rotate it, rewrap data keys.

Rules that keep data safe: a keyring is generated only when the store holds nothing sealed
(otherwise a missing keyring Secret is an error to fix, not a reason to start afresh); the
keyring Secret is replaced only guarded by the resourceVersion read; rewrapping moves data
keys to the newest key and never touches payloads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kustos.crypto import Keyring, rewrap
from kustos.errors import ConflictError, KeyringError
from kustos.kube.keyring_secret import KeyringSecret
from kustos.models.records import SealedPayload
from kustos.store.base import Store

__all__ = ["KeyRotation", "KeyService", "SealedItem"]

#: Something else sealed with the keyring (e.g. an access key's secret): its payload and a
#: function that stores the rewrapped payload.
SealedItem = tuple[SealedPayload, Callable[[SealedPayload], None]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyRotation:
    new_key_id: str
    rewrapped: int
    skipped: int


class KeyService:
    def __init__(self, store: Store, secret: KeyringSecret, refresh_seconds: float = 30.0) -> None:
        self._store = store
        self._secret = secret
        self._keyring: Keyring | None = None
        self._loaded_at = 0.0
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._other_sealed: list[Callable[[], Iterable[SealedItem]]] = []

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

    def _load_or_create(self) -> Keyring:
        stored = self._secret.load()
        if stored is not None:
            keyring = Keyring.from_secret_data(stored.data)
            self._check_covers_store(keyring)
            return keyring
        sealed_keys = self._store_key_ids()
        if sealed_keys:
            raise KeyringError(
                f"keyring Secret {self._secret.ref} is missing, but the store holds versions "
                f"sealed with keys {sorted(sealed_keys)}; restore the keyring Secret "
                "(Kustos will not generate a new one over existing data)"
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

    def _store_key_ids(self) -> set[str]:
        return {sealed.key_id for _, _, sealed in self._store.iter_sealed()}

    def _check_covers_store(self, keyring: Keyring) -> None:
        missing = self._store_key_ids() - set(keyring.ids)
        if missing:
            # Not fatal for the whole operator: secrets sealed with known keys keep working;
            # the others report DecryptionFailed on their own status.
            log.error(
                "keyring Secret %s lacks keys %s used by stored versions; those secrets "
                "cannot be read until the keys are restored", self._secret.ref, sorted(missing)
            )

    def rotate(self) -> KeyRotation:
        """Add a new newest key to the keyring Secret, then rewrap every data key to it."""
        with self._lock:
            stored = self._secret.load()
            if stored is None:
                raise KeyringError(f"keyring Secret {self._secret.ref} is missing")
            current = Keyring.from_secret_data(stored.data)
            rotated = current.with_new_key()
            self._secret.replace(rotated.to_secret_data(), stored.resource_version)
            self._keyring = rotated
            self._loaded_at = time.monotonic()
        return self.rewrap_all()

    def rewrap_all(self) -> KeyRotation:
        keyring = self.keyring()
        newest = keyring.newest_id
        rewrapped = skipped = 0
        for arn, version_id, sealed in list(self._store.iter_sealed()):
            if sealed.key_id == newest:
                continue
            try:
                fresh = rewrap(sealed, keyring)
            except KeyringError:
                skipped += 1
                continue
            if self._store.replace_wrapped_key(
                arn, version_id, sealed.key_id, fresh.key_id, fresh.wrapped_key
            ):
                rewrapped += 1
            else:
                skipped += 1
        for source in self._other_sealed:
            for sealed, store_rewrapped in source():
                if sealed.key_id == newest:
                    continue
                try:
                    store_rewrapped(rewrap(sealed, keyring))
                except KeyringError:
                    skipped += 1
                    continue
                rewrapped += 1
        return KeyRotation(new_key_id=newest, rewrapped=rewrapped, skipped=skipped)

