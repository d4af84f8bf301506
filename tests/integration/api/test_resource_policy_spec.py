"""The cross-namespace sharing recipe of docs/access.md, as written, on the real apiserver
with the real operator: a secret shared with another namespace by its ManagedSecret's
`spec.resourcePolicy` only, read by boto3 from that namespace; the spec's policy is the one
in force (a Deny there holds, a public or invalid document is refused and the last valid
policy stays, GetResourcePolicy answers the one in force)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.exceptions
import yaml
from tests.api_fixture import ApiWorld
from tests.kube_helpers import (
    condition,
    events,
    get,
    new_namespace,
    present,
    ready,
    secret_data,
    wait_for,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "access.md"


def recipe(shop: str, billing: str) -> list[dict[str, Any]]:
    text = DOC.read_text()
    section = text[text.index("### Sharing a secret with another namespace") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    body = block.group(1).replace("billing", billing).replace("shop", shop)
    return [d for d in yaml.safe_load_all(body.replace(":local:", ":test:")) if d]


def reads(client: Any, arn: str) -> str | None:
    """The value, or None when access is denied."""
    try:
        return str(client.get_secret_value(SecretId=arn)["SecretString"])
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] != "AccessDeniedException":
            raise
        return None


def set_policy(world: ApiWorld, shop: str, policy: dict[str, Any] | None) -> None:
    world.cluster.kubectl(
        "patch",
        "ms",
        "db",
        "-n",
        shop,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"resourcePolicy": policy}}),
    )


def test_a_secret_shared_by_its_spec_resource_policy_only(world: ApiWorld) -> None:
    shop, billing = new_namespace(world.cluster, "shop"), new_namespace(world.cluster, "bill")
    invoicer = world.client(world.identity(billing, "invoicer", policy=False))
    owner = world.client(world.identity(shop))
    docs = recipe(shop, billing)
    assert [d["kind"] for d in docs] == ["SecretAccessPolicy", "ManagedSecret"]
    world.cluster.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in docs))
    obj = wait_for(lambda: ready(world.cluster, "db", shop), what="db Ready")
    arn = obj["status"]["arn"]
    shared = docs[1]["spec"]["resourcePolicy"]
    assert present(condition(obj, "ResourcePolicyInForce"))["status"] == "True"

    # the other namespace reads it with boto3, by ARN (identity policy + resource policy)
    value = wait_for(lambda: reads(invoicer, arn), what="shared read allowed")
    projected = secret_data(get(world.cluster, "secret", "db", shop) or {})
    assert json.loads(value) == projected
    assert json.loads(owner.get_resource_policy(SecretId=arn)["ResourcePolicy"]) == shared

    # a public document is refused: the last valid policy stays in force, and says so
    outsider_ns = new_namespace(world.cluster, "out")
    outsider = world.client(world.identity(outsider_ns))  # allowed secretsmanager:* by itself
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Principal": "*",
            }
        ],
    }
    set_policy(world, shop, public)

    def refused() -> dict[str, Any] | None:
        o = get(world.cluster, "ms", "db", shop) or {}
        c = condition(o, "Ready") or {}
        gen = o.get("metadata", {}).get("generation")
        return (
            o
            if c.get("reason") == "ResourcePolicyRejected" and (c.get("observedGeneration") == gen)
            else None
        )

    obj = wait_for(refused, what="Ready=False ResourcePolicyRejected")
    assert present(condition(obj, "Ready"))["status"] == "False"
    in_force = condition(obj, "ResourcePolicyInForce")
    assert in_force is not None and in_force["status"] == "False"
    assert "PublicPolicyException" in in_force["message"]
    warned = [
        e for e in events(world.cluster, "db", shop) if e["reason"] == "ResourcePolicyRejected"
    ]
    assert warned and warned[0]["type"] == "Warning"
    assert json.loads(owner.get_resource_policy(SecretId=arn)["ResourcePolicy"]) == shared
    assert reads(invoicer, arn) == value
    assert reads(outsider, arn) is None  # "*" is not in force

    # a Deny written in the spec is in force
    deny = json.loads(json.dumps(shared))
    deny["Statement"].append(
        {
            "Effect": "Deny",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Principal": {"AWS": shared["Statement"][0]["Principal"]["AWS"]},
        }
    )
    set_policy(world, shop, deny)
    wait_for(lambda: reads(invoicer, arn) is None, what="the spec's Deny in force")
    assert ready(world.cluster, "db", shop)
    assert json.loads(owner.get_resource_policy(SecretId=arn)["ResourcePolicy"]) == deny

    # no resource policy in the spec: none in force, the share is gone
    set_policy(world, shop, shared)
    wait_for(lambda: reads(invoicer, arn), what="shared again")
    set_policy(world, shop, None)
    wait_for(
        lambda: "ResourcePolicy" not in owner.get_resource_policy(SecretId=arn),
        what="policy removed",
    )
    assert reads(invoicer, arn) is None

    # PutResourcePolicy with BlockPublicPolicy=false: the caller's choice holds for that
    # document (the controller does not refuse what the API accepted)
    owner.put_resource_policy(
        SecretId=arn, ResourcePolicy=json.dumps(public), BlockPublicPolicy=False
    )
    wait_for(lambda: reads(outsider, arn), what="the accepted public policy in force")

    def settled() -> dict[str, Any] | None:
        o = ready(world.cluster, "db", shop)
        return o if o and o["spec"].get("resourcePolicy") == public else None

    obj = wait_for(settled, what="Ready with the public policy in the spec")
    assert present(condition(obj, "ResourcePolicyInForce"))["status"] == "True"
    assert json.loads(owner.get_resource_policy(SecretId=arn)["ResourcePolicy"]) == public
