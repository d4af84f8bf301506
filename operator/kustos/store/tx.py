"""Transactions on the store's engine, shared by every table-owning store module.

`Tables` gives a store class `_tx(what, write=...)`: a connection in a transaction (writers
begin with the write lock up front, see `migrate.WRITE`), with driver errors turned into
`StoreError` that names the operation but never SQL or parameters, and counted.
IntegrityError passes through: the caller knows which conflict it means.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from kustos.errors import StoreError
from kustos.metrics import STORE_ERRORS
from kustos.store.migrate import WRITE

__all__ = ["Tables"]


class Tables:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})

    @contextmanager
    def _tx(self, what: str, *, write: bool = False) -> Iterator[Connection]:
        try:
            with self._writer.begin() if write else self._engine.connect() as conn:
                yield conn
        except IntegrityError:
            raise
        except DBAPIError as exc:
            STORE_ERRORS.labels(what).inc()
            raise StoreError(f"store failed to {what}: {type(exc.orig).__name__}") from None
