"""Cryptography of Kustos: envelope encryption of secret versions and the keyring of KEKs.

The only package allowed to import ``cryptography.hazmat``. No I/O: callers load the keyring
and persist sealed payloads.
"""

from kustos.crypto.derive import derive_key
from kustos.crypto.envelope import FORMAT_VERSION, open_sealed, rewrap, seal
from kustos.crypto.keyring import KEY_BYTES, Keyring, check_key_name, key_of

__all__ = [
    "FORMAT_VERSION",
    "KEY_BYTES",
    "Keyring",
    "check_key_name",
    "derive_key",
    "key_of",
    "open_sealed",
    "rewrap",
    "seal",
]
