"""Load test of GetSecretValue against Kustos's API, side by side with the kube-apiserver
serving GET of a native Secret, from the same load generator on the same machine.

    .venv/bin/python bench/api_load.py [--seconds 10] [--concurrency 1 8 32 128]
        [--modes wrk sigv4] [--processes 2] [--baseline OLD/operator] [--json out.json]
        [--profile]

Starts a private control plane (or uses $KUSTOS_TEST_KUBECONFIG), the real operator serving
the API over TLS, a ServiceAccount with a Kustos access key and a SecretAccessPolicy, and
RBAC allowing the same ServiceAccount to GET one native Secret. Each Kustos request is a
SigV4-signed GetSecretValue (authenticated, authorized, decrypted, audited); each apiserver
request is a GET with the ServiceAccount's bearer token (authenticated, RBAC-authorized).
The load generator: worker processes x threads, one keep-alive HTTPS connection per thread,
closed loop (each thread sends its next request when the last answer arrived). Mode `wrk`
drives both servers with the C load generator `wrk` instead, each request carrying a
ServiceAccount bearer token (audience `kustos` for Kustos, TokenReview-cached; the default
audience for the apiserver), so the load generator costs little of the shared CPUs.
With --baseline, an older checkout's operator is measured in the same run ("before Np"), so
before/after/apiserver share one machine state. CPU per request is the operator's (and its
API worker processes') user+system time over the run divided by the requests served.
With --profile, cProfile measures the server's request path in-process (same store,
keyring, cluster, audit log) and prints where the time of one request goes.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _worker(target: dict[str, Any], threads: int, seconds: float, out: Any) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    context = ssl.create_default_context(cafile=target["ca"])
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def run() -> None:
        conn = http.client.HTTPSConnection(target["host"], target["port"], context=context)
        mine: list[float] = []
        bad = 0
        body = target.get("body", "").encode()
        while time.perf_counter() < deadline:
            headers = dict(target["headers"])
            if target["kind"] == "kustos":
                request = AWSRequest(method="POST", url=target["url"], data=body, headers=headers)
                SigV4Auth(
                    Credentials(target["akid"], target["secret"]), "secretsmanager", "test"
                ).add_auth(request)
                headers = dict(request.headers)
            start = time.perf_counter()
            conn.request(target["method"], target["path"], body=body or None, headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - start)
            if resp.status != 200:
                bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((latencies, errors[0]))


def load(target: dict[str, Any], concurrency: int, seconds: float) -> dict[str, float]:
    procs_n = min(concurrency, max(1, (os.cpu_count() or 2) // 2), 8)
    per = [concurrency // procs_n + (1 if i < concurrency % procs_n else 0) for i in range(procs_n)]
    queue: Any = mp.get_context("fork").Queue()
    procs = [
        mp.get_context("fork").Process(target=_worker, args=(target, n, seconds, queue))
        for n in per
    ]
    for p in procs:
        p.start()
    latencies: list[float] = []
    errors = 0
    for _ in procs:
        got, bad = queue.get()
        latencies.extend(got)
        errors += bad
    for p in procs:
        p.join()
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "n": len(latencies),
        "errors": errors,
    }


def profile_request_path(world: Any, ident: Any, arn: str, n: int = 400) -> list[str]:
    """cProfile of `n` GetSecretValue requests through the server's request path (authenticate,
    validate, authorize, read, decrypt, audit) in this process, on the same store, keyring,
    cluster and audit log as the operator; HTTP/TLS are measured by the load runs instead."""
    import cProfile
    import pstats
    import uuid

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from multidict import CIMultiDict

    from kustos.api.server import ApiBackend, handle
    from kustos.config import Settings
    from kustos.models.request import RequestView
    from kustos.services.factory import Services

    os.environ.update(
        {k: v for k, v in world.runner.env.items() if k.startswith(("KUSTOS_", "KUBECONFIG"))}
    )
    store = world.runner.store_path
    os.environ["KUSTOS_STORE_URL"] = f"sqlite:///{store}"
    services = Services.build(Settings.from_env())
    backend = ApiBackend(services.access, services.secrets_api)
    body = json.dumps({"SecretId": arn}).encode()

    def one() -> None:
        request = AWSRequest(
            method="POST",
            url=world.endpoint + "/",
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "secretsmanager.GetSecretValue",
            },
        )
        SigV4Auth(
            Credentials(ident.access_key_id, ident.secret_access_key), "secretsmanager", "test"
        ).add_auth(request)
        headers = CIMultiDict(request.headers.items())
        headers["Host"] = f"127.0.0.1:{world.port}"
        view = RequestView("POST", "/", "", headers, body, "127.0.0.1", "https")
        status, _ = handle(backend, view, str(uuid.uuid4()))
        assert status == 200, _

    for _ in range(20):
        one()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(n):
        one()
    profiler.disable()
    per_request = (time.perf_counter() - started) / n * 1000
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    phases = {  # label: [(file suffix, function)], cumulative time
        "authenticate (SigV4 verify, key lookup)": [
            ("services/access/authorize.py", "authenticate")
        ],
        "validate (botocore model)": [("api/protocol.py", "parse_params")],
        "authorize (policies)": [("services/api/call.py", "authorize")],
        "store reads (secret by ARN, AWSCURRENT version)": [
            ("services/api/ids.py", "resolve"),
            ("services/core/secrets.py", "version"),
        ],
        "decrypt (envelope open)": [("services/core/secrets.py", "open")],
        "audit record (durable, hash-chained)": [("services/api/call.py", "commit_point")],
        "LastAccessedDate (daily write)": [("services/api/read.py", "_touch")],
        "(load generator's SigV4 signing, excluded)": [("botocore/auth.py", "add_auth")],
    }
    rows = [f"per request, in-process (no HTTP/TLS), under cProfile: {per_request:.2f} ms"]
    for label, wanted in phases.items():
        cumulative = sum(
            v[3] for k, v in raw.items() if any(k[0].endswith(f) and k[2] == fn for f, fn in wanted)
        )
        rows.append(f"| {label} | {cumulative / n * 1000:.2f} ms |")
    services.close()
    return rows


def process_cpu(root: int) -> float:
    """CPU seconds (user + system) of process `root` and its live children (API workers)."""
    pids, total = {root}, 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            pids.add(int(stat.parent.name))
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:13])
    return total / os.sysconf("SC_CLK_TCK")


class Kustos:
    """One operator serving the API, with a secret and a caller in its own namespace."""

    def __init__(self, cluster: Any, label: str, source: str | None, processes: int) -> None:
        from tests.api_fixture import start_api_world
        from tests.kube_helpers import new_namespace

        env = {"KUSTOS_API_PROCESSES": str(processes)}
        if source:  # another checkout's operator/ (the "before" side)
            env["PYTHONPATH"] = source
        self.label = label
        self.world = start_api_world(cluster, Path(tempfile.mkdtemp(prefix="kustos-bench-")), **env)
        self.ns = new_namespace(cluster, "bench")
        ident = self.world.identity(self.ns)
        arn = self.world.client(ident).create_secret(
            Name="bench/db", SecretString=json.dumps({"username": "app", "password": "x" * 32})
        )["ARN"]
        self.ident, self.arn = ident, arn
        token = cluster.kubectl(
            "create", "token", "app", "-n", self.ns, "--audience=kustos", "--duration=2h"
        ).stdout.strip()
        base = {
            "host": "127.0.0.1",
            "port": self.world.port,
            "ca": str(self.world.ca_path),
            "method": "POST",
            "path": "/",
            "url": self.world.endpoint + "/",
            "body": json.dumps({"SecretId": arn}),
            "headers": {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "secretsmanager.GetSecretValue",
            },
        }
        self.sigv4 = {
            **base,
            "kind": "kustos",
            "akid": ident.access_key_id,
            "secret": ident.secret_access_key,
        }
        self.bearer = {
            **base,
            "kind": "plain",
            "headers": {**base["headers"], "Authorization": f"Bearer {token}"},
        }

    @property
    def pid(self) -> int:
        assert self.world.runner.proc is not None
        return self.world.runner.proc.pid

    def stop(self) -> None:
        self.world.runner.stop()


def run(
    target: dict[str, Any], mode: str, c: int, seconds: float, workdir: Path, pid: int | None = None
) -> dict[str, float]:
    """One closed-loop run; `mode` "wrk" (C load generator) or "python" (botocore SigV4
    signing, or plain requests, in worker processes). Adds CPU ms per request of `pid`."""
    cpu = process_cpu(pid) if pid else 0.0
    if mode == "wrk":
        from bench.wrk import run_wrk

        url = f"https://{target['host']}:{target['port']}{target['path']}"
        got = run_wrk(
            url,
            target["method"],
            dict(target["headers"]),
            target.get("body", "").encode(),
            c,
            seconds,
            workdir,
            threads=min(2, c),
        )
    else:
        got = load(target, c, seconds)
    if pid:
        got["cpu_ms"] = (process_cpu(pid) - cpu) / max(1, got["n"]) * 1000
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["wrk", "sigv4"],
        choices=["wrk", "sigv4"],
        help="wrk: bearer tokens on both sides, C load generator; sigv4: "
        "botocore-signed GetSecretValue vs bearer GET, Python generator",
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[2],
        help="KUSTOS_API_PROCESSES of the operator under test (several: one "
        "operator each, all measured)",
    )
    parser.add_argument(
        "--baseline",
        default="",
        help="an older checkout's operator/ directory, measured in the same "
        "run as 'before Np' (N: --baseline-processes)",
    )
    parser.add_argument(
        "--baseline-processes",
        type=int,
        default=1,
        help="KUSTOS_API_PROCESSES of the --baseline operator",
    )
    parser.add_argument("--json", default="", help="write every figure to this file")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    from bench.wrk import wrk_available
    from tests.cluster_fixture import KubeCluster, _kubectl_binary, ensure_cluster

    if "wrk" in args.modes and not wrk_available():
        raise SystemExit("wrk not found (Debian: apt-get install wrk), or pass --modes sigv4")
    cluster = KubeCluster(ensure_cluster(), _kubectl_binary())
    cluster.apply_crds()
    sides = [Kustos(cluster, f"after {n}p", None, n) for n in args.processes]
    if args.baseline:
        n = args.baseline_processes
        sides.insert(0, Kustos(cluster, f"before {n}p", args.baseline, n))
    workdir = Path(tempfile.mkdtemp(prefix="kustos-bench-wrk-"))
    try:
        ns = sides[-1].ns
        cluster.kubectl(
            "create",
            "secret",
            "generic",
            "native",
            "-n",
            ns,
            "--from-literal=username=app",
            f"--from-literal=password={'x' * 32}",
        )
        cluster.kubectl(
            "create",
            "role",
            "read-native",
            "-n",
            ns,
            "--verb=get",
            "--resource=secrets",
            "--resource-name=native",
        )
        cluster.kubectl(
            "create",
            "rolebinding",
            "read-native",
            "-n",
            ns,
            "--role=read-native",
            f"--serviceaccount={ns}:app",
        )
        token = cluster.kubectl("create", "token", "app", "-n", ns, "--duration=2h").stdout.strip()
        kubeconfig = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").stdout)
        server = kubeconfig["clusters"][0]["cluster"]
        kube_ca = workdir / "kube-ca.crt"
        kube_ca.write_bytes(base64.b64decode(server["certificate-authority-data"]))
        host, _, port = server["server"].removeprefix("https://").partition(":")
        kube = {
            "kind": "kube",
            "host": host,
            "port": int(port),
            "ca": str(kube_ca),
            "method": "GET",
            "path": f"/api/v1/namespaces/{ns}/secrets/native",
            "headers": {"Authorization": f"Bearer {token}", "Accept": "application/json"},
        }
        load_avg = os.getloadavg()
        print(
            f"machine: {os.cpu_count()} CPUs, {sys.version.split()[0]}, "
            f"{args.seconds:.0f}s per run, load average at start {load_avg[0]:.1f}; "
            f"'after Np': the current code serving with N API processes"
        )
        results: list[dict[str, Any]] = []
        for mode in args.modes:
            gen = "wrk" if mode == "wrk" else "python"
            for side in sides:  # warm up (caches, connections, token reviews)
                run(side.bearer if mode == "wrk" else side.sigv4, gen, 4, 2.0, workdir)
            run(kube, gen, 4, 2.0, workdir)
            auth = (
                "bearer token on both sides, wrk"
                if mode == "wrk"
                else "Kustos SigV4 / apiserver bearer, Python load generator"
            )
            print(f"\n### {auth}\n")
            cols = " | ".join(f"Kustos {s.label} rps | p50 | p99 | CPU ms/req" for s in sides)
            after = [s for s in sides if s.label.startswith("after")]
            ratios = " | ".join(f"{s.label} / apiserver" for s in after)
            print(f"| concurrency | {cols} | apiserver rps | p50 | p99 | {ratios} |")
            print("|---" * (1 + 4 * len(sides) + 3 + len(after)) + "|")
            for c in args.concurrency:
                row: dict[str, Any] = {"mode": mode, "concurrency": c}
                cells = []
                for side in sides:
                    got = run(
                        side.bearer if mode == "wrk" else side.sigv4,
                        gen,
                        c,
                        args.seconds,
                        workdir,
                        side.pid,
                    )
                    row[side.label] = got
                    cells.append(
                        f"{got['rps']:.0f} | {got['p50']:.1f} | {got['p99']:.1f} | "
                        f"{got['cpu_ms']:.2f}"
                    )
                    if got["errors"]:
                        print(f"errors ({side.label}): {got['errors']:.0f}")
                got = run(kube, gen, c, args.seconds, workdir)
                row["apiserver"] = got
                ratio = " | ".join(f"{row[s.label]['rps'] / got['rps']:.2f}" for s in after)
                print(
                    f"| {c} | {' | '.join(cells)} | {got['rps']:.0f} | {got['p50']:.1f} | "
                    f"{got['p99']:.1f} | {ratio} |",
                    flush=True,
                )
                results.append(row)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "seconds": args.seconds,
                        "sides": [s.label for s in sides],
                        "load_average": [load_avg[0], os.getloadavg()[0]],
                        "results": results,
                    },
                    indent=1,
                )
            )
        if args.profile:
            side = sides[-1]
            rows = profile_request_path(side.world, side.ident, side.arn)
            print(f"\ncProfile of the request path: {rows[0]}")
            print("| phase (cumulative) | per request |\n|---|---|")
            print("\n".join(rows[1:]))
    finally:
        for side in sides:
            side.stop()


if __name__ == "__main__":
    main()
