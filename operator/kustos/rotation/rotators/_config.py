"""Small helpers for validating rotator configuration mappings (no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from kustos.errors import InvalidParameterError

T = TypeVar("T")


def check_keys(rotator: str, config: Mapping[str, Any], allowed: Collection[str]) -> None:
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise InvalidParameterError(
            f"{rotator} rotator: unknown config key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def get_typed(rotator: str, config: Mapping[str, Any], key: str, kind: type[T], default: T) -> T:
    value = config.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidParameterError(f"{rotator} rotator: config {key!r} must be a {kind.__name__}")
    return value


def get_timeout(rotator: str, config: Mapping[str, Any], key: str, default: float) -> float:
    value = get_typed(rotator, config, key, float, default)
    if not 0 < value <= 300:
        raise InvalidParameterError(f"{rotator} rotator: config {key!r} must be in (0, 300]")
    return value
