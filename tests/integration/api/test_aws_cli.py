"""The real AWS CLI (`aws secretsmanager ... --endpoint-url`) against the real server."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.cluster


def test_aws_cli_round_trip(world: Any, ident: Any) -> None:
    def aws(*args: str) -> Any:
        out = world.aws(ident, *args).stdout
        return json.loads(out) if out.strip() else None

    created = aws(
        "create-secret",
        "--name",
        "cli/db",
        "--secret-string",
        '{"pw":"one"}',
        "--tags",
        "Key=team,Value=cli",
    )
    arn = created["ARN"]
    assert aws("get-secret-value", "--secret-id", "cli/db")["SecretString"] == '{"pw":"one"}'
    aws("put-secret-value", "--secret-id", arn, "--secret-string", "two")
    assert (
        aws("get-secret-value", "--secret-id", arn, "--version-stage", "AWSPREVIOUS")[
            "SecretString"
        ]
        == '{"pw":"one"}'
    )
    assert aws("describe-secret", "--secret-id", "cli/db")["Tags"] == [
        {"Key": "team", "Value": "cli"}
    ]
    listed = aws("list-secrets", "--filters", "Key=name,Values=cli/")
    assert [s["Name"] for s in listed["SecretList"]] == ["cli/db"]
    assert len(aws("list-secret-version-ids", "--secret-id", arn)["Versions"]) == 2
    assert len(aws("get-random-password", "--password-length", "12")["RandomPassword"]) == 12
    aws("delete-secret", "--secret-id", arn, "--recovery-window-in-days", "7")
    failed = world.aws(ident, "get-secret-value", "--secret-id", arn, check=False)
    assert failed.returncode != 0 and "InvalidRequestException" in failed.stderr
    aws("restore-secret", "--secret-id", arn)
    assert aws("get-secret-value", "--secret-id", arn)["SecretString"] == "two"
    missing = world.aws(ident, "get-secret-value", "--secret-id", "cli/none", check=False)
    assert "ResourceNotFoundException" in missing.stderr
    assert "Traceback" not in missing.stderr
