"""Micro-benchmark of envelope encryption and the SQLite store.

    .venv/bin/python bench/crypto_store.py [--seconds 1.0]

Prints operations per second for seal/open/rewrap at a few payload sizes, and for
add_version / get_version (by stage and by id) on a temporary SQLite file, as Markdown rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kustos.crypto import Keyring, open_sealed, rewrap, seal
from kustos.models.records import AWSCURRENT, SealedPayload, SecretRecord
from kustos.store import SqlStore

ARN = "arn:kustos:secretsmanager:bench:default:secret:bench/db-AbCdEf"


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn`, run repeatedly for about `seconds`."""
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            fn()
        done += 20
    return done / elapsed


def bench_crypto(seconds: float) -> list[tuple[str, float]]:
    ring = Keyring.generate()
    newer = ring.with_new_key()
    rows = []
    for size in (64, 4096, 65536):
        value = os.urandom(size)
        sealed = seal(value, arn=ARN, version_id="v1", keyring=ring)

        def do_seal(value: bytes = value) -> object:
            return seal(value, arn=ARN, version_id="v1", keyring=ring)

        def do_open(sealed: SealedPayload = sealed) -> object:
            return open_sealed(sealed, arn=ARN, version_id="v1", keyring=ring)

        rows.append((f"seal {size} B", rate(do_seal, seconds)))
        rows.append((f"open {size} B", rate(do_open, seconds)))
    rows.append(("rewrap (any size)", rate(lambda: rewrap(sealed, newer), seconds)))
    return rows


def bench_store(seconds: float, directory: Path) -> list[tuple[str, float]]:
    store = SqlStore(f"sqlite:///{directory / 'bench.db'}")
    now = datetime.now(UTC)
    store.create_secret(SecretRecord(ARN, "default", "bench/db", now, now))
    payload = seal(os.urandom(256), arn=ARN, version_id="v", keyring=Keyring.generate())

    def add() -> None:
        store.add_version(ARN, uuid.uuid4().hex, payload, [AWSCURRENT], datetime.now(UTC))

    rows = [("add_version (AWSCURRENT moves, fsync)", rate(add, seconds))]
    current = store.get_version(ARN)
    assert current is not None
    vid = current.version_id
    count = len(store.list_versions(ARN))
    rows.append(("get_version by stage", rate(lambda: store.get_version(ARN), seconds)))
    rows.append(
        ("get_version by id", rate(lambda: store.get_version(ARN, version_id=vid), seconds))
    )
    print(f"(the secret held {count} versions when reads were measured)")
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_crypto(args.seconds) + bench_store(args.seconds, Path(tmp))
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print("| operation | ops/s |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value:,.0f} |")


if __name__ == "__main__":
    main()
