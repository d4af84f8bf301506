"""Access keys for SigV4: long-term keys bound to a ServiceAccount, and session credentials.

Long-term keys (`kustos access-key create`): the id (``AKIA`` + 16) and the secret (40
characters) are generated here; the secret is shown once and stored only sealed by the
customer's keyring (`kustos.crypto.seal`, bound to the key id), because verifying SigV4 needs
it. Lookups are cached for `cache_seconds`, so a deleted key stops working within that time.

Session credentials (the container-credentials endpoint): stateless, so any replica of the
API verifies them. The session token *is* the sealed record -- who the caller is, when the
credentials expire and the secret access key -- encrypted under the keyring with the
session's access key id (``ASIA`` + 16) as associated data. A token presented with another
access key id, edited, or sealed under an unknown key does not open; an expired one is
refused with ExpiredTokenException. They live `session_lifetime` (default 1 h), never longer
than the Kubernetes token they were issued for (`issue_session(not_after=...)`).

Revocation (`kustos.services.access.revocations`): both kinds carry their issue time (a key's
creation time; the session's ``t`` claim), checked against the `RevocationList` on every
lookup -- cache hits included -- so `kustos access revoke` stops them within its bound.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kustos.crypto import Keyring, open_sealed, seal
from kustos.errors import AuthenticationError, DecryptionFailure, ResourceNotFoundError
from kustos.models.access_keys import ACTIVE, AccessKeyRecord
from kustos.models.identity import Principal
from kustos.models.records import SealedPayload
from kustos.models.sensitive import SecretValue
from kustos.services.access.revocations import RevocationList
from kustos.store.access_keys import AccessKeyStore

__all__ = ["AccessKeyService", "IssuedKey", "SessionCredentials"]

LONG_TERM_PREFIX = "AKIA"
SESSION_PREFIX = "ASIA"
_ID_ALPHABET = string.ascii_uppercase + "234567"
_KEY_CONTEXT = "kustos:access-key"
_SESSION_CONTEXT = "kustos:session-credentials"
_TOKEN_PREFIX = "KST1"


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def _new_secret() -> str:
    return secrets.token_urlsafe(30)  # 40 characters, 240 bits


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid_token() -> AuthenticationError:
    return AuthenticationError(
        "The security token included in the request is invalid.",
        aws_code="UnrecognizedClientException",
    )


@dataclass(frozen=True)
class IssuedKey:
    """A new long-term key; `secret_access_key` is the only time the secret exists in clear."""

    record: AccessKeyRecord
    secret_access_key: SecretValue


@dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: SecretValue
    token: str
    expiration: datetime

    def to_container_response(self) -> dict[str, str]:
        """The JSON body the AWS SDKs' container-credentials provider expects."""
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key.reveal(),
            "Token": self.token,
            "Expiration": self.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class AccessKeyService:
    def __init__(
        self,
        store: AccessKeyStore,
        keyring: Callable[[], Keyring],
        *,
        session_lifetime: timedelta = timedelta(hours=1),
        cache_seconds: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        revocations: RevocationList | None = None,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self.session_lifetime = session_lifetime
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._revocations = revocations
        self._cache: dict[str, tuple[Principal, str, float, datetime]] = {}
        self._lock = threading.Lock()

    # -- long-term keys ------------------------------------------------------------------
    def create(self, namespace: str, service_account: str) -> IssuedKey:
        key_id = _new_id(LONG_TERM_PREFIX)
        secret = _new_secret()
        sealed = seal(secret.encode(), arn=_KEY_CONTEXT, version_id=key_id, keyring=self._keyring())
        record = AccessKeyRecord(key_id, namespace, service_account, self._clock(), sealed, ACTIVE)
        self._store.create(record)
        return IssuedKey(record, SecretValue(secret))

    def list(self, namespace: str | None = None) -> list[AccessKeyRecord]:
        return self._store.list(namespace)

    def delete(self, access_key_id: str) -> None:
        if not self._store.delete(access_key_id):
            raise ResourceNotFoundError(f"access key {access_key_id} not found")
        with self._lock:
            self._cache.pop(access_key_id, None)

    def lookup(self, access_key_id: str) -> tuple[Principal, str]:
        """(the key's principal, its secret) for a long-term key; UnrecognizedClient if none."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(access_key_id)
        if hit is not None and hit[2] > now:
            self._check_revoked(hit[0], hit[3])
            return hit[0], hit[1]
        record = self._store.get(access_key_id)
        if record is None or record.status != ACTIVE:
            raise _invalid_token()
        try:
            secret = open_sealed(
                record.sealed, arn=_KEY_CONTEXT, version_id=access_key_id, keyring=self._keyring()
            ).decode()
        except DecryptionFailure:
            raise _invalid_token() from None
        principal = Principal.service_account(
            record.namespace,
            record.service_account,
            auth_method="SigV4",
            access_key_id=access_key_id,
        )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[access_key_id] = (
                principal,
                secret,
                now + self._cache_seconds,
                record.created_at,
            )
        self._check_revoked(principal, record.created_at)
        return principal, secret

    def _check_revoked(self, principal: Principal, issued_at: datetime | float | None) -> None:
        if self._revocations is not None:
            self._revocations.check(principal.arn, issued_at)

    # -- session credentials -------------------------------------------------------------
    def issue_session(
        self, principal: Principal, *, not_after: datetime | None = None
    ) -> SessionCredentials:
        """Session credentials for `principal`, expiring after `session_lifetime` or at
        `not_after` (the expiry of the token that proved who the caller is), if sooner."""
        key_id = _new_id(SESSION_PREFIX)
        secret = _new_secret()
        now = self._clock()
        expiration = now + self.session_lifetime
        if not_after is not None and not_after < expiration:
            expiration = not_after
        expiration = expiration.replace(microsecond=0)  # rounds down: never past not_after
        if expiration <= now:
            raise AuthenticationError(
                "The security token included in the request is expired",
                aws_code="ExpiredTokenException",
            )
        claims = {
            "u": principal.username,
            "g": list(principal.groups),
            "i": principal.uid,
            "p": principal.pod_name,
            "e": int(expiration.timestamp()),
            "s": secret,
            "t": now.timestamp(),
        }
        sealed = seal(
            json.dumps(claims).encode(),
            arn=_SESSION_CONTEXT,
            version_id=key_id,
            keyring=self._keyring(),
        )
        token = ".".join(
            (
                _TOKEN_PREFIX,
                _b64(sealed.key_id.encode()),
                _b64(sealed.wrapped_key),
                _b64(sealed.nonce),
                _b64(sealed.ciphertext),
            )
        )
        return SessionCredentials(key_id, SecretValue(secret), token, expiration)

    def open_session(self, access_key_id: str, token: str) -> tuple[Principal, str]:
        """(the session's principal, its secret); Unrecognized/Expired when not usable."""
        parts = token.strip().split(".")
        if (
            len(parts) != 5
            or parts[0] != _TOKEN_PREFIX
            or not access_key_id.startswith(SESSION_PREFIX)
        ):
            raise _invalid_token()
        try:
            sealed = SealedPayload(
                _unb64(parts[1]).decode(), _unb64(parts[2]), _unb64(parts[3]), _unb64(parts[4])
            )
            plain = open_sealed(
                sealed, arn=_SESSION_CONTEXT, version_id=access_key_id, keyring=self._keyring()
            )
            claims = json.loads(plain)
            expires = float(claims["e"])
            secret = str(claims["s"])
            issued = float(claims["t"]) if "t" in claims else None
            principal = Principal.user(
                str(claims["u"]),
                groups=tuple(claims["g"]),
                uid=str(claims["i"]),
                auth_method="SigV4",
                access_key_id=access_key_id,
                pod_name=claims["p"],
                extra={"credentials": "session"},
            )
        except (DecryptionFailure, ValueError, KeyError, TypeError):
            raise _invalid_token() from None
        if expires <= self._clock().timestamp():
            raise AuthenticationError(
                "The security token included in the request is expired",
                aws_code="ExpiredTokenException",
            )
        self._check_revoked(principal, issued)
        return principal, secret
