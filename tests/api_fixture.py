"""The Secrets Manager API under test: the real operator process serving it over TLS, a real
apiserver, a ServiceAccount with a SigV4 access key issued by `kustos access-key create`
and a SecretAccessPolicy granting it `secretsmanager:*` in its namespace.

`ApiWorld` hands out real boto3 clients (endpoint override, CA verification) and runs the
real AWS CLI (`.venv/bin/aws`) against the same endpoint.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kube_helpers import apply
from tests.operator_fixture import REPO, OperatorRunner, free_port

AWS_CLI = str(Path(sys.executable).parent / "aws")


def allow_all_policy(namespace: str, sa: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustos.io/v1alpha1",
        "kind": "SecretAccessPolicy",
        "metadata": {"name": f"{sa}-all", "namespace": namespace},
        "spec": {
            "subjects": [{"kind": "ServiceAccount", "name": sa}],
            "policy": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}],
            },
        },
    }


@dataclass
class Identity:
    namespace: str
    service_account: str
    access_key_id: str
    secret_access_key: str


@dataclass
class ApiWorld:
    cluster: Any
    runner: OperatorRunner
    port: int
    ca_path: Path
    identities: dict[str, Identity] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kustos(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kustos.cli.main", *args],
            env=self.runner.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
            cwd=self.runner.workdir,
        )

    def identity(self, namespace: str, sa: str = "app", *, policy: bool = True) -> Identity:
        key = f"{namespace}/{sa}"
        if key in self.identities:
            return self.identities[key]
        self.cluster.kubectl("create", "serviceaccount", sa, "-n", namespace)
        if policy:
            apply(self.cluster, allow_all_policy(namespace, sa))
        out = json.loads(self.kustos("access-key", "create", "--service-account", key).stdout)
        ident = Identity(
            namespace, sa, out["AccessKey"]["AccessKeyId"], out["AccessKey"]["SecretAccessKey"]
        )
        self.identities[key] = ident
        if policy:  # policies are re-listed every few seconds: wait until this one applies
            from botocore.exceptions import ClientError

            client, deadline = self.client(ident), time.monotonic() + 30
            while True:
                try:
                    client.get_random_password(PasswordLength=8)
                    break
                except ClientError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        return ident

    def client(self, ident: Identity, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "secretsmanager",
            endpoint_url=self.endpoint,
            region_name="test",
            aws_access_key_id=ident.access_key_id,
            aws_secret_access_key=ident.secret_access_key,
            verify=str(self.ca_path),
            config=Config(retries={"max_attempts": 1}, **config),
        )

    def aws(self, ident: Identity, *args: str, check: bool = True) -> Any:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=ident.access_key_id,
            AWS_SECRET_ACCESS_KEY=ident.secret_access_key,
            AWS_DEFAULT_REGION="test",
            AWS_CA_BUNDLE=str(self.ca_path),
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_MAX_ATTEMPTS="1",
        )
        proc = subprocess.run(
            [AWS_CLI, "secretsmanager", *args, "--endpoint-url", self.endpoint, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed: {proc.stderr}")
        return proc

    def raw(
        self,
        ident: Identity,
        target: str | None,
        body: bytes,
        content_type: str = "application/x-amz-json-1.1",
    ) -> tuple[int, dict[str, Any], Any]:
        """A SigV4-signed POST with any target/body/content type (bypassing botocore's
        serializer and client-side validation)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        headers = {"Content-Type": content_type}
        if target is not None:
            headers["X-Amz-Target"] = target
        request = AWSRequest(method="POST", url=self.endpoint + "/", data=body, headers=headers)
        SigV4Auth(
            Credentials(ident.access_key_id, ident.secret_access_key), "secretsmanager", "test"
        ).add_auth(request)
        prepared = request.prepare()
        req = urllib.request.Request(  # noqa: S310
            prepared.url,
            data=body,
            method="POST",
            headers=dict(prepared.headers),
        )
        context = ssl.create_default_context(cafile=str(self.ca_path))
        try:
            with urllib.request.urlopen(req, context=context, timeout=30) as resp:  # noqa: S310
                return resp.status, json.loads(resp.read() or b"{}"), resp.headers
        except urllib.error.HTTPError as exc:
            data = exc.read()
            return exc.code, json.loads(data) if data else {}, exc.headers


def start_api_world(cluster: Any, workdir: Path, **env: str) -> ApiWorld:
    """The operator (serving the API on a free port) in a fresh namespace of `cluster`;
    `env` adds to the operator's environment (e.g. KUSTOS_API_PROCESSES)."""
    namespace = f"kustos-sys-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    port = free_port()
    runner = OperatorRunner(
        cluster.kubeconfig,
        workdir,
        namespace,
        KUSTOS_API_PORT=str(port),
        KUSTOS_METRICS_PORT="0",
        KUSTOS_API_HOST="127.0.0.1",
        KUSTOS_READ_EVENTS_SECONDS="1",
        **{"KUSTOS_API_TLS_CHECK_SECONDS": "1", **env},
    )
    runner.start()
    ca_path = workdir / "ca.crt"
    deadline = time.monotonic() + float(os.environ.get("KUSTOS_TEST_START_SECONDS", "60"))
    while True:
        proc = cluster.kubectl(
            "get", "secret", "kustos-api-tls", "-n", namespace, "-o", "json", check=False
        )
        if proc.returncode == 0:
            ca_path.write_bytes(base64.b64decode(json.loads(proc.stdout)["data"]["ca.crt"]))
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no kustos-api-tls Secret:\n{runner.log()[-3000:]}")
        time.sleep(0.3)
    context = ssl.create_default_context(cafile=str(ca_path))
    while True:
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/healthz", context=context, timeout=2
            ):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"API not up:\n{runner.log()[-3000:]}") from None
            time.sleep(0.3)
    return ApiWorld(cluster, runner, port, ca_path)


__all__ = ["AWS_CLI", "REPO", "ApiWorld", "Identity", "allow_all_policy", "start_api_world"]
