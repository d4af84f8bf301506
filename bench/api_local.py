"""The API server's request path without a cluster, for profiling and quick A/B runs.

    .venv/bin/python bench/api_local.py [--seconds 5] [--concurrency 32] [--mode bearer|sigv4]
                                        [--processes 1] [--py-spy out.svg] [--no-audit]

Builds the real services (SqlStore on a temporary SQLite file, keyring, AccessService with
SigV4 keys and token authentication, PolicyIndex, AuditService with group commit, SecretsApi)
with the cluster replaced by two stand-ins: the policy source returns one allow-all
SecretAccessPolicy, and the token reviewer accepts one token. Serves the real aiohttp app
(plain HTTP: TLS is measured by `api_load.py`) in child processes and drives it with `wrk`
(bearer token) or a Python SigV4 load generator. With --py-spy, py-spy samples the first
server process while the load runs and writes a flame graph (SVG) or, for `.txt`, the
top functions. Not a test: run on demand. `api_load.py` is the published benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The Kustos source to serve (another checkout's `operator/` for an A/B run).
SOURCE = Path(os.environ.get("KUSTOS_BENCH_SOURCE", REPO / "operator"))
sys.path.insert(0, str(SOURCE))
sys.path.insert(0, str(REPO))

TOKEN = "bench-token-" + "x" * 40  # a stand-in the fake reviewer accepts
NAMESPACE = "bench"
POLICY = {"metadata": {"name": "all", "namespace": NAMESPACE, "uid": "u1",
                       "resourceVersion": "1"},
          "spec": {"subjects": [{"kind": "ServiceAccount", "name": "app"}],
                   "policy": {"Version": "2012-10-17", "Statement": [
                       {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}}}


def build_services(store_path: Path, *, audit: bool = True) -> Any:
    """(backend, extras) wired as `Services` does, with the cluster stood in for."""
    from kustos.api.server import ApiBackend
    from kustos.crypto import Keyring
    from kustos.kube.access import TokenReviewResult
    from kustos.services.access import AccessService
    from kustos.services.access_keys import AccessKeyService
    from kustos.services.audit import AuditService
    from kustos.services.policies import PolicyIndex
    from kustos.services.secrets import SecretService
    from kustos.services.secrets_api import SecretsApi
    from kustos.services.tokens import TokenAuthenticator
    from kustos.store import SqlStore
    from kustos.store.access_keys import AccessKeyStore
    from kustos.store.audit import AuditStore

    keyring_file = store_path.with_suffix(".keyring.json")
    if keyring_file.exists():
        keyring = Keyring.from_secret_data(json.loads(keyring_file.read_text()))
    else:
        keyring = Keyring.generate()
        keyring_file.write_text(json.dumps(keyring.to_secret_data()))
    store = SqlStore(f"sqlite:///{store_path}")

    class Reviewer:
        def review_token(self, token: str, audiences: list[str]) -> TokenReviewResult:
            if token != TOKEN:
                return TokenReviewResult(False, error="invalid")
            return TokenReviewResult(True, f"system:serviceaccount:{NAMESPACE}:app", "uid-1",
                                     ("system:serviceaccounts",), tuple(audiences))

    keys = AccessKeyService(AccessKeyStore(store.engine), lambda: keyring)
    access = AccessService(TokenAuthenticator(Reviewer()), keys,
                           PolicyIndex(lambda: ([POLICY], [])), region="test")
    secrets = SecretService(store, lambda: keyring, "test")

    class NoAudit:
        def record(self, event: Any) -> None:
            return None

    sink: Any = AuditService(AuditStore(store.engine), "test", lambda: keyring) if audit \
        else NoAudit()
    api = SecretsApi(secrets, None, None, access, sink, None)  # type: ignore[arg-type]
    return ApiBackend(access, api), {"store": store, "keys": keys, "secrets": secrets,
                                     "audit": sink}


def prepare(store_path: Path) -> dict[str, str]:
    """One secret and one access key in a fresh store; returns what the clients need."""
    from kustos.models.sensitive import SecretValue

    _, extra = build_services(store_path)
    record = extra["secrets"].create(NAMESPACE, "bench/db", object_name="bench-db")
    extra["secrets"].add_version(record, SecretValue(json.dumps(
        {"username": "app", "password": "x" * 32})))
    issued = extra["keys"].create(NAMESPACE, "app")
    extra["audit"].close()
    extra["store"].close()
    return {"arn": record.arn, "akid": issued.record.access_key_id,
            "secret": issued.secret_access_key.reveal()}


def serve(store_path: Path, port: int, audit: bool) -> None:
    """One server process (SO_REUSEPORT, so several share the port)."""
    import asyncio

    from aiohttp import web

    from kustos.api.server import build_app

    backend, extra = build_services(store_path, audit=audit)

    async def main() -> None:
        runner = web.AppRunner(build_app(backend), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    if hasattr(extra["audit"], "close"):
        extra["audit"].close()
    extra["store"].close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, body: bytes) -> None:
    import http.client

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("POST", "/", body=body, headers=bearer_headers())
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return
            raise RuntimeError(f"server answered {resp.status}")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def bearer_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "secretsmanager.GetSecretValue"}


def run_wrk(port: int, body: bytes, concurrency: int, seconds: float, workdir: Path,
            threads: int = 1) -> dict[str, float]:
    from bench.wrk import run_wrk as wrk

    return wrk(f"http://127.0.0.1:{port}/", "POST", bearer_headers(), body, concurrency,
               seconds, workdir, threads=threads)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--py-spy", default="")
    parser.add_argument("--serve", nargs=3, metavar=("STORE", "PORT", "AUDIT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), args.serve[2] == "1")
        return
    workdir = Path(tempfile.mkdtemp(prefix="kustos-local-"))
    store_path = workdir / "store.db"
    info = prepare(store_path)
    body = json.dumps({"SecretId": info["arn"]}).encode()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{SOURCE}:{REPO}"}
    procs = [subprocess.Popen([sys.executable, __file__, "--serve", str(store_path), str(port),
                               "0" if args.no_audit else "1"], env=env)
             for _ in range(args.processes)]
    try:
        wait_up(port, body)
        run_wrk(port, body, 8, 1.0, workdir)  # warm up
        spy = None
        if args.py_spy:
            fmt = "raw" if args.py_spy.endswith(".txt") else "flamegraph"
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                    "-p", str(procs[0].pid), "-o", args.py_spy, "-f", fmt,
                                    "-d", str(int(args.seconds)), "-r", "200", "--nonblocking"],
                                   stdout=subprocess.DEVNULL)
        for c in args.concurrency:
            r = run_wrk(port, body, c, args.seconds, workdir)
            print(f"c={c} processes={args.processes} audit={not args.no_audit}: "
                  f"{r['rps']:.0f} rps, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                  f"errors {r['errors']:.0f}", flush=True)
        if spy is not None:
            spy.wait()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
