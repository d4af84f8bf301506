"""Bad rotation input: refused at admission by the CRD schema and CEL rules, or reported in
status by the operator (RotationFailed condition, InvalidSpec or RotationFailed reason) with
nothing rotated and nothing lost."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from tests.kube_helpers import (
    condition,
    get,
    managed_secret,
    new_namespace,
    present,
    ready,
    wait_for,
)
from tests.rotation_helpers import FAST

pytestmark = pytest.mark.cluster

BASE = {"generate": {"passwordLength": 16}}
PG = {"host": "127.0.0.1", "strategy": "alternating-users"}


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


def try_apply(cluster: Any, ns: str, name: str, rotation: dict[str, Any]) -> Any:
    body = json.dumps(managed_secret(name, ns, {**BASE, "rotation": rotation}))
    return cluster.kubectl("apply", "-f", "-", input=body, check=False)


@pytest.mark.parametrize(
    ("rotation", "message"),
    [
        ({"schedule": "every sunday", "generated": {}}, "should match"),
        ({"schedule": "rate(2 weeks)", "generated": {}}, "should match"),
        ({"window": "2h", "generated": {}}, "window needs rotation.schedule"),
        ({"window": "soon", "schedule": "rate(1 day)", "generated": {}}, "should match"),
        (
            {
                "generated": {},
                "webhook": {"url": "https://x", "signingKeySecretRef": {"name": "k"}},
            },
            "exactly one rotator",
        ),
        ({}, "exactly one rotator"),
        (
            {"postgresql": {**PG, "masterSecretRef": {"name": "m", "namespace": "other"}}},
            "own namespace",
        ),
        ({"postgresql": {"strategy": "alternating-users"}}, "needs masterSecretRef"),
        ({"mysql": {"strategy": "both"}}, "Unsupported value"),
        (
            {"webhook": {"url": "http://plain", "signingKeySecretRef": {"name": "k"}}},
            "should match",
        ),
        ({"custom": {"rotator": "Bad Name"}}, "should match"),
        # the bounds the CRD shares with the models (tests/unit/test_crd_models.py)
        ({"postgresql": {"host": ""}}, "should be at least 1 chars long"),
        ({"mysql": {"host": "db", "userHost": ""}}, "should be at least 1 chars long"),
        ({"postgresql": {"host": "db", "connectTimeoutSeconds": 0}}, "should be greater than 0"),
        (
            {
                "webhook": {
                    "url": "https://x",
                    "signingKeySecretRef": {"name": "k", "key": ""},
                    "timeoutSeconds": 5,
                }
            },
            "should be at least 1 chars long",
        ),
    ],
)
def test_refused_at_admission(cluster: Any, rotation: dict[str, Any], message: str) -> None:
    ns = new_namespace(cluster)
    proc = try_apply(cluster, ns, "bad", rotation)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert get(cluster, "managedsecret", "bad", ns) is None


def test_a_timeout_under_a_second_is_admitted(cluster: Any) -> None:
    """The models and the rotators take any timeout in (0, 300]; so does the CRD."""
    ns = new_namespace(cluster)
    proc = try_apply(
        cluster, ns, "quick", {"postgresql": {"host": "db", "connectTimeoutSeconds": 0.5}}
    )
    assert proc.returncode == 0, proc.stderr
    obj = get(cluster, "managedsecret", "quick", ns)
    assert obj is not None and obj["spec"]["rotation"]["postgresql"]["connectTimeoutSeconds"] == 0.5


def test_reported_in_status_and_nothing_rotated(cluster: Any, operator_factory: Any) -> None:
    runner = operator_factory(**FAST)
    runner.start()
    ns = new_namespace(cluster)
    cluster.kubectl(
        "create", "secret", "generic", "half-master", "-n", ns, "--from-literal=username=admin"
    )
    cluster.kubectl(
        "annotate", "secret", "half-master", "-n", ns, "kustos.io/allow-import-by=halfmaster"
    )
    cluster.kubectl(  # complete, but it never consented to serve a ManagedSecret
        "create",
        "secret",
        "generic",
        "quiet-master",
        "-n",
        ns,
        "--from-literal=username=admin",
        "--from-literal=password=master-canary-91c2",
    )
    cases: dict[str, tuple[dict[str, Any], str, str]] = {
        "window": (
            {"schedule": "rate(1 hour)", "window": "2h", "generated": {}},
            "InvalidSpec",
            "longer than the interval",
        ),
        "awscron": (
            {"schedule": "cron(0 4 * * SUN *)", "rotateImmediately": True, "generated": {}},
            "InvalidSpec",
            "needs '?'",
        ),
        "unknown": (
            {"custom": {"rotator": "nope"}, "rotateImmediately": True},
            "InvalidSpec",
            "unknown rotator 'nope'",
        ),
        "elsewhere": (
            {
                "custom": {
                    "rotator": "postgresql",
                    "config": {**PG, "masterSecretRef": {"name": "m", "namespace": "other"}},
                },
                "rotateImmediately": True,
            },
            "InvalidSpec",
            "points into namespace 'other'",
        ),
        "halfmaster": (
            {
                "postgresql": {**PG, "masterSecretRef": {"name": "half-master"}},
                "rotateImmediately": True,
            },
            "RotationFailed",
            "lacks keys ['password']",
        ),
        "unconsented": (
            {
                "postgresql": {**PG, "masterSecretRef": {"name": "quiet-master"}},
                "rotateImmediately": True,
            },
            "RotationFailed",
            "Secret {ns}/quiet-master does not allow use by ManagedSecret unconsented",
        ),
        "nomaster": (
            {
                "postgresql": {**PG, "masterSecretRef": {"name": "absent"}},
                "rotateImmediately": True,
            },
            "RotationFailed",
            "Secret {ns}/absent not found",
        ),
    }
    for name, (rotation, _reason, _message) in cases.items():
        assert try_apply(cluster, ns, name, rotation).returncode == 0
    for name, (_rotation, reason, message) in cases.items():

        def failed(n: str = name) -> dict[str, Any] | None:
            o = get(cluster, "ms", n, ns)
            c = condition(o, "RotationFailed") if o else None
            return o if c and c["status"] == "True" else None

        obj = wait_for(failed, what=f"RotationFailed on {name}", timeout=60)
        cond = present(condition(obj, "RotationFailed"))
        assert cond["reason"] == reason, (name, cond)
        assert message.format(ns=ns) in cond["message"], (name, cond)
        # The value and its projection are fine; nothing was rotated.
        obj = wait_for(partial(ready, cluster, name, ns), what=f"{name} Ready")
        assert [v["stages"] for v in obj["status"]["versions"]] == [["AWSCURRENT"]]
        assert not obj["status"].get("rotation")
        assert not obj["status"].get("lastRotatedAt")
