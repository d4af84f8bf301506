"""Purpose-bound subkeys of the keyring's keys (HKDF-SHA256), e.g. for audit digest HMACs.

A key-encryption key is never used directly for anything but wrapping data keys: other uses
get their own key derived with HKDF (RFC 5869) and a `purpose` label, so the two uses can
never be confused. Derivation is deterministic: the same key id and purpose give the same
subkey, which is what lets a verifier recompute a signature made months ago.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kustos.crypto.keyring import Keyring

__all__ = ["derive_key"]


def derive_key(keyring: Keyring, purpose: str, key_id: str | None = None) -> tuple[str, bytes]:
    """(key id, 32-byte subkey) for `purpose`, from `key_id` (default: the newest key).

    KeyringError when the keyring does not hold `key_id`.
    """
    kid = keyring.newest_id if key_id is None else key_id
    master = keyring.get(kid)
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"kustos-derive-v1",
        info=f"{purpose}\x00{kid}".encode(),
    )
    return kid, hkdf.derive(master)
