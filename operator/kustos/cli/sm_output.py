"""How `kustos` Secrets Manager verbs print answers: ``--query`` then ``--output``.

As the AWS CLI: ``ResponseMetadata`` is dropped, blobs become base64 and timestamps ISO 8601,
the JMESPath ``--query`` is applied to that, then the result is printed as ``json``
(4-space indent), ``text`` (tab-separated, the AWS CLI's rules: a dict's scalar values sorted
by key on one line prefixed by the upper-cased key it came from, then its lists and dicts)
or ``table`` (boxed sections titled by the operation and the keys).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import jmespath

__all__ = ["FORMATS", "format_output", "normalize", "render_table", "render_text"]

FORMATS = ("json", "text", "table")


def normalize(value: Any) -> Any:
    """A botocore answer as plain JSON data (what the AWS CLI shows)."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def format_output(operation: str, response: Any, output: str, query: str | None) -> str:
    """The printed form of `response` (possibly empty, then nothing is printed)."""
    data = normalize(response)
    if query:
        data = jmespath.search(query, data)
    if output == "json":
        if data == {} and not query:
            return ""
        return json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    if data is None:
        return ""
    if output == "text":
        return render_text(data)
    return render_table(operation, data)


# -- text -------------------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _str(value: Any) -> str:
    if value is None:
        return "None"
    return str(value)


def render_text(data: Any) -> str:
    lines: list[str] = []
    _text(data, lines, None, None)
    return "".join(line + "\n" for line in lines)


def _text(item: Any, out: list[str], ident: str | None, columns: list[str] | None) -> None:
    if isinstance(item, dict):
        if columns is None:
            scalars = [_str(v) for _, v in sorted(item.items()) if _scalar(v)]
            rest = [(k, v) for k, v in sorted(item.items()) if not _scalar(v)]
        else:
            scalars = [_str(item.get(k, "")) for k in columns]
            rest = [(k, item[k]) for k in sorted(set(item) - set(columns))]
        if scalars:
            out.append("\t".join(([ident.upper()] if ident else []) + scalars))
        for key, value in rest:
            _text(value, out, key, None)
    elif isinstance(item, list):
        if not item:
            return
        if any(isinstance(e, dict) for e in item):
            keys = sorted(
                {k for e in item if isinstance(e, dict) for k, v in e.items() if _scalar(v)}
            )
            for element in item:
                _text(element, out, ident, keys)
        elif any(isinstance(e, list) for e in item):
            scalars = [e for e in item if _scalar(e)]
            if scalars:
                _scalar_list(scalars, out, ident)
            for element in (e for e in item if not _scalar(e)):
                _text(element, out, ident, None)
        else:
            _scalar_list(item, out, ident)
    else:
        out.append(_str(item))


def _scalar_list(items: list[Any], out: list[str], ident: str | None) -> None:
    if ident is not None:
        out.extend(f"{ident.upper()}\t{_str(v)}" for v in items)
    else:
        out.append("\t".join(_str(v) for v in items))


# -- table ------------------------------------------------------------------------------------


class _Section:
    """One boxed block: a title, optional header row, rows of cells; at a nesting depth."""

    def __init__(
        self, depth: int, title: str, header: list[str] | None, rows: list[list[str]]
    ) -> None:
        self.depth, self.title, self.header, self.rows = depth, title, header, rows

    def columns(self) -> int:
        return max([len(self.header or [])] + [len(r) for r in self.rows] + [1])

    def natural(self) -> int:
        widths = [0] * self.columns()
        for row in ([self.header] if self.header else []) + self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell) + 4)
        inner = sum(widths) + len(widths) - 1
        return max(inner, len(self.title) + 4) + 2 * (self.depth + 1)


def _sections(data: Any, title: str, depth: int) -> Iterator[_Section]:
    if isinstance(data, dict):
        scalars = [(k, v) for k, v in sorted(data.items()) if _scalar(v)]
        if scalars:
            if depth == 0:
                yield _Section(depth, title, None, [[k, _str(v)] for k, v in scalars])
            else:
                yield _Section(
                    depth, title, [k for k, _ in scalars], [[_str(v) for _, v in scalars]]
                )
        elif depth == 0:
            yield _Section(depth, title, None, [])
        for key, value in sorted(data.items()):
            if not _scalar(value):
                yield from _sections(value, key, depth + 1)
    elif isinstance(data, list):
        dicts = [e for e in data if isinstance(e, dict)]
        if dicts and all(_scalar(v) for d in dicts for v in d.values()):
            keys = sorted({k for d in dicts for k in d})
            yield _Section(depth, title, keys, [[_str(d.get(k, "")) for k in keys] for d in dicts])
        else:
            for each in dicts:
                yield from _sections(each, title, depth)
        scalars = [e for e in data if _scalar(e)]
        if scalars or not data:
            yield _Section(depth, title, None, [[_str(e)] for e in scalars])
        for sub in (e for e in data if isinstance(e, list)):
            yield from _sections(sub, title, depth + 1)
    else:
        yield _Section(depth, title, None, [[_str(data)]])


def render_table(title: str, data: Any) -> str:
    sections = list(_sections(data, title, 0))
    width = max(s.natural() for s in sections)
    lines = ["-" * width]
    for section in sections:
        lines.extend(_box(section, width))
    return "\n".join(lines) + "\n"


def _box(section: _Section, width: int) -> list[str]:
    pad = section.depth + 1
    inner = width - 2 * pad
    left, right = "|" * pad, "|" * pad
    edge_l, edge_r = "|" * (pad - 1) + "+", "+" + "|" * (pad - 1)
    lines = [left + section.title.center(inner) + right]
    n = section.columns()
    if not section.rows and not section.header:
        return lines
    natural = [0] * n
    for row in ([section.header] if section.header else []) + section.rows:
        for i, cell in enumerate(row):
            natural[i] = max(natural[i], len(cell) + 4)
    spare = inner - (sum(natural) + n - 1)
    widths = [w + spare // n for w in natural]
    widths[-1] += spare - (spare // n) * n
    rule = edge_l + "+".join("-" * w for w in widths) + edge_r
    lines.append(rule)
    if section.header:
        lines.append(
            left
            + "|".join(c.center(w) for c, w in zip(section.header, widths, strict=False))
            + right
        )
        lines.append(rule)
    for row in section.rows:
        cells = [
            ("  " + c).ljust(w) for c, w in zip(row + [""] * (n - len(row)), widths, strict=False)
        ]
        lines.append(left + "|".join(cells) + right)
    lines.append(rule)
    return lines
