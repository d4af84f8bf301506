"""Authentication and authorization end to end: the real API server (aiohttp, in this
process) on a real store, against the real kube-apiserver (TokenRequest, TokenReview, the
policy CRDs), called by real boto3/botocore -- including botocore's own container-credentials
provider -- and by the `kustos` CLI.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from aiohttp import web
from botocore.config import Config
from tests.kube_helpers import apply, events, get, managed_secret, new_namespace, wait_for
from tests.operator_fixture import free_port

from kustos.api.credentials import add_credentials_routes
from kustos.api.server import ApiBackend, build_app
from kustos.config import Settings
from kustos.models.records import SecretRecord
from kustos.models.sensitive import SecretValue
from kustos.services.access.container_credentials import ContainerCredentials
from kustos.services.factory import Services
from kustos.store.audit import AuditQuery

pytestmark = pytest.mark.cluster

KUBE_API = "https://kubernetes.default.svc"
VALUE = '{"username":"app","password":"KUSTOS-CANARY-access-3f9a"}'
SEED_PREFIX = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": "arn:kustos:secretsmanager:test:{ns}:secret:My_Test_Secret/*",
        }
    ],
}
SEED_TAGS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:Describe*", "secretsmanager:GetSecretValue"],
            "Resource": "*",
            "Condition": {
                "StringEqualsIgnoreCase": {"secretsmanager:ResourceTag/team": "Payments"}
            },
        }
    ],
}


@dataclass
class Env:
    cluster: Any
    services: Services
    url: str
    cli_env: dict[str, str]
    workdir: Path

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return str(self.cluster.kubectl(*args, input=input).stdout)

    def namespace_with(self, *service_accounts: str) -> str:
        ns = new_namespace(self.cluster, "acc")
        for sa in service_accounts:
            self.kubectl("create", "serviceaccount", sa, "-n", ns)
        return ns

    def token(self, ns: str, sa: str, audience: str | None = "kustos") -> str:
        args = ["create", "token", sa, "-n", ns]
        if audience:
            args += ["--audience", audience]
        return self.kubectl(*args).strip()

    def secret(
        self,
        ns: str,
        name: str,
        *,
        tags: dict[str, str] | None = None,
        object_name: str | None = None,
    ) -> SecretRecord:
        record = self.services.secrets.create(ns, name, tags=tags, object_name=object_name)
        self.services.secrets.add_version(record, SecretValue(VALUE))
        return record

    def policy(
        self, ns: str, name: str, subjects: list[dict[str, str]], document: dict[str, Any]
    ) -> None:
        text = json.dumps(document).replace("{ns}", ns)
        apply(
            self.cluster,
            {
                "apiVersion": "kustos.io/v1alpha1",
                "kind": "SecretAccessPolicy",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"subjects": subjects, "policy": json.loads(text)},
            },
        )

    def boto(self, **kw: Any) -> Any:
        kw.setdefault("region_name", "test")
        return boto3.client(
            "secretsmanager",
            endpoint_url=self.url,
            config=Config(retries={"max_attempts": 1}),
            **kw,
        )

    def call(self, target: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310 - our own http://127.0.0.1 server
            self.url + "/",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"secretsmanager.{target}",
                "Authorization": f"Bearer {token}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def kustos(self, *args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "kustos.cli.main", *args],
            env=self.cli_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else {}


@pytest.fixture(scope="module")
def env(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    kube_cluster.apply_crds()
    system = new_namespace(kube_cluster, "kustos-sys")
    workdir = tmp_path_factory.mktemp("access")
    store_url = f"sqlite:///{workdir / 'kustos.db'}"
    settings = Settings(
        store_url=store_url,
        namespace=system,
        cluster_name="test",
        kubeconfig=kube_cluster.kubeconfig,
    )
    services = Services.build(settings)
    app = build_app(
        ApiBackend(services.access, services.secrets_api),
        extra_routes=lambda a: add_credentials_routes(
            a, ContainerCredentials(services.access, services.audit)
        ),
    )
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    port = free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    cli_env = dict(
        os.environ,
        KUBECONFIG=kube_cluster.kubeconfig,
        KUSTOS_STORE_URL=store_url,
        KUSTOS_NAMESPACE=system,
        KUSTOS_CLUSTER_NAME="test",
    )
    yield Env(kube_cluster, services, f"http://127.0.0.1:{port}", cli_env, workdir)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.run_until_complete(runner.cleanup())
    loop.close()
    services.close()


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_bearer_tokens_from_token_request(env: Env) -> None:
    ns = env.namespace_with("app")
    env.secret(ns, "My_Test_Secret/MySQL")
    env.policy(ns, "readers", [{"kind": "ServiceAccount", "name": "app"}], SEED_PREFIX)
    token = env.token(ns, "app")
    status, body = wait_for(
        lambda: (
            r
            if (r := env.call("GetSecretValue", {"SecretId": "My_Test_Secret/MySQL"}, token))[0]
            == 200
            else None
        ),
        what="policy in force",
    )
    assert body["SecretString"] == VALUE
    # a token minted for the Kubernetes API only, not for Kustos
    status, body = env.call(
        "GetSecretValue",
        {"SecretId": "My_Test_Secret/MySQL"},
        env.token(ns, "app", audience=KUBE_API),
    )
    assert (status, body["__type"]) == (400, "UnrecognizedClientException")
    # a token for some other audience
    status, body = env.call(
        "GetSecretValue",
        {"SecretId": "My_Test_Secret/MySQL"},
        env.token(ns, "app", audience="vault"),
    )
    assert body["__type"] == "UnrecognizedClientException"
    # forged: the right claims, a signature that is not the API server's
    head, claims, signature = token.split(".")
    forged = f"{head}.{claims}.{signature[::-1]}"
    status, body = env.call("GetSecretValue", {"SecretId": "My_Test_Secret/MySQL"}, forged)
    assert body["__type"] == "UnrecognizedClientException"
    assert VALUE not in json.dumps(body)


def test_seed_policies_via_crds_and_denials(env: Env) -> None:
    ns = env.namespace_with("app", "payments")
    env.kubectl(
        "create",
        "-n",
        ns,
        "-f",
        "-",
        input=json.dumps(managed_secret("mysql", ns, {"name": "My_Test_Secret/MySQL"})),
    )
    env.secret(ns, "My_Test_Secret/MySQL", object_name="mysql")
    env.secret(ns, "Other/MySQL")
    env.secret(ns, "billing/db", tags={"team": "payments"})
    env.secret(ns, "ops/db", tags={"team": "ops"})
    env.policy(ns, "readers", [{"kind": "ServiceAccount", "name": "app"}], SEED_PREFIX)
    env.policy(ns, "by-tag", [{"kind": "ServiceAccount", "name": "payments"}], SEED_TAGS)
    app = env.token(ns, "app")
    wait_for(
        lambda: env.call("DescribeSecret", {"SecretId": "My_Test_Secret/MySQL"}, app)[0] == 200,
        what="policy in force",
    )
    assert env.call("GetSecretValue", {"SecretId": "My_Test_Secret/MySQL"}, app)[0] == 200
    status, body = env.call("GetSecretValue", {"SecretId": "Other/MySQL"}, app)
    assert (status, body["__type"]) == (400, "AccessDeniedException")
    assert body["message"].startswith(
        f"User: arn:kustos:iam::{ns}:serviceaccount/app is not authorized to perform: "
        "secretsmanager:GetSecretValue on resource: arn:kustos:secretsmanager:test:"
    )
    assert VALUE not in json.dumps(body)
    payments = env.token(ns, "payments")
    wait_for(
        lambda: env.call("GetSecretValue", {"SecretId": "billing/db"}, payments)[0] == 200,
        what="tag policy in force",
    )
    assert env.call("DescribeSecret", {"SecretId": "billing/db"}, payments)[0] == 200
    assert env.call("GetSecretValue", {"SecretId": "ops/db"}, payments)[1]["__type"] == (
        "AccessDeniedException"
    )
    # denied on a ManagedSecret: an AccessDenied Event names the caller
    assert (
        env.call("PutSecretValue", {"SecretId": "My_Test_Secret/MySQL", "SecretString": "x"}, app)[
            0
        ]
        == 400
    )
    found = wait_for(
        lambda: [
            e
            for e in events(env.cluster, "mysql", ns)
            if e["reason"] == "AccessDenied" and "PutSecretValue" in e["message"]
        ],
        what="AccessDenied Event",
    )
    assert found[0]["message"].startswith(f"arn:kustos:iam::{ns}:serviceaccount/app via ")
    assert found[0]["type"] == "Warning"
    assert VALUE not in json.dumps(found)
    # ... and the denial is in the audit log, under the caller's identity
    query = AuditQuery(namespace=ns, event_name="PutSecretValue", denied=True)
    audited = wait_for(lambda: env.services.audit.lookup(query), what="audit record")
    record = json.loads(audited[0][1])
    assert record["errorCode"] == "AccessDeniedException"
    assert f"arn:kustos:iam::{ns}:serviceaccount/app" in audited[0][1]
    # `kustos policy simulate` names the deciding statement
    out = env.kustos(
        "policy",
        "simulate",
        "--principal",
        f"{ns}/app",
        "--action",
        "secretsmanager:GetSecretValue",
        "--secret-id",
        "My_Test_Secret/MySQL",
    )
    result = out["EvaluationResults"][0]
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"][0]["SourcePolicyId"] == f"SecretAccessPolicy {ns}/readers"
    out = env.kustos(
        "policy",
        "simulate",
        "--principal",
        f"arn:kustos:iam::{ns}:serviceaccount/app",
        "--action",
        "PutSecretValue",
        "--secret-id",
        "My_Test_Secret/MySQL",
        "--namespace",
        ns,
    )
    assert out["EvaluationResults"][0]["EvalDecision"] == "implicitDeny"


def test_who_can_lists_the_principals_the_policies_in_force_allow(env: Env) -> None:
    owner = env.namespace_with("app", "other")
    caller_ns = env.namespace_with("reader")
    record = env.secret(owner, "My_Test_Secret/MySQL")
    get_value = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
    env.policy(owner, "readers", [{"kind": "ServiceAccount", "name": "app"}], SEED_PREFIX)
    env.policy(
        owner,
        "devs",
        [{"kind": "Group", "name": "devs"}],
        {
            "Version": "2012-10-17",
            "Statement": {**get_value, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
        },
    )
    env.policy(
        owner,
        "no-other",
        [{"kind": "ServiceAccount", "name": "other"}],
        {
            "Version": "2012-10-17",
            "Statement": [
                {**get_value, "Sid": "Yes"},
                {**get_value, "Sid": "No", "Effect": "Deny"},
            ],
        },
    )
    env.policy(
        caller_ns,
        "cross",
        [{"kind": "ServiceAccount", "name": "reader"}],
        {"Version": "2012-10-17", "Statement": {**get_value, "Resource": record.arn}},
    )
    resource = {
        "Version": "2012-10-17",
        "Statement": {
            **get_value,
            "Sid": "Share",
            "Principal": {"AWS": f"arn:kustos:iam::{caller_ns}:serviceaccount/reader"},
        },
    }
    assert env.services.secrets.apply_spec(
        record, record.spec_generation, {"resource_policy": json.dumps(resource)}
    )

    def ask() -> dict[str, Any]:
        return env.kustos(
            "policy", "who-can", "--secret-id", record.arn, "--action", "GetSecretValue"
        )

    reader = f"arn:kustos:iam::{caller_ns}:serviceaccount/reader"
    out = wait_for(lambda: (r := ask())["ExplicitlyDenied"] and r, what="policies listed")
    principals = {p["Principal"]: p for p in out["Principals"]}
    assert set(principals) >= {
        f"arn:kustos:iam::{owner}:serviceaccount/app",
        "arn:kustos:iam::cluster:group/devs",
        reader,
    }
    ours = {
        p
        for p in principals
        if f"::{owner}:" in p or f"::{caller_ns}:" in p or p == "arn:kustos:iam::cluster:group/devs"
    }
    assert ours == {
        f"arn:kustos:iam::{owner}:serviceaccount/app",
        "arn:kustos:iam::cluster:group/devs",
        reader,
    }
    app = principals[f"arn:kustos:iam::{owner}:serviceaccount/app"]
    assert app["Conditional"] is False
    assert [s["SourcePolicyId"] for s in app["AllowedBy"]] == [
        f"SecretAccessPolicy {owner}/readers"
    ]
    assert principals["arn:kustos:iam::cluster:group/devs"]["Conditional"] is True
    assert {s["SourcePolicyId"] for s in principals[reader]["AllowedBy"]} == {
        f"SecretAccessPolicy {caller_ns}/cross",
        "resource policy of My_Test_Secret/MySQL",
    }
    denied = {p["Principal"]: p for p in out["ExplicitlyDenied"]}
    other = denied[f"arn:kustos:iam::{owner}:serviceaccount/other"]
    assert [s["Sid"] for s in other["DeniedBy"]] == ["No"]
    # the answer agrees with the API: the listed cross-namespace reader really gets the value
    status, body = env.call(
        "GetSecretValue", {"SecretId": record.arn}, env.token(caller_ns, "reader")
    )
    assert (status, body.get("SecretString")) == (200, VALUE)
    # without the resource policy's agreement, the reader is no longer listed
    assert env.services.secrets.apply_spec(
        record, record.spec_generation, {"resource_policy": None}
    )
    after = {p["Principal"] for p in ask()["Principals"]}
    assert reader not in after and f"arn:kustos:iam::{owner}:serviceaccount/app" in after


def test_access_keys_with_boto3_and_the_cli(env: Env) -> None:
    ns = env.namespace_with("app")
    env.secret(ns, "My_Test_Secret/MySQL")
    env.policy(ns, "readers", [{"kind": "ServiceAccount", "name": "app"}], SEED_PREFIX)
    created = env.kustos("access-key", "create", "--service-account", f"{ns}/app")["AccessKey"]
    key_id, secret = created["AccessKeyId"], created["SecretAccessKey"]
    client = env.boto(aws_access_key_id=key_id, aws_secret_access_key=secret)
    got = wait_for(
        lambda: _try(client.get_secret_value, SecretId="My_Test_Secret/MySQL"),
        what="policy in force",
    )
    assert got["SecretString"] == VALUE
    listed = env.kustos("access-key", "list", "--namespace", ns)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key_id]
    assert secret not in json.dumps(listed)
    raw = b"".join(p.read_bytes() for p in env.workdir.glob("kustos.db*"))
    assert secret.encode() not in raw
    for bad, code in (
        (
            env.boto(aws_access_key_id=key_id, aws_secret_access_key="x" * 40),
            "InvalidSignatureException",
        ),
        (
            env.boto(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name="other"),
            "InvalidSignatureException",
        ),
        (
            env.boto(aws_access_key_id="AKIAAAAAAAAAAAAAAAAA", aws_secret_access_key=secret),
            "UnrecognizedClientException",
        ),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            bad.get_secret_value(SecretId="My_Test_Secret/MySQL")
        assert _code(caught.value) == code
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_secret_value(SecretId="nope/x")
    assert _code(caught.value) in ("AccessDeniedException", "ResourceNotFoundException")
    env.kustos("access-key", "delete", "--access-key-id", key_id)
    wait_for(
        lambda: _fails(
            client.get_secret_value, "UnrecognizedClientException", SecretId="My_Test_Secret/MySQL"
        ),
        timeout=20,
        what="key revoked",
    )


def _try(fn: Any, **kw: Any) -> Any:
    try:
        return fn(**kw)
    except botocore.exceptions.ClientError:
        return None


def _fails(fn: Any, code: str, **kw: Any) -> bool:
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as exc:
        return _code(exc) == code
    return False


def test_container_credentials_with_botocores_provider(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = env.namespace_with("worker")
    env.secret(ns, "My_Test_Secret/MySQL")
    env.secret(ns, "Other/MySQL")
    env.policy(ns, "readers", [{"kind": "ServiceAccount", "name": "worker"}], SEED_PREFIX)
    token_file = tmp_path / "token"
    token_file.write_text(env.token(ns, "worker"))  # as kubelet projects it: no newline
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{env.url}/v1/credentials")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))
    session = boto3.Session(region_name="test")
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.method == "container-role"  # botocore's ContainerProvider
    frozen = credentials.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token
    client = session.client(
        "secretsmanager", endpoint_url=env.url, config=Config(retries={"max_attempts": 1})
    )
    got = wait_for(
        lambda: _try(client.get_secret_value, SecretId="My_Test_Secret/MySQL"),
        what="policy in force",
    )
    assert got["SecretString"] == VALUE
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_secret_value(SecretId="Other/MySQL")
    assert f"arn:kustos:iam::{ns}:serviceaccount/worker" in str(caught.value)
    # the session token is bound to its key: a swapped token does not authenticate
    other = boto3.client(
        "secretsmanager",
        endpoint_url=env.url,
        region_name="test",
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token[:-4] + "AAAA",
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        other.get_secret_value(SecretId="My_Test_Secret/MySQL")
    assert _code(caught.value) == "UnrecognizedClientException"
    # a token for another audience gets no credentials
    token_file.write_text(env.token(ns, "worker", audience=KUBE_API))
    with pytest.raises(botocore.exceptions.CredentialRetrievalError):
        boto3.Session(region_name="test").get_credentials()


def test_cross_namespace_needs_both_sides(env: Env) -> None:
    owner = env.namespace_with()
    caller_ns = env.namespace_with("reader")
    record = env.secret(owner, "shared/db")
    env.policy(
        caller_ns,
        "cross",
        [{"kind": "ServiceAccount", "name": "reader"}],
        {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": record.arn,
            },
        },
    )
    token = env.token(caller_ns, "reader")
    expected = "because no resource-based policy allows"
    status, body = wait_for(
        lambda: (
            (r := env.call("GetSecretValue", {"SecretId": record.arn}, token))[1]
            .get("message", "")
            .find(expected)
            >= 0
            and r
        ),
        what="identity policy in force",
    )
    assert body["__type"] == "AccessDeniedException"
    # by name, the caller reaches only its own namespace
    assert env.call("GetSecretValue", {"SecretId": "shared/db"}, token)[0] == 400
    resource = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:kustos:iam::{caller_ns}:serviceaccount/reader"},
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
        },
    }
    assert env.services.secrets.apply_spec(
        record, record.spec_generation, {"resource_policy": json.dumps(resource)}
    )
    status, body = env.call("GetSecretValue", {"SecretId": record.arn}, token)
    assert (status, body["SecretString"]) == (200, VALUE)
    # the resource policy alone is not enough either
    env.kubectl("delete", "secretaccesspolicy", "cross", "-n", caller_ns)
    wait_for(
        lambda: env.call("GetSecretValue", {"SecretId": record.arn}, token)[0] == 400,
        what="identity policy removed",
    )


DATE_BOMB = {
    "Version": "2012-10-17",
    "Statement": {
        "Effect": "Allow",
        "Action": "secretsmanager:*",
        "Resource": "*",
        "Condition": {"DateGreaterThan": {"aws:CurrentTime": "1e20"}},
    },
}


def test_invalid_policies_are_reported_by_the_operator(env: Env, operator_factory: Any) -> None:
    runner = operator_factory()
    runner.start()
    ns = env.namespace_with("app")
    env.secret(ns, "My_Test_Secret/MySQL")
    env.policy(ns, "good", [{"kind": "ServiceAccount", "name": "app"}], SEED_PREFIX)
    # a number no datetime can hold, once an uncaught OverflowError that broke every call
    env.policy(ns, "date-bomb", [{"kind": "ServiceAccount", "name": "app"}], DATE_BOMB)
    apply(
        env.cluster,
        {
            "apiVersion": "kustos.io/v1alpha1",
            "kind": "ClusterSecretAccessPolicy",
            "metadata": {"name": f"date-bomb-{ns}"},
            "spec": {
                "subjects": [{"kind": "Group", "name": "system:authenticated"}],
                "policy": DATE_BOMB,
            },
        },
    )
    env.policy(
        ns,
        "bad",
        [{"kind": "ServiceAccount", "name": "app"}],
        {
            "Version": "2012-10-17",
            "Statement": {"Effect": "Permit", "Action": "secretsmanager:*", "Resource": "*"},
        },
    )
    env.policy(
        ns, "foreign", [{"kind": "ServiceAccount", "name": "x", "namespace": "other"}], SEED_PREFIX
    )

    def ready(name: str) -> dict[str, Any] | None:
        obj = get(env.cluster, "secretaccesspolicy", name, ns)
        conditions = (obj or {}).get("status", {}).get("conditions") or []
        return conditions[0] if conditions else None

    good = wait_for(lambda: ready("good"), what="status of good")
    assert (good["status"], good["reason"]) == ("True", "Reconciled")
    bad = wait_for(lambda: ready("bad"), what="status of bad")
    assert (bad["status"], bad["reason"]) == ("False", "InvalidSpec")
    assert "Effect" in bad["message"]
    foreign = wait_for(lambda: ready("foreign"), what="status of foreign")
    assert foreign["status"] == "False" and "another namespace" in foreign["message"]
    bomb = get(env.cluster, "secretaccesspolicy", "date-bomb", ns)
    valid = wait_for(
        lambda: [
            c
            for c in (get(env.cluster, "secretaccesspolicy", "date-bomb", ns) or {})
            .get("status", {})
            .get("conditions")
            or []
            if c["type"] == "Valid"
        ],
        what="Valid condition",
    )
    assert (valid[0]["status"], valid[0]["reason"]) == ("False", "InvalidSpec")
    assert "'1e20' is not a valid Date value" in valid[0]["message"]
    found = wait_for(
        lambda: [e for e in events(env.cluster, "date-bomb", ns) if e["reason"] == "InvalidSpec"],
        what="InvalidSpec Event",
    )
    assert found[0]["type"] == "Warning" and "1e20" in found[0]["message"]
    assert bomb is not None and found[0]["involvedObject"]["uid"] == bomb["metadata"]["uid"]
    printed = env.kubectl("get", "secretaccesspolicy", "date-bomb", "-n", ns)
    assert printed.splitlines()[1].split()[1] == "False"  # the Valid column
    cluster_bomb = wait_for(
        lambda: [
            c
            for c in (get(env.cluster, "clustersecretaccesspolicy", f"date-bomb-{ns}", "") or {})
            .get("status", {})
            .get("conditions")
            or []
            if c["type"] == "Valid"
        ],
        what="Valid of cluster policy",
    )
    assert cluster_bomb[0]["status"] == "False"
    # ... and the other policies keep working through the API
    token = env.token(ns, "app")
    status, body = wait_for(
        lambda: (
            r
            if (r := env.call("GetSecretValue", {"SecretId": "My_Test_Secret/MySQL"}, token))[0]
            == 200
            else None
        ),
        what="good policy in force",
    )
    assert body["SecretString"] == VALUE
    status, body = env.call("DeleteSecret", {"SecretId": "My_Test_Secret/MySQL"}, token)
    assert (status, body["__type"]) == (400, "AccessDeniedException")  # the bomb allowed it
    env.kubectl("delete", "clustersecretaccesspolicy", f"date-bomb-{ns}")
    # the API server's schema refuses what it can check itself
    proc = env.cluster.kubectl(
        "apply",
        "-f",
        "-",
        check=False,
        input=json.dumps(
            {
                "apiVersion": "kustos.io/v1alpha1",
                "kind": "SecretAccessPolicy",
                "metadata": {"name": "shapeless", "namespace": ns},
                "spec": {"subjects": [{"kind": "Robot", "name": "r"}], "policy": {"Statement": []}},
            }
        ),
    )
    assert proc.returncode != 0 and "Robot" in proc.stderr


def test_container_credentials_are_audited_and_never_outlive_the_token(env: Env) -> None:
    ns = env.namespace_with("short")
    token = env.kubectl(
        "create", "token", "short", "-n", ns, "--audience", "kustos", "--duration", "600s"
    ).strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    request = urllib.request.Request(  # noqa: S310
        f"{env.url}/v1/credentials",
        headers={"Authorization": token},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        issued = json.loads(resp.read())
    expiration = datetime.strptime(issued["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert expiration.timestamp() <= claims["exp"]  # not the usual hour: the token's 10 min
    assert expiration.timestamp() > claims["exp"] - 120
    principal = f"arn:kustos:iam::{ns}:serviceaccount/short"
    records = [
        json.loads(text)
        for _, text in env.services.audit.lookup(
            AuditQuery(event_name="IssueContainerCredentials", user=principal)
        )
    ]
    assert len(records) == 1
    assert records[0]["responseElements"]["accessKeyId"] == issued["AccessKeyId"]
    assert issued["SecretAccessKey"] not in json.dumps(records)
    assert issued["Token"] not in json.dumps(records) and token not in json.dumps(records)
