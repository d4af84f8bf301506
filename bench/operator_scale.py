"""Operator at scale on the real control plane: 200 ManagedSecrets applied at once.

Measures time from `kubectl apply` to all Ready, and the API write requests the operator
makes per new ManagedSecret and on a restart with all 200 existing, counted from the
kube-apiserver's own `apiserver_request_total` metric (a private control plane, so the
only other writer is this script, whose requests are subtracted).

    .venv/bin/python bench/operator_scale.py [N]
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster_fixture import KubeCluster, _kubectl_binary, apply_crds, ensure_cluster  # noqa: E402
from tests.operator_fixture import OperatorRunner  # noqa: E402

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "CREATE", "UPDATE", "APPLY"}
LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def writes(cluster: KubeCluster) -> Counter[str]:
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") not in WRITE_VERBS:
            continue
        resource = labels.get("resource", "")
        sub = labels.get("subresource", "")
        key = f"{labels['verb']} {resource}{'/' + sub if sub else ''}"
        counts[key] += int(float(match["value"]))
    return counts


def delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after if after[k] - before[k] > 0}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    cluster = KubeCluster(kubeconfig=ensure_cluster(), kubectl_path=_kubectl_binary())
    apply_crds(cluster)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    sysns = f"kustos-bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("create", "namespace", sysns)
    runner = OperatorRunner(
        cluster.kubeconfig, Path(tempfile.mkdtemp()), sysns, KUSTOS_RESYNC_SECONDS="30"
    )
    runner.start()
    time.sleep(2)
    docs = [
        {
            "apiVersion": "kustos.io/v1alpha1",
            "kind": "ManagedSecret",
            "metadata": {"name": f"s{i:04d}", "namespace": ns},
            "spec": {"generate": {"passwordLength": 32}},
        }
        for i in range(n)
    ]
    manifest = "\n---\n".join(json.dumps(d) for d in docs)
    before = writes(cluster)
    start = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=manifest, timeout=300)
    applied = time.monotonic()
    while True:
        out = cluster.kubectl("get", "ms", "-n", ns, "-o", "json").stdout
        items = json.loads(out)["items"]
        ok = sum(
            1
            for o in items
            for c in o.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        )
        if ok == n:
            break
        time.sleep(0.5)
    ready = time.monotonic()
    time.sleep(3)
    created = delta(writes(cluster), before)
    created.pop("POST managedsecrets", None)  # this script's own creations
    per_object = sum(created.values()) / n

    runner.stop()
    before = writes(cluster)
    runner.start()
    time.sleep(40)  # resume every object, then one full resync pass (30 s interval)
    restart = delta(writes(cluster), before)
    runner.stop()

    print(f"objects: {n}")
    print(f"kubectl apply took {applied - start:.1f} s; all Ready after {ready - start:.1f} s")
    print(f"writes during creation ({sum(created.values())} total, {per_object:.2f}/object):")
    for key, value in sorted(created.items()):
        print(f"  {key}: {value}")
    print(f"writes on restart with {n} existing: {sum(restart.values())} {restart}")


if __name__ == "__main__":
    main()
