"""Random identifiers in the RFC 9562 version 4 form (`str(uuid.uuid4())`), made cheaply.

Every audited call gets an event id. `str(uuid.uuid4())` builds a `UUID` object (an int, then
its text) and costs about 11 us; the same 122 random bits from `os.urandom`, with the version
and variant bits set and formatted directly, cost about 2 us (docs/benchmarks.md, issue 13).
"""

from __future__ import annotations

import os

__all__ = ["random_uuid"]


def random_uuid() -> str:
    """A random UUID (version 4, RFC variant) as 36 lower-case hex characters and dashes."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant 10xx (RFC 9562)
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
