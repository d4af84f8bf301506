"""ListSecrets (and BatchGetSecretValue) filters and sorting, as AWS Secrets Manager does them.

AWS's documented rules (botocore's `Filter` shape and the user guide's "Find secrets"):
- Several values of one key match when any of them does; several filters must all match
  (a key given twice is two filters, both must match, as AWS answers).
- A value matches by prefix: of the whole field or of one of its words. Names, tag keys and
  tag values are split into words at `/ _ + = . @ -` and spaces; descriptions too.
- `name`, `tag-key`, `tag-value`, `primary-region`, `owning-service` are case-sensitive;
  `description` and `all` are not.
- `all` breaks the filter value into words (also where lower case turns to upper case, and
  between letters and digits) and matches a secret when each of those words begins a word
  of its name, description, a tag key or a tag value.
- A leading `!` negates one value.
- A filter without `Key` is InvalidParameterException "Invalid filter key"; one without
  `Values` is "Invalid filter values for key: <key>". Unknown keys are refused by the
  protocol layer (the model's enum), as AWS's ValidationException.

Kustos secrets have no primary region (no replication) and no owning service, so those keys
match nothing (and their negations everything). No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kustos.errors import InvalidParameterError
from kustos.models.records import SecretRecord

__all__ = ["Filters", "matches", "parse_filters", "sort_key", "split_words"]

Filters = list[tuple[str, list[str]]]
_SEPARATORS = re.compile(r"[/_+=.@\-\s]+")
#: Within a separator-free part: words begin at an upper-case letter followed by lower case
#: or digits (`AppBeta` -> App, Beta; `COMPANYthings` -> COMPAN, Ythings), and at digits.
_CASE_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def parse_filters(raw: Sequence[Mapping[str, Any]] | None) -> Filters:
    out: Filters = []
    for item in raw or ():
        key = item.get("Key")
        if not key:
            raise InvalidParameterError("Invalid filter key")
        values = item.get("Values")
        if not values:
            raise InvalidParameterError(f"Invalid filter values for key: {key}")
        out.append((str(key), [str(v) for v in values]))
    return out


def split_words(text: str, *, by_case: bool = False) -> list[str]:
    parts = [p for p in _SEPARATORS.split(text) if p]
    if not by_case:
        return parts
    return [w for part in parts for w in _CASE_WORDS.findall(part)]


def _prefix(value: str, fields: Iterable[str], *, fold: bool) -> bool:
    if fold:
        value = value.lower()
    for field in fields:
        text = field.lower() if fold else field
        if text.startswith(value) or any(w.startswith(value) for w in split_words(text)):
            return True
    return False


def _all_fields(record: SecretRecord) -> list[str]:
    return [record.name, record.description, *record.tags, *record.tags.values()]


def _match_all(value: str, record: SecretRecord) -> bool:
    wanted = [w.lower() for w in split_words(value, by_case=True)]
    if not wanted:
        return False
    words = [w.lower() for f in _all_fields(record) for w in split_words(f, by_case=True)]
    return all(any(w.startswith(want) for w in words) for want in wanted)


_FIELDS: dict[str, tuple[Callable[[SecretRecord], list[str]], bool]] = {
    "name": (lambda r: [r.name], False),
    "description": (lambda r: [r.description] if r.description else [], True),
    "tag-key": (lambda r: list(r.tags), False),
    "tag-value": (lambda r: list(r.tags.values()), False),
    "primary-region": (lambda r: [], False),
    "owning-service": (lambda r: [], False),
}


def _hit(record: SecretRecord, key: str, value: str) -> bool:
    negate = value.startswith("!")
    word = value[1:] if negate else value
    if key == "all":
        hit = _match_all(word, record)
    else:
        fields, fold = _FIELDS[key]
        hit = bool(word) and _prefix(word, fields(record), fold=fold)
    return hit != negate


def matches(record: SecretRecord, filters: Filters) -> bool:
    return all(any(_hit(record, key, v) for v in values) for key, values in filters)


def sort_key(sort_by: str) -> Callable[[SecretRecord], Any]:
    """Order of ListSecrets: `name`, or a date (secrets without that date sort first in
    ascending order); ties broken by creation, then name."""

    def key(record: SecretRecord) -> Any:
        if sort_by == "name":
            return (record.name, record.created_at)
        moment: datetime | None = {
            "last-changed-date": record.updated_at,
            "last-accessed-date": record.last_accessed_at,
        }.get(sort_by, record.created_at)
        return (moment is not None, moment or record.created_at, record.created_at, record.name)

    return key
