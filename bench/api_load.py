"""Load test of GetSecretValue against Kustos's API, side by side with the kube-apiserver
serving GET of a native Secret, from the same load generator on the same machine.

    .venv/bin/python bench/api_load.py [--seconds 10] [--concurrency 1 32] [--profile]

Starts a private control plane (or uses $KUSTOS_TEST_KUBECONFIG), the real operator serving
the API over TLS, a ServiceAccount with a Kustos access key and a SecretAccessPolicy, and
RBAC allowing the same ServiceAccount to GET one native Secret. Each Kustos request is a
SigV4-signed GetSecretValue (authenticated, authorized, decrypted, audited); each apiserver
request is a GET with the ServiceAccount's bearer token (authenticated, RBAC-authorized).
The load generator: worker processes x threads, one keep-alive HTTPS connection per thread,
closed loop (each thread sends its next request when the last answer arrived).
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
                request = AWSRequest(method="POST", url=target["url"], data=body,
                                     headers=headers)
                SigV4Auth(Credentials(target["akid"], target["secret"]), "secretsmanager",
                          "test").add_auth(request)
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
    per = [concurrency // procs_n + (1 if i < concurrency % procs_n else 0)
           for i in range(procs_n)]
    queue: Any = mp.get_context("fork").Queue()
    procs = [mp.get_context("fork").Process(target=_worker, args=(target, n, seconds, queue))
             for n in per]
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
    return {"rps": len(latencies) / seconds, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "n": len(latencies),
            "errors": errors}


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

    os.environ.update({k: v for k, v in world.runner.env.items() if k.startswith(("KUSTOS_",
                                                                                  "KUBECONFIG"))})
    store = world.runner.store_path
    os.environ["KUSTOS_STORE_URL"] = f"sqlite:///{store}"
    services = Services.build(Settings.from_env())
    backend = ApiBackend(services.access, services.secrets_api)
    body = json.dumps({"SecretId": arn}).encode()

    def one() -> None:
        request = AWSRequest(method="POST", url=world.endpoint + "/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "secretsmanager.GetSecretValue"})
        SigV4Auth(Credentials(ident.access_key_id, ident.secret_access_key), "secretsmanager",
                  "test").add_auth(request)
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
        "authenticate (SigV4 verify, key lookup)": [("services/access.py", "authenticate")],
        "validate (botocore model)": [("api/protocol.py", "parse_params")],
        "authorize (policies)": [("services/api_call.py", "authorize")],
        "store reads (secret by ARN, AWSCURRENT version)": [
            ("services/api_ids.py", "resolve"), ("services/secrets.py", "version")],
        "decrypt (envelope open)": [("services/secrets.py", "open")],
        "audit record (durable, hash-chained)": [("services/api_call.py", "commit_point")],
        "LastAccessedDate (daily write)": [("services/api_read.py", "_touch")],
        "(load generator's SigV4 signing, excluded)": [("botocore/auth.py", "add_auth")],
    }
    rows = [f"per request, in-process (no HTTP/TLS), under cProfile: {per_request:.2f} ms"]
    for label, wanted in phases.items():
        cumulative = sum(v[3] for k, v in raw.items()
                         if any(k[0].endswith(f) and k[2] == fn for f, fn in wanted))
        rows.append(f"| {label} | {cumulative / n * 1000:.2f} ms |")
    services.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    from tests.api_fixture import start_api_world
    from tests.cluster_fixture import KubeCluster, _kubectl_binary, ensure_cluster
    from tests.kube_helpers import new_namespace

    cluster = KubeCluster(ensure_cluster(), _kubectl_binary())
    cluster.apply_crds()
    world = start_api_world(cluster, Path(tempfile.mkdtemp(prefix="kustos-bench-")))
    try:
        ns = new_namespace(cluster, "bench")
        ident = world.identity(ns)
        client = world.client(ident)
        arn = client.create_secret(Name="bench/db", SecretString=json.dumps(
            {"username": "app", "password": "x" * 32}))["ARN"]
        cluster.kubectl("create", "secret", "generic", "native", "-n", ns,
                        "--from-literal=username=app", f"--from-literal=password={'x' * 32}")
        cluster.kubectl("create", "role", "read-native", "-n", ns, "--verb=get",
                        "--resource=secrets", "--resource-name=native")
        cluster.kubectl("create", "rolebinding", "read-native", "-n", ns, "--role=read-native",
                        f"--serviceaccount={ns}:app")
        token = cluster.kubectl("create", "token", "app", "-n", ns,
                                "--duration=1h").stdout.strip()
        kubeconfig = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").stdout)
        server = kubeconfig["clusters"][0]["cluster"]
        kube_ca = world.runner.workdir / "kube-ca.crt"
        kube_ca.write_bytes(base64.b64decode(server["certificate-authority-data"]))
        host, _, port = server["server"].removeprefix("https://").partition(":")
        kustos = {"kind": "kustos", "host": "127.0.0.1", "port": world.port,
                  "ca": str(world.ca_path), "method": "POST", "path": "/",
                  "url": world.endpoint + "/", "akid": ident.access_key_id,
                  "secret": ident.secret_access_key, "body": json.dumps({"SecretId": arn}),
                  "headers": {"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "secretsmanager.GetSecretValue"}}
        kube = {"kind": "kube", "host": host, "port": int(port), "ca": str(kube_ca),
                "method": "GET", "path": f"/api/v1/namespaces/{ns}/secrets/native",
                "headers": {"Authorization": f"Bearer {token}", "Accept": "application/json"}}
        for target in (kustos, kube):  # warm up (caches, connections)
            load(target, 4, 2.0)
        print(f"machine: {os.cpu_count()} CPUs, {sys.version.split()[0]}, "
              f"{args.seconds:.0f}s per run")
        print("| concurrency | Kustos GetSecretValue rps | p50 ms | p99 ms | kube-apiserver GET "
              "Secret rps | p50 ms | p99 ms | Kustos/apiserver throughput |")
        print("|---|---|---|---|---|---|---|---|")
        for c in args.concurrency:
            a = load(kustos, c, args.seconds)
            b = load(kube, c, args.seconds)
            print(f"| {c} | {a['rps']:.0f} | {a['p50']:.2f} | {a['p99']:.2f} | {b['rps']:.0f} "
                  f"| {b['p50']:.2f} | {b['p99']:.2f} | {a['rps'] / b['rps']:.2f} |")
            if a["errors"] or b["errors"]:
                print(f"errors: kustos {a['errors']}, apiserver {b['errors']}")
        health = {**kustos, "kind": "plain", "method": "GET", "path": "/healthz", "body": "",
                  "headers": {}}
        h = load(health, max(args.concurrency), args.seconds)
        print(f"\nKustos GET /healthz (TLS + aiohttp only) at concurrency "
              f"{max(args.concurrency)}: {h['rps']:.0f} rps, p50 {h['p50']:.2f} ms")
        if args.profile:
            rows = profile_request_path(world, ident, arn)
            print(f"\ncProfile of the request path: {rows[0]}")
            print("| phase (cumulative) | per request |\n|---|---|")
            print("\n".join(rows[1:]))
    finally:
        world.runner.stop()


if __name__ == "__main__":
    main()
