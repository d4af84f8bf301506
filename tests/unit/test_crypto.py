"""Envelope encryption and the keyring: round trips and every way input can be wrong."""

from __future__ import annotations

import base64
import dataclasses
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

import kustos.crypto
from kustos.crypto import Keyring, open_sealed, rewrap, seal
from kustos.errors import DecryptionFailure, KeyringError
from kustos.models.records import SealedPayload

ARN = "arn:kustos:secretsmanager:c1:team-a:secret:prod/db-AbCdEf"
VID = "7f8a2c1e-0000-4000-8000-000000000001"
CANARY = b"canary-\x00\xff-s3cr3t-value"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_public_surface() -> None:
    for name in kustos.crypto.__all__:
        assert hasattr(kustos.crypto, name), name


def test_only_crypto_imports_cryptography() -> None:
    root = Path(kustos.crypto.__file__).parents[1]
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "crypto" not in p.relative_to(root).parts[:1]
        and re.search(r"^\s*(from|import)\s+cryptography", p.read_text(), re.M)
    ]
    assert offenders == []


@pytest.mark.parametrize("plaintext", [b"", b"x", CANARY, bytes(range(256)) * 300])
@pytest.mark.parametrize("binary", [False, True])
def test_roundtrip(keyring: Keyring, plaintext: bytes, binary: bool) -> None:
    sealed = seal(plaintext, arn=ARN, version_id=VID, keyring=keyring, binary=binary)
    assert sealed.binary is binary
    assert sealed.key_id == keyring.newest_id
    # (a 1-byte plaintext turns up in random ciphertext bytes by chance, 6% of the time)
    assert plaintext not in sealed.ciphertext or len(plaintext) < 4
    assert open_sealed(sealed, arn=ARN, version_id=VID, keyring=keyring) == plaintext


def test_wire_format_sizes(keyring: Keyring) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    assert len(sealed.nonce) == 12
    assert len(sealed.ciphertext) == len(CANARY) + 16
    assert len(sealed.wrapped_key) == 61
    assert sealed.wrapped_key[0] == kustos.crypto.FORMAT_VERSION


def test_fresh_data_key_and_nonce_per_call(keyring: Keyring) -> None:
    one = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    two = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    assert one.nonce != two.nonce
    assert one.wrapped_key != two.wrapped_key
    assert one.ciphertext != two.ciphertext


def test_seal_uses_newest_key(keyring: Keyring) -> None:
    newer = keyring.with_new_key()
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=newer)
    assert sealed.key_id == "k2"
    with pytest.raises(DecryptionFailure):
        open_sealed(sealed, arn=ARN, version_id=VID, keyring=keyring)


def _fails(sealed: SealedPayload, keyring: Keyring, arn: str = ARN, vid: str = VID) -> None:
    with pytest.raises(DecryptionFailure) as info:
        open_sealed(sealed, arn=arn, version_id=vid, keyring=keyring)
    message = str(info.value)
    assert arn in message
    assert vid in message
    assert sealed.key_id in message
    assert CANARY.decode("latin-1") not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_key"])
@pytest.mark.parametrize("where", [0, 5, -1])
def test_tampered_bytes_fail(keyring: Keyring, field: str, where: int) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    value = getattr(sealed, field)
    changes: dict[str, Any] = {field: _flip(value, where % len(value))}
    _fails(dataclasses.replace(sealed, **changes), keyring)


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_key"])
def test_truncated_or_extended_fields_fail(keyring: Keyring, field: str) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    value = getattr(sealed, field)
    _fails(dataclasses.replace(sealed, **{field: value[:-1]}), keyring)
    _fails(dataclasses.replace(sealed, **{field: value + b"\x00"}), keyring)


def test_flipped_binary_flag_fails(keyring: Keyring) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    _fails(dataclasses.replace(sealed, binary=True), keyring)


@pytest.mark.parametrize(
    ("arn", "vid"),
    [
        (ARN + "x", VID),  # another secret
        (ARN, VID[:-1] + "2"),  # another version of the same secret
        (ARN + VID[:1], VID[1:]),  # same concatenation, other split
        (VID, ARN),  # swapped
    ],
)
def test_ciphertext_is_bound_to_arn_and_version(keyring: Keyring, arn: str, vid: str) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    _fails(sealed, keyring, arn=arn, vid=vid)


def test_wrong_key_with_same_id_fails(keyring: Keyring) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    _fails(sealed, Keyring.generate())


def test_missing_key_id_fails(keyring: Keyring) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    _fails(dataclasses.replace(sealed, key_id="k9"), keyring)


def test_relabelled_key_id_fails_even_with_the_right_key(keyring: Keyring) -> None:
    # Same bytes under two ids: only the wrap AAD (which names the id) tells them apart.
    key = keyring.get("k1")
    both = Keyring({"k1": key, "k2": key}, "k2")
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=both)
    assert open_sealed(sealed, arn=ARN, version_id=VID, keyring=both) == CANARY
    _fails(dataclasses.replace(sealed, key_id="k1"), both)


def test_swapped_wrapped_key_from_another_version_fails(keyring: Keyring) -> None:
    one = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    other = seal(CANARY, arn=ARN, version_id="v2", keyring=keyring)
    _fails(dataclasses.replace(one, wrapped_key=other.wrapped_key), keyring)


def test_rewrap_moves_data_key_and_keeps_payload(keyring: Keyring) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring, binary=True)
    newer = keyring.with_new_key()
    moved = rewrap(sealed, newer)
    assert moved.key_id == "k2"
    assert moved.wrapped_key != sealed.wrapped_key
    assert moved.nonce == sealed.nonce
    assert moved.ciphertext == sealed.ciphertext
    assert moved.binary is True
    assert open_sealed(moved, arn=ARN, version_id=VID, keyring=newer.without_key("k1")) == CANARY
    with pytest.raises(DecryptionFailure):
        open_sealed(moved, arn=ARN, version_id=VID, keyring=keyring)


def test_rewrap_on_newest_key_is_a_no_op(keyring: Keyring) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    assert rewrap(sealed, keyring) is sealed


@pytest.mark.parametrize("bad", ["tamper", "unknown-id", "wrong-key"])
def test_rewrap_failures_are_decryption_failures(keyring: Keyring, bad: str) -> None:
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=keyring)
    newer = keyring.with_new_key()
    if bad == "tamper":
        sealed = dataclasses.replace(sealed, wrapped_key=_flip(sealed.wrapped_key, 20))
    elif bad == "unknown-id":
        newer = newer.without_key("k1")
    else:
        newer = Keyring({"k1": Keyring.generate().get("k1"), "k2": newer.get("k2")}, "k2")
    with pytest.raises(DecryptionFailure):
        rewrap(sealed, newer)


def test_seal_refuses_empty_context(keyring: Keyring) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        seal(CANARY, arn="", version_id=VID, keyring=keyring)


# -- keyring ----------------------------------------------------------------------------
def test_keyring_ids_and_newest() -> None:
    ring = Keyring.generate()
    for _ in range(10):
        ring = ring.with_new_key()
    assert ring.ids == tuple(f"k{n}" for n in range(1, 12))
    assert ring.newest_id == "k11"
    assert len(ring) == 11
    assert "k5" in ring
    assert len(ring.get("k5")) == 32
    assert ring.get("k5") != ring.get("k6")
    with pytest.raises(KeyringError, match="'k99'"):
        ring.get("k99")
    with pytest.raises(KeyringError, match="already"):
        ring.with_new_key("k3")
    assert ring.with_new_key("rotated-2030").newest_id == "rotated-2030"


def test_keyring_without_key() -> None:
    ring = Keyring.generate().with_new_key()
    assert ring.without_key("k1").ids == ("k2",)
    with pytest.raises(KeyringError, match="newest"):
        ring.without_key("k2")
    with pytest.raises(KeyringError):
        ring.without_key("k7")


def test_keyring_never_shows_key_bytes() -> None:
    ring = Keyring.generate().with_new_key()
    text = repr(ring) + str(ring) + ring.fingerprint()
    for key_id in ring.ids:
        key = ring.get(key_id)
        for form in (key.hex(), base64.b64encode(key).decode(), repr(key)):
            assert form not in text
    assert "k1" in repr(ring)
    with pytest.raises(TypeError):
        pickle.dumps(ring)


def test_fingerprint_depends_on_public_facts_only() -> None:
    key = Keyring.generate().get("k1")
    ring = Keyring({"k1": key}, "k1")
    assert ring.fingerprint() == Keyring({"k1": bytes(32)}, "k1").fingerprint()
    assert ring.fingerprint() != ring.with_new_key().fingerprint()
    assert ring.fingerprint().startswith("sha256:")


@pytest.mark.parametrize("as_bytes", [False, True])
def test_secret_data_roundtrip(as_bytes: bool) -> None:
    ring = Keyring.generate().with_new_key().with_new_key()
    data = ring.to_secret_data()
    assert set(data) == {"k1.key", "k2.key", "k3.key", "newest"}
    assert base64.b64decode(data["newest"]) == b"k3"
    assert all(re.fullmatch(r"[-._a-zA-Z0-9]+", name) for name in data)  # Secret key names
    loaded: dict[str, str | bytes] = dict(data)
    if as_bytes:
        loaded = {k: base64.b64decode(v) for k, v in data.items()}
    assert Keyring.from_secret_data(loaded) == ring
    assert Keyring.from_secret_data(loaded) != Keyring.generate()


def test_secret_data_newest_tolerates_trailing_newline() -> None:
    ring = Keyring.generate()
    data: dict[str, str | bytes] = {"k1.key": ring.get("k1"), "newest": b"k1\n"}
    assert Keyring.from_secret_data(data) == ring


def _data(**overrides: str | bytes | None) -> dict[str, str | bytes]:
    good: dict[str, str | bytes | None] = {
        "k1.key": base64.b64encode(b"\x01" * 32).decode(),
        "newest": base64.b64encode(b"k1").decode(),
    }
    good.update({k.replace("_", "."): v for k, v in overrides.items()})
    return {k: v for k, v in good.items() if v is not None}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_data(k1_key="not base64!"), "'k1.key' is not valid base64"),
        (_data(k1_key="AAAA\n"), "not valid base64"),
        (_data(k1_key=base64.b64encode(b"\x01" * 31).decode()), "31 bytes"),
        (_data(k1_key=base64.b64encode(b"\x01" * 33).decode()), "33 bytes"),
        (_data(k1_key=""), "0 bytes"),
        (_data(k1_key=b"\x01" * 44), "44 bytes"),
        (_data(newest=None), "no 'newest'"),
        (_data(newest=base64.b64encode(b"k2").decode()), "'k2' is not in the keyring"),
        (_data(newest=base64.b64encode(b"k 1").decode()), "invalid key id"),
        (_data(newest=b"\xff\xfe"), "not UTF-8"),
        (_data(newest="%%"), "'newest' is not valid base64"),
        (_data(k1_key=None), "holds no keys"),
        (_data(extra="AAAA"), "unexpected keyring entry 'extra'"),
        (_data(**{"-bad_key": "AAAA"}), "invalid key id"),
    ],
)
def test_malformed_secret_data(data: dict[str, str | bytes], message: str) -> None:
    with pytest.raises(KeyringError, match=re.escape(message)) as info:
        Keyring.from_secret_data(data)
    assert base64.b64encode(b"\x01" * 32).decode() not in str(info.value)


def test_constructor_validates() -> None:
    with pytest.raises(KeyringError, match="16 bytes"):
        Keyring({"k1": bytes(16)}, "k1")
    with pytest.raises(KeyringError, match="invalid key id"):
        Keyring({"k/1": bytes(32)}, "k/1")
    with pytest.raises(KeyringError, match="not in the keyring"):
        Keyring({"k1": bytes(32)}, "k2")


def test_customer_keys_have_versions_and_leave_the_default_key_alone(keyring: Keyring) -> None:
    with_payments = keyring.with_new_key(key="payments")
    assert with_payments.newest_id == keyring.newest_id  # the default key did not move
    assert with_payments.key_names == ("payments",)
    assert with_payments.newest_of("payments") == "payments.1"
    rotated = with_payments.with_new_key(key="payments")
    for _ in range(9):
        rotated = rotated.with_new_key(key="payments")
    assert rotated.newest_of("payments") == "payments.11"  # natural order, not text order
    assert Keyring.from_secret_data(rotated.to_secret_data()) == rotated
    sealed = seal(CANARY, arn=ARN, version_id=VID, keyring=rotated, key_id="payments.2")
    assert sealed.key_id == "payments.2"
    moved = rewrap(sealed, rotated, "payments.11")
    assert moved.key_id == "payments.11" and moved.ciphertext == sealed.ciphertext
    assert open_sealed(moved, arn=ARN, version_id=VID, keyring=rotated) == CANARY
    with pytest.raises(KeyringError, match="newest"):
        rotated.without_key("payments.11")
    assert "payments.2" not in rotated.without_key("payments.2")
    with pytest.raises(KeyringError, match="not in the keyring"):
        rotated.newest_of("orders")
    with pytest.raises(KeyringError):
        rewrap(sealed, rotated, "orders.1")


@pytest.mark.parametrize("bad", ["a.b", "payments.", ".1", "payments.1.2", "pay/ments.1"])
def test_malformed_key_version_ids_are_refused(keyring: Keyring, bad: str) -> None:
    data = {**keyring.to_secret_data(), f"{bad}.key": keyring.to_secret_data()["k1.key"]}
    with pytest.raises(KeyringError):
        Keyring.from_secret_data(data)


def test_newest_must_be_a_default_key_version(keyring: Keyring) -> None:
    data = keyring.with_new_key(key="payments").to_secret_data()
    data["newest"] = base64.b64encode(b"payments.1").decode()
    with pytest.raises(KeyringError, match="default key"):
        Keyring.from_secret_data(data)
