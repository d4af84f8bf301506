"""PutSecretValue → projected Secret updated: latency over N writes (default 200).

On the real control plane: the operator (serving the API) with its default settings except
KUSTOS_RESYNC_SECONDS=3600, so the periodic safety net cannot be what delivers the value:
only the change feed can. Each write is timed from just before PutSecretValue (boto3, SigV4)
to the moment a watch on the projected Secret delivers the new value; writes go one after
another. With `--api-process`, the writes go to a separate `kustos api` process (another
replica's writes) instead of the operator's own API.

    .venv/bin/python bench/put_to_projection.py [N] [--api-process]
"""

from __future__ import annotations

import base64
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config, watch  # noqa: E402
from tests.api_fixture import ApiWorld, start_api_world  # noqa: E402
from tests.cluster_fixture import KubeCluster, _kubectl_binary, apply_crds, ensure_cluster  # noqa: E402
from tests.kube_helpers import get, new_namespace, wait_for  # noqa: E402
from tests.operator_fixture import free_port  # noqa: E402


def watch_values(
    kubeconfig: str, ns: str, name: str, seen: dict[str, float], stop: threading.Event
) -> None:
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    while not stop.is_set():
        stream = watch.Watch()
        for event in stream.stream(
            api.list_namespaced_secret,
            ns,
            field_selector=f"metadata.name={name}",
            timeout_seconds=30,
        ):
            data = (event["object"].data or {}).get("value")
            if data:
                seen.setdefault(base64.b64decode(data).decode(), time.monotonic())
            if stop.is_set():
                stream.stop()
                break


def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "200"))
    separate = "--api-process" in sys.argv
    cluster = KubeCluster(kubeconfig=ensure_cluster(), kubectl_path=_kubectl_binary())
    apply_crds(cluster)
    world = start_api_world(cluster, Path(tempfile.mkdtemp()))
    world.runner.extra_env["KUSTOS_RESYNC_SECONDS"] = "3600"
    world.runner.extra_env["KUSTOS_DRIFT_CHECK_SECONDS"] = "3600"
    world.runner.stop()
    world.runner.start()
    ns = new_namespace(cluster, "bench")
    ident = world.identity(ns)
    proc = None
    target: ApiWorld = world
    if separate:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "kustos.cli.main", "api", "--port", str(port)],
            env=world.runner.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=world.runner.workdir,
        )
        target = ApiWorld(cluster, world.runner, port, world.ca_path)
    sm: Any = target.client(ident)
    if separate:
        wait_for(lambda: _answers(sm), timeout=60, what="kustos api")
    sm.create_secret(Name="bench/latency", SecretString="v-initial")
    wait_for(lambda: get(cluster, "secret", "bench-latency", ns), what="first projection")
    seen: dict[str, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_values, daemon=True, args=(cluster.kubeconfig, ns, "bench-latency", seen, stop)
    )
    watcher.start()
    time.sleep(1)
    latencies, answered = [], []
    try:
        for i in range(n):
            value = f"v-{i}-{uuid.uuid4().hex[:8]}"
            start = time.monotonic()
            sm.put_secret_value(SecretId="bench/latency", SecretString=value)
            answered.append(time.monotonic() - start)
            deadline = start + 30
            while value not in seen:
                if time.monotonic() > deadline:
                    raise SystemExit(f"write {i} not projected in 30 s")
                time.sleep(0.002)
            latencies.append(seen[value] - start)
    finally:
        stop.set()
        if proc is not None:
            proc.terminate()
        world.runner.stop()
    after = sorted(total - api for total, api in zip(latencies, answered, strict=True))
    where = " (API in another process)" if separate else ""
    print(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"PutSecretValue -> projected Secret, {n} writes{where}: {_figures(latencies)}")
    print(f"  of which PutSecretValue answered: {_figures(answered)}")
    print(f"  of which answer -> projected:     {_figures(after)}")


def _figures(samples: list[float]) -> str:
    """p50, p90, p99 (nearest rank) and max, in ms."""
    ranked = sorted(samples)

    def rank(q: float) -> float:
        return ranked[math.ceil(q * len(ranked)) - 1] * 1000

    return (
        f"p50 {statistics.median(ranked) * 1000:.0f} ms, p90 {rank(0.9):.0f} ms, "
        f"p99 {rank(0.99):.0f} ms, max {ranked[-1] * 1000:.0f} ms"
    )


def _answers(sm: Any) -> bool:
    try:
        sm.get_random_password(PasswordLength=8)
    except Exception as exc:
        if "Could not connect" in str(exc) or "Connection" in type(exc).__name__:
            return False  # not listening yet
        if "AccessDenied" in str(exc):
            return False  # its policy index has not loaded the test's policy yet
        raise
    return True


if __name__ == "__main__":
    main()
