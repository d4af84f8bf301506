"""`SecretValue`: a secret payload that cannot leak by being printed.

Its `repr` and `str` never show the value, so it is safe in log lines, exception messages,
f-strings and pydantic reprs by accident. The value is reached only on purpose, through
`reveal()` (text) or `reveal_bytes()`. Equality is constant-time.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

__all__ = ["SecretValue"]


class SecretValue:
    """A secret string or binary, masked everywhere except `reveal()`/`reveal_bytes()`."""

    __slots__ = ("_binary", "_value")

    def __init__(self, value: str | bytes) -> None:
        if isinstance(value, bytes):
            self._value = value
            self._binary = True
        elif isinstance(value, str):
            self._value = value.encode("utf-8")
            self._binary = False
        else:  # pragma: no cover - guarded by types
            raise TypeError("SecretValue holds str or bytes")

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> SecretValue:
        """A JSON object value, as AWS stores key/value secrets (compact, sorted keys)."""
        return cls(json.dumps(data, separators=(",", ":"), sort_keys=True))

    @property
    def is_binary(self) -> bool:
        return self._binary

    def reveal(self) -> str:
        """The value as text (UTF-8 decoded; binary values that are not UTF-8 raise)."""
        return self._value.decode("utf-8")

    def reveal_bytes(self) -> bytes:
        return self._value

    def as_mapping(self) -> dict[str, Any] | None:
        """The value parsed as a JSON object, or None when it is not one."""
        if self._binary:
            return None
        try:
            parsed = json.loads(self._value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return "SecretValue('**********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return self._binary == other._binary and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash((self._binary, len(self._value)))

    def __reduce__(self) -> Any:  # refuse pickling: a pickle is another way to leak
        raise TypeError("SecretValue cannot be pickled")
