"""`settle_heap`: what startup left as garbage is collected, what lives is frozen out of
the collector's full passes, and what is built later is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from kustos.api.server import settle_heap


class _Node:
    def __init__(self) -> None:
        self.peer: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.peer, b.peer = b, a
    return weakref.ref(a)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the suite runs with the collector as it was


def test_startup_garbage_is_collected_and_the_living_frozen(unfrozen: None) -> None:
    kept = _Node()
    garbage = _cycle()  # only a collection frees a cycle
    frozen = settle_heap()
    assert garbage() is None
    # The count only shrinks afterwards: frozen objects are still freed by reference counting.
    assert frozen > 0 and 0 < gc.get_freeze_count() <= frozen
    assert not any(o is kept for o in gc.get_objects())  # beyond a full pass's reach


def test_cycles_made_after_settling_are_still_collected(unfrozen: None) -> None:
    settle_heap()
    later = _cycle()
    assert later() is not None
    gc.collect()
    assert later() is None
