"""`kustos.client.SecretCache` with a fake fetch function and a fake clock: TTL refresh, LRU
bound, serve-stale-on-error (bounded), definitive errors, explicit refresh, thread safety."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from kustos.client import SecretCache, SecretCacheConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Answers like GetSecretValue; counts calls; can be told to fail."""

    def __init__(self) -> None:
        self.values: dict[str, str | bytes] = {"a": "one", "b": "two", "bin": b"\x00\xff"}
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.error: Exception | None = None

    def __call__(self, secret_id: str, stage: str | None, version_id: str | None) -> Any:
        self.calls.append((secret_id, stage, version_id))
        if self.error is not None:
            raise self.error
        value = self.values[secret_id]
        key = "SecretBinary" if isinstance(value, bytes) else "SecretString"
        return {
            "ARN": f"arn:{secret_id}",
            "Name": secret_id,
            "VersionId": "v1",
            "VersionStages": [stage or "AWSCURRENT"],
            key: value,
        }


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetSecretValue",
    )


def make(**config: Any) -> tuple[SecretCache, Backend, Clock]:
    backend, clock = Backend(), Clock()
    cfg = SecretCacheConfig(**{"ttl_seconds": 60, "max_stale_seconds": 120, **config})
    return SecretCache(fetch=backend, config=cfg, clock=clock), backend, clock


def test_ttl_refresh() -> None:
    cache, backend, clock = make()
    assert cache.get_secret_string("a") == "one"
    backend.values["a"] = "changed"
    clock.now += 59
    assert cache.get_secret_string("a") == "one"
    assert len(backend.calls) == 1
    clock.now += 2
    assert cache.get_secret_string("a") == "changed"
    assert len(backend.calls) == 2


def test_lru_bound_evicts_least_recently_read() -> None:
    cache, backend, _ = make(max_items=2)
    backend.values["c"] = "three"
    cache.get_secret_string("a")
    cache.get_secret_string("b")
    cache.get_secret_string("a")  # a is now the most recent
    cache.get_secret_string("c")  # evicts b
    assert "b" not in cache and "a" in cache and "c" in cache
    assert len(cache) == 2
    calls = len(backend.calls)
    cache.get_secret_string("a")
    assert len(backend.calls) == calls
    cache.get_secret_string("b")
    assert len(backend.calls) == calls + 1


def test_serves_stale_on_transient_error_until_max_staleness() -> None:
    cache, backend, clock = make(retry_base_seconds=5)
    assert cache.get_secret_string("a") == "one"
    backend.error = EndpointConnectionError(endpoint_url="https://x")
    clock.now += 61
    assert cache.get_secret_string("a") == "one"  # stale, served
    calls = len(backend.calls)
    clock.now += 1  # within the backoff: no new fetch
    assert cache.get_secret_string("a") == "one"
    assert len(backend.calls) == calls
    clock.now += 10  # after backoff: retried, still failing, still served
    assert cache.get_secret_string("a") == "one"
    assert len(backend.calls) == calls + 1
    clock.now = 1000 + 60 + 120 + 1  # past TTL + max staleness
    with pytest.raises(EndpointConnectionError):
        cache.get_secret_string("a")
    backend.error = None
    backend.values["a"] = "healed"
    assert cache.get_secret_string("a") == "healed"


def test_throttling_and_5xx_are_transient() -> None:
    cache, backend, clock = make()
    cache.get_secret_string("a")
    for error in (
        client_error("ThrottlingException", 400),
        client_error("InternalServiceError", 500),
    ):
        backend.error = error
        clock.now += 61
        assert cache.get_secret_string("a") == "one"


@pytest.mark.parametrize(
    "code", ["ResourceNotFoundException", "AccessDeniedException", "InvalidRequestException"]
)
def test_definitive_errors_drop_the_entry(code: str) -> None:
    cache, backend, clock = make()
    cache.get_secret_string("a")
    backend.error = client_error(code, 400)
    clock.now += 61
    with pytest.raises(ClientError):
        cache.get_secret_string("a")
    backend.error = client_error("InternalServiceError", 500)  # no stale value to fall back on
    with pytest.raises(ClientError):
        cache.get_secret_string("a")


def test_max_stale_zero_never_serves_stale() -> None:
    cache, backend, clock = make(max_stale_seconds=0)
    cache.get_secret_string("a")
    backend.error = EndpointConnectionError(endpoint_url="https://x")
    clock.now += 61
    with pytest.raises(EndpointConnectionError):
        cache.get_secret_string("a")


def test_explicit_refresh_and_invalidate() -> None:
    cache, backend, _ = make()
    cache.get_secret_string("a")
    backend.values["a"] = "new"
    assert cache.get_secret_string("a") == "one"
    assert cache.refresh("a").value.reveal() == "new"
    assert cache.get_secret_string("a") == "new"
    backend.error = EndpointConnectionError(endpoint_url="https://x")
    with pytest.raises(EndpointConnectionError):  # refresh never hides the error
        cache.refresh("a")
    backend.error = None
    cache.invalidate("a")
    assert "a" not in cache


def test_stages_and_version_ids_are_separate_entries() -> None:
    cache, backend, _ = make()
    cache.get_secret_value("a")
    cache.get_secret_value("a", "AWSPREVIOUS")
    cache.get_secret_value("a", version_id="v1")
    assert backend.calls == [
        ("a", "AWSCURRENT", None),
        ("a", "AWSPREVIOUS", None),
        ("a", None, "v1"),
    ]


def test_binary_and_string_accessors_and_masking() -> None:
    cache, _, _ = make()
    assert cache.get_secret_binary("bin") == b"\x00\xff"
    with pytest.raises(TypeError):
        cache.get_secret_string("bin")
    with pytest.raises(TypeError):
        cache.get_secret_binary("a")
    secret = cache.get_secret_value("a")
    assert "one" not in repr(secret) and "one" not in repr(cache)


def test_one_fetch_for_concurrent_readers() -> None:
    backend = Backend()
    gate = threading.Event()

    def slow(secret_id: str, stage: str | None, version_id: str | None) -> Any:
        gate.wait(5)
        time.sleep(0.01)
        return backend(secret_id, stage, version_id)

    cache = SecretCache(fetch=slow, config=SecretCacheConfig(ttl_seconds=60))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_secret_string("a")))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert results == ["one"] * 16
    assert len(backend.calls) == 1
