"""`KmsKeyId` as Secrets Manager clients send it, mapped onto the keys of Kustos's keyring.

A secret's ``KmsKeyId`` names the key that wraps its data keys, as on AWS: a customer key of
the keyring (`kustos.crypto.keyring`: versions ``<name>.<n>``), or the default key when it
is empty or AWS's managed-key alias. Accepted spellings, as AWS accepts a key id, an alias
or either's ARN::

    payments                                   the key named payments
    alias/payments                             the same
    arn:kustos:kms:<cluster>:<ns>:key/payments the same (any partition, region, account)
    arn:kustos:kms:<cluster>:<ns>:alias/payments
    "" | alias/aws/secretsmanager | aws/secretsmanager   the default key

The record keeps the string as the client sent it (DescribeSecret returns it unchanged);
it is resolved to a key each time a version is sealed or rewrapped. A name the keyring does
not hold is refused with AWS's `EncryptionFailure`.
"""

from __future__ import annotations

from kustos.crypto import Keyring
from kustos.errors import EncryptionFailure, KeyringError

__all__ = ["DEFAULT_ALIASES", "key_name", "newest_version", "unknown_key"]

DEFAULT_ALIASES = frozenset({"aws/secretsmanager"})


def unknown_key() -> EncryptionFailure:
    return EncryptionFailure(
        "Secrets Manager can't encrypt the protected secret text using the provided KMS key. "
        "Check that the KMS key is available, enabled, and not in an invalid state."
    )


def key_name(kms_key_id: str | None) -> str:
    """The keyring key that `kms_key_id` names ("" for the default key).

    Syntax only: whether the keyring holds it is `newest_version`'s question.
    EncryptionFailure for an ARN that is not a KMS key or alias ARN.
    """
    text = (kms_key_id or "").strip()
    if text.startswith("arn:"):
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[2] != "kms" or not parts[5].startswith(("key/", "alias/")):
            raise unknown_key()
        text = parts[5]
        if text.startswith("key/"):
            text = text[len("key/") :]
    if text.startswith("alias/"):
        text = text[len("alias/") :]
    return "" if not text or text in DEFAULT_ALIASES else text


def newest_version(keyring: Keyring, kms_key_id: str | None) -> str:
    """The id of the key version that new data keys of such a secret are wrapped with."""
    try:
        return keyring.newest_of(key_name(kms_key_id))
    except KeyringError:
        raise unknown_key() from None
