"""Benchmark of the audit log on a temporary SQLite file (run on demand).

    .venv/bin/python bench/audit.py [--records 1000000] [--seconds 3] [--dir /tmp]

Prints Markdown rows: record() throughput with group commit at concurrency 1 and 32; the time
to fill and to verify N records; lookup latency over N records (by secret, event name,
denied, user); and a service-level GetSecretValue-like loop (find the secret, read AWSCURRENT,
decrypt, audit) with auditing on vs off, as a ratio.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kustos.crypto import Keyring
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.models.sensitive import SecretValue
from kustos.services.audit.event import to_row
from kustos.services.audit.service import AuditService
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore
from kustos.store.audit import AuditQuery, AuditStore

KEYRING = Keyring.generate()
CALLERS = [Principal.service_account(f"team-{i % 20}", f"app-{i}") for i in range(200)]


def event(i: int, when: datetime | None = None) -> AuditEvent:
    who = CALLERS[i % len(CALLERS)]
    ns = f"team-{i % 20}"
    return AuditEvent(
        event_name="GetSecretValue" if i % 10 else "DescribeSecret",
        principal=who,
        read_only=True,
        namespace=ns,
        secret_arn=f"arn:kustos:secretsmanager:bench:{ns}:secret:svc-{i % 1000}/db-AbCdEf",
        secret_name=f"svc-{i % 1000}/db",
        source_ip="10.1.2.3",
        user_agent="aws-sdk-java/2.25",
        event_time=when or datetime.now(UTC),
        request_parameters={"SecretId": f"svc-{i % 1000}/db", "VersionStage": "AWSCURRENT"},
        error_code="AccessDeniedException" if i % 100 == 7 else None,
    )


def throughput(fn: Callable[[int], None], threads: int, seconds: float) -> float:
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def work(n: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            fn(n * 1_000_000 + i)
            i += 1
        done[n] = i

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done) / (time.perf_counter() - start)


def bench_record(workdir: Path, seconds: float) -> None:
    store = SqlStore(f"sqlite:///{workdir / 'record.db'}")
    audit = AuditService(AuditStore(store.engine), "bench")
    for threads in (1, 32):
        rate = throughput(lambda i: audit.record(event(i)), threads, seconds)
        print(f"| record() durable, concurrency {threads} | {rate:,.0f} records/s |")
    audit.close()
    store.close()


def bench_million(workdir: Path, n: int) -> None:
    store = SqlStore(f"sqlite:///{workdir / 'million.db'}")
    astore = AuditStore(store.engine)
    audit = AuditService(astore, "bench", lambda: KEYRING)
    t0 = datetime.now(UTC) - timedelta(days=30)
    start = time.perf_counter()
    for base in range(0, n, 10_000):
        rows = [
            to_row(event(i, t0 + timedelta(seconds=i)), "bench")
            for i in range(base, min(n, base + 10_000))
        ]
        astore.append(rows)
    audit.sign_digest()
    print(f"| fill {n:,} records (batches of 10,000) | {time.perf_counter() - start:.1f} s |")
    size = sum(p.stat().st_size for p in workdir.glob("million.db*")) / 2**20
    print(f"| database size for {n:,} records (incl. indexes) | {size:,.0f} MiB |")
    start = time.perf_counter()
    report = audit.verify()
    assert report.ok, report.findings[:3]
    assert report.records == n
    print(f"| verify {n:,} records + digest | {time.perf_counter() - start:.1f} s |")
    queries = {
        "by secret ARN": lambda i: AuditQuery(
            secret_arn=f"arn:kustos:secretsmanager:bench:team-{i % 20}:secret:svc-{i}/db-AbCdEf"
        ),
        "by secret name + namespace": lambda i: AuditQuery(
            secret_name=f"svc-{i}/db", namespace=f"team-{i % 20}"
        ),
        "by event name": lambda i: AuditQuery(event_name="DescribeSecret"),
        "denied": lambda i: AuditQuery(denied=True),
        "by user": lambda i: AuditQuery(user=CALLERS[i % 200].username),
        "by secret + event name + since (newer half)": lambda i: AuditQuery(
            secret_arn=f"arn:kustos:secretsmanager:bench:team-{i % 20}:secret:svc-{i}/db-AbCdEf",
            event_name="DescribeSecret" if i % 10 == 0 else "GetSecretValue",
            since=(t0 + timedelta(seconds=n // 2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        ),
    }
    for label, make in queries.items():
        times = []
        for i in range(1, 41):
            start = time.perf_counter()
            found = astore.lookup(make(i * 17 % 1000))
            times.append((time.perf_counter() - start) * 1000)
            assert found, label
        median = statistics.median(times)
        print(
            f"| lookup over {n:,}, {label} (50 newest) | median {median:.2f} ms,"
            f" max {max(times):.2f} ms |"
        )
    audit.close()
    store.close()


def bench_service(workdir: Path, seconds: float) -> None:
    store = SqlStore(f"sqlite:///{workdir / 'service.db'}")
    secrets = SecretService(store, lambda: KEYRING, "bench")
    record = secrets.create("team-a", "prod/db")
    secrets.add_version(record, SecretValue('{"password":"' + "x" * 32 + '"}'))
    audit = AuditService(AuditStore(store.engine), "bench")
    who = CALLERS[0]

    def get_value(audited: bool) -> Callable[[int], None]:
        def call(i: int) -> None:
            rec = secrets.require("team-a", "prod/db")
            value = secrets.open(secrets.version(rec))
            if audited:
                audit.record(
                    AuditEvent(
                        event_name="GetSecretValue",
                        principal=who,
                        read_only=True,
                        namespace="team-a",
                        secret_arn=rec.arn,
                        secret_name=rec.name,
                        request_parameters={"SecretId": "prod/db"},
                        response_elements=None,
                    )
                )
            assert len(value) > 0

        return call

    for threads in (1, 8, 32):  # alternate off/on rounds so machine noise hits both
        offs, ons = [], []
        for _ in range(3):
            offs.append(throughput(get_value(False), threads, seconds))
            ons.append(throughput(get_value(True), threads, seconds))
        off, on = statistics.median(offs), statistics.median(ons)
        print(
            f"| GetSecretValue-like (service level), concurrency {threads} | audit off "
            f"{off:,.0f}/s, on {on:,.0f}/s, ratio {on / off:.2f} (medians of 3 rounds) |"
        )
    audit.close()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--dir", default=None, help="where the temporary databases go")
    parser.add_argument("--only", choices=["record", "million", "service"])
    args = parser.parse_args()
    print(
        f"<!-- {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()} -->"
    )
    print("| What | Result |\n|---|---|")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        if args.only in (None, "record"):
            bench_record(Path(tmp), args.seconds)
        if args.only in (None, "service"):
            bench_service(Path(tmp), args.seconds)
        if args.only in (None, "million"):
            bench_million(Path(tmp), args.records)


if __name__ == "__main__":
    main()
