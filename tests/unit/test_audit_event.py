"""The audit record's canonical JSON: one form whichever encoder writes it, and no values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kustos.models.sensitive import SecretValue
from kustos.services.audit.event import AuditRecordRejected, canonical_json


def _stdlib(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_SCALARS = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text()
)


def _docs(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )


@given(_docs(_SCALARS))
def test_the_form_is_the_standard_librarys_sorted_compact_utf8(doc: Any) -> None:
    assert canonical_json(doc) == _stdlib(doc)


@given(_docs(_SCALARS | st.floats(allow_nan=False, allow_infinity=False)))
def test_floats_too_read_back_as_written_and_encode_the_same_again(doc: Any) -> None:
    """Floats may be written in another notation (6.1e-05 or 0.000061); the value and the
    text the chain hashes are each one."""
    text = canonical_json(doc)
    assert json.loads(text) == doc
    assert canonical_json(json.loads(text)) == text


def test_datetimes_sets_and_tuples_take_the_records_form() -> None:
    moment = datetime(2026, 12, 6, 21, 5, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
    doc = {"b": {"z", "a"}, "a": moment, "c": ("x", 1), "é": "ü"}
    assert canonical_json(doc) == '{"a":"2026-12-06T19:05:07Z","b":["a","z"],"c":["x",1],"é":"ü"}'
    assert canonical_json({"t": datetime(2026, 1, 1, tzinfo=UTC)}) == '{"t":"2026-01-01T00:00:00Z"}'


def test_integers_beyond_64_bits_still_encode() -> None:
    assert canonical_json({"n": 2**70}) == f'{{"n":{2**70}}}'


@pytest.mark.parametrize(
    "doc", [{"a": b"raw"}, {"a": [SecretValue(b"canary-7f3")]}, {"a": {"b": SecretValue(b"x")}}]
)
def test_bytes_and_secret_values_are_refused(doc: Any) -> None:
    with pytest.raises(AuditRecordRejected) as refused:
        canonical_json(doc)
    assert "canary" not in str(refused.value)
