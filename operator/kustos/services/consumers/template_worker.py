"""The child process that renders `spec.target.template` (run as `python -m` by
`templates.TemplateRenderer`; never imported by the operator itself).

Why a process of its own: a template is code written by whoever may edit a ManagedSecret,
and Jinja2's sandbox bounds what it can *reach* (no attributes starting with `_`, no
mutation, no loader so no `include`/`import` of files, only the globals and filters given
here) but not what it can *cost*. So the renderer runs here, under resource limits (address
space, no file writes), with an environment that holds nothing of the
operator's, and the parent kills it when a render outlives its deadline.

Wire protocol on stdin/stdout, each message a 4-byte big-endian length and a JSON object:
the child first writes `{"ready": true}`; then per request
`{"templates": {key: source}, "secret": {...}, "static": {...}, "maxOutput": bytes}` it
answers `{"data": {key: text}}` or `{"error": {"key", "line", "kind", "message"}}`.
Error messages are built so they never carry a value (see `_safe_message`).
"""

from __future__ import annotations

import base64
import json
import re
import resource
import struct
import sys
import urllib.parse
from typing import Any, BinaryIO

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

__all__ = ["build_environment", "main", "render"]

_HEADER = struct.Struct(">I")
#: Exponents above this are refused (9 ** 9 ** 9 would run for minutes inside one C call).
_MAX_EXPONENT = 1024


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, plus refusing the operators that build huge values in one C call."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, max_output: int) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            cache_size=0,
            loader=None,
        )
        self.max_output = max_output

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponents above {_MAX_EXPONENT} are refused")
            return left**right
        for seq, times in ((left, right), (right, left)):
            if (
                isinstance(seq, str | bytes | list | tuple)
                and isinstance(times, int)
                and len(seq) * times > self.max_output
            ):
                raise SecurityError("the repeated value would exceed the output limit")
        return left * right


def _b64encode(value: str | bytes) -> str:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def _b64decode(value: str) -> str:
    return base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8")


def _urlencode(value: Any) -> str:
    """Percent-encodes every reserved character (also `/`, `@`, `:`), so a password is
    safe inside the user-info, path or query of a URL."""
    return urllib.parse.quote(str(value), safe="")


def _tojson(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def build_environment(max_output: int) -> _Environment:
    env = _Environment(max_output)
    # No cycler, joiner, namespace, lipsum, dict: only what a config file needs.
    env.globals.clear()
    env.globals["range"] = safe_range  # at most 100000 items
    env.filters.update(
        urlencode=_urlencode,
        b64encode=_b64encode,
        b64decode=_b64decode,
        tojson=_tojson,
        fromjson=json.loads,
    )
    return env


def render(request: dict[str, Any]) -> dict[str, Any]:
    max_output = int(request["maxOutput"])
    env = build_environment(max_output)
    context = {"secret": request["secret"], "static": request["static"]}
    values = _values(request["secret"], request["static"])
    out: dict[str, str] = {}
    total = 0
    for key, source in request["templates"].items():
        try:
            template = env.from_string(source)
            parts: list[str] = []
            for chunk in template.generate(context):
                total += len(chunk)
                if total > max_output:
                    raise SecurityError(f"the rendered Secret would exceed {max_output} bytes")
                parts.append(chunk)
            out[key] = "".join(parts)
        except TemplateSyntaxError as exc:
            # Parsed before any data is seen: the message is about the source alone.
            return _error(
                key,
                exc.lineno,
                "TemplateSyntaxError",
                _safe_message(str(exc.message or ""), None, values),
            )
        except MemoryError:
            return _error(key, None, "MemoryLimit", "rendering exceeded its memory limit")
        except RecursionError:
            return _error(key, _line(), "RecursionError", "recursion too deep")
        except Exception as exc:  # any failure of user code is reported, never raised
            return _error(key, _line(), type(exc).__name__, _safe_message(str(exc), source, values))
    return {"data": out}


def _error(key: str, line: int | None, kind: str, message: str) -> dict[str, Any]:
    return {"error": {"key": key, "line": line, "kind": kind, "message": message}}


def _line() -> int | None:
    """The template line being rendered when the current exception was raised."""
    tb = sys.exc_info()[2]
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
#: Type names Jinja quotes in its messages ("'str object' has no attribute", "of 'dict'").
_TYPE_NAMES = frozenset(
    {
        "str",
        "int",
        "float",
        "bool",
        "dict",
        "list",
        "tuple",
        "NoneType",
        "bytes",
        "function",
        "method",
        "builtin_function_or_method",
        "method-wrapper",
        "TemplateReference",
        "Macro",
        "LoopContext",
        "Undefined",
        "StrictUndefined",
        "range",
        "dict_items",
        "dict_keys",
        "dict_values",
        "generator",
        "Markup",
    }
)
_WITHHELD = "(details withheld: they would name data from the secret)"


def _safe_message(message: str, source: str | None, values: list[str]) -> str:
    """The exception's message if it can only be about the template, else none.

    Jinja names what it could not find (`'dict object' has no attribute 'pasword'`); when
    the name was computed from the data (`secret[secret.password]`) that name is a value.
    So a message is kept only if every quoted word in it appears in the template source or
    is one of Jinja's type names, and no value of at least 4 characters occurs in it."""
    message = message.splitlines()[0][:300] if message else ""
    if source is not None:  # None: a syntax error, about the source alone
        for match in _QUOTED.finditer(message):
            word = match.group(1) if match.group(1) is not None else match.group(2)
            word = word.removesuffix(" object")
            if word and word not in source and word not in _TYPE_NAMES:
                return _WITHHELD
    if any(len(v) >= 4 and v in message for v in values):
        return _WITHHELD
    return message


def _values(*mappings: Any) -> list[str]:
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for k, v in item.items():
                walk(k)
                walk(v)
        elif isinstance(item, list):
            for v in item:
                walk(v)
        elif item is not None:
            found.append(str(item))

    for mapping in mappings:
        walk(mapping)
    return found


def _read(stream: BinaryIO) -> dict[str, Any] | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    loaded: dict[str, Any] = json.loads(stream.read(size))
    return loaded


def _write(stream: BinaryIO, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode("utf-8")
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _limit(memory_bytes: int) -> None:
    # Time is bounded by the parent, which kills a render that outlives its deadline.
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> None:
    memory = int(sys.argv[1])
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but the protocol goes to the parent's pipe
    _limit(memory)
    _write(stdout, {"ready": True})
    while (request := _read(stdin)) is not None:
        try:
            answer = render(request)
        except MemoryError:
            answer = _error("", None, "MemoryLimit", "rendering exceeded its memory limit")
        _write(stdout, answer)


if __name__ == "__main__":
    main()
