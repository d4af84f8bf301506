"""The glob dialect of actions, resources and StringLike (property-tested against an oracle)."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kustos.policy import action_matches, arn_match, glob_match
from kustos.policy.variables import substitute
from kustos.policy.wildcard import parts_match


def oracle(pattern: str, value: str) -> bool:
    """Textbook recursive glob: `*` any run, `?` one character, all else literal."""

    @cache
    def go(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(value)
        if pattern[i] == "*":
            return go(i + 1, j) or (j < len(value) and go(i, j + 1))
        if j < len(value) and pattern[i] in ("?", value[j]):
            return go(i + 1, j + 1)
        return False

    return go(0, 0)


patterns = st.text(alphabet="ab/*?.+[]()\\^$", max_size=10)
values = st.text(alphabet="ab/.+[]()\\^$\n", max_size=10)


@given(patterns, values)
def test_glob_agrees_with_oracle(pattern: str, value: str) -> None:
    assert glob_match(pattern, value) == oracle(pattern, value)


@given(st.text(alphabet="abc/:-_", min_size=1, max_size=20), st.data())
def test_replacing_any_slice_with_star_still_matches(value: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(value)))
    end = data.draw(st.integers(start, len(value)))
    assert glob_match(value[:start] + "*" + value[end:], value)


@given(st.text(alphabet="abc/", min_size=1, max_size=20), st.data())
def test_question_mark_matches_exactly_one_character(value: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(value) - 1))
    pattern = value[:i] + "?" + value[i + 1 :]
    assert glob_match(pattern, value)
    assert not glob_match(pattern, value + "x")
    assert not glob_match(pattern, value[:i] + value[i + 1 :])


@given(st.text(alphabet="ab/.", max_size=12), st.text(alphabet="ab/.", max_size=12))
def test_literal_pattern_matches_only_itself(pattern: str, value: str) -> None:
    assert glob_match(pattern, value) == (pattern == value)


@given(st.text(alphabet="abAB*?", max_size=8), st.text(alphabet="abAB", max_size=8))
def test_ignore_case_is_oracle_on_lowercased_inputs(pattern: str, value: str) -> None:
    assert glob_match(pattern, value, ignore_case=True) == oracle(pattern.lower(), value.lower())


def test_star_crosses_slashes_in_hierarchical_names() -> None:
    assert glob_match("prod/*", "prod/payments/db")
    assert not glob_match("prod/*", "staging/payments/db")
    assert glob_match("*", "")


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("secretsmanager:GetSecretValue", "secretsmanager:GetSecretValue", True),
        ("SecretsManager:getsecretvalue", "secretsmanager:GetSecretValue", True),
        ("secretsmanager:Describe*", "secretsmanager:DescribeSecret", True),
        ("secretsmanager:Describe*", "secretsmanager:GetSecretValue", False),
        ("secretsmanager:*", "secretsmanager:DeleteSecret", True),
        ("secretsmanager:*", "kms:Decrypt", False),
        ("*", "kms:Decrypt", True),
        ("secretsmanager:?etSecretValue", "secretsmanager:GetSecretValue", True),
        ("secretsmanager:Get", "secretsmanager:GetSecretValue", False),
    ],
)
def test_action_matching(pattern: str, action: str, expected: bool) -> None:
    assert action_matches(pattern, action) is expected


SECRET = "arn:kustos:secretsmanager:c1:prod:secret:prod/payments/db-AbCdEf"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", True),
        (SECRET, True),
        ("arn:kustos:secretsmanager:c1:prod:secret:prod/*", True),
        ("arn:kustos:secretsmanager:c1:prod:secret:prod/payments/db-??????", True),
        ("arn:kustos:secretsmanager:c1:prod:secret:prod/payments/db-?????", False),
        ("arn:kustos:secretsmanager:*:prod:secret:prod/*", True),  # segment wildcard
        ("arn:kustos:secretsmanager:c?:prod:secret:*", True),
        ("arn:kustos:secretsmanager:c1:dev:secret:*", False),  # other namespace
        ("arn:kustos:secretsmanager:c1:prod:secret:staging/*", False),
        ("arn:kustos:secretsmanager:c1:prod:secret:Prod/*", False),  # case-sensitive
        ("arn:kustos:secretsmanager:*", True),  # trailing * runs across colons
        ("arn:kustos:secretsmanager:c*d:secret:*", False),  # mid-segment * stays put
        ("arn:kustos:secretsmanager:c1?prod:secret:*", False),  # ? never matches ':' there
    ],
)
def test_arn_matching(pattern: str, expected: bool) -> None:
    assert arn_match(pattern, SECRET) is expected


def test_wildcards_in_the_resource_part_cross_colons() -> None:
    assert arn_match("arn:kustos:secretsmanager:c1:prod:secret:a*", SECRET.replace("prod/", "a:"))


def test_substituted_text_is_literal_even_if_it_looks_like_a_wildcard() -> None:
    parts = substitute("team/${aws:username}", lambda key: "*")
    assert parts is not None
    assert parts_match(parts, "team/*")
    assert not parts_match(parts, "team/alice")
    escaped = substitute("a${*}b", lambda key: None)
    assert escaped == (("a", False), ("*", True), ("b", False))
    assert escaped is not None
    assert not parts_match(escaped, "axxb")
