"""Fencing tokens: how a write knows it is made by the operator's current leader.

Operator replicas elect one leader on a `coordination.k8s.io` Lease (kustos.kube.lease). A
leader that stops being one (it cannot renew, the process was paused, the network split)
may still have work in flight; fencing makes sure none of it lands:

- `Fence.check()` answers the current `FenceToken` while this replica may still act as the
  leader (its last renewal is younger than the renew deadline, which is shorter than the
  lease, so it gives up before any other replica can acquire) and raises `FencedError`
  otherwise.
- The token is the Lease's `leaseTransitions` at the time this replica acquired it, plus the
  holder identity: every acquisition by anyone increments it, so a newer leader always holds
  a larger term. The store checks it in the write transaction itself (kustos.store.tx): a
  term lower than the largest one written so far is refused, so even a replica that missed
  its own deadline (e.g. stopped by SIGSTOP and resumed) cannot write once its successor
  has.

Work done for the leader runs inside `fenced(fence)`; code below (store, Kubernetes
writers) reads the fence of the current context with `current_fence()`. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Fence", "FenceToken", "check_fence", "current_fence", "fenced"]


@dataclass(frozen=True)
class FenceToken:
    #: The Lease's leaseTransitions when this replica acquired it (the leader's term).
    term: int
    holder: str


class Fence(Protocol):
    def check(self) -> FenceToken:
        """The token while this replica leads; raises FencedError otherwise."""
        ...


_CURRENT: ContextVar[Fence | None] = ContextVar("kustos_fence", default=None)


def current_fence() -> Fence | None:
    return _CURRENT.get()


def check_fence() -> FenceToken | None:
    """The current context's token (None outside leader work); raises FencedError when the
    context's fence no longer holds."""
    fence = _CURRENT.get()
    return None if fence is None else fence.check()


@contextmanager
def fenced(fence: Fence | None) -> Iterator[None]:
    """Run the block as leader work under `fence` (None: unfenced, e.g. no election)."""
    reset = _CURRENT.set(fence)
    try:
        yield
    finally:
        _CURRENT.reset(reset)
