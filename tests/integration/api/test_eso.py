"""External Secrets Operator's AWS Secrets Manager provider syncing Kustos secrets (opt-in).

ESO v0.16.2 (tools/eso: built from the Go module proxy, cached under ~/.cache/kustos) runs as a
process against the local control plane, with its endpoint override
(`AWS_SECRETSMANAGER_ENDPOINT`) pointing at a live Kustos and `AWS_CA_BUNDLE` trusting its CA.
A SecretStore of provider `aws`, service `SecretsManager`, authenticates with a Kustos access
key; an ExternalSecret then syncs a Kustos secret into its Secret, and a new value follows.

Opt-in, outside CI: set KUSTOS_TEST_ESO=1 (building ESO compiles every provider's SDK, tens
of minutes of CPU on a cold cache). ESO checks the store's region against AWS's own region
list, so this Kustos is named `us-east-1` (KUSTOS_CLUSTER_NAME); see docs/api.md.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.api_fixture import REPO, ApiWorld, allow_all_policy, start_api_world
from tests.kube_helpers import apply, get, new_namespace, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.eso,
    pytest.mark.skipif(
        os.environ.get("KUSTOS_TEST_ESO") != "1", reason="opt-in ESO tier: set KUSTOS_TEST_ESO=1"
    ),
]

REGION = "us-east-1"


@pytest.fixture(scope="module")
def eso_bin() -> Path:
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "eso" / "build.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def aws_world(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    kube_cluster.apply_crds()
    world = start_api_world(
        kube_cluster, tmp_path_factory.mktemp("eso-api"), KUSTOS_CLUSTER_NAME=REGION
    )
    yield world
    world.runner.stop()


def client_for(world: ApiWorld, key_id: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "secretsmanager",
        endpoint_url=world.endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        verify=str(world.ca_path),
        config=Config(retries={"max_attempts": 1}),
    )


def test_external_secret_syncs_a_kustos_secret(
    aws_world: ApiWorld, eso_bin: Path, tmp_path: Path
) -> None:
    cluster = aws_world.cluster
    cluster.kubectl("apply", "--server-side", "-f", str(eso_bin / "crds.yaml"))
    ns = new_namespace(cluster, "eso")
    cluster.kubectl("create", "serviceaccount", "eso", "-n", ns)
    apply(cluster, allow_all_policy(ns, "eso"))
    key = json.loads(
        aws_world.kustos("access-key", "create", "--service-account", f"{ns}/eso").stdout
    )["AccessKey"]
    sm = client_for(aws_world, key["AccessKeyId"], key["SecretAccessKey"])
    wait_for(lambda: _allowed(sm), timeout=30, what="the policy in force")
    sm.create_secret(Name="app/db", SecretString=json.dumps({"user": "app", "password": "one"}))

    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "kustos-key",
        "-n",
        ns,
        f"--from-literal=id={key['AccessKeyId']}",
        f"--from-literal=secret={key['SecretAccessKey']}",
    )
    apply(
        cluster,
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "SecretStore",
            "metadata": {"name": "kustos", "namespace": ns},
            "spec": {
                "provider": {
                    "aws": {
                        "service": "SecretsManager",
                        "region": REGION,
                        "auth": {
                            "secretRef": {
                                "accessKeyIDSecretRef": {"name": "kustos-key", "key": "id"},
                                "secretAccessKeySecretRef": {"name": "kustos-key", "key": "secret"},
                            }
                        },
                    }
                }
            },
        },
    )
    apply(
        cluster,
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "db", "namespace": ns},
            "spec": {
                "refreshInterval": "2s",
                "secretStoreRef": {"name": "kustos", "kind": "SecretStore"},
                "target": {"name": "db-synced"},
                "data": [
                    {
                        "secretKey": "password",
                        "remoteRef": {"key": "app/db", "property": "password"},
                    }
                ],
                "dataFrom": [{"extract": {"key": "app/db"}}],
            },
        },
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        KUBECONFIG=str(cluster.kubeconfig),
        AWS_SECRETSMANAGER_ENDPOINT=aws_world.endpoint,
        AWS_CA_BUNDLE=str(aws_world.ca_path),
        AWS_EC2_METADATA_DISABLED="true",
    )
    log = (tmp_path / "eso.log").open("w")
    proc = subprocess.Popen(
        [
            str(eso_bin / "external-secrets"),
            "--namespace",
            ns,
            "--metrics-addr",
            "0",
            "--enable-cluster-store-reconciler=false",
            "--enable-cluster-external-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
            "--enable-push-secret-reconciler=false",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        synced = wait_for(
            lambda: _data(cluster, "db-synced", ns),
            timeout=120,
            what=f"ESO's Secret (log: {tmp_path / 'eso.log'})",
        )
        assert synced == {"password": "one", "user": "app"}
        sm.put_secret_value(
            SecretId="app/db", SecretString=json.dumps({"user": "app", "password": "two"})
        )
        wait_for(
            lambda: _data(cluster, "db-synced", ns) == {"password": "two", "user": "app"},
            timeout=60,
            what="the new value synced",
        )
        status = (get(cluster, "externalsecret", "db", ns) or {}).get("status") or {}
        assert any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _allowed(sm: Any) -> bool:
    from botocore.exceptions import ClientError

    try:
        sm.get_random_password(PasswordLength=8)
    except ClientError:
        return False
    return True


def _data(cluster: Any, name: str, ns: str) -> dict[str, str] | None:
    secret = get(cluster, "secret", name, ns)
    if not secret:
        return None
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
