"""The API's answers are JSON that AWS clients read back as sent, whichever encoder wrote it."""

from __future__ import annotations

import json

from kustos.api import server


def test_non_ascii_values_are_utf8_and_read_back_unchanged() -> None:
    body = {"Name": "db/pässwörd", "SecretString": '{"pw":"ç😀\\u2028"}', "VersionStages": []}
    raw = server._encode(body)
    assert json.loads(raw.decode("utf-8")) == body
    assert "pässwörd".encode() in raw  # written as UTF-8, not \\u escapes


def test_what_orjson_refuses_is_still_answered() -> None:
    body = {"Count": 2**70, "Name": "x"}
    assert json.loads(server._encode(body)) == body
