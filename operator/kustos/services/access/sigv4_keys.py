"""Derived SigV4 signing keys, computed once per access key, secret, day, region and service.

SigV4's signing key is ``HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
"aws4_request")``: four HMACs that depend only on the scope, not on the request. AWS's own
SDKs cache it per day; `SigningKeys` does the same on the verifying side. Entries are keyed
by a SHA-256 of the secret (never the secret itself) with the scope, so a key whose secret
changes, or a lookup that now fails (deleted, revoked), can never reuse an entry: the cache
only saves arithmetic, it decides nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import threading

__all__ = ["SigningKeys", "derive_signing_key"]


def derive_signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key for `secret_key` in scope date/region/service/aws4_request."""
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class SigningKeys:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._keys: dict[tuple[str, bytes, str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def get(
        self, access_key_id: str, secret_key: str, date: str, region: str, service: str
    ) -> bytes:
        fingerprint = hashlib.sha256(secret_key.encode()).digest()
        scope = (access_key_id, fingerprint, date, region, service)
        found = self._keys.get(scope)
        if found is None:
            found = derive_signing_key(secret_key, date, region, service)
            with self._lock:
                if len(self._keys) >= self._max:
                    self._keys.clear()
                self._keys[scope] = found
        return found
