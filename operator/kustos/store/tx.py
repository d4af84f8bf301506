"""Transactions on the store's engine, shared by every table-owning store module.

`Tables` gives a store class `_tx(what, write=...)`: a connection in a transaction (writers
begin with the write lock up front, see `migrate.WRITE`), with driver errors turned into
`StoreError` that names the operation but never SQL or parameters, and counted.
IntegrityError passes through: the caller knows which conflict it means.

Fencing: a write made as the operator leader's work (inside `kustos.models.fencing.fenced`)
first checks the replica's own fence (it still holds the Lease), then, as the first
statement of the transaction, raises the store's fencing term to its own; a term lower than
one already written means a newer leader exists, and the transaction is rolled back with
`FencedError` before anything of it lands. Writes outside leader work (the API, the CLI)
are not fenced: every replica serves them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from kustos.errors import FencedError, StoreError
from kustos.metrics import STORE_ERRORS
from kustos.models.fencing import FenceToken, check_fence
from kustos.models.nonblocking import must_not_block
from kustos.store.migrate import WRITE
from kustos.store.read_cache import unpin
from kustos.store.schema import fence

__all__ = ["Tables"]


class Tables:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})

    @contextmanager
    def _tx(self, what: str, *, write: bool = False) -> Iterator[Connection]:
        must_not_block(what)
        token = check_fence() if write else None
        try:
            with self._writer.begin() if write else self._engine.connect() as conn:
                if token is not None:
                    _raise_term(conn, token, what)
                yield conn
        except IntegrityError:
            raise
        except DBAPIError as exc:
            STORE_ERRORS.labels(what).inc()
            raise StoreError(f"store failed to {what}: {type(exc.orig).__name__}") from None
        finally:
            if write:
                unpin()  # this context's next read sees what it wrote


def _raise_term(conn: Connection, token: FenceToken, what: str) -> None:
    raised = conn.execute(
        fence.update()
        .where(fence.c.name == "operator", fence.c.term <= token.term)
        .values(term=token.term, holder=token.holder)
    ).rowcount
    if raised != 1:
        raise FencedError(f"refused to {what}: a newer operator leader has written")
