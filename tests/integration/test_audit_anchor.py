"""The audit chain's anchor on a real kube-apiserver: the AuditAnchor CRD, the publisher's
guarded writes, the real operator anchoring its chain (object, log, file witness), and
`kustos audit verify` naming a truncated tail, a deleted digest and an emptied log."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.kube_helpers import apply, get, managed_secret, new_namespace, ready, wait_for

from kustos.crypto import Keyring
from kustos.errors import ConflictError
from kustos.kube.audit_anchor import AnchorGateway
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.services.audit.anchor import AnchorPublisher, anchor_of
from kustos.services.audit.service import AuditService
from kustos.store import SqlStore
from kustos.store.audit import AuditStore

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]
KEYRING = Keyring.generate()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


def event(i: int) -> AuditEvent:
    return AuditEvent(
        event_name="GetSecretValue",
        principal=Principal.service_account("a", "b"),
        read_only=True,
        namespace="a",
        event_id=f"e{i:04d}",
        event_time=T0 + timedelta(minutes=i),
    )


def raw(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


def test_publisher_against_the_apiserver(cluster: Any, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    api = cluster.api_client()
    store = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")
    gateway = AnchorGateway(api, ns, "kustos-audit")
    audit = AuditService(
        AuditStore(store.engine),
        "test",
        lambda: KEYRING,
        anchor=AnchorPublisher(AuditStore(store.engine), gateway, writer="w1"),
    )
    try:
        assert gateway.read() is None
        audit.record_many([event(i) for i in range(1, 6)])
        audit.sign_digest()
        audit.publish_anchor()
        audit.record_many([event(i) for i in range(6, 11)])
        audit.sign_digest()
        audit.record_many([event(i) for i in range(11, 14)])
        audit.publish_anchor()
        obj = get(cluster, "auditanchor", "kustos-audit", ns)
        assert obj is not None
        assert obj["status"]["head"]["seq"] == 13 and obj["status"]["digest"]["lastSeq"] == 10
        printed = cluster.kubectl("get", "auditanchor", "-n", ns).stdout
        assert "13" in printed and "10" in printed  # printer columns Head, Signed-Through
        stored = gateway.read()
        assert stored is not None
        with pytest.raises(ConflictError):  # a stale resourceVersion is refused
            gateway.write_status(
                {"head": {"seq": 1, "hash": ""}}, str(int(stored.resource_version) - 1)
            )
        with pytest.raises(subprocess.CalledProcessError):  # the schema refuses junk
            subprocess.run(
                [
                    cluster.kubectl_path,
                    f"--kubeconfig={cluster.kubeconfig}",
                    "patch",
                    "auditanchor",
                    "kustos-audit",
                    "-n",
                    ns,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    '{"status":{"head":{"seq":"x"}}}',
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )

        def anchors() -> list[tuple[str, Any]]:
            found = gateway.read()
            return [(gateway.ref, anchor_of(found.status) if found else None)]

        assert audit.verify(anchors=anchors()).ok
        db = tmp_path / "kustos.db"
        raw(db, "DELETE FROM audit_log WHERE seq > 10")
        assert [f.seq for f in audit.verify(anchors=anchors()).findings] == [11, 12, 13]
        raw(db, "DELETE FROM audit_digests WHERE id = 2", "DELETE FROM audit_log WHERE seq > 5")
        assert [(f.kind, f.seq) for f in audit.verify(anchors=anchors()).findings] == (
            [("anchor", 10)] + [("deleted", s) for s in range(6, 14)]
        )
        raw(db, "DELETE FROM audit_digests", "DELETE FROM audit_log")
        assert [f.kind for f in audit.verify(anchors=anchors()).findings] == ["emptied"]
        assert [f.kind for f in audit.verify().findings] == []  # without the anchor: blind
    finally:
        audit.close()
        store.close()
        api.close()


def kustos(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kustos.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_operator_anchors_its_chain_and_verify_names_truncation(
    cluster: Any, operator_factory: Any, tmp_path: Path
) -> None:
    witness = tmp_path / "anchors.jsonl"
    runner = operator_factory(
        KUSTOS_AUDIT_DIGEST_SECONDS="1",
        KUSTOS_AUDIT_ANCHOR_SECONDS="0.5",
        KUSTOS_AUDIT_ANCHOR_FILE=str(witness),
    )
    runner.start()
    ns = new_namespace(cluster)
    apply(
        cluster,
        managed_secret("anchored", ns, {"name": "anchored", "generate": {"passwordLength": 16}}),
    )
    wait_for(lambda: ready(cluster, "anchored", ns), what="Ready")

    def anchored() -> dict[str, Any] | None:
        obj = get(cluster, "auditanchor", "kustos-audit", runner.namespace)
        status = (obj or {}).get("status") or {}
        return status if status.get("digest") and status["head"]["seq"] >= 3 else None

    wait_for(anchored, what="the chain anchored")
    runner.stop()  # a last digest and anchor at shutdown
    status = anchored()
    assert status is not None
    head = status["head"]["seq"]
    assert status["digest"]["lastSeq"] == head  # the final digest covers everything
    assert "anchored in AuditAnchor" in runner.log()
    assert witness.exists() and json.loads(witness.read_text().splitlines()[-1]) == status

    env = runner.env
    ok = kustos(env, "audit", "verify", "--witness", str(witness))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"anchored through seq {head}" in ok.stdout and "NOT checked" not in ok.stderr

    raw(
        runner.store_path,
        f"DELETE FROM audit_log WHERE seq = {head}",  # noqa: S608
        "DELETE FROM audit_digests WHERE id = (SELECT max(id) FROM audit_digests)",
    )
    cut = kustos(env, "audit", "verify", "--output", "json")
    assert cut.returncode == 1
    findings = json.loads(cut.stdout)["findings"]
    assert [(f["kind"], f["seq"]) for f in findings] == [("anchor", head), ("deleted", head)]

    raw(runner.store_path, "DELETE FROM audit_log", "DELETE FROM audit_digests")
    empty = kustos(env, "audit", "verify")
    assert empty.returncode == 1 and "emptied" in empty.stdout
    witnessed = kustos(env, "audit", "verify", "--no-anchor", "--witness", str(witness))
    assert witnessed.returncode == 1 and "emptied" in witnessed.stdout
    assert "NOT checked (--no-anchor)" in witnessed.stderr


def test_the_operators_role_reaches_anchors_in_its_namespace_only(cluster: Any) -> None:
    cluster.kubectl("create", "namespace", "kustos-system", check=False)
    cluster.kubectl(
        "apply", "-f", str(REPO / "manifests" / "base" / "rbac.yaml"), "-n", "kustos-system"
    )
    who = "--as=system:serviceaccount:kustos-system:kustos-operator"

    def can(verb: str, ns: str, *sub: str) -> bool:
        out = cluster.kubectl(
            "auth", "can-i", verb, "auditanchors.kustos.io", *sub, "-n", ns, who, check=False
        )
        answer: str = out.stdout.strip()
        return answer == "yes"

    assert can("create", "kustos-system") and can("get", "kustos-system")
    assert can("patch", "kustos-system", "--subresource=status")
    other = new_namespace(cluster)
    assert not can("patch", other, "--subresource=status") and not can("create", other)
    assert not can("delete", "kustos-system")
    assert not can("patch", "kustos-system")  # the object itself: only its status
