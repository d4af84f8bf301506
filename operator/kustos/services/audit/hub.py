"""One group commit for every API process of a server: the audit hub and its clients.

With several API processes (`kustos api --processes N`, `$KUSTOS_API_PROCESSES` in the
operator), each used to commit its own batches, and on one SQLite file their commits
serialised: every batch of one process waited for the other's fsync before its own, and the
slow ones stacked into the tail (docs/benchmarks.md, "The API from a pod"). Now the first
process runs an `AuditHub` on a Unix socket, and the others hand their batches to it
(`HubAppender`, their audit writer's appender): the hub's writer commits everyone's records
in one transaction, one fsync per batch, one hash chain in one order.

Nothing is given up:
- A worker's caller still gets its value only once its record is durable: the hub answers
  each batch with the store's verdict (and the rows' chain positions), never before.
- A batch still queued in the hub when the store stops answering or the commit timeout
  passes is withdrawn there (never written) and refused; one being committed waits for the
  store's verdict, as in one process (`AuditService.keep_waiting`).
- A hub that does not answer (gone, or silent past `reply_timeout`) is an outage for the
  worker: its records are refused (fail closed) and it probes the hub until it answers.
  Such a batch may still have been committed by a dying hub: the log can then hold a record
  of a read whose value was refused, never the reverse.
- Only processes of the hub's own user may connect (the socket is 0600 in a 0700 directory,
  and the peer's uid is checked with SO_PEERCRED). Frames are length-prefixed JSON, checked
  field by field: nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import select
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson

from kustos.errors import AuditUnavailableError
from kustos.services.audit.service import AuditService, AuditTicket
from kustos.store.audit import PendingRow

__all__ = ["AuditHub", "HubAppender", "HubRefused", "hub_path"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
_MAX_FRAME = 64 << 20
_ROW_FIELDS = tuple((f.name, f.type) for f in fields(PendingRow))
_BOOL_FIELDS = frozenset(name for name, kind in _ROW_FIELDS if kind == "bool")
_OPTIONAL_FIELDS = frozenset(name for name, kind in _ROW_FIELDS if "None" in str(kind))
_row_values = operator.attrgetter(*(name for name, _ in _ROW_FIELDS))


class HubRefused(Exception):
    """The hub's verdict on a batch: not durable. `outage` says whether the store (or the
    hub) is not answering, as opposed to a batch it refused."""

    def __init__(self, message: str, *, outage: bool) -> None:
        super().__init__(message)
        self.outage = outage


def hub_path() -> Path:
    """A fresh socket path in a private (0700) directory."""
    return Path(tempfile.mkdtemp(prefix="kustos-audit-")) / "hub.sock"


# -- framing ------------------------------------------------------------------------------
def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    body = orjson.dumps(message)
    sock.sendall(_HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, n: int, buffer: bytearray) -> bytes:
    while len(buffer) < n:
        chunk = sock.recv(max(65536, n - len(buffer)))
        if not chunk:
            raise ConnectionError("the audit hub connection closed")
        buffer += chunk
    out = bytes(buffer[:n])
    del buffer[:n]
    return out


def _recv(sock: socket.socket, buffer: bytearray) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, buffer))
    if size > _MAX_FRAME:
        raise ConnectionError(f"an audit hub frame of {size} bytes is too large")
    message = orjson.loads(_recv_exact(sock, size, buffer))
    if not isinstance(message, dict):
        raise ConnectionError("an audit hub frame is not an object")
    return message


def rows_from_wire(values: object) -> list[PendingRow]:
    """Rows as a worker sent them (lists in `PendingRow`'s field order), checked."""
    if not isinstance(values, list):
        raise ValueError("rows must be a list")
    rows = []
    for value in values:
        if not isinstance(value, list) or len(value) != len(_ROW_FIELDS):
            raise ValueError("a row must list every field of a record")
        for (name, _kind), item in zip(_ROW_FIELDS, value, strict=True):
            if item is None and name in _OPTIONAL_FIELDS:
                continue
            wanted = bool if name in _BOOL_FIELDS else str
            if type(item) is not wanted:
                raise ValueError(f"field {name} of a record has the wrong type")
        rows.append(PendingRow(*value))
    return rows


# -- the hub (in the process that commits) -------------------------------------------------
class AuditHub:
    """Serves `audit`'s group commit on a Unix socket at `path` (one thread per worker)."""

    def __init__(self, audit: AuditService, path: Path) -> None:
        self.audit = audit
        self.path = path
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._closing = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self._listener = listener
        self._spawn(self._accept_loop, "kustos-audit-hub")
        log.info("audit hub: committing for the other API processes on %s", self.path)

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            pid, same_user = self._peer(conn)
            if not same_user:
                log.warning("audit hub: refused a connection from another user (pid %d)", pid)
                conn.close()
                continue
            log.info("audit hub: API process %d commits through this one", pid)
            with self._lock:
                self._conns.add(conn)
            self._spawn(self._serve, "kustos-audit-hub-conn", conn)

    @staticmethod
    def _peer(conn: socket.socket) -> tuple[int, bool]:
        """The peer's pid, and whether it runs as this process's user."""
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
        return int(pid), bool(uid == os.getuid())

    def _serve(self, conn: socket.socket) -> None:
        send_lock = threading.Lock()
        pending: dict[int, AuditTicket] = {}
        buffer = bytearray()
        try:
            while not self._closing.is_set():
                readable, _, _ = select.select([conn], [], [], 0.1)
                if readable or buffer:
                    self._handle(conn, _recv(conn, buffer), pending, send_lock)
                self._watch(conn, pending, send_lock)
        except (ConnectionError, OSError, ValueError) as exc:
            if not self._closing.is_set() and not isinstance(exc, ConnectionError):
                log.warning("audit hub: dropped a worker's connection: %s", exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _handle(
        self,
        conn: socket.socket,
        message: dict[str, Any],
        pending: dict[int, AuditTicket],
        send_lock: threading.Lock,
    ) -> None:
        ident = message.get("id")
        if not isinstance(ident, int):
            raise ValueError("a frame without an id")
        if message.get("op") == "probe":
            try:
                self.audit.appender.probe(float(message.get("timeout") or 1.0))
                reply: dict[str, Any] = {"id": ident, "error": None}
            except Exception as exc:
                reply = {"id": ident, "error": type(exc).__name__, "outage": True}
            with send_lock:
                _send(conn, reply)
            return
        try:
            rows = rows_from_wire(message.get("rows"))
        except ValueError as exc:
            with send_lock:
                _send(conn, {"id": ident, "error": f"refused: {exc}", "outage": False})
            return

        def settled(ticket: AuditTicket) -> None:  # in the hub's writer thread
            outage = ticket.error is not None and self.audit.down() is not None
            reply: dict[str, Any] = {"id": ident, "error": ticket.error, "outage": outage}
            if ticket.error is None:
                reply["written"] = ticket.written
            try:
                with send_lock:
                    _send(conn, reply)
            except OSError:
                pass  # the worker is gone; its callers were refused there

        try:
            pending[ident] = self.audit.submit_rows(rows, settled)
        except AuditUnavailableError as exc:
            with send_lock:
                _send(conn, {"id": ident, "error": exc.message, "outage": True})

    def _watch(
        self, conn: socket.socket, pending: dict[int, AuditTicket], send_lock: threading.Lock
    ) -> None:
        """Drop settled tickets; withdraw those past the stall rules (never written)."""
        for ident, ticket in list(pending.items()):
            if ticket.settled:
                del pending[ident]
            elif time.perf_counter() - ticket.started >= self.audit.first_wait_seconds:
                try:
                    if not self.audit.keep_waiting(ticket):
                        continue  # claimed: the store's verdict settles it
                except AuditUnavailableError as exc:
                    del pending[ident]
                    with send_lock:
                        _send(conn, {"id": ident, "error": exc.message, "outage": True})

    def close(self) -> None:
        self._closing.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=1.0)
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()


# -- the worker's side ---------------------------------------------------------------------
class HubAppender:
    """An audit writer's appender that commits through the hub at `path` (see the module
    docstring). One batch in flight at a time: the writer's own group commit batches."""

    def __init__(self, path: Path, reply_timeout: float = 30.0) -> None:
        self.path = path
        self.reply_timeout = reply_timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._next = 0

    def _connection(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.reply_timeout)
            try:
                sock.connect(str(self.path))
            except OSError:
                sock.close()
                raise
            self._sock, self._buffer = sock, bytearray()
        return self._sock

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            message["id"] = ident = self._next
            try:
                sock = self._connection()
                _send(sock, message)
                reply = _recv(sock, self._buffer)
            except (OSError, ValueError) as exc:  # timeout, reset, a garbled frame
                self._drop()
                raise ConnectionError(f"the audit hub did not answer: {exc}") from exc
            if reply.get("id") != ident:
                self._drop()
                raise ConnectionError("the audit hub answered another batch")
        error = reply.get("error")
        if error is not None:
            raise HubRefused(str(error), outage=bool(reply.get("outage")))
        return reply

    def append(
        self, rows: Sequence[PendingRow], lock_timeout: float | None = None
    ) -> list[tuple[int, str]]:
        reply = self._call({"op": "append", "rows": [list(_row_values(row)) for row in rows]})
        written = reply.get("written")
        if not isinstance(written, list) or len(written) != len(rows):
            raise HubRefused("the audit hub's answer lacks the rows' positions", outage=True)
        return [(int(seq), str(digest)) for seq, digest in written]

    def probe(self, lock_timeout: float) -> None:
        self._call({"op": "probe", "timeout": lock_timeout})

    @staticmethod
    def is_outage(exc: BaseException) -> bool:
        return isinstance(exc, OSError) or (isinstance(exc, HubRefused) and exc.outage)

    def _drop(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._drop()
