"""Evaluation of a statement's Condition element against the request context.

Owns IAM's rules for combining values:
- every clause (operator x key) must hold (AND); several policy values for a key are ORed;
  a negated operator (StringNotEquals, NotIpAddress, ...) holds when *no* value matches;
- a key missing from the request makes a clause false, except that negated operators are then
  true, `...IfExists` is then true, and `Null` tests presence itself;
- `ForAllValues:` holds when every request value matches (and on a missing or empty key);
  `ForAnyValue:` holds when at least one does (false on a missing key, unless IfExists);
  with a negated operator, "matches" means "matches none of the policy values";
- a multi-valued key under a plain operator behaves like ForAnyValue for positive operators
  and like "no request value matches" for negated ones;
- a request value that cannot be read in the operator's type (`"1e20"` or `"soon"` under a
  Date operator, `"x"` under IpAddress) makes the clause false, negated operators included:
  evaluation never raises and never turns unreadable input into a match;
- policy variables are substituted into String* and Arn* values (Version 2012-10-17 only).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from kustos.policy.context import ContextScalar, RequestContext, to_text
from kustos.policy.model import ConditionClause
from kustos.policy.operators import (
    Family,
    IPAddress,
    Operator,
    PolicyValue,
    read_request_address,
    read_request_bool,
    read_request_date,
    read_request_number,
)
from kustos.policy.variables import Lookup, substitute
from kustos.policy.wildcard import parts_match

__all__ = ["clause_holds", "conditions_hold"]

_ORDER: dict[str, Callable[[object, object], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,  # type: ignore[operator]
    "le": lambda a, b: a <= b,  # type: ignore[operator]
    "gt": lambda a, b: a > b,  # type: ignore[operator]
    "ge": lambda a, b: a >= b,  # type: ignore[operator]
}


def _text_matches(op: Operator, request: str, policy: str, lookup: Lookup | None) -> bool:
    parts = substitute(policy, lookup)
    if parts is None:
        return False
    if op.family is Family.ARN:
        return request.count(":") >= 5 and parts_match(parts, request, arn=True)
    if op.comparison == "like":
        return parts_match(parts, request)
    expected = "".join(text for text, _ in parts)
    if op.comparison == "eq_ci":
        return request.casefold() == expected.casefold()
    return request == expected


#: A request value converted for its operator: text, or a number, date, boolean or address.
Converted = str | PolicyValue | IPAddress


def _convert(op: Operator, request: ContextScalar) -> Converted | None:
    """The request value in the operator's type, or None when it cannot be read as one."""
    if op.family in (Family.STRING, Family.ARN):
        return request if isinstance(request, str) else to_text(request)
    if op.family is Family.BOOL:
        return read_request_bool(request)
    if op.family is Family.IP:
        return read_request_address(request)
    if op.family is Family.NUMERIC:
        return read_request_number(request)
    return read_request_date(request)


def _value_matches(
    op: Operator, request: Converted, policy: PolicyValue, lookup: Lookup | None
) -> bool:
    """One converted request value against one policy value, in the operator's positive sense."""
    if op.family in (Family.STRING, Family.ARN):
        assert isinstance(request, str)
        assert isinstance(policy, str)
        return _text_matches(op, request, policy, lookup)
    if op.family is Family.BOOL:
        return request is policy
    if op.family is Family.IP:
        assert isinstance(policy, ipaddress.IPv4Network | ipaddress.IPv6Network)
        assert isinstance(request, ipaddress.IPv4Address | ipaddress.IPv6Address)
        return request.version == policy.version and request in policy
    return _ORDER[op.comparison](request, policy)


def _matches_any(
    op: Operator, request: Converted, values: Iterable[PolicyValue], lookup: Lookup | None
) -> bool:
    return any(_value_matches(op, request, value, lookup) for value in values)


def clause_holds(clause: ConditionClause, context: RequestContext, variables: bool) -> bool:
    """Whether one clause holds; `variables` enables policy-variable substitution."""
    op = clause.operator
    present = context.get(clause.key)
    if op.family is Family.NULL:
        # {"Null": {"k": "true"}} holds when k is absent; "false" when it is present.
        return any((present is None) is value for value in clause.values)
    lookup = context.single_text if variables else None
    if present is None:
        if op.set_operator == "ForAllValues":
            return True
        if op.set_operator == "ForAnyValue":
            return op.if_exists
        return op.if_exists or op.negated

    converted = [_convert(op, request) for request in present]
    if any(value is None for value in converted):
        return False  # e.g. "1e20" under a Date operator: false, whatever the operator
    requests = [value for value in converted if value is not None]

    def ok(request: Converted) -> bool:
        matched = _matches_any(op, request, clause.values, lookup)
        return not matched if op.negated else matched

    if op.set_operator == "ForAllValues":
        return all(ok(request) for request in requests)
    if op.set_operator == "ForAnyValue":
        return any(ok(request) for request in requests)
    matched = any(_matches_any(op, request, clause.values, lookup) for request in requests)
    return not matched if op.negated else matched


def conditions_hold(
    clauses: Iterable[ConditionClause], context: RequestContext, *, variables: bool
) -> bool:
    """Whether every clause of a Condition element holds (an empty Condition holds)."""
    return all(clause_holds(clause, context, variables) for clause in clauses)
