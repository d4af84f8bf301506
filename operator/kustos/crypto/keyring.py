"""The keyring: key-encryption keys (KEKs) by id, owned by the customer.

A keyring is an ordered set of 32-byte AES-256 keys, each with an id. The keys belong to
*keys* in the AWS KMS sense, each with versions:

* the **default key** (what AWS calls ``aws/secretsmanager``): versions with plain ids
  (generated ``k1``, ``k2``, ...; any id without a dot when supplied), the newest named by
  the ``newest`` entry. It seals every secret that names no key, access keys, session
  credentials and audit digests.
* **customer keys** (a secret's ``KmsKeyId``): versions ``<name>.<n>`` (``payments.1``,
  ``payments.2``, ...); the newest is the highest ``n``.

New data keys are wrapped with the newest version of their key; older versions stay to
unwrap what they wrapped until a rewrap moves everything to the newest one. Nothing here does
I/O: loading the Kubernetes Secret that holds the keyring is the caller's job.

Storage in a Kubernetes Secret's ``data`` (one entry per key version, so a customer can supply
their own keys with ``kubectl create secret generic ... --from-file=k1.key=./k1.bin``)::

    <key id>.key   the 32 raw key bytes          (base64 in ``data``, as Kubernetes does)
    newest         the id of the default key's   (base64 in ``data``; surrounding
                   newest version                 whitespace is ignored)

Key names and default-key ids match ``[A-Za-z0-9][A-Za-z0-9_-]{0,62}``; customer-key
version ids are ``<name>.<n>`` with ``n`` a decimal number. Ids are ordered naturally
(``k2`` before ``k10``). Any other entry, a key that is not exactly 32 bytes, bad base64, or
a missing/unknown ``newest`` is a `KeyringError`.

A keyring's ``repr`` shows ids only, never key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping

from kustos.errors import KeyringError

__all__ = ["KEY_BYTES", "Keyring", "check_key_name", "key_of"]

KEY_BYTES = 32
_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}"
_ID_RE = re.compile(_NAME)
_VERSION_RE = re.compile(rf"({_NAME})\.([0-9]{{1,9}})")
_GENERATED_RE = re.compile(r"k([0-9]+)")
_KEY_SUFFIX = ".key"
_NEWEST = "newest"


def _natural(key_id: str) -> tuple[str, int, str]:
    """Sort key: ``k2`` before ``k10``; ids without a numeric tail sort by text."""
    match = re.fullmatch(r"(.*?)([0-9]+)", key_id)
    if match is None:
        return (key_id, -1, key_id)
    return (match.group(1), int(match.group(2)), key_id)


def _check_id(key_id: str) -> None:
    if not isinstance(key_id, str) or (
        _ID_RE.fullmatch(key_id) is None and _VERSION_RE.fullmatch(key_id) is None
    ):
        raise KeyringError(
            f"invalid key id {key_id!r}: expected [A-Za-z0-9][A-Za-z0-9_-]{{0,62}}, or "
            "<name>.<number> for a version of a customer key"
        )


def key_of(key_id: str) -> str:
    """The key a key version belongs to: its customer key's name, or "" (the default key)."""
    match = _VERSION_RE.fullmatch(key_id)
    return match.group(1) if match else ""


def check_key_name(name: str) -> str:
    """`name` if it can name a customer key; KeyringError otherwise."""
    if not isinstance(name, str) or _ID_RE.fullmatch(name) is None:
        raise KeyringError(f"invalid key name {name!r}: expected [A-Za-z0-9][A-Za-z0-9_-]{{0,62}}")
    return name


class Keyring:
    """Immutable: `with_new_key` and `without_key` return new keyrings."""

    __slots__ = ("_keys", "_newest")

    def __init__(self, keys: Mapping[str, bytes], newest: str) -> None:
        if not keys:
            raise KeyringError("the keyring holds no keys")
        for key_id, key in keys.items():
            _check_id(key_id)
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                size = len(key) if isinstance(key, bytes) else "not"
                raise KeyringError(f"key {key_id!r} is {size} bytes; keys must be {KEY_BYTES}")
        if newest not in keys:
            raise KeyringError(f"the newest key {newest!r} is not in the keyring")
        if key_of(newest):
            raise KeyringError(f"'newest' must name a default key version, not {newest!r}")
        self._keys: dict[str, bytes] = {k: keys[k] for k in sorted(keys, key=_natural)}
        self._newest = newest

    # -- construction -------------------------------------------------------------------
    @classmethod
    def generate(cls, key_id: str = "k1") -> Keyring:
        """A keyring holding one fresh random key."""
        return cls({key_id: os.urandom(KEY_BYTES)}, key_id)

    def with_new_key(self, key_id: str | None = None, *, key: str = "") -> Keyring:
        """A copy with one more key version, fresh and random, the newest of its key.

        For the default key (`key` ""), the default id is ``k<N+1>`` where N is the highest
        generated-style id present, and the new version becomes ``newest``. For a customer
        key, the id is ``<key>.<N+1>`` (``<key>.1`` creates the key).
        """
        newest = self._newest
        if key:
            check_key_name(key)
            numbers = [
                int(m.group(2))
                for k in self._keys
                if (m := _VERSION_RE.fullmatch(k)) and m.group(1) == key
            ]
            key_id = f"{key}.{max(numbers, default=0) + 1}"
        else:
            if key_id is None:
                numbers = [int(m.group(1)) for k in self._keys if (m := _GENERATED_RE.fullmatch(k))]
                key_id = f"k{max(numbers, default=0) + 1}"
            newest = key_id
        if key_id in self._keys:
            raise KeyringError(f"key id {key_id!r} is already in the keyring")
        return Keyring({**self._keys, key_id: os.urandom(KEY_BYTES)}, newest)

    def without_key(self, key_id: str) -> Keyring:
        """A copy without `key_id` (after a rewrap retired it). The newest version of each
        key stays."""
        self.get(key_id)
        if key_id == self.newest_of(key_of(key_id)):
            raise KeyringError(f"cannot remove the newest version {key_id!r} of its key")
        return Keyring({k: v for k, v in self._keys.items() if k != key_id}, self._newest)

    # -- access -------------------------------------------------------------------------
    @property
    def newest_id(self) -> str:
        return self._newest

    @property
    def ids(self) -> tuple[str, ...]:
        """Key ids in natural order."""
        return tuple(self._keys)

    @property
    def key_names(self) -> tuple[str, ...]:
        """The customer keys' names, sorted (the default key has none)."""
        return tuple(sorted({key_of(k) for k in self._keys} - {""}))

    def newest_of(self, key: str = "") -> str:
        """The id of the newest version of `key` ("" is the default key: `newest_id`).
        KeyringError when the keyring holds no such key."""
        if not key:
            return self._newest
        versions = [k for k in self._keys if key_of(k) == key]
        if not versions:
            raise KeyringError(f"key {key!r} is not in the keyring")
        return versions[-1]  # natural order: payments.10 after payments.9

    def get(self, key_id: str) -> bytes:
        """The key bytes for `key_id`; KeyringError when the keyring does not hold it."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise KeyringError(f"key {key_id!r} is not in the keyring") from None

    def fingerprint(self) -> str:
        """A short digest of the public facts (ids, newest id); never of key material."""
        doc = json.dumps({"ids": list(self._keys), "newest": self._newest}, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()[:16]

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keyring):
            return NotImplemented
        if self._newest != other._newest or list(self._keys) != list(other._keys):
            return False
        return all(hmac.compare_digest(v, other._keys[k]) for k, v in self._keys.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Keyring(ids={list(self._keys)!r}, newest={self._newest!r})"

    def __reduce__(self) -> str:  # a pickle would carry the keys somewhere unplanned
        raise TypeError("Keyring cannot be pickled")

    # -- Kubernetes Secret data ---------------------------------------------------------
    def to_secret_data(self) -> dict[str, str]:
        """The ``data`` of a Kubernetes Secret holding this keyring (values base64)."""
        data = {k + _KEY_SUFFIX: base64.b64encode(v).decode("ascii") for k, v in self._keys.items()}
        data[_NEWEST] = base64.b64encode(self._newest.encode()).decode("ascii")
        return data

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str | bytes]) -> Keyring:
        """Load a keyring from a Secret's ``data``.

        `str` values are base64, as the API returns ``data``; `bytes` values are taken as
        already decoded. Anything malformed raises KeyringError naming the entry only.
        """
        keys: dict[str, bytes] = {}
        newest: str | None = None
        for name, value in data.items():
            raw = _decode(name, value)
            if name == _NEWEST:
                try:
                    newest = raw.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise KeyringError("keyring entry 'newest' is not UTF-8 text") from None
                _check_id(newest)
            elif name.endswith(_KEY_SUFFIX):
                key_id = name[: -len(_KEY_SUFFIX)]
                _check_id(key_id)
                keys[key_id] = raw
            else:
                raise KeyringError(
                    f"unexpected keyring entry {name!r}: expected '<id>.key' or 'newest'"
                )
        if newest is None:
            raise KeyringError("the keyring has no 'newest' entry")
        return cls(keys, newest)


def _decode(name: str, value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise KeyringError(f"keyring entry {name!r} is neither text nor bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"keyring entry {name!r} is not valid base64") from None
