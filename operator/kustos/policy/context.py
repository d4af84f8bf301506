"""The request context: condition keys and their values for one request.

Owns key lookup. Condition key names are case-insensitive, including the tag-key part of
`.../ResourceTag/<key>` (Kustos treats the whole key case-insensitively; tag *values* stay
case-sensitive). `aws:ResourceTag/<k>` and `secretsmanager:ResourceTag/<k>` are aliases, as
both appear in Secrets Manager policies. A key whose value is None or an empty list is absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

__all__ = ["ContextScalar", "ContextValue", "RequestContext", "to_text"]

ContextScalar = str | bool | int | float | Decimal | datetime
ContextValue = ContextScalar | Sequence[ContextScalar] | None

_TAG_ALIASES = ("aws:resourcetag/", "secretsmanager:resourcetag/")


def to_text(value: ContextScalar) -> str:
    """The string form IAM compares for a context value (booleans are `true`/`false`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


class RequestContext:
    """A case-insensitive, read-only view of the condition keys of a request."""

    def __init__(self, values: Mapping[str, ContextValue]) -> None:
        self._values: dict[str, tuple[ContextScalar, ...]] = {}
        for key, value in values.items():
            if value is None:
                continue
            if isinstance(value, str | bool | int | float | Decimal | datetime):
                items: tuple[ContextScalar, ...] = (value,)
            else:
                items = tuple(value)
            if items:
                # Two spellings of one key merge rather than silently shadow each other.
                lowered = key.lower()
                self._values[lowered] = self._values.get(lowered, ()) + items

    def get(self, key: str) -> tuple[ContextScalar, ...] | None:
        """All values of `key`, or None when the request does not carry it."""
        lowered = key.lower()
        found = self._values.get(lowered)
        if found is None:
            for prefix in _TAG_ALIASES:
                if lowered.startswith(prefix):
                    tag = lowered[len(prefix) :]
                    other = next(p for p in _TAG_ALIASES if p != prefix)
                    found = self._values.get(other + tag)
        return found

    def single_text(self, key: str) -> str | None:
        """The value of a single-valued key as text (for policy variables); else None."""
        found = self.get(key)
        if found is None or len(found) != 1:
            return None
        return to_text(found[0])

    def keys(self) -> list[str]:
        return sorted(self._values)
