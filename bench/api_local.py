"""The API server's request path without a cluster, for profiling and quick A/B runs.

    .venv/bin/python bench/api_local.py [--seconds 5] [--concurrency 32] [--processes 1]
                                        [--py-spy out.svg|out.txt] [--no-audit] [--sigv4]

Serves the real request path and aiohttp app without a cluster (`tests/local_api.py`: two
stand-ins, for the policy source and TokenReview) in one or more processes on one temporary
SQLite store (plain HTTP: TLS is measured by `api_load.py`), and drives it with `wrk`
(bearer token; with --sigv4, one GetSecretValue signed by botocore with the store's access
key and replayed: SigV4 verification runs in full on every request, and the signature stays
valid for the 5 minutes of its X-Amz-Date). Prints rps, p50/p99 and the server's CPU per
request (from /proc). With
--py-spy, py-spy samples the first server process (the thread holding the GIL) while the load
runs and writes a flame graph (SVG) or, for `.txt`, collapsed stacks. Not a test: run on
demand. `api_load.py` is the published benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The Kustos source to serve (another checkout's `operator/` for an A/B run).
SOURCE = Path(os.environ.get("KUSTOS_BENCH_SOURCE", REPO / "operator"))
sys.path.insert(0, str(SOURCE))
sys.path.insert(0, str(REPO))

from tests.local_api import bearer_headers, free_port, prepare, wait_up  # noqa: E402


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes `pids` (and their reaped children), from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def sigv4_headers(port: int, body: bytes, info: dict[str, str]) -> dict[str, str]:
    """The headers of one botocore-signed GetSecretValue (region `test`), for replay."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {k: v for k, v in bearer_headers().items() if k != "Authorization"}
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}/", data=body, headers=headers)
    SigV4Auth(Credentials(info["akid"], info["secret"]), "secretsmanager", "test").add_auth(request)
    return dict(request.headers.items())


def run_wrk(
    port: int,
    body: bytes,
    concurrency: int,
    seconds: float,
    workdir: Path,
    headers: dict[str, str],
    threads: int = 1,
) -> dict[str, float]:
    from bench.wrk import run_wrk as wrk

    return wrk(
        f"http://127.0.0.1:{port}/",
        "POST",
        headers,
        body,
        concurrency,
        seconds,
        workdir,
        threads=threads,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--py-spy", default="")
    parser.add_argument(
        "--sigv4",
        action="store_true",
        help="SigV4 (one signed request replayed) instead of a bearer token",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kustos-local-"))
    store_path = workdir / "store.db"
    info = prepare(store_path)
    body = json.dumps({"SecretId": info["arn"]}).encode()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{SOURCE}:{REPO}"}
    server = str(REPO / "tests" / "local_api.py")
    procs = [
        subprocess.Popen(
            [sys.executable, server, str(store_path), str(port), "0" if args.no_audit else "1"],
            env=env,
        )
        for _ in range(args.processes)
    ]
    try:
        wait_up(port, body)
        headers = sigv4_headers(port, body, info) if args.sigv4 else bearer_headers()
        run_wrk(port, body, 8, 1.0, workdir, headers)  # warm up
        spy = None
        if args.py_spy:
            fmt = "raw" if args.py_spy.endswith(".txt") else "flamegraph"
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "-p",
                    str(procs[0].pid),
                    "-o",
                    args.py_spy,
                    "-f",
                    fmt,
                    "-d",
                    str(int(args.seconds)),
                    "-r",
                    "200",
                    "--nonblocking",
                    "--gil",
                ],
                stdout=subprocess.DEVNULL,
            )
        pids = [p.pid for p in procs]
        for c in args.concurrency:
            cpu = cpu_seconds(pids)
            r = run_wrk(port, body, c, args.seconds, workdir, headers)
            per = (cpu_seconds(pids) - cpu) / max(1, r["n"]) * 1000
            auth = "sigv4" if args.sigv4 else "bearer"
            print(
                f"c={c} processes={args.processes} audit={not args.no_audit} {auth}: "
                f"{r['rps']:.0f} rps, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                f"server CPU {per:.2f} ms/request, errors {r['errors']:.0f}",
                flush=True,
            )
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
