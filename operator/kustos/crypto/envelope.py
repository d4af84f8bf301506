"""Envelope encryption of secret versions: seal, open, rewrap.

Every version gets a fresh 256-bit data key (DEK). The value is encrypted with the DEK, and
the DEK is wrapped by a key-encryption key (KEK) of the customer's `Keyring`: the newest
version of the default key unless the caller names another (a secret's own key). Both
layers are AES-256-GCM with a 96-bit random nonce (a fresh key per payload, and at most one
wrap per DEK under a KEK per call, keeps random nonces far from their collision bound).

Wire format (the fields of `SealedPayload`; integers are big-endian)::

    key_id       text       id of the KEK that wrapped the DEK
    wrapped_key  61 bytes   0x01 (format) || wrap nonce (12) || GCM(KEK, DEK) (32 + 16 tag)
    nonce        12 bytes   payload nonce
    ciphertext   n + 16     GCM(DEK, value) with its 16-byte tag
    binary       bool       whether the value was SecretBinary rather than SecretString

    wrap AAD     = b"kustos/dek/v1" || u16(len key_id) || key_id
    payload AAD  = b"kustos/payload/v1" || u32(len arn) || arn || u32(len version_id)
                   || version_id || (0x01 if binary else 0x00)

The payload AAD is never stored; it is recomputed from where the ciphertext is read, so a
ciphertext copied onto another secret, another version, or with its binary flag flipped does
not open. The wrap AAD binds the wrapped DEK to its KEK id, so relabelling ``key_id`` fails.

Failures to open are deliberately generic (`DecryptionFailure` naming the ARN, version and
key id only): a tampered tag, a wrong key, a missing key and a misplaced ciphertext look
alike to the caller, and no message ever carries secret bytes.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kustos.crypto.keyring import KEY_BYTES, Keyring
from kustos.errors import DecryptionFailure, EncryptionFailure, KeyringError
from kustos.models.records import SealedPayload

__all__ = ["FORMAT_VERSION", "open_sealed", "rewrap", "seal"]

FORMAT_VERSION = 1
NONCE_BYTES = 12
_WRAP_PREFIX = bytes([FORMAT_VERSION])
_WRAPPED_BYTES = 1 + NONCE_BYTES + KEY_BYTES + 16
_WRAP_CONTEXT = b"kustos/dek/v1"
_PAYLOAD_CONTEXT = b"kustos/payload/v1"


def _payload_aad(arn: str, version_id: str, binary: bool) -> bytes:
    a, v = arn.encode("utf-8"), version_id.encode("utf-8")
    flag = b"\x01" if binary else b"\x00"
    return _PAYLOAD_CONTEXT + struct.pack(">I", len(a)) + a + struct.pack(">I", len(v)) + v + flag


def _wrap_aad(key_id: str) -> bytes:
    k = key_id.encode("utf-8")
    return _WRAP_CONTEXT + struct.pack(">H", len(k)) + k


def _wrap(data_key: bytes, key_id: str, keyring: Keyring) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(keyring.get(key_id)).encrypt(nonce, data_key, _wrap_aad(key_id))
    return _WRAP_PREFIX + nonce + body


def _unwrap(wrapped: bytes, key_id: str, keyring: Keyring) -> bytes:
    """The DEK; raises InvalidTag, KeyringError or ValueError on any defect."""
    if len(wrapped) != _WRAPPED_BYTES or wrapped[:1] != _WRAP_PREFIX:
        raise ValueError("malformed wrapped key")
    nonce, body = wrapped[1 : 1 + NONCE_BYTES], wrapped[1 + NONCE_BYTES :]
    return AESGCM(keyring.get(key_id)).decrypt(nonce, body, _wrap_aad(key_id))


def _failure(arn: str, version_id: str, key_id: str) -> DecryptionFailure:
    return DecryptionFailure(
        f"cannot decrypt version {version_id!r} of secret {arn!r} (key id {key_id!r})"
    )


def seal(
    plaintext: bytes,
    *,
    arn: str,
    version_id: str,
    keyring: Keyring,
    binary: bool = False,
    key_id: str | None = None,
) -> SealedPayload:
    """Encrypt `plaintext` for (arn, version_id) under a fresh data key, wrapped by the KEK
    `key_id` (default: the default key's newest version)."""
    if not arn or not version_id:
        raise ValueError("seal needs a non-empty arn and version_id")
    key_id = keyring.newest_id if key_id is None else key_id
    try:
        data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        nonce = os.urandom(NONCE_BYTES)
        aad = _payload_aad(arn, version_id, binary)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, aad)
        wrapped = _wrap(data_key, key_id, keyring)
    except (KeyringError, ValueError, OverflowError):
        raise EncryptionFailure(
            f"cannot encrypt version {version_id!r} of secret {arn!r} (key id {key_id!r})"
        ) from None
    return SealedPayload(
        key_id=key_id, wrapped_key=wrapped, nonce=nonce, ciphertext=ciphertext, binary=binary
    )


def open_sealed(sealed: SealedPayload, *, arn: str, version_id: str, keyring: Keyring) -> bytes:
    """Decrypt a payload read from (arn, version_id). DecryptionFailure on any defect."""
    try:
        data_key = _unwrap(sealed.wrapped_key, sealed.key_id, keyring)
        if len(sealed.nonce) != NONCE_BYTES:
            raise ValueError("malformed nonce")
        aad = _payload_aad(arn, version_id, sealed.binary)
        return AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except (InvalidTag, KeyringError, ValueError, TypeError):
        raise _failure(arn, version_id, sealed.key_id) from None


def rewrap(sealed: SealedPayload, keyring: Keyring, to: str | None = None) -> SealedPayload:
    """The same payload with its data key wrapped by the KEK `to` instead (default: the
    default key's newest version).

    Nonce and ciphertext are returned byte-for-byte unchanged. Already on `to`: returned as
    is. DecryptionFailure when the old KEK cannot unwrap the data key; KeyringError when the
    keyring lacks `to`.
    """
    target = keyring.newest_id if to is None else to
    if sealed.key_id == target:
        return sealed
    keyring.get(target)
    try:
        data_key = _unwrap(sealed.wrapped_key, sealed.key_id, keyring)
    except (InvalidTag, KeyringError, ValueError, TypeError):
        message = f"cannot unwrap a data key under key id {sealed.key_id!r}"
        raise DecryptionFailure(message) from None
    wrapped = _wrap(data_key, target, keyring)
    return SealedPayload(
        key_id=target,
        wrapped_key=wrapped,
        nonce=sealed.nonce,
        ciphertext=sealed.ciphertext,
        binary=sealed.binary,
    )
