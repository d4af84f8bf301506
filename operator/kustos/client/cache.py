"""`SecretCache`: an in-process cache of secret values, in the spirit of
aws-secretsmanager-caching.

* TTL refresh: an entry older than ``ttl_seconds`` is fetched again on its next read.
* LRU bound: at most ``max_items`` entries; the least recently read one is evicted.
* Serve stale on error: when a refresh fails with a transient error (network, throttling,
  5xx), the old value is served for up to ``max_stale_seconds`` past its TTL and the fetch
  is retried after a backoff; a definitive answer (not found, access denied, deleted)
  drops the entry and is raised, so revocation takes effect at the next refresh.
* ``refresh(secret_id)`` fetches now; ``invalidate`` forgets.
* Thread-safe; one fetch at a time per (secret, stage), other readers wait for it.

Values are held as `SecretValue` (masked repr) and revealed only by `get_secret_string` /
`get_secret_binary`. Nothing here logs a value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kustos.models.sensitive import SecretValue

__all__ = ["CachedSecret", "SecretCache", "SecretCacheConfig", "is_transient"]

log = logging.getLogger(__name__)

Fetch = Callable[[str, "str | None", "str | None"], Mapping[str, Any]]
_DEFINITIVE = {
    "ResourceNotFoundException",
    "AccessDeniedException",
    "InvalidRequestException",
    "InvalidParameterException",
    "DecryptionFailure",
    "ValidationException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
}


def is_transient(exc: BaseException) -> bool:
    """Whether a fetch error may heal by itself (then a stale value may be served)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code not in _DEFINITIVE and (
            status >= 500 or status in (0, 429) or "Throttl" in code
        )
    return True  # transport errors: connection refused, timeouts, TLS


@dataclass(frozen=True)
class SecretCacheConfig:
    ttl_seconds: float = 3600.0
    max_items: int = 1024
    max_stale_seconds: float = 3600.0  # serve-stale limit past the TTL; 0: never stale
    retry_base_seconds: float = 1.0  # backoff after a failed refresh, doubled up to the TTL
    default_version_stage: str = "AWSCURRENT"
    stale_on: Callable[[BaseException], bool] = is_transient


@dataclass(frozen=True)
class CachedSecret:
    """One cached version of a secret. ``repr`` never shows the value."""

    arn: str
    name: str
    version_id: str
    version_stages: tuple[str, ...]
    value: SecretValue
    fetched_at: float = field(repr=False)


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    secret: CachedSecret | None = None
    retry_after: float = 0.0
    failures: int = 0


class SecretCache:
    """Cache of `GetSecretValue` answers keyed by (secret id, version stage or id).

    `client` is a botocore/boto3 ``secretsmanager`` client (e.g. `kustos.client.connect()`);
    `fetch(secret_id, version_stage, version_id)` may replace it (tests, custom transports).
    """

    def __init__(
        self,
        client: Any = None,
        config: SecretCacheConfig | None = None,
        *,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (client is None) == (fetch is None):
            raise ValueError("give exactly one of client and fetch")
        self.config = config or SecretCacheConfig()
        if self.config.max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._fetch: Fetch = fetch or _client_fetch(client)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    # -- reads -----------------------------------------------------------------------------

    def get_secret_value(
        self, secret_id: str, version_stage: str | None = None, *, version_id: str | None = None
    ) -> CachedSecret:
        key = (
            secret_id,
            f"id:{version_id}"
            if version_id
            else version_stage or self.config.default_version_stage,
        )
        entry = self._entry(key)
        with entry.lock:
            now = self._clock()
            secret = entry.secret
            if secret is not None and now - secret.fetched_at < self.config.ttl_seconds:
                return secret
            if secret is not None and now < entry.retry_after and self._servable(secret, now):
                return secret
            return self._load(key, entry, version_stage, version_id, now)

    def get_secret_string(self, secret_id: str, version_stage: str | None = None) -> str:
        secret = self.get_secret_value(secret_id, version_stage)
        if secret.value.is_binary:
            raise TypeError(f"secret {secret.name} holds a binary value")
        return secret.value.reveal()

    def get_secret_binary(self, secret_id: str, version_stage: str | None = None) -> bytes:
        secret = self.get_secret_value(secret_id, version_stage)
        if not secret.value.is_binary:
            raise TypeError(f"secret {secret.name} holds a string value")
        return secret.value.reveal_bytes()

    # -- control -----------------------------------------------------------------------------

    def refresh(self, secret_id: str, version_stage: str | None = None) -> CachedSecret:
        """Fetch now, whatever the entry's age (errors propagate; nothing stale is served)."""
        key = (secret_id, version_stage or self.config.default_version_stage)
        entry = self._entry(key)
        with entry.lock:
            now = self._clock()
            return self._load(key, entry, version_stage, None, now, allow_stale=False)

    def invalidate(self, secret_id: str | None = None) -> None:
        """Forget one secret (every stage) or, without an argument, everything."""
        with self._lock:
            for key in [k for k in self._entries if secret_id is None or k[0] == secret_id]:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.secret is not None)

    def __contains__(self, secret_id: object) -> bool:
        with self._lock:
            return any(k[0] == secret_id for k in self._entries)

    def __repr__(self) -> str:
        return f"SecretCache(items={len(self)}, ttl={self.config.ttl_seconds})"

    # -- internals ---------------------------------------------------------------------------

    def _entry(self, key: tuple[str, str]) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
            while len(self._entries) > self.config.max_items:
                self._entries.popitem(last=False)
            return entry

    def _servable(self, secret: CachedSecret, now: float) -> bool:
        age = now - secret.fetched_at
        return age < self.config.ttl_seconds + self.config.max_stale_seconds

    def _load(
        self,
        key: tuple[str, str],
        entry: _Entry,
        version_stage: str | None,
        version_id: str | None,
        now: float,
        *,
        allow_stale: bool = True,
    ) -> CachedSecret:
        stage = None if version_id else version_stage or self.config.default_version_stage
        try:
            response = self._fetch(key[0], stage, version_id)
        except Exception as exc:
            old = entry.secret
            if (
                allow_stale
                and old is not None
                and self.config.stale_on(exc)
                and self._servable(old, now)
            ):
                entry.failures += 1
                backoff = self.config.retry_base_seconds * 2 ** (entry.failures - 1)
                entry.retry_after = now + min(backoff, self.config.ttl_seconds)
                log.warning(
                    "refreshing secret %s failed (%s); serving the cached version (%d failures)",
                    key[0],
                    type(exc).__name__,
                    entry.failures,
                )
                return old
            if not self.config.stale_on(exc):
                entry.secret = None
            raise
        secret = _to_cached(response, self._clock())
        entry.secret, entry.failures, entry.retry_after = secret, 0, 0.0
        return secret


def _to_cached(response: Mapping[str, Any], now: float) -> CachedSecret:
    if response.get("SecretBinary") is not None:
        value = SecretValue(bytes(response["SecretBinary"]))
    elif response.get("SecretString") is not None:
        value = SecretValue(str(response["SecretString"]))
    else:
        raise ValueError("GetSecretValue answered without SecretString or SecretBinary")
    return CachedSecret(
        arn=str(response.get("ARN", "")),
        name=str(response.get("Name", "")),
        version_id=str(response.get("VersionId", "")),
        version_stages=tuple(response.get("VersionStages") or ()),
        value=value,
        fetched_at=now,
    )


def _client_fetch(client: Any) -> Fetch:
    def fetch(
        secret_id: str, version_stage: str | None, version_id: str | None
    ) -> Mapping[str, Any]:
        params: dict[str, Any] = {"SecretId": secret_id}
        if version_id:
            params["VersionId"] = version_id
        elif version_stage:
            params["VersionStage"] = version_stage
        return client.get_secret_value(**params)  # type: ignore[no-any-return]

    return fetch
