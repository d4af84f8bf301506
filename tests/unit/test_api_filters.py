"""ListSecrets filter matching and order (kustos.services.api.filters), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kustos.errors import InvalidParameterError
from kustos.models.records import SecretRecord
from kustos.services.api.filters import matches, parse_filters, sort_key, split_words

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def secret(
    name: str, description: str = "", tags: dict[str, str] | None = None, age: int = 0
) -> SecretRecord:
    when = T0 + timedelta(seconds=age)
    return SecretRecord(
        arn=f"arn:{name}",
        namespace="ns",
        name=name,
        created_at=when,
        updated_at=when,
        description=description,
        tags=tags or {},
    )


@pytest.mark.parametrize(
    ("text", "by_case", "words"),
    [
        ("prod/payments/db", False, ["prod", "payments", "db"]),
        ("a_b+c=d.e@f-g h", False, ["a", "b", "c", "d", "e", "f", "g", "h"]),
        ("dev/AppBeta", True, ["dev", "App", "Beta"]),
        ("COMPANYthings", True, ["COMPAN", "Ythings"]),
        ("db2", True, ["db", "2"]),
        ("+", False, []),
    ],
)
def test_split_words(text: str, by_case: bool, words: list[str]) -> None:
    assert split_words(text, by_case=by_case) == words


@pytest.mark.parametrize(
    ("key", "value", "hit"),
    [
        ("name", "prod", True),
        ("name", "pay", True),
        ("name", "Prod", False),
        ("name", "ments", False),
        ("name", "prod/pay", True),
        ("name", "!prod", False),
        ("description", "PRIMARY", True),
        ("description", "data", True),
        ("description", "mary", False),
        ("tag-key", "Te", True),
        ("tag-key", "te", False),
        ("tag-value", "gold", True),
        ("all", "beta", True),
        ("all", "prod gold", True),
        ("all", "prod silver", False),
        ("all", "", False),
        ("primary-region", "x", False),
        ("owning-service", "!x", True),
    ],
)
def test_one_filter(key: str, value: str, hit: bool) -> None:
    record = secret("prod/payments/AppBeta", "Primary database", {"Team": "gold"})
    assert matches(record, [(key, [value])]) is hit


def test_values_are_ored_and_filters_anded() -> None:
    record = secret("prod/db", tags={"team": "a"})
    assert matches(record, [("name", ["dev", "prod"])])
    assert not matches(record, [("name", ["prod"]), ("tag-value", ["b"])])
    assert matches(record, [("name", ["prod"]), ("name", ["db"])])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"Values": ["x"]}], "Invalid filter key"),
        ([{"Key": "name"}], "Invalid filter values for key: name"),
        ([{"Key": "name", "Values": []}], "Invalid filter values for key: name"),
    ],
)
def test_bad_filters(raw: list[dict[str, object]], message: str) -> None:
    with pytest.raises(InvalidParameterError) as exc:
        parse_filters(raw)
    assert exc.value.message == message


def test_sort_keys() -> None:
    records = [secret("b", age=1), secret("a", age=2), secret("c", age=0)]
    assert [r.name for r in sorted(records, key=sort_key("created-date"))] == ["c", "b", "a"]
    assert [r.name for r in sorted(records, key=sort_key("name"))] == ["a", "b", "c"]
    read = records[0].evolve(last_accessed_at=T0)
    ordered = sorted([read, *records[1:]], key=sort_key("last-accessed-date"), reverse=True)
    assert ordered[0].name == "b"
