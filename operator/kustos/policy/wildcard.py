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


#: One element of a compiled pattern: a literal character, `?` or `*`, and whether the
#: wildcard is confined to its colon-delimited ARN segment.
_Token = tuple[str, str, bool]  # (kind "lit" | "one" | "star", character, confined)


def _tokens(parts: tuple[Part, ...], arn: bool) -> list[_Token]:
    chars = [(char, literal) for text, literal in parts for char in text]
    tokens: list[_Token] = []
    colons = 0
    for i, (char, literal) in enumerate(chars):
        if literal or char not in "*?":
            tokens.append(("lit", char, False))
            colons += char == ":"
            continue
        in_prefix = arn and colons < _ARN_PREFIX_SEGMENTS
        if char == "?":
            tokens.append(("one", char, in_prefix))
            continue
        segment_ends = i + 1 == len(chars) or chars[i + 1][0] == ":"
        tokens.append(("star", char, in_prefix and not segment_ends))
    return tokens


def _run(tokens: list[_Token]) -> str:
    return "".join(
        re.escape(char) if kind == "lit" else ("[^:]" if confined else ".")
        for kind, char, confined in tokens
    )


@lru_cache(maxsize=4096)
def compile_parts(
    parts: tuple[Part, ...], *, ignore_case: bool = False, arn: bool = False
) -> re.Pattern[str]:
    """Compile pattern parts into an anchored regular expression that cannot backtrack badly.

    A pattern is `head *X1 *X2 ... *Xn`, each X a run without `*`. A plain translation
    (`.*X1.*X2...`) backtracks exponentially on `*a*a*a...b`, which a policy could use to
    hang every request that evaluates it. Instead each `*X` followed by another `*` that can
    absorb any extra text is matched atomically at its earliest end (as `fnmatch` does):
    matching X as early as possible leaves the rest the most room, so no match is lost.
    That holds when the next `*` may run across colons, or when both are confined to their
    segment and X holds no colon; elsewhere (at most once per ARN segment) plain
    backtracking remains, bounded by the colons of the value.
    """
    tokens = _tokens(parts, arn)
    if arn and len(tokens) == 1 and tokens[0][0] == "star":
        return re.compile(r".*", re.DOTALL)
    stars = [i for i, (kind, _, _) in enumerate(tokens) if kind == "star"]
    out = [_run(tokens[: stars[0]] if stars else tokens)]
    for n, at in enumerate(stars):
        confined = tokens[at][2]
        follow = stars[n + 1] if n + 1 < len(stars) else len(tokens)
        run = tokens[at + 1 : follow]
        star = "[^:]*" if confined else ".*"
        if follow == len(tokens):
            out.append(star + _run(run))
            continue
        next_confined = tokens[follow][2]
        colon_free = all(not (kind == "lit" and char == ":") for kind, char, _ in run)
        if not next_confined or (confined and colon_free):
            out.append(f"(?>{star}?{_run(run)})")
        else:
            out.append(star + _run(run))
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
