"""Code that runs on an event loop and so may not block: the scope, the guard, the deferrals.

The API serves its hottest calls (GetSecretValue from warm caches) on the event loop instead
of a worker thread: a thread hop and the GIL hand-offs of 32 busy threads cost more than the
call. Such a call runs inside `nonblocking()`. Every place that would block — a store
transaction, a Kubernetes API request, a lock another thread may hold for I/O — calls
`must_not_block(what)` first, which inside the scope raises `WouldBlock`: the adapter drops
the attempt and runs the whole request again on a worker thread. So an attempt must change
nothing before its last possible `WouldBlock`. Two things it would do along the way are
deferred instead, and done by the adapter once the attempt has finished:

- its audit records (`defer_audit`): submitted together when the attempt returns, and awaited
  before the answer leaves (the record is still durable before the value);
- what must follow a durable audit record (`after_audit`): e.g. counting a read for the
  aggregated `Accessed` Events.

A dropped attempt submits no record and runs no callback. Outside the scope (worker
threads, the operator, the CLI) the guard does nothing and nothing is deferred.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Deferred",
    "WouldBlock",
    "after_audit",
    "defer_audit",
    "must_not_block",
    "nonblocking",
]


class WouldBlock(BaseException):
    """Raised inside `nonblocking()` where the code would block; the attempt is dropped.

    A BaseException so that no `except Exception` on the way (the API's internal-error
    handler, a best-effort audit) mistakes it for the call's failure."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass
class Deferred:
    """What one non-blocking attempt left for the adapter to do."""

    #: Audit events to make durable before the answer, in order.
    events: list[Any] = field(default_factory=list)
    #: Run, in order, once those events are durable (skipped if they are not).
    callbacks: list[Callable[[], None]] = field(default_factory=list)


_SCOPE: ContextVar[Deferred | None] = ContextVar("kustos_nonblocking", default=None)


@contextmanager
def nonblocking() -> Iterator[Deferred]:
    """Run the body as a non-blocking attempt; yields what it deferred."""
    deferred = Deferred()
    token = _SCOPE.set(deferred)
    try:
        yield deferred
    finally:
        _SCOPE.reset(token)


def must_not_block(what: str) -> None:
    """Call before anything that may block; raises WouldBlock inside `nonblocking()`."""
    if _SCOPE.get() is not None:
        raise WouldBlock(what)


def defer_audit(event: Any) -> bool:
    """Inside `nonblocking()`, keep `event` for the adapter to submit; False outside it
    (the caller then records it itself, waiting for the commit)."""
    deferred = _SCOPE.get()
    if deferred is None:
        return False
    deferred.events.append(event)
    return True


def after_audit(callback: Callable[[], None]) -> None:
    """Run `callback` once the call's audit records are durable: now outside the scope
    (they already are), after the adapter's commit inside it."""
    deferred = _SCOPE.get()
    if deferred is None:
        callback()
    else:
        deferred.callbacks.append(callback)
