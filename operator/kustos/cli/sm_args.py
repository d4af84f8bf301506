"""Turning `aws secretsmanager`-style arguments into botocore request parameters.

Flags come from the service's published model (botocore ships it): member ``SecretId`` is
``--secret-id``; booleans are ``--x`` / ``--no-x``; lists take several values after one flag
(``--tag-keys a b``); structures take the AWS CLI's shorthand (``Key=team,Value=a``;
``Key=name,Values=a,b`` continues a list) or JSON; any value may be ``file://path`` (text)
and blobs ``fileb://path`` (bytes). Values are coerced to the model's types; botocore then
validates the request as it does for every SDK call.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["ArgvError", "flag_name", "member_for_flag", "parse_argv", "parse_shorthand"]


class ArgvError(ValueError):
    """A command-line argument that cannot be parsed (the AWS CLI exits 255 on these)."""


def flag_name(member: str) -> str:
    """``SecretId`` -> ``secret-id``; ``KmsKeyId`` -> ``kms-key-id`` (as botocore's CLI)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", member).lower()


def member_for_flag(shape: Any) -> dict[str, str]:
    return {flag_name(name): name for name in shape.members}


def parse_argv(
    argv: list[str], shape: Any, extra_flags: dict[str, bool]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request parameters, extra options). `extra_flags` maps non-model option names
    (e.g. ``output``) to whether they are boolean flags."""
    members = member_for_flag(shape) if shape is not None else {}
    raw: dict[str, list[str] | bool] = {}
    extra: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise ArgvError(f"Unknown options: {token}")
        name, eq, inline = token[2:].partition("=")
        values: list[str] = [inline] if eq else []
        i += 1
        if not eq:
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
        if name in extra_flags:
            if extra_flags[name]:
                extra[name] = True
            elif len(values) != 1:
                raise ArgvError(f"argument --{name}: expected one argument")
            else:
                extra[name] = values[0]
            continue
        negated = name.startswith("no-") and name[3:] in members
        member = members.get(name[3:] if negated else name)
        if member is None:
            raise ArgvError(f"Unknown options: --{name}")
        member_shape = shape.members[member]
        if member_shape.type_name == "boolean":
            if values:
                raise ArgvError(f"argument --{name}: takes no value")
            raw[member] = not negated
        elif negated:
            raise ArgvError(f"Unknown options: --{name}")
        elif not values:
            raise ArgvError(f"argument --{name}: expected one argument")
        else:
            raw[member] = values
    params = {}
    for member, value in raw.items():
        member_shape = shape.members[member]
        params[member] = (
            value if isinstance(value, bool) else _convert(member_shape, value, flag_name(member))
        )
    return params, extra


def _convert(shape: Any, values: list[str], flag: str) -> Any:
    if shape.type_name == "list":
        if len(values) == 1 and values[0].lstrip().startswith("["):
            return _coerce(shape, _json(_load(values[0]), flag), flag)
        items: list[Any] = []
        for value in values:
            items.append(_single(shape.member, value, flag))
        return items
    if len(values) != 1:
        raise ArgvError(f"argument --{flag}: expected one argument")
    return _single(shape, values[0], flag)


def _single(shape: Any, value: str, flag: str) -> Any:
    if shape.type_name == "blob":
        if value.startswith("fileb://"):
            return _read(value[8:], flag, binary=True)
        return _load(value).encode("utf-8")
    text = _load(value)
    if shape.type_name in ("structure", "map"):
        data = _json(text, flag) if text.lstrip().startswith("{") else parse_shorthand(text)
        return _coerce(shape, data, flag)
    return _coerce(shape, text, flag)


def _load(value: str) -> str:
    if value.startswith("file://"):
        return str(_read(value[7:], "file", binary=False))
    return value


def _read(path: str, flag: str, *, binary: bool) -> str | bytes:
    try:
        file = Path(path).expanduser()
        return file.read_bytes() if binary else file.read_text()
    except OSError as exc:
        raise ArgvError(
            f"Error parsing parameter '--{flag}': Unable to load paramfile {path}: {exc.strerror}"
        ) from None


def _json(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ArgvError(f"Error parsing parameter '--{flag}': Invalid JSON: {exc}") from None


def _coerce(shape: Any, value: Any, flag: str) -> Any:
    kind = shape.type_name
    try:
        if kind == "structure" and isinstance(value, dict):
            unknown = set(value) - set(shape.members)
            if unknown:
                raise ArgvError(
                    f"Error parsing parameter '--{flag}': unknown key(s) "
                    f"{', '.join(sorted(unknown))}; valid: "
                    f"{', '.join(shape.members)}"
                )
            return {k: _coerce(shape.members[k], v, flag) for k, v in value.items()}
        if kind == "list":
            items = value if isinstance(value, list) else [value]
            return [_coerce(shape.member, v, flag) for v in items]
        if kind == "map" and isinstance(value, dict):
            return {k: _coerce(shape.value, v, flag) for k, v in value.items()}
        if kind in ("integer", "long") and not isinstance(value, bool):
            return int(value)
        if kind == "boolean" and isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        if kind == "blob" and isinstance(value, str):
            return value.encode("utf-8")
        return value
    except (TypeError, ValueError):
        raise ArgvError(f"Error parsing parameter '--{flag}': expected {kind}") from None


def parse_shorthand(text: str) -> dict[str, Any]:
    """``Key=name,Values=a,b`` -> ``{"Key": "name", "Values": ["a", "b"]}``; ``K=[a,b]``
    too. Commas inside brackets, parentheses or quotes do not split."""
    result: dict[str, Any] = {}
    last: str | None = None
    for part in _split(text):
        key, eq, value = part.partition("=")
        if eq and re.fullmatch(r"[A-Za-z0-9_\-]+", key.strip()):
            last = key.strip()
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                result[last] = [_unquote(v) for v in _split(value[1:-1]) if v.strip()]
            else:
                result[last] = _unquote(value)
        elif last is not None:  # a continuation of the previous key's list
            previous = result[last]
            result[last] = [
                *(previous if isinstance(previous, list) else [previous]),
                _unquote(part),
            ]
        else:
            raise ArgvError(f"Error parsing shorthand syntax: expected key=value in {text!r}")
    return result


def _split(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value
