"""Wildcard matching for policy patterns: actions, resource ARNs and string conditions.

Owns the one glob dialect IAM uses: `*` matches any run of characters (including `/`, so
`prod/*` covers `prod/payments/db`), `?` matches exactly one character, nothing else is
special. Patterns arrive as *parts* (see `variables`): text written in the policy, where
`*` and `?` are wildcards, and substituted text (policy-variable values, `${*}`), which is
always literal, so a value cannot smuggle a wildcard into a policy.

ARN mode follows the IAM Resource element: a wildcard stays inside its colon-delimited
segment, except that a `*` ending one of the first five segments may run across colons, and
wildcards in the sixth segment (the resource part, which itself may contain colons) are free.
A bare `*` matches every ARN. Pure functions; compiled patterns are cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

from kustos.policy.variables import Part

__all__ = ["action_matches", "arn_match", "compile_parts", "glob_match", "parts_match"]

_ARN_PREFIX_SEGMENTS = 5  # arn:partition:service:region(cluster):account(namespace):


@lru_cache(maxsize=4096)
def compile_parts(
    parts: tuple[Part, ...], *, ignore_case: bool = False, arn: bool = False
) -> re.Pattern[str]:
    """Compile pattern parts into an anchored regular expression."""
    chars = [(char, literal) for text, literal in parts for char in text]
    if arn and [c for c, _ in chars] == ["*"] and not chars[0][1]:
        return re.compile(r".*", re.DOTALL)
    out: list[str] = []
    colons = 0
    for i, (char, literal) in enumerate(chars):
        if literal or char not in "*?":
            out.append(re.escape(char))
            if char == ":":
                colons += 1
            continue
        in_prefix = arn and colons < _ARN_PREFIX_SEGMENTS
        if char == "?":
            out.append("[^:]" if in_prefix else ".")
            continue
        segment_ends = i + 1 == len(chars) or chars[i + 1][0] == ":"
        out.append("[^:]*" if in_prefix and not segment_ends else ".*")
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(out), flags)


def parts_match(
    parts: tuple[Part, ...], value: str, *, ignore_case: bool = False, arn: bool = False
) -> bool:
    """Whether `value` matches the whole pattern given as parts."""
    return compile_parts(parts, ignore_case=ignore_case, arn=arn).fullmatch(value) is not None


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Whether `value` matches `pattern`: `*` is any run (also across `/`), `?` one char."""
    return parts_match(((pattern, False),), value, ignore_case=ignore_case)


def arn_match(pattern: str, value: str) -> bool:
    """Whether the ARN `value` matches the ARN `pattern`, segment by segment (case-sensitive)."""
    return parts_match(((pattern, False),), value, arn=True)


def action_matches(pattern: str, action: str) -> bool:
    """Whether an Action/NotAction entry covers `action` (case-insensitive, e.g. `Describe*`)."""
    return glob_match(pattern, action, ignore_case=True)
