"""The SQLite store keeps at most `POOL_KEPT` connections open once its threads are done
(each holds a page cache, the schema and prepared statements), and still serves more
threads than that at once."""

from __future__ import annotations

import threading
from pathlib import Path

from kustos.store import SqlStore
from kustos.store.migrate import POOL_KEPT, make_engine


def test_connections_beyond_the_kept_ones_are_closed_when_returned(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kustos.db'}")
    busy = POOL_KEPT + 8
    all_in = threading.Barrier(busy)

    def use() -> None:
        with engine.connect() as conn:
            all_in.wait(30)  # every thread holds its own connection at once
            conn.exec_driver_sql("SELECT 1").fetchall()

    threads = [threading.Thread(target=use) for _ in range(busy)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert not any(t.is_alive() for t in threads)
        assert engine.pool.checkedin() == POOL_KEPT  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_a_quiet_store_reuses_its_most_recent_connection(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")
    try:
        engine = store._engine
        a, b = engine.connect(), engine.connect()
        raw_b = b.connection.dbapi_connection
        a.close()
        b.close()  # returned last
        with engine.connect() as again:
            assert again.connection.dbapi_connection is raw_b  # LIFO: the last one back
        assert engine.pool.checkedin() >= 2  # type: ignore[attr-defined]
    finally:
        store.close()
