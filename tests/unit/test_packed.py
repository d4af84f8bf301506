"""kustos.models.packed: objects kept as compact JSON, read back as fresh dicts."""

from __future__ import annotations

import json

from kustos.models.packed import Packed


def test_a_packed_object_reads_back_equal_and_fresh_each_time() -> None:
    obj = {
        "metadata": {"name": "db", "resourceVersion": "42", "labels": {"tier": "ünïcode"}},
        "spec": {"keys": [1, 2.5, None, True]},
    }
    packed = Packed.of(obj)
    first = packed.unpack()
    assert first == obj and first is not obj
    first["spec"]["keys"].append("changed")
    assert packed.unpack() == obj  # what one reader changes, no other sees
    assert packed.resource_version == "42"


def test_the_encoding_is_compact() -> None:
    obj = {"metadata": {"name": "db"}, "data": {"k": "v" * 10}}
    packed = Packed.of(obj)
    assert packed.data == json.dumps(obj, separators=(",", ":")).encode()
    assert Packed.of({"metadata": {}}).resource_version is None
