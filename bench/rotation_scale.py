"""Rotation at scale: many ManagedSecrets falling due at once, with the real operator.

    .venv/bin/python bench/rotation_scale.py [--n 200] [--pg 200] [--tick 10]

1. `--n` ManagedSecrets with generated values and `rotation: {generated: {}}`, all Ready;
   then one `kubectl annotate ms --all kustos.io/rotate-now=...` makes every one due at once.
   Measures the time until all have rotated (status shows the new version as AWSCURRENT and
   the projected Secret carries it) and the operator's peak RSS (sampled from /proc).
2. `--pg` ManagedSecrets rotating PostgreSQL users (single-user strategy, one user each),
   due at once the same way. Samples pg_stat_activity every 20 ms for the peak number of
   connections from the rotator (application_name kustos-rotator) and in total.

A private control plane (unless KUSTOS_TEST_KUBECONFIG), the operator as a child process on
its embedded SQLite store, PostgreSQL from tools/db/dbctl.py. Operator settings are the
defaults (8 rotations at once, 2 per database host) except the loop tick (`--tick`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from tests.cluster_fixture import KubeCluster, _kubectl_binary, apply_crds, ensure_cluster  # noqa: E402
from tests.operator_fixture import OperatorRunner  # noqa: E402
from tests.rotation_helpers import make_db_user  # noqa: E402

from db_fixture import _server  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    def __init__(self, probe: Any, interval: float) -> None:
        super().__init__(daemon=True)
        self.probe, self.interval, self.peak, self.stop_flag = probe, interval, None, False

    def run(self) -> None:
        while not self.stop_flag:
            value = self.probe()
            if isinstance(value, tuple):  # a peak per element
                old = self.peak or value
                self.peak = tuple(max(a, b) for a, b in zip(old, value, strict=True))
            else:
                self.peak = value if self.peak is None else max(self.peak, value)
            time.sleep(self.interval)


def apply_all(cluster: KubeCluster, docs: list[dict[str, Any]]) -> None:
    for i in range(0, len(docs), 100):
        chunk = "\n---\n".join(json.dumps(d) for d in docs[i : i + 100])
        cluster.kubectl("apply", "-f", "-", input=chunk, timeout=300)


def wait_all(cluster: KubeCluster, ns: str, n: int, done: Any, timeout: float = 900) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        items = json.loads(cluster.kubectl("get", "ms", "-n", ns, "-o", "json").stdout)["items"]
        if sum(1 for o in items if done(o)) == n:
            return time.monotonic() - start
        time.sleep(0.5)
    raise SystemExit(f"not all {n} done in {timeout}s")


def rotated(obj: dict[str, Any]) -> bool:
    status = obj.get("status", {})
    rotation = status.get("rotation") or {}
    return (
        rotation.get("state") == "Succeeded"
        and rotation.get("trigger") == "rotate-now"
        and status.get("currentVersionId") == rotation.get("token")
    )


def ready(obj: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in obj.get("status", {}).get("conditions", [])
    )


def run_case(
    cluster: KubeCluster,
    runner: OperatorRunner,
    ns: str,
    docs: list[dict[str, Any]],
    extra: Sampler | None,
) -> dict[str, Any]:
    n = len(docs)
    apply_all(cluster, docs)
    t_ready = wait_all(cluster, ns, n, ready)
    assert runner.proc is not None
    rss = Sampler(lambda: rss_mb(runner.proc.pid), 0.2)  # type: ignore[union-attr]
    rss.start()
    if extra:
        extra.start()
    rss_before = rss_mb(runner.proc.pid)
    start = time.monotonic()
    cluster.kubectl("annotate", "ms", "--all", "-n", ns, f"kustos.io/rotate-now={uuid.uuid4()}")
    wait_all(cluster, ns, n, rotated)
    total = time.monotonic() - start
    rss.stop_flag = True
    if extra:
        extra.stop_flag = True
    return {
        "n": n,
        "all_ready_s": round(t_ready, 1),
        "all_rotated_s": round(total, 1),
        "rss_before_mb": round(rss_before, 1),
        "rss_peak_mb": round(rss.peak or 0, 1),
        "peak_connections_rotator_total": extra.peak if extra else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--pg", type=int, default=200)
    parser.add_argument("--tick", default="10")
    args = parser.parse_args()
    cluster = KubeCluster(kubeconfig=ensure_cluster(), kubectl_path=_kubectl_binary())
    apply_crds(cluster)
    sysns = f"kustos-bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", sysns)
    runner = OperatorRunner(
        cluster.kubeconfig,
        Path(tempfile.mkdtemp()),
        sysns,
        KUSTOS_RESYNC_SECONDS="30",
        KUSTOS_ROTATION_TICK_SECONDS=args.tick,
        KUSTOS_METRICS_PORT="0",
        KUSTOS_API_PORT="0",
    )
    runner.start()
    results: dict[str, Any] = {}
    try:
        if args.n:
            ns = f"bench-gen-{uuid.uuid4().hex[:6]}"
            cluster.kubectl("create", "namespace", ns)
            docs = [
                {
                    "apiVersion": "kustos.io/v1alpha1",
                    "kind": "ManagedSecret",
                    "metadata": {"name": f"g{i:04d}", "namespace": ns},
                    "spec": {"generate": {"passwordLength": 32}, "rotation": {"generated": {}}},
                }
                for i in range(args.n)
            ]
            results["generated"] = run_case(cluster, runner, ns, docs, None)
            print(json.dumps(results["generated"]), flush=True)
        if args.pg:
            pg = _server("postgresql")
            ns = f"bench-pg-{uuid.uuid4().hex[:6]}"
            cluster.kubectl("create", "namespace", ns)
            # the fixture's CA, so the rotations verify the server as they do by default
            docs: list[dict[str, Any]] = [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "pg-ca", "namespace": ns},
                    "stringData": {"ca.crt": pg.ca_path.read_text()},
                }
            ]
            for i in range(args.pg):
                user, password, dbname = make_db_user(pg)
                docs.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {
                            "name": f"p{i:04d}-initial",
                            "namespace": ns,
                            "annotations": {"kustos.io/allow-import-by": f"p{i:04d}"},
                        },
                        "stringData": {
                            "username": user,
                            "password": password,
                            "host": pg.host,
                            "port": str(pg.port),
                            "dbname": dbname,
                        },
                    }
                )
            apply_all(cluster, docs)
            ms = [
                {
                    "apiVersion": "kustos.io/v1alpha1",
                    "kind": "ManagedSecret",
                    "metadata": {"name": f"p{i:04d}", "namespace": ns},
                    "spec": {
                        "valueFrom": {"secretRef": {"name": f"p{i:04d}-initial"}},
                        "rotation": {
                            "postgresql": {
                                "strategy": "single-user",
                                "tls": {"caSecretRef": {"name": "pg-ca"}},
                            }
                        },
                    },
                }
                for i in range(args.pg)
            ]
            admin = pg.connect()

            def connections() -> tuple[int, int]:
                row = admin.execute(
                    "SELECT count(*) FILTER (WHERE application_name = 'kustos-rotator'), "
                    "count(*) FILTER (WHERE backend_type = 'client backend') - 1 "
                    "FROM pg_stat_activity"
                ).fetchone()
                return int(row[0]), int(row[1])

            results["postgresql"] = run_case(cluster, runner, ns, ms, Sampler(connections, 0.02))
            print(json.dumps(results["postgresql"]), flush=True)
    finally:
        runner.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
