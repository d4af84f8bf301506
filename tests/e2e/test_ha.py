"""No single point of failure, on the node: Kustos installed from the HA overlay
(`manifests/overlays/postgresql`, two replicas, the Lease, the PodDisruptionBudget) on a real
PostgreSQL that pods reach through a selector-less Service, as a user's database outside the
cluster would be reached.

- The leader pod is killed (``--grace-period=0 --force``) while a rotation of a
  generated-password ManagedSecret is open (awaiting its consumer's rollout: the image has no
  crash hooks, and the four AWS steps of a generated rotator take milliseconds): the other
  replica takes the Lease and completes the rotation exactly once, as the versions listed
  through the API show. The failover time is printed.
- ``kubectl rollout restart`` of the Deployment while a client pod calls GetSecretValue
  through the Service in a loop: no call fails. Count and latency are printed.
- The leader's process SIGKILLed on the node (a crash: a forced deletion still lets the
  kubelet send SIGTERM, on which the leader releases the Lease): another replica acquires
  the Lease once the claim lapsed. The failover time is printed.
- The leader pod is force-deleted while a single-user PostgreSQL rotation waits inside
  setSecret (the test holds the role in an open transaction, so the leader's ALTER ROLE
  waits on it; the store's write-ahead row says setSecret started): the other replica takes
  the Lease and resumes setSecret for the same token, queued behind the deposed leader's
  statement; released, the rotation completes exactly once (one row, the same token, no
  failed attempt, two versions with the expected labels), the AWSCURRENT login works (no
  lockout) and the projected Secret matches what the API serves. Times are printed.

The module installs into its own namespace (``kustos-ha``, kustomize's ``namespace:``) and
removes it, the app namespace and the overlay's cluster-scoped objects when it ends, so the
other e2e modules find the node as they left it. CRDs stay (other modules' objects use them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from tests.db_fixture import DbServer, pod_network, pod_postgres
from tests.kube_helpers import apply, get, managed_secret, new_namespace, ready, wait_for
from tests.rotation_helpers import make_db_user

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "manifests" / "overlays" / "postgresql"
NS = "kustos-ha"
API_HOST = f"kustos-api.{NS}.svc"
PG_HOST = f"postgres.{NS}.svc"
PG_CA = "/etc/kustos/postgresql/ca.crt"
LEASE = "kustos-operator"
#: Calls the client must at least make across the rollout (a loaded 2-core machine makes
#: a few dozen a second).
MIN_CALLS = 200

# The client pods: the standard library only, the pod's projected ServiceAccount token
# (audience kustos) as the bearer, the API's CA from a Secret. Prints no secret value.
CLIENT = r"""
import hashlib, json, os, ssl, sys, time, urllib.error, urllib.request
mode, arn = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile='/kustos-ca/ca.crt')
url = 'https://' + os.environ['KUSTOS_API'] + ':8443/'
def call(target, body):
    token = open('/kustos-token/token').read().strip()
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST', headers={
        'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': 'secretsmanager.' + target, 'Authorization': 'Bearer ' + token})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {'error': e.read()[:200].decode(errors='replace')}
if mode == 'list':
    status, out = call('ListSecretVersionIds', {'SecretId': arn, 'IncludeDeprecated': True})
    _, cur = call('GetSecretValue', {'SecretId': arn})
    value = cur.get('SecretString', '')
    if value.startswith('{'):
        value = json.loads(value).get('password', '')
    print(json.dumps({'status': status, 'versions': [
        {'id': v['VersionId'], 'stages': v.get('VersionStages', [])}
        for v in out.get('Versions', [])], 'current': cur.get('VersionId'),
        'current_sha': hashlib.sha256(value.encode()).hexdigest()}))
    sys.exit(0)
stop, deadline = '/tmp/stop', time.monotonic() + float(sys.argv[3])
calls, failed, errors, lat = 0, 0, [], []
while time.monotonic() < deadline and not os.path.exists(stop):
    t = time.monotonic()
    try:
        status, out = call('GetSecretValue', {'SecretId': arn})
        ok = status == 200 and bool(out.get('SecretString'))
        why = f'HTTP {status} {out.get("__type", "")}'
    except Exception as e:
        ok, why = False, f'{type(e).__name__}: {e}'[:200]
    lat.append(time.monotonic() - t)
    calls += 1
    if not ok:
        failed += 1
        errors.append(why)
    if calls == 1:
        print('started', flush=True)
lat.sort()
q = lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None
print(json.dumps({'calls': calls, 'failed': failed, 'errors': errors[:10],
                  'p50_ms': q(0.50), 'p99_ms': q(0.99)}), flush=True)
time.sleep(3600)
"""


@dataclass
class Ha:
    cluster: Any
    pg: DbServer
    app_ns: str


def _lease(cluster: Any) -> dict[str, Any]:
    obj = get(cluster, "lease", LEASE, NS) or {}
    return obj.get("spec") or {}


def _pod_of(identity: str) -> str:
    return identity.rsplit("-", 1)[0]  # "<hostname = pod name>-<8 hex>"


def _operator_pods(cluster: Any) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=kustos-operator", "-o", "json"
    ).stdout
    return json.loads(out)["items"]  # type: ignore[no-any-return]


def _ready_pods(cluster: Any) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in _operator_pods(cluster)
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    ]


def _rollout(cluster: Any, ns: str, deploy: str, timeout: int = 300) -> None:
    try:
        cluster.kubectl(
            "-n",
            ns,
            "rollout",
            "status",
            f"deploy/{deploy}",
            f"--timeout={timeout}s",
            timeout=timeout + 30,
        )
    except AssertionError as e:
        pods = cluster.kubectl("-n", ns, "describe", "pods", check=False).stdout
        logs = cluster.kubectl(
            "-n", ns, "logs", f"deploy/{deploy}", "--tail=40", check=False
        ).stdout
        raise AssertionError(f"{deploy} not rolled out:\n{pods[-4000:]}\n{logs}") from e


def _store_objects(pg: DbServer, pg_ip: str) -> list[dict[str, Any]]:
    """The database a user would give Kustos: reached by a Service name (no selector, an
    EndpointSlice naming the host's bridge address), TLS verified against its CA."""
    password = secrets.token_urlsafe(24)
    with pg.connect() as conn:
        conn.execute("DROP DATABASE IF EXISTS kustos")
        conn.execute("DROP ROLE IF EXISTS kustos")
        conn.execute(f"CREATE ROLE kustos LOGIN PASSWORD '{password}'")  # token_urlsafe: no quote
        conn.execute("CREATE DATABASE kustos OWNER kustos")
    url = (
        f"postgresql://kustos:{password}@{PG_HOST}:5432/kustos"
        f"?sslmode=verify-full&sslrootcert={PG_CA}"
    )
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "postgres", "namespace": NS},
            "spec": {"ports": [{"name": "pg", "port": 5432, "targetPort": pg.port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "postgres-host",
                "namespace": NS,
                "labels": {"kubernetes.io/service-name": "postgres"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": pg.port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [pg_ip], "conditions": {"ready": True}}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kustos-store", "namespace": NS},
            "stringData": {"url": url, "ca.crt": pg.ca_path.read_text()},
        },
    ]


def _kustomization(work: Path) -> str:
    """The overlay as a user would take it: their namespace and the database's CA mounted.
    The pods reach the database and the API by their Services' names (cluster DNS)."""
    deployment_patch = [
        {
            "op": "add",
            "path": "/spec/template/spec/volumes/-",
            "value": {
                "name": "store-ca",
                "secret": {
                    "secretName": "kustos-store",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                },
            },
        },
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/volumeMounts/-",
            "value": {"name": "store-ca", "mountPath": str(Path(PG_CA).parent), "readOnly": True},
        },
    ]
    webhook_patch = [
        {"op": "replace", "path": "/webhooks/0/clientConfig/service/namespace", "value": NS},
        {
            "op": "replace",
            "path": "/webhooks/0/namespaceSelector/matchExpressions/0/values",
            "value": [NS],
        },
    ]
    subject_patch = [{"op": "replace", "path": "/subjects/0/namespace", "value": NS}]
    return yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": NS,
            "resources": [os.path.relpath(OVERLAY, work)],
            "patches": [
                {
                    "target": {"kind": "Deployment", "name": "kustos-operator"},
                    "patch": json.dumps(deployment_patch),
                },
                {
                    "target": {"kind": "MutatingWebhookConfiguration"},
                    "patch": json.dumps(webhook_patch),
                },
                # The base names its ServiceAccount's namespace in the bindings' subjects,
                # which kustomize's namespace: leaves alone.
                {"target": {"kind": "ClusterRoleBinding"}, "patch": json.dumps(subject_patch)},
                {"target": {"kind": "RoleBinding"}, "patch": json.dumps(subject_patch)},
            ],
        }
    )


def _connect(pg: DbServer, host: str, **kw: Any) -> None:
    """Log in as admin at `host` (the pod network's address, from this host)."""
    psycopg.connect(
        host=host,
        port=pg.port,
        user=pg.admin_user,
        password=pg.admin_password,
        dbname=pg.database,
        connect_timeout=5,
        **kw,
    ).close()


def _uninstall(cluster: Any, app_ns: str | None) -> None:
    """Remove what the module installed; fail if any of it is left for the next module."""
    namespaces = [ns for ns in (app_ns, NS) if ns]  # the app first: Kustos releases its objects
    for ns in namespaces:
        cluster.kubectl(
            "delete", "namespace", ns, "--ignore-not-found", "--wait=true", timeout=240, check=False
        )
    selector = "app.kubernetes.io/part-of=kustos,app.kubernetes.io/managed-by!=Helm"
    kinds = "clusterrole,clusterrolebinding,mutatingwebhookconfiguration"
    cluster.kubectl("delete", kinds, "-l", selector, "--ignore-not-found", timeout=120)
    left = cluster.kubectl("get", kinds, "-l", selector, "-o", "name").stdout.split()
    left += [
        ns for ns in namespaces if cluster.kubectl("get", "ns", ns, check=False).returncode == 0
    ]
    assert not left, f"left behind: {left}"


@pytest.fixture(scope="module")
def ha(node_cluster: Any, kustos_image: str) -> Iterator[Ha]:
    if node_cluster.control_plane is None:
        pytest.skip("the test PostgreSQL runs on this machine: the local node only")
    assert kustos_image == "kustos:0.1.0"
    network = pod_network((PG_HOST,))
    pg = pod_postgres(network)
    app_ns: str | None = None
    try:
        # Pods may log in with TLS only: the server refuses them a plain connection.
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
            _connect(pg, network.address, sslmode="disable")
        _connect(pg, network.address, sslmode="verify-full", sslrootcert=str(pg.ca_path))

        apply(node_cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for obj in _store_objects(pg, network.address):
            # Server-side: no last-applied annotation repeating the Secret's password.
            node_cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))
        with tempfile.TemporaryDirectory(prefix="kustos-ha-") as work:
            kustomization = _kustomization(Path(work))
            (Path(work) / "kustomization.yaml").write_text(kustomization)
            node_cluster.kubectl(
                "apply", "--server-side", "--force-conflicts", "-k", work, timeout=120
            )
        _rollout(node_cluster, NS, "kustos-operator")
        wait_for(
            lambda: _lease(node_cluster).get("holderIdentity"),
            timeout=120,
            what="a replica holds the Lease",
        )
        wait_for(
            lambda: len(_ready_pods(node_cluster)) == 2, timeout=120, what="two replicas Ready"
        )
        app_ns = new_namespace(node_cluster, "ha-app")
        _app_objects(node_cluster, app_ns)
        yield Ha(node_cluster, pg, app_ns)
    finally:
        try:
            _uninstall(node_cluster, app_ns)
        finally:
            pg.purge()


def _app_objects(cluster: Any, ns: str) -> None:
    """The client's ServiceAccount, its policy and the API's CA in the app namespace; and the
    team's consent that Kustos restarts its workloads (docs/rollouts.md)."""
    cluster.kubectl(
        "create",
        "rolebinding",
        "kustos-rollouts",
        "-n",
        ns,
        "--clusterrole=kustos-rollouts",
        f"--serviceaccount={NS}:kustos-operator",
    )
    ca = wait_for(
        lambda: (get(cluster, "secret", "kustos-api-tls", NS) or {}).get("data", {}).get("ca.crt"),
        timeout=60,
        what="the API's CA",
    )
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "reader", "namespace": ns},
        },
    )
    apply(
        cluster,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kustos-ca", "namespace": ns},
            "data": {"ca.crt": ca},
        },
    )
    apply(
        cluster,
        {
            "apiVersion": "kustos.io/v1alpha1",
            "kind": "SecretAccessPolicy",
            "metadata": {"name": "reader", "namespace": ns},
            "spec": {
                "subjects": [{"kind": "ServiceAccount", "name": "reader"}],
                "policy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "secretsmanager:GetSecretValue",
                                "secretsmanager:ListSecretVersionIds",
                            ],
                            "Resource": "arn:kustos:secretsmanager:*:*:secret:ha/*",
                        }
                    ],
                },
            },
        },
    )


def _client_pod(ha: Ha, name: str, *args: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ha.app_ns},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "reader",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "containers": [
                {
                    "name": "main",
                    "image": ha.cluster.base_image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", CLIENT, *args],
                    "env": [{"name": "KUSTOS_API", "value": API_HOST}],
                    "securityContext": {"allowPrivilegeEscalation": False},
                    "volumeMounts": [
                        {"name": "token", "mountPath": "/kustos-token"},
                        {"name": "ca", "mountPath": "/kustos-ca"},
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "token",
                    "projected": {
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "audience": "kustos",
                                    "path": "token",
                                    "expirationSeconds": 3600,
                                }
                            }
                        ]
                    },
                },
                {"name": "ca", "secret": {"secretName": "kustos-ca"}},
            ],
        },
    }


def _list_versions(ha: Ha, arn: str) -> dict[str, Any]:
    name = f"list-{uuid.uuid4().hex[:6]}"
    apply(ha.cluster, _client_pod(ha, name, "list", arn))

    def done() -> str | None:
        pod = get(ha.cluster, "pod", name, ha.app_ns) or {}
        phase = pod.get("status", {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(done, timeout=120, what=f"pod {name} done")
    logs = ha.cluster.kubectl("-n", ha.app_ns, "logs", name).stdout
    assert phase == "Succeeded", logs
    out: dict[str, Any] = json.loads(logs.strip().splitlines()[-1])
    assert out["status"] == 200, out
    return out


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _projected_sha(cluster: Any, name: str, ns: str) -> str:
    secret = get(cluster, "secret", name, ns) or {}
    return _sha(base64.b64decode(secret["data"]["password"]).decode())


def _micro(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_two_replicas_are_ready_and_one_holds_the_lease(ha: Ha) -> None:
    ready_pods = _ready_pods(ha.cluster)
    assert len(ready_pods) == 2
    holder = _lease(ha.cluster)["holderIdentity"]
    assert _pod_of(holder) in ready_pods
    pdb = get(ha.cluster, "poddisruptionbudget", "kustos-operator", NS) or {}
    assert pdb.get("status", {}).get("currentHealthy") == 2


def test_leader_killed_mid_rotation_the_other_replica_completes_it_exactly_once(
    ha: Ha,
) -> None:
    cluster, ns = ha.cluster, ha.app_ns
    spec = {
        "name": "ha/rotated",
        "generate": {"passwordLength": 24, "excludePunctuation": True, "keys": ["password"]},
        "target": {"restartOnChange": [{"kind": "Deployment", "name": "consumer"}]},
        "rotation": {"generated": {}, "rolloutTimeoutSeconds": 600},
    }
    apply(cluster, managed_secret("rotated", ns, spec))
    obj = wait_for(lambda: ready(cluster, "rotated", ns), timeout=120, what="rotated Ready")
    arn, first = obj["status"]["arn"], obj["status"]["currentVersionId"]
    # A consumer whose rollout takes a while: the rotation stays open (awaitRollout) that long.
    labels = {"app": "consumer"}
    apply(
        cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "consumer", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                        "containers": [
                            {
                                "name": "app",
                                "image": cluster.base_image,
                                "imagePullPolicy": "Never",
                                "command": ["python3", "-c", "import time; time.sleep(36000)"],
                                "readinessProbe": {
                                    "exec": {"command": ["true"]},
                                    "initialDelaySeconds": 25,
                                    "periodSeconds": 2,
                                },
                                "volumeMounts": [{"name": "s", "mountPath": "/s"}],
                            }
                        ],
                        "volumes": [{"name": "s", "secret": {"secretName": "rotated"}}],
                    },
                },
            },
        },
    )
    _rollout(cluster, ns, "consumer", timeout=180)

    cluster.kubectl("-n", ns, "annotate", "ms", "rotated", f"kustos.io/rotate-now={uuid.uuid4()}")

    def open_rotation() -> dict[str, Any] | None:
        rotation = ((get(cluster, "managedsecret", "rotated", ns) or {}).get("status") or {}).get(
            "rotation"
        ) or {}
        return rotation if rotation.get("state") == "InProgress" else None

    rotation = wait_for(open_rotation, timeout=60, what="the rotation in progress")
    token = rotation["token"]
    holder = _lease(cluster)["holderIdentity"]
    leader = _pod_of(holder)
    cluster.kubectl(
        "-n", NS, "delete", "pod", leader, "--grace-period=0", "--force", "--wait=false"
    )
    killed = time.time()
    assert open_rotation() is not None, "the rotation closed before the leader was killed"

    def new_leader() -> dict[str, Any] | None:
        spec = _lease(cluster)
        return spec if spec.get("holderIdentity") not in (None, "", holder) else None

    spec_after = wait_for(new_leader, timeout=60, what="another replica takes the Lease")
    observed = time.time() - killed
    renewed = _micro(spec_after.get("acquireTime") or spec_after["renewTime"]) - killed
    print(
        f"\nFAILOVER leader pod force-deleted mid-rotation ({rotation.get('step')}) -> "
        f"{_pod_of(spec_after['holderIdentity'])} renews the Lease: {renewed:.1f} s "
        f"(seen by the test after {observed:.1f} s)"
    )

    def succeeded() -> dict[str, Any] | None:
        obj = get(cluster, "managedsecret", "rotated", ns) or {}
        rot = (obj.get("status") or {}).get("rotation") or {}
        return obj if rot.get("state") in ("Succeeded", "Held", "Abandoned") else None

    obj = wait_for(succeeded, timeout=600, what="the rotation closed")
    rot = obj["status"]["rotation"]
    assert rot["state"] == "Succeeded", rot
    assert rot["token"] == token  # the same rotation, resumed
    assert obj["status"]["currentVersionId"] == token
    listed = _list_versions(ha, arn)
    versions = {v["id"]: sorted(v["stages"]) for v in listed["versions"]}
    assert len(listed["versions"]) == len(versions) == 2, listed  # none lost, none duplicated
    assert versions == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}, versions
    assert listed["current"] == token
    assert listed["current_sha"] == _projected_sha(cluster, "rotated", ns)
    assert _lease(cluster)["leaseTransitions"] >= 1


def test_a_rolling_restart_drops_no_call(ha: Ha) -> None:
    cluster, ns = ha.cluster, ha.app_ns
    spec = {"name": "ha/steady", "generate": {"passwordLength": 24, "keys": ["password"]}}
    apply(cluster, managed_secret("steady", ns, spec))
    obj = wait_for(lambda: ready(cluster, "steady", ns), timeout=120, what="steady Ready")
    wait_for(lambda: len(_ready_pods(cluster)) == 2, timeout=300, what="two replicas Ready")
    before = set(_ready_pods(cluster))
    apply(cluster, _client_pod(ha, "caller", "loop", obj["status"]["arn"], "900"))

    def logs() -> str:
        return str(cluster.kubectl("-n", ns, "logs", "caller", check=False).stdout)

    wait_for(lambda: "started" in logs(), timeout=120, what="the client calls")
    time.sleep(3)
    cluster.kubectl("-n", NS, "rollout", "restart", "deploy/kustos-operator")
    started = time.monotonic()
    _rollout(cluster, NS, "kustos-operator", timeout=600)
    rolled = time.monotonic() - started
    time.sleep(5)  # the old replicas' drain is over: calls after it count too
    cluster.kubectl("-n", ns, "exec", "caller", "--", "python3", "-c", "open('/tmp/stop', 'w')")
    line = wait_for(
        lambda: next((x for x in logs().splitlines() if x.startswith("{")), None),
        timeout=60,
        what="the client's result",
    )
    result = json.loads(line)
    after = set(_ready_pods(cluster))
    print(
        f"\nROLLOUT restart of 2 replicas ({rolled:.1f} s) while a pod called GetSecretValue "
        f"through the Service: {result['calls']} calls, {result['failed']} failed, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
    )
    assert not before & after  # both replicas were replaced
    assert result["failed"] == 0, result["errors"]
    assert result["calls"] > MIN_CALLS


def test_a_crashed_leader_is_replaced_once_its_lease_lapses(ha: Ha) -> None:
    """A crash, not a deletion: the leader's process SIGKILLed on the node (a forced pod
    deletion still lets the kubelet send SIGTERM, and the leader releases the Lease)."""
    cluster = ha.cluster
    wait_for(lambda: len(_ready_pods(cluster)) == 2, timeout=300, what="two replicas Ready")
    holder = _lease(cluster)["holderIdentity"]
    pod = get(cluster, "pod", _pod_of(holder), NS) or {}
    container = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    subprocess.run(
        [
            "ctr",
            f"--address={cluster.containerd_socket}",
            "-n",
            "k8s.io",
            "tasks",
            "kill",
            "--signal",
            "SIGKILL",
            container,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    killed = time.time()

    def new_leader() -> dict[str, Any] | None:
        spec = _lease(cluster)
        return spec if spec.get("holderIdentity") not in (None, "", holder) else None

    spec = wait_for(new_leader, timeout=90, interval=0.2, what="another replica takes the Lease")
    failover = _micro(spec.get("acquireTime") or spec["renewTime"]) - killed
    print(
        f"\nFAILOVER leader process SIGKILLed on the node -> {_pod_of(spec['holderIdentity'])} "
        f"acquires the Lease: {failover:.1f} s (lease {spec.get('leaseDurationSeconds')} s)"
    )
    # Not released: taken only once the claim lapsed (up to one retry early), and soon after.
    assert 4.0 <= failover <= 30.0


def _store_rotations(pg: DbServer, arn: str) -> list[dict[str, Any]]:
    """The rotation rows of `arn` in Kustos's store (the write-ahead record every replica
    resumes from), read as the database's admin."""
    with pg.connect(dbname="kustos") as conn:
        cur = conn.execute(
            "SELECT token, step, phase, status, attempts, last_error FROM rotations "
            "WHERE arn = %s ORDER BY created_at",
            (arn,),
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _waiting_alters(pg: DbServer) -> dict[int, str]:
    """Backends of the rotator waiting on a lock in an ALTER ROLE: pid -> client address.
    (Only the statement's first words are read: the rest carries a password verifier.)"""
    with pg.connect() as conn:
        rows = conn.execute(
            "SELECT pid, host(client_addr) FROM pg_stat_activity "
            "WHERE application_name = 'kustos-rotator' AND wait_event_type = 'Lock' "
            "AND left(query, 10) = 'ALTER ROLE'"
        ).fetchall()
    return {int(pid): str(addr) for pid, addr in rows}


def test_leader_killed_inside_set_secret_of_a_postgresql_rotation_completes_once_no_lockout(
    ha: Ha,
) -> None:
    """single-user PostgreSQL rotation (the riskiest: the user's own password changes). The
    test holds the role in an open transaction, so the leader's ALTER ROLE waits inside
    setSecret; the leader pod is force-deleted there. Its statement stays queued in the
    server; the other replica takes the Lease, resumes setSecret for the same token and
    queues behind it; then the test releases the role. The deposed leader's change lands
    (the value the store already holds as AWSPENDING: written ahead), the new leader's is
    refused as a concurrent update and its setSecret sees the database accept AWSPENDING."""
    cluster, ns, pg = ha.cluster, ha.app_ns, ha.pg
    user, password, dbname = make_db_user(pg)
    consent = {"kustos.io/allow-import-by": "db"}
    secrets_: list[tuple[str, dict[str, str], dict[str, str]]] = [
        (
            "db-initial",
            {
                "username": user,
                "password": password,
                "host": PG_HOST,  # as the operator pods reach it: the Service
                "port": "5432",
                "dbname": dbname,
            },
            consent,
        ),
        ("db-ca", {"ca.crt": pg.ca_path.read_text()}, {}),
    ]
    for name, data, notes in secrets_:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "annotations": notes},
            "stringData": data,
        }
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(secret))
    spec = {
        "name": "ha/db",
        "valueFrom": {"secretRef": {"name": "db-initial"}},
        "rotation": {
            "postgresql": {
                "strategy": "single-user",
                # a statement may wait up to twice this: longer than the failover
                "connectTimeoutSeconds": 60,
                "tls": {"mode": "verify-full", "caSecretRef": {"name": "db-ca"}},
            }
        },
    }
    apply(cluster, managed_secret("db", ns, spec))
    obj = wait_for(lambda: ready(cluster, "db", ns), timeout=120, what="db Ready")
    arn, first = obj["status"]["arn"], obj["status"]["currentVersionId"]
    assert _store_rotations(pg, arn) == []
    wait_for(lambda: len(_ready_pods(cluster)) == 2, timeout=300, what="two replicas Ready")

    holder = pg.connect()
    holder.autocommit = False  # the role stays held until released below
    released = False
    try:
        holder.execute(f'ALTER ROLE "{user}" CONNECTION LIMIT -1')
        cluster.kubectl("-n", ns, "annotate", "ms", "db", f"kustos.io/rotate-now={uuid.uuid4()}")

        def in_set_secret() -> tuple[dict[str, Any], dict[int, str]] | None:
            rows = _store_rotations(pg, arn)
            waiting = _waiting_alters(pg)
            if len(rows) == 1 and (rows[0]["step"], rows[0]["phase"]) == ("setSecret", "started"):
                return (rows[0], waiting) if waiting else None
            return None

        row, first_waiting = wait_for(in_set_secret, timeout=120, what="the leader in setSecret")
        token = row["token"]
        assert row["status"] == "InProgress" and len(first_waiting) == 1, (row, first_waiting)
        holder_identity = _lease(cluster)["holderIdentity"]
        leader = _pod_of(holder_identity)
        leader_ip = (get(cluster, "pod", leader, NS) or {}).get("status", {}).get("podIP")
        cluster.kubectl(
            "-n", NS, "delete", "pod", leader, "--grace-period=0", "--force", "--wait=false"
        )
        killed = time.time()
        # the statement that waits is the leader's (pods reach the server unmasqueraded)
        assert set(first_waiting.values()) == {leader_ip}, (first_waiting, leader_ip)

        def new_leader() -> dict[str, Any] | None:
            lease = _lease(cluster)
            return lease if lease.get("holderIdentity") not in (None, "", holder_identity) else None

        lease = wait_for(new_leader, timeout=120, interval=0.2, what="another replica leads")
        renewed = _micro(lease.get("acquireTime") or lease["renewTime"]) - killed

        # the new leader resumed setSecret: its ALTER ROLE queues behind the deposed one's
        def resumed() -> dict[int, str] | None:
            waiting = _waiting_alters(pg)
            return waiting if set(waiting) - set(first_waiting) else None

        waiting = wait_for(resumed, timeout=180, interval=0.2, what="setSecret resumed")
        resumed_after = time.time() - killed
        orphan_still_waiting = set(first_waiting) <= set(waiting)
        row = _store_rotations(pg, arn)[0]
        assert (row["token"], row["step"], row["phase"]) == (token, "setSecret", "started"), row
        holder.rollback()
        released = True
    finally:
        if not released:
            holder.rollback()
        holder.close()

    def closed() -> dict[str, Any] | None:
        found = get(cluster, "managedsecret", "db", ns) or {}
        rot = (found.get("status") or {}).get("rotation") or {}
        return found if rot.get("token") == token and rot.get("state") != "InProgress" else None

    obj = wait_for(closed, timeout=300, what="the rotation closed")
    completed_after = time.time() - killed
    rot = obj["status"]["rotation"]
    print(
        f"\nFAILOVER leader pod {leader} ({leader_ip}) force-deleted inside setSecret of a "
        f"PostgreSQL rotation -> {_pod_of(lease['holderIdentity'])} renews the Lease "
        f"{renewed:.1f} s later, resumes setSecret after {resumed_after:.1f} s (the deposed "
        f"leader's ALTER ROLE {'still' if orphan_still_waiting else 'no longer'} queued: "
        f"{sorted(first_waiting.values())} then {sorted(waiting.values())}); the rotation "
        f"Succeeded {completed_after:.1f} s after the kill, attempts {rot.get('attempts', 0)}"
    )
    assert rot["state"] == "Succeeded", rot
    assert rot["token"] == token  # the same rotation, resumed
    assert not rot.get("lastError") and rot.get("attempts", 0) == 0, rot
    assert obj["status"]["currentVersionId"] == token
    # exactly once: one rotation row, closed; two versions, the expected labels
    rows = _store_rotations(pg, arn)
    assert [(r["token"], r["status"]) for r in rows] == [(token, "Succeeded")], rows
    listed = _list_versions(ha, arn)
    versions = {v["id"]: sorted(v["stages"]) for v in listed["versions"]}
    assert len(listed["versions"]) == len(versions) == 2, listed
    assert versions == {first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}, versions
    assert listed["current"] == token
    # no lockout: AWSCURRENT, as projected and as the API serves it, logs in; the old
    # password does not (single-user); nothing is left waiting in the server
    data = (get(cluster, "secret", "db", ns) or {})["data"]
    projected = {k: base64.b64decode(v).decode() for k, v in data.items()}
    assert listed["current_sha"] == _sha(projected["password"])
    assert projected["username"] == user
    assert pg.can_login(user, projected["password"], dbname=dbname)
    assert not pg.can_login(user, password, dbname=dbname)
    assert _waiting_alters(pg) == {}
    assert _lease(cluster)["leaseTransitions"] >= 1
