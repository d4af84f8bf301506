"""A Kubernetes object kept in memory as its compact JSON encoding.

The operator keeps the newest body of every ManagedSecret and of every projected Secret it
watches. As decoded dicts they cost about 4 KiB each in small Python objects; as compact
UTF-8 JSON about a quarter of that (measured in docs/benchmarks.md, "Operator memory").
Every read decodes a fresh dict, so no holder can change what another one sees (the
projected-Secret cache deep-copied on every read before). `resourceVersion`, which the
caches compare on every event, is kept beside the bytes so a comparison decodes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Packed"]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode
_decode = json.JSONDecoder().decode


@dataclass(frozen=True, slots=True)
class Packed:
    data: bytes
    resource_version: str | None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Packed:
        version = (obj.get("metadata") or {}).get("resourceVersion")
        return cls(_encode(obj).encode(), None if version is None else str(version))

    def unpack(self) -> dict[str, Any]:
        """A new dict with the object as it was packed."""
        value: dict[str, Any] = _decode(self.data.decode())
        return value
