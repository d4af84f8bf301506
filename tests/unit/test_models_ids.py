"""`random_uuid` makes what `str(uuid.uuid4())` makes."""

from __future__ import annotations

import re
import uuid

from kustos.models.ids import random_uuid

_FORM = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_it_is_a_version_4_rfc_uuid_in_canonical_text() -> None:
    for _ in range(2000):
        text = random_uuid()
        assert _FORM.fullmatch(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_the_122_random_bits_vary() -> None:
    made = {random_uuid() for _ in range(10_000)}
    assert len(made) == 10_000
    # every hex position outside the fixed version nibble takes more than one value
    for position in range(36):
        if position in (8, 13, 18, 23, 14):
            continue
        assert len({text[position] for text in made}) > 1, position
