"""KeyService.rotate on a real SQLite store: every sealed thing moves to the new key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.kube_helpers import present
from tests.unit.fakes import stand_in

from kustos.crypto import Keyring
from kustos.errors import (
    EncryptionFailure,
    InvalidRequestError,
    KeyringError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from kustos.kube.keyring_secret import KeyringSecret, StoredKeyring
from kustos.models.sensitive import SecretValue
from kustos.services.access.keys import AccessKeyService
from kustos.services.core.keys import KeyService
from kustos.services.core.secrets import SecretService
from kustos.services.factory import _access_key_payloads
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

        return StoredKeyring(
            {k: base64.b64decode(v) for k, v in self.data.items()}, str(self.version)
        )

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
    keys = KeyService(store, stand_in(KeyringSecret, secret))
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
    assert present(access_store.get(issued.record.access_key_id)).sealed.key_id == result.new_key_id
    # Even with the old key gone, both still open: nothing depends on k1 any more.
    keyring = Keyring.from_secret_data(secret.data or {}).without_key("k1")
    from kustos.crypto import open_sealed

    assert (
        open_sealed(after.sealed, arn=record.arn, version_id=version.version_id, keyring=keyring)
        == b"v1-value"
    )
    _, secret_key = AccessKeyService(access_store, lambda: keyring).lookup(
        issued.record.access_key_id
    )
    assert secret_key == issued.secret_access_key.reveal()


def test_no_keyring_generated_over_existing_data(store: SqlStore) -> None:
    first = KeyService(store, stand_in(KeyringSecret, MemoryKeyringSecret()))
    secrets = SecretService(store, first.keyring, "test")
    secrets.add_version(secrets.create("ns", "x"), SecretValue("data"))
    lost = MemoryKeyringSecret()  # the keyring Secret is gone
    with pytest.raises(KeyringError, match="restore the keyring Secret"):
        KeyService(store, stand_in(KeyringSecret, lost)).keyring()
    assert lost.data is None


def _service(
    store: SqlStore, secret: MemoryKeyringSecret
) -> tuple[KeyService, SecretService, AccessKeyStore]:
    from kustos.store.key_usage import KeyUsage

    keys = KeyService(store, stand_in(KeyringSecret, secret), usage=KeyUsage(store.engine).counts)
    access_store = AccessKeyStore(store.engine)
    keys.add_sealed_source(_access_key_payloads(access_store))
    return keys, SecretService(store, keys.keyring, "test", reload=keys.reload), access_store


def _break_wrapped_key(store: SqlStore, arn: str, version_id: str) -> None:
    import sqlalchemy as sa

    with store.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE versions SET wrapped_key = :w WHERE arn = :a AND version_id = :v"),
            {"w": b"\x01" + b"\x00" * 60, "a": arn, "v": version_id},
        )


def test_rotate_goes_past_what_it_cannot_unwrap_and_names_each(store: SqlStore) -> None:
    secret = MemoryKeyringSecret()
    keys, secrets, access_store = _service(store, secret)
    records = [secrets.create("ns", f"app/{i}") for i in range(3)]
    versions = [secrets.add_version(r, SecretValue(f"value-{i}")) for i, r in enumerate(records)]
    AccessKeyService(access_store, keys.keyring).create("ns", "app")
    _break_wrapped_key(store, records[0].arn, versions[0].version_id)  # the first one in order

    result = keys.rotate()

    assert result.rewrapped == 3  # two versions and the access key: it did not stop
    assert result.skipped == 1
    (miss,) = result.skipped_items
    assert (miss.secret_arn, miss.version_id, miss.key_id) == (
        records[0].arn,
        versions[0].version_id,
        "k1",
    )
    assert "value-0" not in json.dumps(miss.to_json())
    for record in records[1:]:
        current = secrets.current(record)
        assert current is not None and current.sealed.key_id == result.new_key_id
    # k1 is still needed by the broken version: it cannot be retired.
    with pytest.raises(InvalidRequestError, match="1 secret versions"):
        keys.retire("k1")


def test_retire_refuses_the_newest_key_and_keys_still_needed(store: SqlStore) -> None:
    secret = MemoryKeyringSecret()
    keys, _, access_store = _service(store, secret)
    AccessKeyService(access_store, keys.keyring).create("ns", "app")  # sealed with k1
    with pytest.raises(InvalidRequestError, match="newest"):
        keys.retire("k1")
    with pytest.raises(ResourceNotFoundError):
        keys.retire("k7")
    # A new newest key without a rewrap: the access key still needs k1.
    assert secret.data is not None
    secret.replace(
        Keyring.from_secret_data(secret.data).with_new_key().to_secret_data(), str(secret.version)
    )
    keys.reload()
    with pytest.raises(InvalidRequestError, match="1 access keys"):
        keys.retire("k1")
    assert keys.rewrap_all().skipped == 0
    keys.retire("k1")
    assert "k1.key" not in (secret.data or {})
    assert Keyring.from_secret_data(secret.data or {}).ids == ("k2",)


def test_a_missing_keyring_over_access_keys_or_audit_digests_is_an_error(
    store: SqlStore,
) -> None:
    import sqlalchemy as sa

    first, _, access_store = _service(store, MemoryKeyringSecret())
    AccessKeyService(access_store, first.keyring).create("ns", "app")  # no version at all
    lost = MemoryKeyringSecret()
    with pytest.raises(KeyringError, match="access keys with keys \\['k1'\\]"):
        _service(store, lost)[0].keyring()
    assert lost.data is None
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM access_keys"))
        conn.execute(
            sa.text(
                "INSERT INTO audit_digests (kind, created_at, first_seq, last_seq, chain_hash, "
                "prev_signature, key_id, signature) VALUES ('digest', '2026-01-01', 1, 1, 'h', "
                "'', 'k1', 's')"
            )
        )
    with pytest.raises(KeyringError, match="audit digests"):
        _service(store, lost)[0].keyring()
    assert lost.data is None
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_digests"))
    assert _service(store, lost)[0].keyring().ids == ("k1",)  # an empty store: generated
    assert lost.data is not None


def test_each_secret_is_sealed_and_rotated_with_its_own_key(store: SqlStore) -> None:
    secret = MemoryKeyringSecret()
    keys, secrets, _ = _service(store, secret)
    keys.keyring()
    assert keys.create_key("payments") == "payments.1"
    with pytest.raises(ResourceExistsError):
        keys.create_key("payments")
    plain = secrets.create("ns", "plain")
    own = secrets.create("ns", "own").evolve(kms_key_id="alias/payments")
    store.update_secret(own)
    by_arn = secrets.create("ns", "by-arn").evolve(kms_key_id="arn:kustos:kms:test:ns:key/payments")
    store.update_secret(by_arn)
    v_plain = secrets.add_version(plain, SecretValue("p"))
    v_own = secrets.add_version(own, SecretValue("o"))
    v_arn = secrets.add_version(by_arn, SecretValue("a"))
    assert v_plain.sealed.key_id == "k1"
    assert v_own.sealed.key_id == v_arn.sealed.key_id == "payments.1"

    result = keys.rotate(key="payments")
    assert result.new_key_id == "payments.2" and result.skipped == 0
    got = {r.name: secrets.current(r) for r in (plain, own, by_arn)}
    assert {n: v.sealed.key_id for n, v in got.items() if v} == {
        "plain": "k1",
        "own": "payments.2",
        "by-arn": "payments.2",
    }
    keys.rotate()  # the default key: only the plain secret moves
    got = {r.name: secrets.current(r) for r in (plain, own, by_arn)}
    assert {n: v.sealed.key_id for n, v in got.items() if v} == {
        "plain": "k2",
        "own": "payments.2",
        "by-arn": "payments.2",
    }
    assert secrets.open(present(got["own"])) == SecretValue("o")
    with pytest.raises(ResourceNotFoundError):
        keys.rotate(key="orders")

    # A new KmsKeyId: new versions use it, labelled versions move to it.
    moved = own.evolve(kms_key_id="")
    store.update_secret(moved)
    assert secrets.rewrap_labelled(moved) == 1
    current = secrets.current(moved)
    assert current is not None and current.sealed.key_id == "k2"
    assert secrets.add_version(moved, SecretValue("o2")).sealed.key_id == "k2"
    unknown = plain.evolve(kms_key_id="alias/orders")
    with pytest.raises(EncryptionFailure):
        secrets.add_version(unknown, SecretValue("x"))


@pytest.mark.parametrize(
    ("kms_key_id", "name"),
    [
        ("", ""),
        ("alias/aws/secretsmanager", ""),
        ("aws/secretsmanager", ""),
        ("payments", "payments"),
        ("alias/payments", "payments"),
        ("arn:kustos:kms:c1:ns:key/payments", "payments"),
        ("arn:aws:kms:us-east-1:123456789012:alias/payments", "payments"),
    ],
)
def test_kms_key_id_spellings(kms_key_id: str, name: str) -> None:
    from kustos.services.core.kms import key_name

    assert key_name(kms_key_id) == name


@pytest.mark.parametrize("bad", ["arn:kustos:iam::ns:root", "arn:aws:kms:r:a:grant/x"])
def test_kms_arns_that_name_no_key_are_refused(bad: str) -> None:
    from kustos.services.core.kms import key_name

    with pytest.raises(EncryptionFailure):
        key_name(bad)
