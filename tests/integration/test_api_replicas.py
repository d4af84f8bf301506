"""Several API server processes on one SQLite store (what `kustos api --processes N` runs):
no cache outlives a write made elsewhere, revocations take effect within their bound, and
the audit log stays one verifiable chain.

The servers are real processes serving the real aiohttp app and request path
(`tests/local_api.py`: the cluster is stood in for by a policy file and a token reviewer);
requests are real HTTP, bearer-token or SigV4-signed by botocore.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.local_api import NAMESPACE, POLICY, bearer_headers, free_port, prepare, wait_up

SERVER = Path(__file__).resolve().parents[1] / "local_api.py"
#: The documented bounds (docs/benchmarks.md, "What the caches may not do").
POLICY_BOUND_S = 3.0
KEY_BOUND_S = 10.0


@dataclass
class Replicas:
    store: Path
    info: dict[str, str]
    ports: list[int]
    procs: list[subprocess.Popen[bytes]]

    def call(self, port: int, *, sigv4: bool = False) -> tuple[int, dict[str, Any]]:
        import http.client

        body = json.dumps({"SecretId": self.info["arn"]}).encode()
        headers = bearer_headers()
        if sigv4:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials

            headers.pop("Authorization")
            request = AWSRequest(
                method="POST", url=f"http://127.0.0.1:{port}/", data=body, headers=headers
            )
            SigV4Auth(
                Credentials(self.info["akid"], self.info["secret"]), "secretsmanager", "test"
            ).add_auth(request)
            headers = dict(request.headers.items())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", "/", body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    store = tmp_path / "store.db"
    info = prepare(store)
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen([sys.executable, str(SERVER), str(store), str(port), "1"])
        for port in ports
    ]
    try:
        body = json.dumps({"SecretId": info["arn"]}).encode()
        for port in ports:
            wait_up(port, body)
        yield Replicas(store, info, ports, procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _write_version(store: Path, value: str) -> str:
    """A new AWSCURRENT version written by another process (as replica A's write would be)."""
    code = (
        "import json, sys; from pathlib import Path; from tests.local_api import build_services;"
        "from kustos.models.sensitive import SecretValue;"
        "_, x = build_services(Path(sys.argv[1]));"
        "r = x['secrets'].find('bench', 'bench/db');"
        "print(x['secrets'].add_version(r, SecretValue(sys.argv[2])).version_id);"
        "x['audit'].close(); x['store'].close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store), value],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=SERVER.parents[1],
    )
    return out.stdout.strip().splitlines()[-1]


def test_a_write_elsewhere_is_read_at_once_by_every_replica(replicas: Replicas) -> None:
    a, b = replicas.ports
    for port in (a, b):  # both caches warm
        for _ in range(3):
            assert replicas.call(port)[0] == 200
    old = replicas.call(b)[1]
    version = _write_version(replicas.store, "rotated-value-1")
    for port in (b, a):
        status, answer = replicas.call(port)
        assert status == 200
        assert answer["VersionId"] == version != old["VersionId"]
        assert answer["SecretString"] == "rotated-value-1"


def test_a_write_during_load_is_seen_by_the_next_read(replicas: Replicas) -> None:
    """Reads under load on both replicas: none started after the write returns the old value."""
    a, b = replicas.ports
    stop = threading.Event()
    written: list[float] = []
    seen: list[tuple[float, str]] = []

    def hammer(port: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            status, answer = replicas.call(port)
            assert status == 200
            seen.append((started, answer["SecretString"]))

    def after() -> list[str]:
        return [value for started, value in list(seen) if written and started > written[0]]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(hammer, port) for port in (a, b) * 4]
        _until(lambda: len(seen) >= 50, 30)  # the load is on
        _write_version(replicas.store, "rotated-under-load")
        written.append(time.monotonic())
        _until(lambda: len(after()) >= 50, 30)
        stop.set()
        for future in futures:
            future.result()
    assert set(after()) == {"rotated-under-load"}
    assert {value for _, value in seen} - {"rotated-under-load"}, "no read before the write"


def _listens(pid: int, port: int) -> bool:
    """Process `pid` has a listening socket on `port` (from /proc: Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    links = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            links.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            continue
    return any(f"socket:[{inode}]" in links for inode in inodes)


def _until(predicate: Any, bound: float) -> float:
    """Seconds until `predicate()` held; fails past `bound` + a margin for a busy machine."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > bound + 5:
            raise AssertionError(f"not within {bound} s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_removed_policy_denies_on_every_replica_within_its_bound(replicas: Replicas) -> None:
    a, b = replicas.ports
    assert replicas.call(a)[0] == replicas.call(b)[0] == 200
    other = {
        **POLICY,
        "metadata": {**POLICY["metadata"], "uid": "u2", "name": "other"},
        "spec": {
            **POLICY["spec"],
            "subjects": [{"kind": "ServiceAccount", "name": "someone-else"}],
        },
    }
    replicas.store.with_suffix(".policies.json").write_text(json.dumps([other]))
    for port in (a, b):
        took = _until(
            lambda p=port: replicas.call(p)[1].get("__type") == "AccessDeniedException",
            POLICY_BOUND_S,
        )
        assert took <= POLICY_BOUND_S + 1.0


def test_a_deleted_access_key_stops_on_every_replica_within_its_bound(
    replicas: Replicas,
) -> None:
    from kustos.store import SqlStore
    from kustos.store.access_keys import AccessKeyStore

    a, b = replicas.ports
    assert replicas.call(a, sigv4=True)[0] == replicas.call(b, sigv4=True)[0] == 200
    store = SqlStore(f"sqlite:///{replicas.store}")
    try:
        assert AccessKeyStore(store.engine).delete(replicas.info["akid"])
    finally:
        store.close()
    deleted = time.monotonic()
    for port in (a, b):
        _until(
            lambda p=port: (
                replicas.call(p, sigv4=True)[1].get("__type") == "UnrecognizedClientException"
            ),
            KEY_BOUND_S,
        )
    assert time.monotonic() - deleted <= KEY_BOUND_S + 1.0


def test_the_audit_log_stays_one_chain_across_replicas(replicas: Replicas) -> None:
    from kustos.store import SqlStore
    from kustos.store.audit import AuditStore

    a, b = replicas.ports
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: replicas.call((a, b)[i % 2])[0], range(200)))
    assert statuses == [200] * 200
    store = SqlStore(f"sqlite:///{replicas.store}")
    try:
        audit = AuditStore(store.engine)
        rows = list(audit.iter_chain())
    finally:
        store.close()
    from kustos.store.audit import GENESIS, chain_hash

    prev, seqs = GENESIS, []
    for row in rows:
        seqs.append(row[0])
        assert row[13] == prev and row[14] == chain_hash(prev, row[0], row[1:12], row[12])
        prev = row[14]
    assert seqs == list(range(1, len(rows) + 1))
    reads = [r for r in rows if r[3] == "GetSecretValue" and r[5] == NAMESPACE]
    assert len(reads) >= 200


def _refused_under_load(
    replicas: Replicas, change: Any, code: str, bound: float, *, sigv4: bool = False
) -> None:
    """Eight threads read through both replicas while `change()` runs; once `bound` seconds
    (plus 1 s for the refresh itself) have passed since it returned, no request that starts
    is answered with a value, and every one is refused with `code`."""
    a, b = replicas.ports
    stop = threading.Event()
    changed: list[float] = []
    seen: list[tuple[float, int, str]] = []

    def hammer(port: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            status, answer = replicas.call(port, sigv4=sigv4)
            seen.append((started, status, str(answer.get("__type", ""))))

    def late() -> list[tuple[int, str]]:
        return [
            (s, t) for started, s, t in list(seen) if changed and started > changed[0] + bound + 1.0
        ]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(hammer, port) for port in (a, b) * 4]
        _until(lambda: len(seen) >= 50, 60)  # the load is on
        change()
        changed.append(time.monotonic())
        _until(lambda: len(late()) >= 50, bound + 60)
        stop.set()
        for future in futures:
            future.result()
    assert any(status == 200 for started, status, _ in seen if started < changed[0])
    assert set(late()) == {(400, code)}


def test_a_removed_policy_denies_under_load_within_its_bound(replicas: Replicas) -> None:
    other = {
        **POLICY,
        "metadata": {**POLICY["metadata"], "uid": "u2", "name": "other"},
        "spec": {
            **POLICY["spec"],
            "subjects": [{"kind": "ServiceAccount", "name": "someone-else"}],
        },
    }
    path = replicas.store.with_suffix(".policies.json")
    _refused_under_load(
        replicas,
        lambda: path.write_text(json.dumps([other])),
        "AccessDeniedException",
        POLICY_BOUND_S,
    )


def test_a_revoked_principal_is_refused_under_load_within_its_bound(replicas: Replicas) -> None:
    from kustos.services.access.revocations import BOUND_SECONDS, RevocationService
    from kustos.store import SqlStore
    from kustos.store.revocations import RevocationStore

    def revoke() -> None:
        store = SqlStore(f"sqlite:///{replicas.store}")
        try:
            RevocationService(RevocationStore(store.engine)).revoke(
                f"arn:kustos:iam::{NAMESPACE}:serviceaccount/app", by="test"
            )
        finally:
            store.close()

    _refused_under_load(replicas, revoke, "UnrecognizedClientException", BOUND_SECONDS, sigv4=True)


@pytest.mark.timeout(900)  # four server starts on a loaded 2-CPU machine
def test_a_rolling_restart_of_the_replicas_fails_no_call(tmp_path: Path) -> None:
    """boto3 calls GetSecretValue in a loop (4 threads, SigV4) on one address served by two
    replicas (SO_REUSEPORT: the kernel spreads connections, as a Service does); each replica
    in turn gets a successor, then SIGTERM (the product's drain: `Connection: close` on every
    answer for 1 s, then in-flight requests finish). No call fails; botocore's own retries are
    counted, not hidden."""
    import boto3
    from botocore.config import Config

    store = tmp_path / "store.db"
    info = prepare(store)
    port = free_port()
    env = {**os.environ, "KUSTOS_API_DRAIN_SECONDS": "1"}
    body = json.dumps({"SecretId": info["arn"]}).encode()

    def replica() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, str(SERVER), str(store), str(port), "1"], env=env)
        wait_up(port, body)  # any replica answers on the shared port: also wait for this one
        _until(lambda: _listens(proc.pid, port), 180)  # (a Deployment waits for Ready)
        return proc

    old = [replica(), replica()]
    client = boto3.client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="test",
        aws_access_key_id=info["akid"],
        aws_secret_access_key=info["secret"],
        config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=8),
    )
    stop = threading.Event()
    calls, failures, retries = [0], [], [0]
    lock = threading.Lock()

    def loop() -> None:
        while not stop.is_set():
            try:
                answer = client.get_secret_value(SecretId=info["arn"])
                with lock:
                    calls[0] += 1
                    retries[0] += answer["ResponseMetadata"].get("RetryAttempts", 0)
            except Exception as exc:
                with lock:
                    calls[0] += 1
                    failures.append(type(exc).__name__)

    new: list[subprocess.Popen[bytes]] = []
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(loop) for _ in range(4)]
        try:
            _until(lambda: calls[0] >= 50, 60)
            for proc in old:  # a rolling update, one replica at a time (maxUnavailable 0)
                new.append(replica())
                before = calls[0]
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
                _until(lambda b=before: calls[0] >= b + 50, 60)  # served on afterwards
        finally:
            stop.set()
            for future in futures:
                future.result()
            for proc in old + new:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=30)
    print(
        f"\nROLLING RESTART: {calls[0]} GetSecretValue calls, {len(failures)} failed, "
        f"{retries[0]} retried by botocore"
    )
    assert failures == []
    assert all(proc.returncode == 0 for proc in old)  # drained and exited by themselves
