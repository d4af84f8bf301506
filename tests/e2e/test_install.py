"""Kustos installed as users install it, on the node: the image built from the Dockerfile,
`kubectl apply -k manifests/overlays/sqlite`, the operator Ready in its pod; then example 03,
an app pod that mounts the projected Secret, reads it, and sees a rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from tests.kube_helpers import get, new_namespace, ready, wait_for

# Builds the image (once per session) and waits for real rollouts on a busy machine.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "03-app-reads-secret"
SYSTEM = "kustos-system"


def _operator_pod(cluster: Any) -> dict[str, Any]:
    pods = json.loads(
        cluster.kubectl(
            "-n",
            SYSTEM,
            "get",
            "pods",
            "-o",
            "json",
            "-l",
            "app.kubernetes.io/name=kustos-operator",
        ).stdout
    )
    running = [p for p in pods["items"] if p["status"].get("phase") == "Running"]
    assert len(running) == 1
    found: dict[str, Any] = running[0]
    return found


def test_the_operator_runs_non_root_on_a_read_only_root_and_its_volume_binds(
    installed: Any,
) -> None:
    pod = _operator_pod(installed)
    name = pod["metadata"]["name"]
    probe = (
        "import os, json\n"
        "try:\n    open('/probe', 'w'); ro = False\nexcept OSError:\n    ro = True\n"
        "open('/var/lib/kustos/.probe', 'w').write('x')\n"
        "print(json.dumps({'uid': os.getuid(), 'ro': ro,"
        " 'db': os.path.exists('/var/lib/kustos/kustos.db')}))"
    )
    out = installed.kubectl("-n", SYSTEM, "exec", name, "--", "python3", "-c", probe).stdout
    assert json.loads(out) == {"uid": 65532, "ro": True, "db": True}
    pvc = get(installed, "pvc", "kustos-data", SYSTEM) or {}
    assert pvc["status"]["phase"] == "Bound"


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def _password(cluster: Any, ns: str) -> str | None:
    secret = get(cluster, "secret", "orders-db", ns) or {}
    raw = (secret.get("data") or {}).get("password")
    return base64.b64decode(raw).decode() if raw else None


def test_03_app_reads_the_mounted_secret_and_sees_its_rotation(installed: Any) -> None:
    ns = new_namespace(installed)
    installed.kubectl("apply", "-n", ns, "-f", str(EXAMPLE))
    wait_for(lambda: ready(installed, "orders-db", ns), timeout=120, what="orders-db Ready")
    installed.kubectl(
        "-n", ns, "rollout", "status", "deploy/orders-app", "--timeout=180s", timeout=200
    )
    first = _password(installed, ns)
    assert first is not None
    assert len(first) == 32
    line = f"orders-app: read password of orders_app (32 characters, sha256 {_fingerprint(first)})"

    def logs() -> str:
        return str(installed.kubectl("-n", ns, "logs", "deploy/orders-app").stdout)

    wait_for(lambda: line in logs(), timeout=60, what="the app's first read")

    started = time.monotonic()
    installed.kubectl(
        "-n",
        ns,
        "annotate",
        "ms",
        "orders-db",
        f"kustos.io/rotate-now={time.time_ns()}",
        "--overwrite",
    )
    second = wait_for(
        lambda: p if (p := _password(installed, ns)) != first else None,
        timeout=120,
        what="the projected Secret rotated",
    )
    projected = time.monotonic()
    rotated = (
        f"orders-app: re-read the rotated password of orders_app "
        f"(32 characters, sha256 {_fingerprint(second)})"
    )
    wait_for(
        lambda: rotated in logs(),
        timeout=180,
        interval=0.5,
        what="the mounted file shows the rotated value",
    )
    seen = time.monotonic()
    text = logs()
    assert first not in text
    assert second not in text
    print(
        f"\nrotation: Secret updated {projected - started:.1f}s after rotate-now; "
        f"mounted file updated {seen - projected:.1f}s after the Secret"
    )
