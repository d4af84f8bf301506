"""The operator at scale on the real control plane (issue 9): N ManagedSecrets (default 1000).

On demand, not in CI. A private control plane (so the only clients are this script, the
kube-controller-manager and the operator) and the real operator process with the product's
default intervals (resync 30 s, drift check 300 s, orphan sweep 300 s). Measures:

1. **Baseline**: the same client (`kubectl create -f -`, one POST per object) creating N
   ManagedSecrets and N Secrets directly, with no operator running.
2. **Apply → all Ready**: `kubectl create` of N ManagedSecrets (generated passwords) in a
   fresh namespace with the operator running, until a watch has seen every one Ready with
   its projected Secret written (`status.currentVersionId`). Ratio to the baseline.
3. **Writes per new object**: the apiserver's own `apiserver_request_total` (write verbs),
   minus this script's creations, divided by N; Events listed apart.
4. **Operator RSS** (VmRSS and VmHWM of the operator process) with N objects, and its CPU
   time during the apply and at rest (from /proc).
5. **Requests per minute at rest**: every request (all verbs) over a window of
   `--rest-seconds` (default 300: one whole drift-check interval) with the operator idle,
   minus the same window's count with the operator stopped (the controller manager's own
   traffic), by verb and resource.
6. **Writes on restart**: the operator stopped and started with N existing objects, and
   the write requests over the next `--restart-seconds` (default 60: the initial listing
   and at least one full resync pass).

    .venv/bin/python bench/scale.py [N] [--rest-seconds S] [--restart-seconds S] [--no-baseline]

The machine is shared: the script prints `uptime` at each phase; compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client, config, watch  # noqa: E402
from tests.cluster_fixture import KubeCluster, _kubectl_binary, apply_crds, ensure_cluster  # noqa: E402
from tests.operator_fixture import OperatorRunner  # noqa: E402

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"}
LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
DEFAULTS = {
    "KUSTOS_RESYNC_SECONDS": "30",
    "KUSTOS_DRIFT_CHECK_SECONDS": "300",
    "KUSTOS_ORPHAN_SWEEP_SECONDS": "300",
}


def requests(cluster: KubeCluster) -> Counter[str]:
    """Every resource request the apiserver has counted, by "VERB resource[/sub]"
    (non-resource URLs such as /metrics, this script's own reads, are left out)."""
    text = cluster.kubectl("get", "--raw", "/metrics", timeout=120).stdout
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        resource, sub = labels.get("resource", ""), labels.get("subresource", "")
        if not resource:
            continue
        counts[f"{labels['verb']} {resource}{'/' + sub if sub else ''}"] += int(
            float(match["value"])
        )
    return counts


def delta(after: Counter[str], before: Counter[str]) -> Counter[str]:
    return Counter({k: after[k] - before[k] for k in after if after[k] - before[k] > 0})


def writes_only(counts: Counter[str]) -> Counter[str]:
    return Counter({k: v for k, v in counts.items() if k.split()[0] in WRITE_VERBS})


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rss(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create(cluster: KubeCluster, docs: list[dict[str, Any]]) -> float:
    """`kubectl create -f -` of `docs` in chunks of 1000 (one POST each); seconds taken."""
    start = time.monotonic()
    for i in range(0, len(docs), 1000):
        manifest = "\n---\n".join(json.dumps(d) for d in docs[i : i + 1000])
        cluster.kubectl("create", "-f", "-", "-o", "name", input=manifest, timeout=1800)
    return time.monotonic() - start


def managed(ns: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kustos.io/v1alpha1",
            "kind": "ManagedSecret",
            "metadata": {"name": f"s{i:05d}", "namespace": ns},
            "spec": {"generate": {"passwordLength": 32}},
        }
        for i in range(n)
    ]


def secrets(ns: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"s{i:05d}", "namespace": ns},
            "type": "Opaque",
            "stringData": {"value": uuid.uuid4().hex},
        }
        for i in range(n)
    ]


class ReadyWatch:
    """Counts the ManagedSecrets of a namespace that are Ready with a projected version."""

    def __init__(self, kubeconfig: str, ns: str, n: int) -> None:
        self.api = client.CustomObjectsApi(config.new_client_from_config(kubeconfig))
        self.ns, self.n = ns, n
        self.ready: set[str] = set()
        self.done = threading.Event()
        self.at = 0.0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        version = ""
        while not self.done.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.api.list_namespaced_custom_object,
                    "kustos.io",
                    "v1alpha1",
                    self.ns,
                    "managedsecrets",
                    resource_version=version,
                    timeout_seconds=60,
                    allow_watch_bookmarks=True,
                ):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    status = obj.get("status") or {}
                    ok = status.get("currentVersionId") and any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in status.get("conditions") or []
                    )
                    if ok:
                        self.ready.add(obj["metadata"]["name"])
                        if len(self.ready) >= self.n:
                            self.at = time.monotonic()
                            self.done.set()
                            stream.stop()
            except client.ApiException as exc:
                if exc.status == 410:  # expired: list again
                    version = ""
                    continue
                raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=1000)
    parser.add_argument("--rest-seconds", type=float, default=300)
    parser.add_argument("--restart-seconds", type=float, default=60)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    n = args.n
    out: dict[str, Any] = {"n": n}
    cluster = KubeCluster(kubeconfig=ensure_cluster(), kubectl_path=_kubectl_binary())
    apply_crds(cluster)
    names = {k: f"{k}-{uuid.uuid4().hex[:6]}" for k in ("base", "bench", "kustos-sys")}
    for name in names.values():
        cluster.kubectl("create", "namespace", name)
    print(f"N={n}; load at start: {load()}", flush=True)
    first = requests(cluster)

    if not args.no_baseline:
        crs = create(cluster, managed(names["base"], n))
        plain = create(cluster, secrets(names["base"], n))
        out["baseline"] = {
            "crs_s": round(crs, 1),
            "secrets_s": round(plain, 1),
            "total_s": round(crs + plain, 1),
            "load": load(),
        }
        print(
            f"baseline: {n} CRs in {crs:.1f} s + {n} Secrets in {plain:.1f} s "
            f"= {crs + plain:.1f} s ({load()})",
            flush=True,
        )
        # Gone before the operator starts: it would otherwise reconcile (and then delete)
        # the baseline's N objects in the middle of the measurement.
        cluster.kubectl("delete", "namespace", names["base"], "--timeout=900s", timeout=960)

    workdir = Path(tempfile.mkdtemp(prefix="kustos-scale-"))
    runner = OperatorRunner(cluster.kubeconfig, workdir, names["kustos-sys"], **DEFAULTS)
    runner.start(timeout=600)
    time.sleep(5)  # its watches are up
    ns = names["bench"]
    ready = ReadyWatch(cluster.kubeconfig, ns, n)
    assert runner.proc is not None
    before = requests(cluster)
    cpu_before = cpu_seconds(runner.proc.pid)
    start = time.monotonic()
    created = create(cluster, managed(ns, n))
    while not ready.done.wait(5):
        print(f"  {len(ready.ready)}/{n} Ready after {time.monotonic() - start:.0f} s", flush=True)
    took = ready.at - start
    apply_cpu = cpu_seconds(runner.proc.pid) - cpu_before
    time.sleep(10)  # the last status patches are counted
    during = writes_only(delta(requests(cluster), before))
    during["POST managedsecrets"] -= n  # this script's own
    events = during.pop("POST events", 0) + during.pop("PATCH events", 0)
    during = +during
    out["apply"] = {
        "create_s": round(created, 1),
        "all_ready_s": round(took, 1),
        "operator_cpu_s": round(apply_cpu, 1),
        "load": load(),
        "writes": dict(during),
        "writes_per_object": round(sum(during.values()) / n, 2),
        "events_per_object": round(events / n, 2),
        "rss_mib": rss(runner.proc.pid),
    }
    if "baseline" in out:
        out["apply"]["ratio"] = round(took / out["baseline"]["total_s"], 2)
    print(
        f"apply: created in {created:.1f} s, all {n} Ready after {took:.1f} s "
        f"(ratio {out['apply'].get('ratio')}); writes/object "
        f"{out['apply']['writes_per_object']} {dict(during)}; events/object "
        f"{out['apply']['events_per_object']}; operator CPU {apply_cpu:.1f} s; RSS "
        f"{out['apply']['rss_mib']} ({load()})",
        flush=True,
    )

    # At rest: the operator idle with n objects, against the same window without it.
    time.sleep(30)
    before = requests(cluster)
    cpu_before = cpu_seconds(runner.proc.pid)
    time.sleep(args.rest_seconds)
    busy = delta(requests(cluster), before)
    rest_cpu = (cpu_seconds(runner.proc.pid) - cpu_before) / args.rest_seconds
    out["rest_rss_mib"] = rss(runner.proc.pid)
    runner.stop()
    before = requests(cluster)
    time.sleep(args.rest_seconds)
    idle = delta(requests(cluster), before)
    per_min = 60 / args.rest_seconds
    operator = Counter(
        {k: round((busy[k] - idle[k]) * per_min, 1) for k in busy if busy[k] - idle[k] > 0}
    )
    out["rest"] = {
        "window_s": args.rest_seconds,
        "operator_per_min": dict(operator),
        "operator_per_min_total": round(sum(operator.values()), 1),
        "controller_manager_per_min": round(sum(idle.values()) * per_min, 1),
        "without_operator_per_min": {k: round(v * per_min, 1) for k, v in idle.items()},
        "operator_cpu_cores": round(rest_cpu, 3),
        "load": load(),
    }
    print(
        f"at rest: operator {out['rest']['operator_per_min_total']}/min {dict(operator)}; "
        f"without it {out['rest']['controller_manager_per_min']}/min; operator CPU "
        f"{rest_cpu:.3f} cores; RSS "
        f"{out['rest_rss_mib']} ({load()})",
        flush=True,
    )

    # Restart with n existing objects.
    before = requests(cluster)
    runner.start(timeout=600)
    time.sleep(args.restart_seconds)
    restart = writes_only(delta(requests(cluster), before))
    out["restart"] = {
        "window_s": args.restart_seconds,
        "writes": dict(restart),
        "rss_mib": rss(runner.proc.pid),
        "load": load(),
    }
    runner.stop()
    print(
        f"restart: writes in {args.restart_seconds:.0f} s: {sum(restart.values())} "
        f"{dict(restart)}; RSS {out['restart']['rss_mib']} ({load()})",
        flush=True,
    )
    # Single-object GETs of ManagedSecrets over the whole run, from every client: the
    # garbage collector of the controller manager reads an owner it does not know yet
    # once per dependent; compare with N before charging the operator with them.
    whole = delta(requests(cluster), first)
    out["get_managedsecrets_whole_run"] = whole["GET managedsecrets"]
    print(f"GET managedsecrets over the whole run: {whole['GET managedsecrets']} (N={n})")
    print(json.dumps(out, indent=1))
    if os.environ.get("KUSTOS_SCALE_KEEP") != "1":
        cluster.kubectl("delete", "namespace", ns, "--wait=false")


if __name__ == "__main__":
    main()
