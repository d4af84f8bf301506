"""RotateSecret's RotationLambdaARN: which ARNs name a rotation function (no I/O; a fake
Secret gateway stands in for the namespace's Secrets). The live-endpoint cases are in
tests/integration/api/test_aws_conformance.py."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from tests.unit.fakes import stand_in

from kustos.errors import AccessDeniedError, InvalidRequestError
from kustos.kube.secrets import SecretGateway
from kustos.services.api.rotation import WEBHOOK_LABEL, rotator_of_arn


class FakeSecrets:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.asked: list[tuple[str, str]] = []

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.asked.append((namespace, name))
        return self.objects.get((namespace, name))


def secret(labels: dict[str, str], **data: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


HOOK = secret(
    {WEBHOOK_LABEL: "webhook"},
    url="https://hook.example/steps",
    signingKey="k" * 20,
    timeoutSeconds="5",
)
GATEWAY = FakeSecrets(
    {
        ("team", "my-fn"): HOOK,
        ("team", "unlabelled"): secret({}, url="https://x", signingKey="k" * 20),
        ("team", "http-fn"): secret(
            {WEBHOOK_LABEL: "webhook"}, url="http://x", signingKey="k" * 20
        ),
    }
)


def resolve(arn: str) -> tuple[str, dict[str, Any] | None]:
    return rotator_of_arn(arn, "prod", "team", stand_in(SecretGateway, GATEWAY))


@pytest.mark.parametrize(
    "arn",
    [
        "generated",
        "arn:kustos:lambda:prod:team:function:generated",
        "arn:kustos:lambda:prod:team:function:generated:$LATEST",
        "arn:kustos:lambda:prod:team:function:generated:live",
    ],
)
def test_rotator_names(arn: str) -> None:
    assert resolve(arn) == ("generated", None)


@pytest.mark.parametrize("arn", ["my-fn", "arn:kustos:lambda:prod:team:function:my-fn"])
def test_a_registered_webhook(arn: str) -> None:
    assert resolve(arn) == (
        "webhook",
        {
            "webhook": {
                "url": "https://hook.example/steps",
                "timeoutSeconds": 5,
                "signingKeySecretRef": {"name": "my-fn", "key": "signingKey"},
            }
        },
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:lambda:us-east-1:123456789012:function:generated",
        "arn:kustos:lambda:other-cluster:team:function:generated",
        "arn:kustos:lambda:prod:other-team:function:generated",
        "arn:kustos:lambda:prod:other-team:function:my-fn",
        "arn:kustos:lambda:prod:team:function:unlabelled",
        "arn:kustos:lambda:prod:team:function:nothing",
        "arn:kustos:secretsmanager:prod:team:function:generated",
        "arn:kustos:lambda:prod:team:layer:generated",
        "arn:kustos:lambda:prod:team:function:",
        "arn:kustos:lambda",
        "Not_A_Kubernetes_Name",
        "with space",
        "",
    ],
)
def test_anything_else_cannot_be_invoked(arn: str) -> None:
    with pytest.raises(AccessDeniedError) as exc:
        resolve(arn)
    assert exc.value.message == (
        "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function "
        "policy grants access to the principal secretsmanager.amazonaws.com."
    )


def test_a_registered_webhook_needs_an_https_url() -> None:
    with pytest.raises(InvalidRequestError, match="https:// url"):
        resolve("http-fn")


def test_other_namespaces_are_never_read() -> None:
    GATEWAY.asked.clear()
    with pytest.raises(AccessDeniedError):
        resolve("arn:kustos:lambda:prod:other-team:function:my-fn")
    assert GATEWAY.asked == []
