"""Random passwords with the semantics of AWS Secrets Manager's `GetRandomPassword`.

Owns `PasswordParams` (AWS field names as aliases: `PasswordLength`, `ExcludeCharacters`,
`ExcludeNumbers`, `ExcludePunctuation`, `ExcludeUppercase`, `ExcludeLowercase`,
`IncludeSpace`, `RequireEachIncludedType`) and `generate_password`. Used by the rotators, the
initial `generate` of a ManagedSecret and the API's GetRandomPassword. Randomness comes only
from the `secrets` module. No I/O.

Defaults are AWS's: 32 characters from upper- and lowercase letters, digits and punctuation
``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``, at least one of each included type. A character type
whose characters are all in `ExcludeCharacters` counts as excluded. The space, when
included, is never required.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from kustos.errors import InvalidParameterError

__all__ = ["PUNCTUATION", "PasswordParams", "generate_password"]

PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
MAX_LENGTH = 4096


class PasswordParams(BaseModel):
    """Parameters of one password; accepts AWS names (`PasswordLength`) or snake_case."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    password_length: int = Field(32, alias="PasswordLength", ge=1, le=MAX_LENGTH)
    exclude_characters: str = Field("", alias="ExcludeCharacters", max_length=4096)
    exclude_numbers: bool = Field(False, alias="ExcludeNumbers")
    exclude_punctuation: bool = Field(False, alias="ExcludePunctuation")
    exclude_uppercase: bool = Field(False, alias="ExcludeUppercase")
    exclude_lowercase: bool = Field(False, alias="ExcludeLowercase")
    include_space: bool = Field(False, alias="IncludeSpace")
    require_each_included_type: bool = Field(True, alias="RequireEachIncludedType")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> PasswordParams:
        """Validate user input; errors become `InvalidParameterError` naming the field."""
        try:
            params = cls.model_validate(dict(data or {}))
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
                for err in exc.errors(include_input=False)
            )
            raise InvalidParameterError(f"invalid password parameters: {problems}") from None
        params.character_classes()  # reject impossible combinations up front
        return params

    def character_classes(self) -> list[str]:
        """The included character classes (after exclusions), each non-empty.

        Raises `InvalidParameterError` when nothing is left to draw from, or when each type
        is required and the length cannot hold one of each.
        """
        excluded = set(self.exclude_characters)
        wanted = [
            (self.exclude_lowercase, string.ascii_lowercase),
            (self.exclude_uppercase, string.ascii_uppercase),
            (self.exclude_numbers, string.digits),
            (self.exclude_punctuation, PUNCTUATION),
        ]
        classes = [
            kept
            for skip, chars in wanted
            if not skip and (kept := "".join(c for c in chars if c not in excluded))
        ]
        has_space = self.include_space and " " not in excluded
        if not classes and not has_space:
            raise InvalidParameterError(
                "invalid password parameters: every character type is excluded"
            )
        if self.require_each_included_type and self.password_length < len(classes):
            # AWS's words: the length cannot hold one character of each required type.
            raise InvalidParameterError("Password length is too short based on the required types.")
        return classes


def generate_password(params: PasswordParams | None = None) -> str:
    """A fresh random password for `params` (defaults: AWS's)."""
    params = params or PasswordParams()
    classes = params.character_classes()
    alphabet = "".join(classes) + (
        " " if params.include_space and " " not in params.exclude_characters else ""
    )
    chars = [secrets.choice(cls) for cls in classes] if params.require_each_included_type else []
    chars += [secrets.choice(alphabet) for _ in range(params.password_length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
