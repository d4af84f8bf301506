"""Kubernetes object names for Secrets Manager names: `prod/payments/db` -> `prod-payments-db`."""

from __future__ import annotations

import hashlib
import re

__all__ = ["object_name_for"]

#: Leaves room for the hash suffix within the 253 characters of a `metadata.name`.
_OBJECT_NAME_MAX = 200


def object_name_for(name: str, *, hashed: bool = False) -> str:
    """A DNS-1123 `metadata.name` for a secret name: `prod/payments/db` -> `prod-payments-db`.

    A short hash of the name is appended when the mapping loses information (upper case,
    characters other than letters, digits, `-`, `/`), when it is too long, or when `hashed`
    (the plain form is taken by another object)."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    lossless = base == name.replace("/", "-") and "--" not in base
    if hashed or not lossless or not base or len(base) > _OBJECT_NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        base = f"{base[:_OBJECT_NAME_MAX].strip('-') or 'secret'}-{digest}"
    return base
