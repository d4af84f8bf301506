"""Which key-encryption keys the store's sealed data needs: one count per (kind, key id).

Kinds: ``version`` (secret versions), ``access-key`` (sealed secret access keys),
``audit-digest`` (digests signed with a subkey of the key). The keyring's owner asks before
generating a keyring (any row at all means data exists: never start afresh over it) and
before retiring a key (refused while anything needs it). Reads ids and counts, never
payloads.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from kustos.store.access_keys import access_keys
from kustos.store.audit_tables import audit_digests
from kustos.store.schema import versions
from kustos.store.tx import Tables

__all__ = ["KIND_ACCESS_KEY", "KIND_AUDIT_DIGEST", "KIND_VERSION", "KeyUsage"]

KIND_VERSION = "version"
KIND_ACCESS_KEY = "access-key"
KIND_AUDIT_DIGEST = "audit-digest"
_TABLES = (
    (KIND_VERSION, versions),
    (KIND_ACCESS_KEY, access_keys),
    (KIND_AUDIT_DIGEST, audit_digests),
)


class KeyUsage(Tables):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)

    def counts(self) -> dict[str, dict[str, int]]:
        """{kind: {key id: rows sealed or signed with it}}; kinds without rows are absent."""
        found: dict[str, dict[str, int]] = {}
        with self._tx("count key usage") as conn:
            for kind, table in _TABLES:
                query = sa.select(table.c.key_id, sa.func.count()).group_by(table.c.key_id)
                for key_id, count in conn.execute(query).all():
                    found.setdefault(kind, {})[str(key_id)] = int(count)
        return found
