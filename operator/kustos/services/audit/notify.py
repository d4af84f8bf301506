"""Webhook notifications for chosen audit events (e.g. DeletionScheduled, RotationFailed).

Configured by a YAML or JSON file (``$KUSTOS_NOTIFICATIONS_FILE``)::

    - url: https://hooks.example.com/kustos
      events: [DeleteSecret, DeletionScheduled, RotationFailed, AccessDenied]
      format: slack            # json (default): the CloudTrail record; slack: {"text": ...}
      secretHeader:            # optional: a header the receiver checks
        name: X-Kustos-Token
        env: KUSTOS_WEBHOOK_TOKEN   # or value: ...

`AccessDenied` matches any record whose errorCode is AccessDeniedException. `Notifier.offer`
is an audit listener: it only filters and enqueues (a bounded queue; when full the
notification is dropped and counted), so it never blocks the request path. One daemon thread
delivers, retrying with exponential backoff.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kustos.errors import InvalidParameterError
from kustos.metrics import NOTIFICATIONS
from kustos.store.audit import PendingRow

__all__ = ["Notifier", "Subscriber", "load_subscribers", "slack_text"]

log = logging.getLogger(__name__)
DENIED = "AccessDenied"


@dataclass(frozen=True)
class Subscriber:
    url: str
    events: frozenset[str]
    format: str = "json"
    header: tuple[str, str] | None = None

    def wants(self, row: PendingRow) -> bool:
        return row.event_name in self.events or (row.denied and DENIED in self.events)


def load_subscribers(path: str | Path, env: Mapping[str, str] | None = None) -> list[Subscriber]:
    """The subscribers of the notifications file; a `secretHeader.env` names a variable of
    `env` (the settings' snapshot of the environment) holding the header's value."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidParameterError(f"notifications file {path}: {type(exc).__name__}") from None
    if not isinstance(doc, list):
        raise InvalidParameterError(f"notifications file {path}: expected a list of subscribers")
    subscribers = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict) or not item.get("url") or not item.get("events"):
            raise InvalidParameterError(f"notifications file {path}: entry {i} needs url, events")
        fmt = item.get("format", "json")
        if fmt not in ("json", "slack"):
            raise InvalidParameterError(f"notifications file {path}: entry {i}: format {fmt!r}")
        header = None
        if spec := item.get("secretHeader"):
            value = spec.get("value") or (env or {}).get(spec.get("env", ""), "")
            header = (str(spec["name"]), str(value))
        subscribers.append(
            Subscriber(str(item["url"]), frozenset(map(str, item["events"])), fmt, header)
        )
    return subscribers


def slack_text(record: dict[str, Any]) -> str:
    who = record.get("userIdentity", {}).get("userName", "?")
    ns = record.get("recipientAccountId", "")
    secret = (record.get("additionalEventData") or {}).get("secretName") or next(
        (r.get("ARN") for r in record.get("resources") or []), "-"
    )
    text = f"*{record.get('eventName')}* on `{ns}/{secret}` by `{who}` at {record.get('eventTime')}"
    if record.get("errorCode"):
        text += f" — {record['errorCode']}: {record.get('errorMessage', '')}"
    return text


def _host(url: str) -> str:
    """Where a webhook goes, for logs: webhook URLs often carry a token in their path."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}"


class Notifier:
    def __init__(
        self,
        subscribers: Sequence[Subscriber],
        *,
        max_queue: int = 1000,
        attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
    ) -> None:
        self.subscribers = list(subscribers)
        self._queue: queue.Queue[tuple[Subscriber, dict[str, Any]] | None] = queue.Queue(max_queue)
        self._attempts, self._backoff, self._max_backoff = attempts, backoff, max_backoff
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, rows: Sequence[PendingRow]) -> None:
        """Audit listener: enqueue matching records; never blocks, drops when full."""
        for row in rows:
            for sub in self.subscribers:
                if not sub.wants(row):
                    continue
                try:
                    self._queue.put_nowait((sub, json.loads(row.record)))
                except queue.Full:
                    NOTIFICATIONS.labels("dropped").inc()
                    continue
                self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="kustos-notify", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._deliver(*item)

    def _deliver(self, sub: Subscriber, record: dict[str, Any]) -> bool:
        body = {"text": slack_text(record)} if sub.format == "slack" else record
        data = json.dumps(body).encode()
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            request = urllib.request.Request(  # noqa: S310
                sub.url,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            if sub.header:
                request.add_header(*sub.header)
            try:
                with urllib.request.urlopen(request, timeout=self._timeout):  # noqa: S310
                    NOTIFICATIONS.labels("delivered").inc()
                    return True
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "code", None) or type(exc).__name__
                log.warning(
                    "notify: %s attempt %d to %s failed: %s",
                    record.get("eventName"),
                    attempt,
                    _host(sub.url),
                    reason,
                )
            if attempt < self._attempts:
                NOTIFICATIONS.labels("retried").inc()
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self._max_backoff)
        NOTIFICATIONS.labels("failed").inc()
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop."""
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                self._stop.set()
            self._thread.join(timeout)
            self._stop.set()
