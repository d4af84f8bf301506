"""Tag keys equal ignoring case are refused wherever tags are written (API and spec).

IAM matches condition key names case-insensitively: tags `Env` and `env` would merge into
one condition key, and a tag-based Deny could be escaped through the other spelling.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kustos.errors import InvalidParameterError
from kustos.models.spec import ManagedSecretSpec, tag_key_clashes
from kustos.policy import Request, evaluate, parse_policy
from kustos.services.api.ids import check_tags


def test_clashes_are_the_groups_equal_ignoring_case() -> None:
    assert tag_key_clashes(["Env", "team", "ENV", "env", "Team", "x"]) == [
        ("ENV", "Env", "env"),
        ("Team", "team"),
    ]
    assert tag_key_clashes(["Env", "team"]) == []
    assert tag_key_clashes(["Straße", "STRASSE"]) == []  # lower(), as the policy context does


@pytest.mark.parametrize("keys", [["Env", "env"], ["a", "A"], ["dup", "dup"]])
def test_the_api_refuses_them(keys: list[str]) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        check_tags([{"Key": k, "Value": "v"} for k in keys])
    assert caught.value.aws_code == "InvalidParameterException"
    assert "unique, ignoring case" in caught.value.message
    assert check_tags([{"Key": "Env", "Value": "prod"}, {"Key": "team", "Value": "x"}]) == {
        "Env": "prod",
        "team": "x",
    }


def test_the_spec_refuses_them() -> None:
    with pytest.raises(ValidationError, match="differ other than in case"):
        ManagedSecretSpec.model_validate({"tags": {"Env": "prod", "env": "dev"}})
    assert ManagedSecretSpec.model_validate({"tags": {"Env": "prod"}}).tags == {"Env": "prod"}


def test_why_a_second_spelling_would_escape_a_tag_based_deny() -> None:
    deny_prod = parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {"StringNotEquals": {"secretsmanager:ResourceTag/env": "dev"}},
                },
            ],
        }
    )
    caller = "arn:kustos:iam::ns:serviceaccount/app"

    def allowed(tags: dict[str, str]) -> bool:
        context = {f"secretsmanager:ResourceTag/{k}": v for k, v in tags.items()}
        return evaluate(
            Request(caller, "secretsmanager:GetSecretValue", "*", context), [deny_prod]
        ).allowed

    assert allowed({"env": "dev"})
    assert not allowed({"env": "prod"})
    # with both spellings the key holds both values, one of them "dev", and the Deny no
    # longer applies: the hole that refusing such tag sets closes
    assert allowed({"env": "prod", "Env": "dev"})
