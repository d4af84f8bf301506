"""Persistence of Kustos: secrets, their sealed versions and labels, behind `Store`.

`open_store(url)` opens the SQL store (SQLite ``sqlite:///path`` embedded, or PostgreSQL
``postgresql://...``) and migrates its schema to the newest revision. The store never holds
plaintext: values arrive sealed by `kustos.crypto`.
"""

from kustos.store import access_keys as _access_keys  # noqa: F401  (registers its table)
from kustos.store import audit as _audit  # noqa: F401  (registers the audit tables)
from kustos.store import revocations as _revocations  # noqa: F401  (registers its table)
from kustos.store import rotations as _rotations  # noqa: F401  (registers the rotation tables)
from kustos.store.base import Store
from kustos.store.sql import SqlStore

__all__ = ["SqlStore", "Store", "open_store"]


def open_store(url: str) -> Store:
    """The store at `url`, schema migrated. StoreError when it cannot be opened."""
    return SqlStore(url)
