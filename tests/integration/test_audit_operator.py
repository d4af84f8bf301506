"""The real operator against a real kube-apiserver: lifecycle actions land in the audit log,
`kustos audit verify` passes (digest signatures checked with the keyring from its Secret),
the operator serves /metrics, and a canary value is in no audit record, metric or log."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from tests.kube_helpers import apply, get, managed_secret, new_namespace, ready, wait_for
from tests.operator_fixture import free_port

pytestmark = pytest.mark.cluster
CANARY = "canary-audit-" + base64.b32encode(os.urandom(10)).decode()


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


def kustos(runner: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kustos.cli.main", *args],
        env=runner.env,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def lookup(runner: Any, *args: str) -> list[dict[str, Any]]:
    out = json.loads(kustos(runner, "audit", "lookup", "--max-items", "500", *args).stdout)
    return [json.loads(e["CloudTrailEvent"]) for e in out["Events"]]


def test_lifecycle_is_audited_and_verifies(cluster: Any, operator_factory: Any) -> None:
    port = free_port()
    runner = operator_factory(KUSTOS_METRICS_PORT=str(port), KUSTOS_AUDIT_DIGEST_SECONDS="1")
    runner.start()
    ns = new_namespace(cluster)
    cluster.kubectl(
        "create", "secret", "generic", "src", "-n", ns, f"--from-literal=password={CANARY}"
    )
    cluster.kubectl("annotate", "secret", "src", "-n", ns, "kustos.io/allow-import-by=orders-db")
    apply(
        cluster,
        managed_secret(
            "orders-db", ns, {"name": "prod/orders-db", "valueFrom": {"secretRef": {"name": "src"}}}
        ),
    )
    obj = wait_for(lambda: ready(cluster, "orders-db", ns), what="Ready")
    arn = obj["status"]["arn"]
    # drift: someone edits the projected Secret; Kustos restores it
    cluster.kubectl(
        "patch",
        "secret",
        "orders-db",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"data": {"password": "ZWRpdGVk"}}',
    )
    wait_for(
        lambda: (
            (s := get(cluster, "secret", "orders-db", ns)) and s["data"]["password"] != "ZWRpdGVk"
        ),
        what="restored Secret",
    )

    def story() -> list[str] | None:
        names = [r["eventName"] for r in reversed(lookup(runner, "--secret-id", arn))]
        return names if "DriftCorrected" in names else None

    names = wait_for(story, what="DriftCorrected audited")
    assert names[:2] == ["Created", "DriftCorrected"]  # the first story is one record
    records = lookup(runner, "--namespace", ns)
    assert {r["userIdentity"]["arn"] for r in records} == {
        "arn:kustos:iam::cluster:user/system:kustos"
    }
    assert all(
        r["eventType"] == "AwsServiceEvent"
        and r["awsRegion"] == "test"
        and r["resources"][0]["ARN"] == arn
        for r in records
    )
    by_name = lookup(
        runner, "--secret-id", "prod/orders-db", "--event-name", "Created", "--output", "json"
    )
    assert len(by_name) == 1
    table = kustos(runner, "audit", "lookup", "--namespace", ns, "--output", "table").stdout
    assert "DriftCorrected" in table and "system:kustos" in table

    wait_for(
        lambda: (
            json.loads(kustos(runner, "audit", "verify", "--output", "json").stdout)[
                "signedThrough"
            ]
            > 0
        ),
        what="a signed digest",
    )
    verified = kustos(runner, "audit", "verify")
    assert verified.stdout.startswith("OK:") and "NOT checked" not in verified.stderr

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert f'kustos_secrets{{namespace="{ns}"}} 1.0' in text
    assert "kustos_audit_chain_length" in text and "kustos_audit_write_seconds_count" in text

    usage = json.loads(
        kustos(runner, "usage", "--by", "namespace", "--since", "1h", "--output", "json").stdout
    )
    mine = next(u for u in usage["Usage"] if u["Namespace"] == ns)
    assert mine["Secrets"] == 1 and mine["SecretHours"] > 0

    export = kustos(runner, "audit", "export", "--since", "1h").stdout
    assert len(export.splitlines()) >= len(names)
    runner.stop()  # a clean shutdown signs a final digest over the tail
    final = json.loads(kustos(runner, "audit", "verify", "--output", "json").stdout)
    assert final["ok"] and final["signedThrough"] == final["lastSeq"]
    # the canary: nowhere in the audit trail, the metrics, the log, or the store's bytes
    for where in (export, text, runner.log(), json.dumps(lookup(runner))):
        assert CANARY not in where
    for path in runner.workdir.glob("kustos.db*"):
        assert CANARY.encode() not in path.read_bytes()


def test_verify_names_a_tampered_record(cluster: Any, operator_factory: Any) -> None:
    runner = operator_factory(KUSTOS_METRICS_PORT="0")
    runner.start()
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("tampered", ns, {"generate": {"keys": ["password"]}}))
    wait_for(lambda: ready(cluster, "tampered", ns), what="Ready")
    wait_for(lambda: len(lookup(runner, "--namespace", ns)) >= 1, what="the Created record")
    runner.stop()
    import sqlite3

    with sqlite3.connect(runner.store_path) as conn:
        seq = conn.execute("SELECT min(seq) FROM audit_log WHERE namespace = ?", (ns,)).fetchone()[
            0
        ]
        conn.execute("UPDATE audit_log SET user_name = 'alice' WHERE seq = ?", (seq,))
    conn.close()
    failed = kustos(runner, "audit", "verify", check=False)
    assert failed.returncode == 1
    assert f"modified: record seq {seq} (eventID" in failed.stdout
