"""Keyring lifecycle and plaintext canaries, with the real operator on a real apiserver."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.kube_helpers import (
    apply,
    condition,
    events,
    get,
    managed_secret,
    new_namespace,
    present,
    ready,
    secret_data,
    wait_for,
)

pytestmark = pytest.mark.cluster

CANARY = "kustos-canary-7f3c9a1e5b"


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


def kustos_cli(runner: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kustos.cli.main", *args],
        env=runner.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def keyring(cluster: Any, runner: Any) -> dict[str, str]:
    secret = get(cluster, "secret", "kustos-keyring", runner.namespace)
    assert secret is not None
    found: dict[str, str] = secret["data"]
    return found


def test_keyring_generated_once_and_rotated_without_loss(
    cluster: Any, operator_factory: Any
) -> None:
    runner = operator_factory()
    runner.start()
    first = keyring(cluster, runner)
    assert set(first) == {"k1.key", "newest"}
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("keep", ns, {"generate": {"passwordLength": 20}}))
    wait_for(lambda: ready(cluster, "keep", ns))
    value = secret_data(get(cluster, "secret", "keep", ns) or {})
    raw_before = runner.store_path.read_bytes()

    # Restarting keeps the keyring (it is not regenerated).
    runner.stop()
    runner.start()
    assert keyring(cluster, runner) == first

    proc = kustos_cli(runner, "keys", "rotate")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["NewKeyId"] != "k1" and result["Rewrapped"] >= 1
    rotated = keyring(cluster, runner)
    assert first["k1.key"] == rotated["k1.key"]  # old key kept: nothing lost
    assert base64.b64decode(rotated["newest"]).decode() == result["NewKeyId"]

    # The projection still decrypts (data keys rewrapped) and shows the same value.
    cluster.kubectl("delete", "secret", "keep", "-n", ns)
    wait_for(lambda: (s := get(cluster, "secret", "keep", ns)) and secret_data(s) == value)
    assert raw_before  # the store existed before the rotation


def test_missing_keyring_with_existing_store_refuses_to_start(
    cluster: Any, operator_factory: Any
) -> None:
    runner = operator_factory()
    runner.start()
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("x", ns, {"generate": {}}))
    wait_for(lambda: ready(cluster, "x", ns))
    runner.stop()
    saved = keyring(cluster, runner)
    cluster.kubectl("delete", "secret", "kustos-keyring", "-n", runner.namespace)
    store_before = runner.store_path.read_bytes()

    with pytest.raises(RuntimeError, match="exited early"):
        runner.start()
    assert "keyring Secret" in runner.log() and "restore the keyring Secret" in runner.log()
    # Nothing was overwritten: no new keyring, the store is byte-for-byte the same.
    assert get(cluster, "secret", "kustos-keyring", runner.namespace) is None
    assert runner.store_path.read_bytes() == store_before
    assert saved


def test_wrong_key_reports_and_overwrites_nothing(cluster: Any, operator_factory: Any) -> None:
    runner = operator_factory()
    runner.start()
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("locked", ns, {"generate": {}}))
    wait_for(lambda: ready(cluster, "locked", ns))
    projected = get(cluster, "secret", "locked", ns) or {}
    runner.stop()
    # Swap in a different key under the same id.
    other = base64.b64encode(b"\x01" * 32).decode()
    cluster.kubectl(
        "patch",
        "secret",
        "kustos-keyring",
        "-n",
        runner.namespace,
        "--type=merge",
        "-p",
        json.dumps({"data": {"k1.key": other}}),
    )
    cluster.kubectl("delete", "secret", "locked", "-n", ns)  # force a re-projection
    runner.start()
    obj = wait_for(
        lambda: (
            o
            if (o := get(cluster, "ms", "locked", ns))
            and (c := condition(o))
            and c["reason"] == "DecryptionFailed"
            else None
        )
    )
    assert present(condition(obj))["status"] == "False"
    assert get(cluster, "secret", "locked", ns) is None  # nothing projected from garbage
    # No new version was made to "fix" it.
    assert len(obj["status"]["versions"]) == 1
    assert projected


def test_canary_never_leaks(cluster: Any, operator_factory: Any) -> None:
    runner = operator_factory()
    runner.start()
    ns = new_namespace(cluster)
    cluster.kubectl(
        "create", "secret", "generic", "canary-src", "-n", ns, f"--from-literal=password={CANARY}"
    )
    cluster.kubectl(
        "annotate", "secret", "canary-src", "-n", ns, "kustos.io/allow-import-by=canary,canary-bad"
    )
    apply(
        cluster,
        managed_secret(
            "canary",
            ns,
            {"valueFrom": {"secretRef": {"name": "canary-src"}}, "target": {"name": "canary-out"}},
        ),
    )
    wait_for(lambda: ready(cluster, "canary", ns))
    assert secret_data(get(cluster, "secret", "canary-out", ns) or {}) == {"password": CANARY}
    # Exercise more paths: drift, a failing sibling, a restart.
    cluster.kubectl("delete", "secret", "canary-out", "-n", ns)
    wait_for(lambda: get(cluster, "secret", "canary-out", ns))
    apply(
        cluster,
        managed_secret(
            "canary-bad",
            ns,
            {"valueFrom": {"secretRef": {"name": "canary-src"}}, "target": {"name": "canary-src"}},
        ),
    )
    wait_for(lambda: (o := get(cluster, "ms", "canary-bad", ns)) and condition(o))
    runner.stop()
    runner.start()
    time.sleep(3)
    runner.stop()

    assert CANARY not in runner.log()
    assert CANARY not in json.dumps(events(cluster, "canary", ns))
    assert CANARY not in json.dumps(events(cluster, "canary-bad", ns))
    for name in ("canary", "canary-bad"):
        obj = get(cluster, "ms", name, ns) or {}
        assert obj and CANARY not in json.dumps(obj)  # status, annotations, everything
    projected = get(cluster, "secret", "canary-out", ns) or {}
    assert CANARY not in json.dumps(projected["metadata"])
    needle = CANARY.encode()
    for path in Path(runner.store_path).parent.glob("kustos.db*"):
        assert needle not in path.read_bytes(), path
        assert base64.b64encode(needle) not in path.read_bytes(), path
