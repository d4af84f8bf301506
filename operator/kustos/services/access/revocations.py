"""Emergency revocation of a principal: every credential it holds stops working on every replica.

`kustos access revoke --principal ARN` writes one row to the store (`RevocationStore`): the
principal and the moment. From then on every credential of that principal *issued at or
before* that moment is refused with UnrecognizedClientException: long-term access keys
(by their creation time; they are also marked Inactive), session credentials from the
container-credentials endpoint (by the issue time sealed in their token), and Kubernetes
bearer tokens (by their JWT ``iat``), so a pod cannot trade an old token for fresh session
credentials either. Credentials issued later work again (a new access key, the kubelet's
next projected token): to keep a principal out for good, take away its policies or its
ServiceAccount.

Revocation is a store-visible fact, not a message to replicas: each verifier holds a
`RevocationList`, a snapshot of the (small) table re-read every `POLL_SECONDS`, and checks
every authentication against it in memory, after any cache of keys or tokens, so caches
cannot outlive a revocation. The bound is `BOUND_SECONDS`: a snapshot older than that is
never used (if the store cannot be read, authentication fails closed). Issue times and the
revocation time come from the clocks of the machines involved; keep them in sync (NTP).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kustos.errors import AuthenticationError, InvalidParameterError, StoreError
from kustos.store.revocations import Revocation, RevocationStore

__all__ = [
    "BOUND_SECONDS",
    "POLL_SECONDS",
    "RevocationList",
    "RevocationService",
    "jwt_issued_at",
    "parse_principal_arn",
]

log = logging.getLogger(__name__)
#: How often a verifier re-reads the revocation table.
POLL_SECONDS = 2.0
#: The promise: a revocation is in force on every replica within this many seconds.
BOUND_SECONDS = 10.0
_SA_ARN = re.compile(r"arn:kustos:iam::([a-z0-9]([-a-z0-9]*[a-z0-9])?):serviceaccount/([^/\s]+)")
_USER_ARN = re.compile(r"arn:kustos:iam::cluster:user/(\S+)")


def jwt_issued_at(token: str) -> float | None:
    """The `iat` claim (epoch seconds) of a JWT, unverified; None if not a readable JWT.
    Only for tokens the API server has just accepted (their claims are then genuine)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        iat = payload.get("iat") if isinstance(payload, dict) else None
    except (ValueError, TypeError):
        return None
    return float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None


def revoked_error() -> AuthenticationError:
    return AuthenticationError(
        "The security token included in the request is invalid.",
        aws_code="UnrecognizedClientException",
    )


def parse_principal_arn(arn: str) -> tuple[str, str] | None:
    """(namespace, name) for a ServiceAccount ARN, None for a user ARN;
    InvalidParameterError for anything else."""
    text = arn.strip()
    if match := _SA_ARN.fullmatch(text):
        return match.group(1), match.group(3)
    if _USER_ARN.fullmatch(text):
        return None
    raise InvalidParameterError(
        "--principal must be arn:kustos:iam::<namespace>:serviceaccount/<name> or "
        "arn:kustos:iam::cluster:user/<name>"
    )


class RevocationList:
    """The verifier's view of the revocation table: re-read every `poll_seconds`, never
    used when older than `max_age` seconds."""

    def __init__(
        self,
        load: Callable[[], dict[str, datetime]],
        *,
        poll_seconds: float = POLL_SECONDS,
        max_age: float = BOUND_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._poll = poll_seconds
        self._max_age = max_age
        self._monotonic = monotonic
        self._snapshot: dict[str, datetime] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        snapshot = self._load()
        self._snapshot, self._loaded_at = snapshot, self._monotonic()

    def current(self) -> dict[str, datetime]:
        now = self._monotonic()
        loaded = self._loaded_at
        if loaded is not None and now - loaded < self._poll:
            return self._snapshot
        # One thread refreshes; the others keep using a snapshot that is still in bounds.
        if loaded is not None and now - loaded < self._max_age:
            if not self._lock.acquire(blocking=False):
                return self._snapshot
        else:
            self._lock.acquire()
        try:
            if self._loaded_at is None or self._monotonic() - self._loaded_at >= self._poll:
                try:
                    self._refresh()
                except StoreError:
                    if self._loaded_at is None or (
                        self._monotonic() - self._loaded_at >= self._max_age
                    ):
                        raise
                    log.warning("cannot re-read revocations; using the last snapshot")
        finally:
            self._lock.release()
        return self._snapshot

    def check(self, principal_arn: str, issued_at: datetime | float | None) -> None:
        """Raise UnrecognizedClientException if `principal_arn` was revoked at or after
        `issued_at` (a datetime or epoch seconds; None: unknown, so refused if revoked)."""
        revoked = self.current().get(principal_arn)
        if revoked is None:
            return
        if isinstance(issued_at, int | float):
            issued_at = datetime.fromtimestamp(issued_at, UTC)
        if issued_at is None or issued_at <= revoked:
            raise revoked_error()


class RevocationService:
    def __init__(
        self, store: RevocationStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    def revoke(self, principal_arn: str, *, by: str, reason: str = "") -> tuple[Revocation, int]:
        """Revoke now. Returns the revocation and how many access keys were deactivated."""
        service_account = parse_principal_arn(principal_arn)
        revocation = Revocation(principal_arn.strip(), self._clock(), by, reason)
        return revocation, self._store.revoke(revocation, service_account)

    def list(self) -> list[Revocation]:
        return self._store.list()
