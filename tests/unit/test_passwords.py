"""`generate_password`: AWS GetRandomPassword semantics."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kustos.errors import InvalidParameterError
from kustos.rotation.passwords import PUNCTUATION, PasswordParams, generate_password

CLASSES = {
    "ExcludeLowercase": string.ascii_lowercase,
    "ExcludeUppercase": string.ascii_uppercase,
    "ExcludeNumbers": string.digits,
    "ExcludePunctuation": PUNCTUATION,
}


def test_defaults_are_aws_defaults() -> None:
    params = PasswordParams()
    assert params.password_length == 32
    assert params.require_each_included_type
    password = generate_password()
    assert len(password) == 32
    for chars in CLASSES.values():
        assert any(c in chars for c in password)
    assert " " not in password


def test_punctuation_is_the_aws_set() -> None:
    assert PUNCTUATION == "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    assert set(PUNCTUATION) == set(string.punctuation)


def test_aws_names_and_snake_case_are_accepted() -> None:
    a = PasswordParams.from_mapping({"PasswordLength": 12, "ExcludeNumbers": True})
    b = PasswordParams.from_mapping({"password_length": 12, "exclude_numbers": True})
    assert a == b


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(1, 200),
    excluded=st.text(alphabet=string.printable, max_size=40),
    flags=st.fixed_dictionaries({k: st.booleans() for k in CLASSES}),
    space=st.booleans(),
    require=st.booleans(),
)
def test_properties(
    length: int, excluded: str, flags: dict[str, bool], space: bool, require: bool
) -> None:
    raw = {
        "PasswordLength": length,
        "ExcludeCharacters": excluded,
        "IncludeSpace": space,
        "RequireEachIncludedType": require,
        **flags,
    }
    included = [
        "".join(c for c in chars if c not in excluded)
        for key, chars in CLASSES.items()
        if not flags[key]
    ]
    included = [chars for chars in included if chars]
    has_space = space and " " not in excluded
    if (not included and not has_space) or (require and length < len(included)):
        with pytest.raises(InvalidParameterError):
            PasswordParams.from_mapping(raw)
        return
    password = generate_password(PasswordParams.from_mapping(raw))
    assert len(password) == length
    assert not set(password) & set(excluded)
    allowed = set("".join(included)) | ({" "} if has_space else set())
    assert set(password) <= allowed
    if require:
        for chars in included:
            assert set(password) & set(chars)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ({"PasswordLength": 0}, "PasswordLength"),
        ({"PasswordLength": 4097}, "PasswordLength"),
        ({"PasswordLength": "long"}, "PasswordLength"),
        ({"PasswordLength": 3}, "Password length is too short based on the required types."),
        ({**dict.fromkeys(CLASSES, True)}, "every character type is excluded"),
        ({"ExcludeCharacters": string.printable}, "every character type is excluded"),
        ({"Bogus": True}, "Bogus"),
    ],
)
def test_invalid_parameters(raw: dict[str, object], text: str) -> None:
    with pytest.raises(InvalidParameterError, match=text):
        PasswordParams.from_mapping(raw)


def test_only_space() -> None:
    params = PasswordParams.from_mapping(
        {**dict.fromkeys(CLASSES, True), "IncludeSpace": True, "PasswordLength": 5}
    )
    assert generate_password(params) == "     "


def test_max_length_and_uniqueness() -> None:
    assert len(generate_password(PasswordParams(password_length=4096))) == 4096
    assert len({generate_password() for _ in range(200)}) == 200
