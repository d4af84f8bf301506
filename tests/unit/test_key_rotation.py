"""KeyService.rotate on a real SQLite store: every sealed thing moves to the new key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kustos.crypto import Keyring
from kustos.errors import KeyringError
from kustos.kube.keyring_secret import StoredKeyring
from kustos.models.sensitive import SecretValue
from kustos.services.access_keys import AccessKeyService
from kustos.services.factory import _access_key_payloads
from kustos.services.keys import KeyService
from kustos.services.secrets import SecretService
from kustos.store import SqlStore
from kustos.store.access_keys import AccessKeyStore


class MemoryKeyringSecret:
    """Stands in for the Kubernetes Secret (the integration tests use the real one)."""

    ref = "test/keyring"

    def __init__(self) -> None:
        self.data: dict[str, str] | None = None
        self.version = 0

    def load(self) -> StoredKeyring | None:
        if self.data is None:
            return None
        import base64

        return StoredKeyring({k: base64.b64decode(v) for k, v in self.data.items()},
                             str(self.version))

    def create(self, data: dict[str, str]) -> None:
        self.data, self.version = dict(data), 1

    def replace(self, data: dict[str, str], resource_version: str) -> None:
        assert resource_version == str(self.version)
        self.data, self.version = dict(data), self.version + 1


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return SqlStore(f"sqlite:///{tmp_path / 'k.db'}")


def test_rotate_rewraps_versions_and_access_keys(store: SqlStore) -> None:
    secret = MemoryKeyringSecret()
    keys = KeyService(store, secret)  # type: ignore[arg-type]
    access_store = AccessKeyStore(store.engine)
    keys.add_sealed_source(_access_key_payloads(access_store))
    secrets = SecretService(store, keys.keyring, "test", reload=keys.reload)
    record = secrets.create("ns", "app/db")
    version = secrets.add_version(record, SecretValue("v1-value"))
    access = AccessKeyService(access_store, keys.keyring, cache_seconds=0)
    issued = access.create("ns", "app")
    ciphertext_before = store.get_version(record.arn, version_id=version.version_id)

    result = keys.rotate()

    assert result.new_key_id != "k1"
    assert result.rewrapped == 2 and result.skipped == 0
    after = store.get_version(record.arn, version_id=version.version_id)
    assert after is not None and ciphertext_before is not None
    assert after.sealed.key_id == result.new_key_id
    assert after.sealed.ciphertext == ciphertext_before.sealed.ciphertext  # payload untouched
    assert secrets.open(after) == SecretValue("v1-value")
    assert access_store.get(issued.record.access_key_id).sealed.key_id == result.new_key_id  # type: ignore[union-attr]
    # Even with the old key gone, both still open: nothing depends on k1 any more.
    keyring = Keyring.from_secret_data(secret.data or {}).without_key("k1")
    from kustos.crypto import open_sealed

    assert open_sealed(after.sealed, arn=record.arn, version_id=version.version_id,
                       keyring=keyring) == b"v1-value"
    _, secret_key = AccessKeyService(access_store, lambda: keyring).lookup(
        issued.record.access_key_id)
    assert secret_key == issued.secret_access_key.reveal()


def test_no_keyring_generated_over_existing_data(store: SqlStore) -> None:
    first = KeyService(store, MemoryKeyringSecret())  # type: ignore[arg-type]
    secrets = SecretService(store, first.keyring, "test")
    secrets.add_version(secrets.create("ns", "x"), SecretValue("data"))
    lost = MemoryKeyringSecret()  # the keyring Secret is gone
    with pytest.raises(KeyringError, match="restore the keyring Secret"):
        KeyService(store, lost).keyring()  # type: ignore[arg-type]
    assert lost.data is None
