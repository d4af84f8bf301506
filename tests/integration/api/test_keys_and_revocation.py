"""Keys, revocation and request integrity against the live API with real boto3.

KmsKeyId names keys of the keyring; `kustos keys rotate` moves each secret to its own key and
reports what it cannot move; `kustos access revoke` cuts a principal off on two API servers
sharing one store; a signature cannot be re-targeted; metrics are not on the API port; the
serving certificate is renewed and reloaded in the running server.
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from functools import partial
from typing import Any

import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from tests.api_fixture import ApiWorld, Identity
from tests.kube_helpers import wait_for
from tests.operator_fixture import free_port

pytestmark = pytest.mark.cluster

CANARY = "kustos-canary-keys-51d2c7"


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def _key_ids(world: ApiWorld, arn: str) -> dict[str, str]:
    with sqlite3.connect(world.runner.store_path) as conn:
        rows = conn.execute("SELECT version_id, key_id FROM versions WHERE arn = ?", (arn,))
        return dict(rows.fetchall())


def test_kms_key_id_names_a_key_of_the_keyring(world: ApiWorld, sm: Any) -> None:
    key = f"pay{uuid.uuid4().hex[:6]}"
    created = json.loads(world.kustos("keys", "create", key).stdout)
    assert created == {"KeyId": f"{key}.1", "KmsKeyId": f"alias/{key}"}

    arn = sm.create_secret(Name="kms/own", SecretString=CANARY, KmsKeyId=f"alias/{key}")["ARN"]
    assert sm.describe_secret(SecretId=arn)["KmsKeyId"] == f"alias/{key}"
    assert set(_key_ids(world, arn).values()) == {f"{key}.1"}
    plain = sm.create_secret(Name="kms/plain", SecretString="p")["ARN"]
    assert "KmsKeyId" not in sm.describe_secret(SecretId=plain)
    default_key = set(_key_ids(world, plain).values())
    assert len(default_key) == 1 and not next(iter(default_key)).startswith(key)

    # Unknown keys are refused with AWS's error, and nothing is created or changed.
    for bad in ("alias/no-such-key", "arn:kustos:kms:test:x:key/nope"):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            sm.create_secret(Name="kms/bad", SecretString="x", KmsKeyId=bad)
        assert _code(caught.value) == "EncryptionFailure"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.describe_secret(SecretId="kms/bad")
    assert _code(caught.value) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.update_secret(SecretId=arn, KmsKeyId="alias/no-such-key", SecretString="y")
    assert _code(caught.value) == "EncryptionFailure"
    assert sm.describe_secret(SecretId=arn)["KmsKeyId"] == f"alias/{key}"
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == CANARY

    # Rotating the secret's key moves its data keys, and only its own.
    proc = world.kustos("keys", "rotate", "--key", key)
    rotated = json.loads(proc.stdout)
    assert rotated["NewKeyId"] == f"{key}.2" and rotated["Skipped"] == 0
    assert set(_key_ids(world, arn).values()) == {f"{key}.2"}
    assert set(_key_ids(world, plain).values()) == default_key
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == CANARY

    # UpdateSecret with a new KmsKeyId: labelled versions move to it, new versions use it.
    sm.update_secret(SecretId=arn, KmsKeyId="")
    assert set(_key_ids(world, arn).values()) == default_key
    assert "KmsKeyId" not in sm.describe_secret(SecretId=arn)
    version = sm.update_secret(SecretId=arn, KmsKeyId=key, SecretString="v2")["VersionId"]
    assert sm.describe_secret(SecretId=arn)["KmsKeyId"] == key
    assert _key_ids(world, arn)[version] == f"{key}.2"
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "v2"
    got = sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")
    assert got["SecretString"] == CANARY


def test_rotation_goes_on_past_a_damaged_version_and_names_it(world: ApiWorld, sm: Any) -> None:
    arn = sm.create_secret(Name="keys/damaged", SecretString=CANARY)["ARN"]
    version = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    (vid,) = version
    with sqlite3.connect(world.runner.store_path) as conn:
        conn.execute(
            "UPDATE versions SET wrapped_key = ? WHERE arn = ?", (b"\x01" + b"\x00" * 60, arn)
        )
    try:
        proc = world.kustos("keys", "rotate", check=False)
        assert proc.returncode == 1, proc.stderr
        report = json.loads(proc.stdout)
        assert report["Rewrapped"] >= 1  # everything else still moved
        assert [(i["SecretArn"], i["VersionId"]) for i in report["SkippedItems"]] == [(arn, vid)]
        assert CANARY not in proc.stdout + proc.stderr
        # Its old key is still needed: retiring it is refused.
        old_key = report["SkippedItems"][0]["KeyId"]
        refused = world.kustos("keys", "retire", old_key, check=False)
        assert refused.returncode == 254 and "1 secret versions" in refused.stderr
        assert old_key in json.dumps(json.loads(world.kustos("keys", "list").stdout))
    finally:
        sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    again = json.loads(world.kustos("keys", "rotate").stdout)  # nothing left behind now
    assert again["Skipped"] == 0


class _LeavesOutTarget(SigV4Auth):  # type: ignore[misc]  # botocore is untyped (Any)
    def headers_to_sign(self, request: AWSRequest) -> Any:
        headers = super().headers_to_sign(request)
        del headers["x-amz-target"]
        return headers


def _send(world: ApiWorld, request: AWSRequest, target: str | None = None) -> tuple[int, Any]:
    headers = dict(request.headers.items())
    if target is not None:
        headers["X-Amz-Target"] = target
    req = urllib.request.Request(  # noqa: S310
        world.endpoint + "/",
        data=request.body,
        method="POST",
        headers=headers,
    )
    context = ssl.create_default_context(cafile=str(world.ca_path))
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_a_captured_signature_cannot_be_retargeted(
    world: ApiWorld, sm: Any, ident: Identity
) -> None:
    sm.create_secret(Name="replay/db", SecretString=CANARY)
    body = json.dumps({"SecretId": "replay/db", "ForceDeleteWithoutRecovery": True}).encode()
    credentials = Credentials(ident.access_key_id, ident.secret_access_key)

    def request(signer: type[SigV4Auth]) -> AWSRequest:
        req = AWSRequest(
            method="POST",
            url=world.endpoint + "/",
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "secretsmanager.GetSecretValue",
            },
        )
        signer(credentials, "secretsmanager", "test").add_auth(req)
        return req

    signed = request(SigV4Auth)  # as the SDKs sign: the target is in SignedHeaders
    status, answer = _send(world, signed)
    assert status == 200 and answer["SecretString"] == CANARY
    status, answer = _send(world, signed, "secretsmanager.DeleteSecret")
    assert (status, answer["__type"]) == (400, "InvalidSignatureException")
    unsigned = request(_LeavesOutTarget)
    for target in (None, "secretsmanager.DeleteSecret"):
        status, answer = _send(world, unsigned, target)
        assert (status, answer["__type"]) == (400, "IncompleteSignatureException")
        assert "X-Amz-Target" in answer["message"]
    assert sm.get_secret_value(SecretId="replay/db")["SecretString"] == CANARY  # not deleted


def test_metrics_are_not_served_on_the_api_port(world: ApiWorld, sm: Any) -> None:
    sm.create_secret(Name="metrics/x", SecretString="x")
    context = ssl.create_default_context(cafile=str(world.ca_path))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(world.endpoint + "/metrics", context=context, timeout=10)  # noqa: S310
    assert caught.value.code == 404
    assert "kustos_" not in caught.value.read().decode()


def test_revoke_stops_a_principal_on_two_api_servers_within_the_bound(
    world: ApiWorld, ns: str, ident: Identity
) -> None:
    port = free_port()
    log = world.runner.workdir / f"api-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kustos.cli.main", "api", "--port", str(port)],
            env=world.runner.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=world.runner.workdir,
        )
    try:
        second = ApiWorld(world.cluster, world.runner, port, world.ca_path)
        clients = [world.client(ident), second.client(ident)]
        arn = clients[0].create_secret(Name="revoke/db", SecretString=CANARY)["ARN"]

        def answers(client: Any) -> Any:
            assert proc.poll() is None, log.read_text()
            try:
                return client.get_secret_value(SecretId=arn)
            except botocore.exceptions.EndpointConnectionError:
                return None

        for client in clients:
            assert wait_for(partial(answers, client), what="API up")["SecretString"] == CANARY

        principal = f"arn:kustos:iam::{ns}:serviceaccount/{ident.service_account}"
        out = json.loads(
            world.kustos("access", "revoke", "--principal", principal, "--reason", "test").stdout
        )
        revoked = time.monotonic()
        assert out["AccessKeysDeactivated"] == 1 and out["InForceWithinSeconds"] == 10

        def refused(client: Any) -> bool:
            try:
                client.get_secret_value(SecretId=arn)
            except botocore.exceptions.ClientError as exc:
                return _code(exc) == "UnrecognizedClientException"
            return False

        for client in clients:
            wait_for(partial(refused, client), timeout=12, interval=0.2, what="refused")
        elapsed = time.monotonic() - revoked
        assert elapsed <= 10.0, f"in force after {elapsed:.1f} s"
        listed = json.loads(world.kustos("access", "revocations").stdout)["Revocations"]
        assert principal in [r["PrincipalArn"] for r in listed]
        keys = json.loads(world.kustos("access-key", "list", "--namespace", ns).stdout)
        assert [k["Status"] for k in keys["AccessKeyMetadata"]] == ["Inactive"]
        print(f"revocation in force on both API servers after {elapsed:.2f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _served(world: ApiWorld) -> Any:
    from cryptography import x509

    context = ssl.create_default_context(cafile=str(world.ca_path))
    with (
        socket.create_connection(("127.0.0.1", world.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der or b"")


def test_the_certificate_is_renewed_and_reloaded_without_a_restart(world: ApiWorld) -> None:
    from datetime import UTC, datetime, timedelta

    from kustos.crypto.certs import renew_serving_cert

    pid = world.runner.proc.pid if world.runner.proc else None
    first_serial = _served(world).serial_number
    secret = json.loads(
        world.cluster.kubectl(
            "get", "secret", "kustos-api-tls", "-n", world.runner.namespace, "-o", "json"
        ).stdout
    )
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert secret["metadata"]["labels"]["kustos.io/api-tls"] == "generated" and "ca.key" in data
    # A certificate of the same CA with one day left, as if it had been served for a year.
    old = renew_serving_cert(
        data["ca.crt"],
        data["ca.key"],
        ["localhost", "127.0.0.1"],
        now=datetime.now(UTC) - timedelta(days=364),
    )
    old_serial = _x509(old.cert_pem).serial_number
    patch = {
        "data": {
            "tls.crt": base64.b64encode(old.cert_pem).decode(),
            "tls.key": base64.b64encode(old.key_pem).decode(),
        }
    }
    world.cluster.kubectl(
        "patch",
        "secret",
        "kustos-api-tls",
        "-n",
        world.runner.namespace,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )

    def renewed() -> Any:
        cert = _served(world)
        return (
            cert
            if cert.serial_number not in (old_serial, first_serial)
            and (cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=360))
            else None
        )

    cert = wait_for(renewed, timeout=30, what="a renewed certificate on new handshakes")
    stored = json.loads(
        world.cluster.kubectl(
            "get", "secret", "kustos-api-tls", "-n", world.runner.namespace, "-o", "json"
        ).stdout
    )
    assert _x509(base64.b64decode(stored["data"]["tls.crt"])).serial_number == cert.serial_number
    assert world.runner.proc is not None and world.runner.proc.pid == pid  # no restart
    assert world.runner.proc.poll() is None


def _x509(pem: bytes) -> Any:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem)
