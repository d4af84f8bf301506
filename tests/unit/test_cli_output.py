"""The CLI's output (json/text/table, --query) and argument parsing, with the AWS CLI's own
text formatter and shorthand parser (PyPI awscli) as the oracle."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import botocore.session
import pytest
from awscli.shorthand import ShorthandParser
from awscli.text import format_text

from kustos.cli.sm_args import ArgvError, flag_name, parse_argv, parse_shorthand
from kustos.cli.sm_output import format_output, normalize, render_table, render_text

MODEL = botocore.session.get_session().get_service_model("secretsmanager")

ANSWERS: list[Any] = [
    {
        "ARN": "arn:kustos:secretsmanager:local:ns:secret:a-AbCdEf",
        "Name": "a",
        "VersionId": "v1",
        "SecretString": "s3cr3t",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": "2030-01-01T00:00:00+00:00",
    },
    {
        "SecretList": [
            {
                "Name": "a",
                "ARN": "x",
                "Tags": [{"Key": "k", "Value": "v"}],
                "SecretVersionsToStages": {"v1": ["AWSCURRENT"], "v0": ["AWSPREVIOUS"]},
            },
            {"Name": "bb", "ARN": "yy", "Description": "d"},
        ],
        "NextToken": "t",
    },
    {"Versions": [{"VersionId": "1", "VersionStages": ["A", "B"]}, {"VersionId": "2"}]},
    {"RotationRules": {"AutomaticallyAfterDays": 30}, "RotationEnabled": True, "N": None},
    ["a", "b"],
    "scalar",
    [["a", "b"], ["c"]],
    [1, [2, 3]],
    {},
    [],
    {"SecretValues": [], "Errors": [{"SecretId": "x", "ErrorCode": "E", "Message": "m"}]},
]


@pytest.mark.parametrize("data", ANSWERS)
def test_text_matches_the_aws_cli(data: Any) -> None:
    oracle = io.StringIO()
    format_text(data, oracle)
    assert render_text(data) == oracle.getvalue()


def test_normalize_blobs_dates_and_metadata() -> None:
    when = dt.datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)
    data = normalize(
        {
            "SecretBinary": b"\x00\xff",
            "CreatedDate": when,
            "ResponseMetadata": {"HTTPStatusCode": 200},
            "L": [when],
        }
    )
    assert data == {
        "SecretBinary": "AP8=",
        "CreatedDate": "2030-01-02T03:04:05.600000+00:00",
        "L": ["2030-01-02T03:04:05.600000+00:00"],
    }


def test_query_applies_before_formatting() -> None:
    answer = ANSWERS[1]
    assert (
        format_output("ListSecrets", answer, "json", "SecretList[].Name")
        == json.dumps(["a", "bb"], indent=4) + "\n"
    )
    assert format_output("ListSecrets", answer, "text", "SecretList[].Name") == "a\tbb\n"
    assert format_output("GetSecretValue", ANSWERS[0], "text", "SecretString") == "s3cr3t\n"
    assert format_output("GetSecretValue", ANSWERS[0], "json", "SecretString") == '"s3cr3t"\n'
    assert format_output("X", ANSWERS[0], "text", "Missing") == ""
    table = format_output("ListSecrets", answer, "table", "SecretList[].{N:Name,A:ARN}")
    assert "|  a " in table and "|  bb " in table and "ListSecrets" in table


def test_table_layout() -> None:
    table = render_table("GetSecretValue", ANSWERS[0])
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1  # a rectangle
    assert lines[0] == "-" * len(lines[0])
    assert lines[1].strip("| ").strip() == "GetSecretValue"
    assert any(line.startswith("|  Name ") and "|  a " in line for line in lines)
    assert any(line.startswith("||") and "VersionStages" in line for line in lines)
    nested = render_table("ListSecrets", ANSWERS[1]).splitlines()
    assert len({len(line) for line in nested}) == 1
    assert any(line.startswith("|||") and "Key" in line and "Value" in line for line in nested)


@pytest.mark.parametrize(
    "text",
    [
        "Key=team,Value=a",
        "Key=name,Values=a,b",
        "Key=name,Values=[a,b]",
        "AutomaticallyAfterDays=30",
        "Key=description,Values=prod/db",
    ],
)
def test_shorthand_matches_the_aws_cli(text: str) -> None:
    assert parse_shorthand(text) == ShorthandParser().parse(text)


def test_flag_names_are_the_aws_clis() -> None:
    names = {flag_name(m) for m in MODEL.operation_model("CreateSecret").input_shape.members}
    assert {
        "name",
        "secret-string",
        "secret-binary",
        "kms-key-id",
        "client-request-token",
        "add-replica-regions",
        "force-overwrite-replica-secret",
    } <= names
    delete = {flag_name(m) for m in MODEL.operation_model("DeleteSecret").input_shape.members}
    assert {"recovery-window-in-days", "force-delete-without-recovery"} <= delete


def parse(op: str, *argv: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return parse_argv(
        list(argv), MODEL.operation_model(op).input_shape, {"output": False, "no-verify-ssl": True}
    )


def test_argv_types_from_the_model(tmp_path: Any) -> None:
    blob = tmp_path / "b.bin"
    blob.write_bytes(b"\x00\x01")
    text = tmp_path / "v.txt"
    text.write_text('{"pw": "x"}')
    params, extra = parse(
        "CreateSecret",
        "--name",
        "n",
        "--secret-binary",
        f"fileb://{blob}",
        "--tags",
        "Key=a,Value=1",
        "Key=b,Value=2",
        "--output",
        "text",
        "--no-verify-ssl",
    )
    assert params == {
        "Name": "n",
        "SecretBinary": b"\x00\x01",
        "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
    }
    assert extra == {"output": "text", "no-verify-ssl": True}
    assert parse("CreateSecret", "--name=n", "--secret-string", f"file://{text}")[0] == {
        "Name": "n",
        "SecretString": '{"pw": "x"}',
    }
    assert parse(
        "DeleteSecret",
        "--secret-id",
        "x",
        "--recovery-window-in-days",
        "7",
        "--no-force-delete-without-recovery",
    )[0] == {"SecretId": "x", "RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": False}
    assert parse("ListSecrets", "--filters", '[{"Key":"name","Values":["a"]}]')[0] == {
        "Filters": [{"Key": "name", "Values": ["a"]}]
    }
    assert parse("UntagResource", "--secret-id", "x", "--tag-keys", "a", "b")[0] == {
        "SecretId": "x",
        "TagKeys": ["a", "b"],
    }
    assert parse(
        "RotateSecret",
        "--secret-id",
        "x",
        "--rotation-rules",
        "ScheduleExpression=rate(10 days),Duration=2h",
    )[0]["RotationRules"] == {"ScheduleExpression": "rate(10 days)", "Duration": "2h"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--nope", "x"],
        ["--secret-id"],
        ["positional"],
        ["--secret-id", "a", "b"],
        ["--recovery-window-in-days", "seven"],
        ["--force-delete-without-recovery", "yes"],
    ],
)
def test_argv_errors(argv: list[str]) -> None:
    with pytest.raises(ArgvError):
        parse("DeleteSecret", *argv)
