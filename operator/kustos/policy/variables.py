"""Policy variables (`${aws:username}`) in Resource entries and string/ARN conditions.

Owns substitution only. A pattern is turned into *parts*: `(text, literal)` pairs, where
text written in the policy keeps its wildcards (`literal=False`) and substituted values are
literal (`literal=True`). Supported forms, as in IAM (policy Version 2012-10-17 only):
`${key}`, `${key, 'default'}`, and the escapes `${*}`, `${?}`, `${$}` for a literal `*`,
`?`, `$`. A variable whose key is missing (or multi-valued) and has no default makes the
whole pattern unresolvable, and an unresolvable pattern matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["Lookup", "Part", "has_variables", "substitute"]

#: One run of pattern text and whether it is literal (no wildcards).
Part = tuple[str, bool]
#: Resolves a (single-valued) context key to a string, or None when it has no such value.
Lookup = Callable[[str], str | None]

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_BODY = re.compile(r"^\s*([^\s,']+)\s*(?:,\s*'([^']*)'\s*)?$")
_ESCAPES = frozenset({"*", "?", "$"})


def has_variables(text: str) -> bool:
    return _VARIABLE.search(text) is not None


def substitute(text: str, lookup: Lookup | None) -> tuple[Part, ...] | None:
    """Split `text` into parts, substituting variables through `lookup`.

    With `lookup=None` (policy Version 2008-10-17) the text is returned untouched.
    Returns None when a variable cannot be resolved.
    """
    if lookup is None or "${" not in text:
        return ((text, False),)
    parts: list[Part] = []
    pos = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > pos:
            parts.append((text[pos : match.start()], False))
        pos = match.end()
        body = match.group(1).strip()
        if body in _ESCAPES:
            parts.append((body, True))
            continue
        grammar = _BODY.match(body)
        if grammar is None:  # not a variable after all; keep the text as written
            parts.append((match.group(0), False))
            continue
        value = lookup(grammar.group(1))
        if value is None:
            value = grammar.group(2)
        if value is None:
            return None
        parts.append((value, True))
    if pos < len(text):
        parts.append((text[pos:], False))
    return tuple(parts)
