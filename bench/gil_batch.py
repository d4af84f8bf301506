"""Why the audit appender inserts a batch in one statement: a batch's commit time with a
thread holding the GIL beside it, executemany (one driver step per row) against one
multi-row INSERT (one step), on a SQLite file shaped like the audit table (15 columns,
8 secondary indexes, WAL, synchronous=FULL) at the API's switch interval.

    .venv/bin/python bench/gil_batch.py [--rows 16] [--batches 200]

The busy thread stands in for the event loop serving requests: each time the driver lets
go of the GIL around a step, getting it back waits up to the switch interval."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

from kustos.api.server import GIL_SWITCH_SECONDS

COLUMNS = 15


def _table(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"CREATE TABLE t ({', '.join(f'c{i}' for i in range(COLUMNS))})")
    for i in range(8):
        conn.execute(f"CREATE INDEX i{i} ON t (c{i + 1})")
    return conn


def _batch(conn: sqlite3.Connection, shape: str, rows: int, n: int) -> None:
    values = [tuple(f"v{n}-{r}-{c}" for c in range(COLUMNS)) for r in range(rows)]
    one = f"({', '.join('?' * COLUMNS)})"
    conn.execute("BEGIN IMMEDIATE")
    if shape == "executemany":
        conn.executemany(f"INSERT INTO t VALUES {one}", values)  # noqa: S608 (constants)
    else:
        flat = [field for row in values for field in row]
        conn.execute(f"INSERT INTO t VALUES {', '.join([one] * rows)}", flat)  # noqa: S608
    conn.execute("COMMIT")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    conn = _table(Path(tempfile.mkdtemp(prefix="kustos-gil-")) / "audit.db")
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(200))

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    n = 0
    print(f"{args.rows} rows per batch, a busy thread beside, switch interval {GIL_SWITCH_SECONDS}")
    print("| shape | p50 ms | p99 ms |\n|---|---|---|")
    for shape in ("executemany", "one INSERT", "executemany", "one INSERT"):
        took = []
        for _ in range(args.batches):
            n += 1
            started = time.perf_counter()
            _batch(conn, shape, args.rows, n)
            took.append((time.perf_counter() - started) * 1000)
        took.sort()
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
        print(f"| {shape} | {took[len(took) // 2]:.2f} | {p99:.2f} |")
    stop.set()
    thread.join()


if __name__ == "__main__":
    main()
