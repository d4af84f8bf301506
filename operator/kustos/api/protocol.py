"""AWS Secrets Manager's JSON 1.1 protocol, driven by botocore's published service model.

Owns: which operations exist (the model's names that Kustos implements), turning a request
body into parameters (JSON object; blobs base64-decoded), validating them against the
operation's input shape (botocore's own `ParamValidator` for types, required members and
minimums; the model's `max`, `pattern` and `enum` constraints, which botocore leaves to the
server), and turning results into the wire form (timestamps as epoch seconds, blobs base64).
Validation messages are AWS's (`1 validation error detected: Value '0' at
'rotationRules.automaticallyAfterDays' failed to satisfy constraint: ...`): members as AWS
writes them, numbers and enum words quoted as AWS does, never free-text values (which could
be secrets).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

from botocore.loaders import create_loader
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator

from kustos.errors import ClientError, ValidationError

__all__ = [
    "CONTENT_TYPE",
    "SerializationError",
    "UnknownOperationError",
    "UnsupportedMediaTypeError",
    "aws_path",
    "operation_for",
    "parse_params",
    "to_wire",
]

CONTENT_TYPE = "application/x-amz-json-1.1"
_TARGET_PREFIX = "secretsmanager."


class SerializationError(ClientError):
    aws_code = "SerializationException"


class UnknownOperationError(ClientError):
    aws_code = "UnknownOperationException"


class UnsupportedMediaTypeError(ClientError):
    http_status = 415
    aws_code = "UnsupportedMediaTypeException"


@cache
def service_model() -> ServiceModel:
    return ServiceModel(
        create_loader().load_service_model("secretsmanager", "service-2"), "secretsmanager"
    )


def operation_for(target: str | None, implemented: frozenset[str]) -> OperationModel:
    """The operation named by `X-Amz-Target: secretsmanager.<Operation>`."""
    if not target or not target.startswith(_TARGET_PREFIX):
        raise UnknownOperationError("Missing or malformed X-Amz-Target header.")
    name = target[len(_TARGET_PREFIX) :]
    if name not in implemented or name not in service_model().operation_names:
        raise UnknownOperationError(f"Operation {name[:64]!r} is not supported.")
    return service_model().operation_model(name)


def check_content_type(value: str | None) -> None:
    media = (value or "").split(";", 1)[0].strip().lower()
    if media not in (CONTENT_TYPE, "application/json"):
        raise UnsupportedMediaTypeError(f"Content-Type must be {CONTENT_TYPE}.")


#: Operations whose parsed parameters may be remembered by body: reads whose input holds
#: ids, names and stages only (never a value), which clients send again and again.
_REMEMBERED = frozenset({"GetSecretValue", "DescribeSecret", "ListSecretVersionIds"})
_REMEMBER_BODY_BYTES = 1024
_REMEMBER_ENTRIES = 4096
_remembered: dict[tuple[str, bytes], dict[str, Any]] = {}


def parse_params(operation: OperationModel, body: bytes) -> dict[str, Any]:
    """The validated parameters of `operation` in `body` (ValidationException otherwise).

    Valid parameters of the small read requests in `_REMEMBERED` are kept by body (bounded),
    so a client asking for the same secret again skips JSON and model validation."""
    if operation.name in _REMEMBERED and len(body) <= _REMEMBER_BODY_BYTES:
        key = (operation.name, bytes(body))
        known = _remembered.get(key)
        if known is not None:
            return dict(known)
        params = _parse(operation, body)
        if all(v is None or isinstance(v, str | int) for v in params.values()):
            if len(_remembered) >= _REMEMBER_ENTRIES:
                _remembered.clear()
            _remembered[key] = params
        return dict(params)
    return _parse(operation, body)


def _parse(operation: OperationModel, body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SerializationError("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise SerializationError("The request body must be a JSON object.")
    shape = operation.input_shape
    if shape is None:
        return {}
    params = _from_wire(shape, data, shape.name)
    problems = _problems(params, shape)
    if problems:
        count = len(problems)
        raise ValidationError(
            f"{count} validation error{'s' if count > 1 else ''} detected: "
            + "; ".join(problems[:10])
        )
    return dict(params)


def _from_wire(shape: Shape, value: Any, where: str) -> Any:
    """Wire JSON to botocore's Python input types; members the model lacks are dropped."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        assert isinstance(shape, StructureShape)
        return {
            k: _from_wire(shape.members[k], v, f"{where}.{k}")
            for k, v in value.items()
            if k in shape.members
        }
    if kind == "list" and isinstance(value, list):
        return [_from_wire(shape.member, item, where) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _from_wire(shape.value, v, where) for k, v in value.items()}
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SerializationError(f"{where} is not valid base64.") from None
    if kind == "timestamp" and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise SerializationError(f"{where} is not a valid timestamp.") from None
    return value


#: botocore's reasons that leave every value of the right type (the model's other
#: constraints can then be checked too).
_WELL_TYPED = ("missing required field", "invalid length", "invalid range")


def _problems(params: dict[str, Any], shape: Shape) -> list[str]:
    report = ParamValidator().validate(params, shape)
    errors = getattr(report, "_errors", [])
    found = [_describe(error) for error in errors]
    if report.has_errors() and not found:  # botocore changed its report's internals
        found = ["the request does not match the operation's input shape"]
    if all(error[0] in _WELL_TYPED for error in errors) and (found or not report.has_errors()):
        # AWS reports every violation at once: the model's max/pattern/enum beside the
        # required members and minimums botocore checks (not on values of the wrong type)
        _constraints(params, shape, "", found)
    return found


def aws_path(where: str) -> str:
    """A member path as AWS's validation messages write it: `Filters[0].Key` ->
    `filters.1.member.key` (lower camel case, lists counted from 1)."""

    def camel(name: str) -> str:
        return name[:1].lower() + name[1:]

    parts: list[str] = []
    for piece in where.strip(".").split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(camel(name))
        while rest:
            index, _, rest = rest.partition("]")
            parts.append(f"{int(index) + 1}.member")
            rest = rest.lstrip("[")
    return ".".join(parts)


def _shown(value: Any) -> str:
    """How a value appears in a message: numbers and enum words only (never free text,
    which could be a secret)."""
    return f" '{value}'" if isinstance(value, int | float) and not isinstance(value, bool) else ""


def _describe(error: tuple[str, str, dict[str, Any]]) -> str:
    reason, name, details = error
    if reason == "missing required field":
        member = (
            f"{name}.{details.get('required_name')}"
            if name.strip(".")
            else str(details.get("required_name"))
        )
        return (
            f"Value null at '{aws_path(member)}' failed to satisfy constraint: Member "
            "must not be null"
        )
    at = aws_path(name)
    if reason == "invalid length":
        return (
            f"Value at '{at}' failed to satisfy constraint: Member must have length "
            f"greater than or equal to {details.get('min_allowed')}"
        )
    if reason == "invalid range":
        return (
            f"Value{_shown(details.get('param'))} at '{at}' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {details.get('min_allowed')}"
        )
    if reason == "invalid type":
        return f"Value at '{at}' failed to satisfy constraint: Member has the wrong type"
    return f"Value at '{at}' failed to satisfy constraint: {reason}"


def _constraints(value: Any, shape: Shape, where: str, found: list[str]) -> None:
    """The model's max/pattern/enum constraints (and bool passed as a number)."""
    meta, kind = shape.metadata, shape.type_name
    at = aws_path(where or shape.name)
    if kind == "structure":
        for key, item in value.items():
            member = shape.members[key]
            _constraints(item, member, f"{where}.{key}" if where else key, found)
        return
    if kind == "list":
        for index, item in enumerate(value):
            _constraints(item, shape.member, f"{where or shape.name}[{index}]", found)
    elif kind == "map":
        for item in value.values():
            _constraints(item, shape.value, where, found)
    elif kind in ("integer", "long") and isinstance(value, bool):
        found.append(f"Value at '{at}' failed to satisfy constraint: Member must be a number")
        return
    size = len(value) if isinstance(value, str | bytes | list | dict) else value
    if "max" in meta and isinstance(size, int) and size > meta["max"]:
        what = "value less" if kind in ("integer", "long") else "length less"
        shown = _shown(value) if kind in ("integer", "long") else ""
        found.append(
            f"Value{shown} at '{at}' failed to satisfy constraint: Member must have "
            f"{what} than or equal to {meta['max']}"
        )
    if kind == "string" and "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        found.append(
            f"Value at '{at}' failed to satisfy constraint: Member must satisfy "
            f"regular expression pattern: {meta['pattern']}"
        )
    if kind == "string" and "enum" in meta and value not in meta["enum"]:
        shown = f" '{value}'" if len(value) <= 64 and value.isprintable() else ""
        found.append(
            f"Value{shown} at '{at}' failed to satisfy constraint: Member must "
            f"satisfy enum value set: [{', '.join(meta['enum'])}]"
        )


def to_wire(value: Any) -> Any:
    """Results to JSON types: datetimes as epoch seconds, bytes as base64."""
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value
