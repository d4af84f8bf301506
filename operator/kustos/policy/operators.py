"""Condition operators: their names, how policy values are read, and how one value compares.

Owns the operator table (String*, Numeric*, Date*, Bool, IpAddress/NotIpAddress, Arn*, Null),
the `...IfExists` suffix and the `ForAnyValue:`/`ForAllValues:` prefixes as parsed flags, and
the comparison of one request value against one policy value in the *positive* sense
(negated operators are negated by `conditions`). Policy values are checked and converted when
the policy is parsed, so a malformed number, date, address or boolean is a
MalformedPolicyError up front, not a silent mismatch later; so is a number that is no date a
datetime can hold (epoch seconds outside the years 1..9999). Reading never raises anything
else, whatever the input: request values that cannot be read give None. As in IAM,
ArnEquals and ArnLike behave alike (both allow wildcards per segment).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum

from kustos.errors import MalformedPolicyError

__all__ = [
    "Family",
    "IPAddress",
    "IPNetwork",
    "Operator",
    "PolicyValue",
    "parse_operator",
    "read_policy_value",
    "read_request_address",
    "read_request_bool",
    "read_request_date",
    "read_request_number",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PolicyValue = str | Decimal | datetime | bool | IPNetwork


class Family(Enum):
    STRING = "String"
    NUMERIC = "Numeric"
    DATE = "Date"
    BOOL = "Bool"
    IP = "IpAddress"
    ARN = "Arn"
    NULL = "Null"


# canonical name -> (family, comparison, negated)
_TABLE: dict[str, tuple[Family, str, bool]] = {
    "StringEquals": (Family.STRING, "eq", False),
    "StringNotEquals": (Family.STRING, "eq", True),
    "StringEqualsIgnoreCase": (Family.STRING, "eq_ci", False),
    "StringNotEqualsIgnoreCase": (Family.STRING, "eq_ci", True),
    "StringLike": (Family.STRING, "like", False),
    "StringNotLike": (Family.STRING, "like", True),
    "NumericEquals": (Family.NUMERIC, "eq", False),
    "NumericNotEquals": (Family.NUMERIC, "eq", True),
    "NumericLessThan": (Family.NUMERIC, "lt", False),
    "NumericLessThanEquals": (Family.NUMERIC, "le", False),
    "NumericGreaterThan": (Family.NUMERIC, "gt", False),
    "NumericGreaterThanEquals": (Family.NUMERIC, "ge", False),
    "DateEquals": (Family.DATE, "eq", False),
    "DateNotEquals": (Family.DATE, "eq", True),
    "DateLessThan": (Family.DATE, "lt", False),
    "DateLessThanEquals": (Family.DATE, "le", False),
    "DateGreaterThan": (Family.DATE, "gt", False),
    "DateGreaterThanEquals": (Family.DATE, "ge", False),
    "Bool": (Family.BOOL, "eq", False),
    "IpAddress": (Family.IP, "in", False),
    "NotIpAddress": (Family.IP, "in", True),
    "ArnEquals": (Family.ARN, "like", False),
    "ArnLike": (Family.ARN, "like", False),
    "ArnNotEquals": (Family.ARN, "like", True),
    "ArnNotLike": (Family.ARN, "like", True),
    "Null": (Family.NULL, "null", False),
}
_BY_LOWER = {name.lower(): name for name in _TABLE}
_SET_PREFIXES = {"foranyvalue": "ForAnyValue", "forallvalues": "ForAllValues"}
_IF_EXISTS = "ifexists"


@dataclass(frozen=True)
class Operator:
    """A parsed condition operator such as `ForAnyValue:StringLikeIfExists`."""

    name: str  # as written in the policy
    base: str  # canonical base name, e.g. "StringLike"
    family: Family
    comparison: str  # eq | eq_ci | like | lt | le | gt | ge | in | null
    negated: bool
    if_exists: bool
    set_operator: str | None  # "ForAnyValue" | "ForAllValues" | None


def parse_operator(name: str) -> Operator:
    """Parse an operator name (matched case-insensitively); unknown names are malformed."""
    rest = name
    set_operator: str | None = None
    if ":" in rest:
        prefix, rest = rest.split(":", 1)
        set_operator = _SET_PREFIXES.get(prefix.lower())
        if set_operator is None:
            raise MalformedPolicyError(
                f"Condition operator {name!r}: unknown prefix {prefix!r} "
                "(expected ForAnyValue or ForAllValues)"
            )
    if_exists = rest.lower().endswith(_IF_EXISTS) and rest.lower() not in _BY_LOWER
    if if_exists:
        rest = rest[: -len(_IF_EXISTS)]
    base = _BY_LOWER.get(rest.lower())
    if base is None:
        raise MalformedPolicyError(f"Condition operator {name!r} is not supported")
    family, comparison, negated = _TABLE[base]
    if family is Family.NULL and (if_exists or set_operator):
        raise MalformedPolicyError(
            f"Condition operator {name!r}: Null takes no IfExists suffix or set prefix"
        )
    return Operator(name, base, family, comparison, negated, if_exists, set_operator)


def _number(raw: object) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        return None
    try:
        number = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):  # ValueError: an int too long to print
        return None
    return number if number.is_finite() else None


def _date(raw: object) -> datetime | None:
    if isinstance(raw, datetime):
        parsed = raw
    elif isinstance(raw, bool):
        return None
    else:
        number = _number(raw)
        if number is not None:
            try:
                return datetime.fromtimestamp(float(number), tz=UTC)
            except (OverflowError, ValueError, OSError):
                return None  # outside the years 1..9999 that a datetime can hold
        if not isinstance(raw, str):
            return None
        try:
            parsed = datetime.fromisoformat(raw.strip())
        except ValueError:
            return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _boolean(raw: object) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    return None


def read_policy_value(operator: Operator, key: str, raw: object) -> PolicyValue:
    """Check and convert one value written under `operator` for `key`."""
    where = f"Condition {operator.name!r} on {key!r}"
    if isinstance(raw, bool) and operator.family in (Family.STRING, Family.ARN):
        return "true" if raw else "false"
    if operator.family in (Family.STRING, Family.ARN):
        if isinstance(raw, str | int | float):
            return str(raw)
        raise MalformedPolicyError(f"{where}: values must be strings, got {raw!r}")
    result: PolicyValue | None
    if operator.family is Family.NUMERIC:
        result = _number(raw)
    elif operator.family is Family.DATE:
        result = _date(raw) if isinstance(raw, str | int | float) else None
    elif operator.family in (Family.BOOL, Family.NULL):
        result = _boolean(raw)
    else:
        try:
            result = (
                ipaddress.ip_network(raw.strip(), strict=False) if isinstance(raw, str) else None
            )
        except ValueError:
            result = None
    if result is None:
        raise MalformedPolicyError(f"{where}: {raw!r} is not a valid {operator.family.value} value")
    return result


def read_request_number(raw: object) -> Decimal | None:
    return _number(raw)


def read_request_address(raw: object) -> IPAddress | None:
    if not isinstance(raw, str):
        return None
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError:
        return None


def read_request_date(raw: object) -> datetime | None:
    return _date(raw)


def read_request_bool(raw: object) -> bool | None:
    return _boolean(raw)
