"""Anchors the audit chain outside the store, so truncation cannot go unnoticed.

Whoever can write the database can delete the newest records and digests and leave a
shorter log that still verifies on its own. So every signed digest (and pruning checkpoint),
and every few seconds the chain head (newest seq and its hash), is also published where a
database writer cannot reach:

- **the `AuditAnchor` object** ``<namespace>/<name>`` (kustos.io, status only): the trusted
  anchor. One per chain: every replica writing the chain publishes to the same object, and
  only forward (a guarded write; an older head never replaces a newer one);
- **the operator's log** (one line per digest; hashes and signatures, never values);
- **optional witnesses**: a JSON-lines file (``KUSTOS_AUDIT_ANCHOR_FILE``) and a webhook
  (``KUSTOS_AUDIT_ANCHOR_WEBHOOK``, a JSON POST). `kustos audit verify --witness FILE`
  checks the store against a file too.

Before moving the anchor forward, the publisher checks that the store still holds what the
anchor names (the anchored digest, and the anchored head unless a checkpoint pruned it).
If not, the store lost records: the anchor is left as it is, so the loss stays visible to
`kustos audit verify`, and the publisher logs an error on every round until someone looks.

Rows committed after the newest published head are held by the chain alone: at most
``KUSTOS_AUDIT_ANCHOR_SECONDS`` (default 5) of records.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kustos.errors import ConflictError, KustosError
from kustos.kube.audit_anchor import StoredAnchor
from kustos.store.audit import AuditStore, DigestRow

__all__ = [
    "Anchor",
    "AnchorGatewayLike",
    "AnchorPublisher",
    "FileWitness",
    "WebhookWitness",
    "Witness",
    "anchor_of",
    "publish_safely",
    "read_file_witness",
]

log = logging.getLogger(__name__)
#: An idle publisher still re-reads the anchor this often (a deleted one is re-created).
RECHECK_SECONDS = 30.0

_DIGEST_FIELDS = (
    ("kind", "kind"),
    ("createdAt", "created_at"),
    ("firstSeq", "first_seq"),
    ("lastSeq", "last_seq"),
    ("chainHash", "chain_hash"),
    ("prevSignature", "prev_signature"),
    ("keyId", "key_id"),
    ("signature", "signature"),
)


@dataclass(frozen=True)
class Anchor:
    """What an anchor records: the newest signed digest and the chain head."""

    digest: DigestRow | None = None
    head_seq: int = 0
    head_hash: str = ""
    writer: str = ""
    updated_at: str = ""

    @property
    def empty(self) -> bool:
        return self.digest is None and self.head_seq == 0

    def same_as(self, other: Anchor) -> bool:
        return (_digest_key(self.digest), self.head_seq, self.head_hash) == (
            _digest_key(other.digest),
            other.head_seq,
            other.head_hash,
        )

    def as_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "writer": self.writer,
            "updatedAt": self.updated_at,
        }
        if self.digest is not None:
            status["digest"] = {out: getattr(self.digest, attr) for out, attr in _DIGEST_FIELDS}
        return status

    def describe(self) -> str:
        text = f"head seq {self.head_seq}"
        if self.digest is not None:
            d = self.digest
            text += f", {d.kind} seq {d.first_seq}..{d.last_seq} signed {d.created_at}"
        return text


def _digest_key(row: DigestRow | None) -> tuple[Any, ...] | None:
    return None if row is None else tuple(getattr(row, a) for _, a in _DIGEST_FIELDS)


def anchor_of(status: dict[str, Any]) -> Anchor:
    """Parse an anchor from its status/JSON form (ValueError when it is not one)."""
    try:
        head = status.get("head") or {}
        raw = status.get("digest")
        digest = None
        if raw:
            digest = DigestRow(**{attr: raw[out] for out, attr in _DIGEST_FIELDS})
            if not isinstance(digest.last_seq, int) or not isinstance(digest.first_seq, int):
                raise ValueError("digest seqs must be integers")
        seq = head.get("seq", 0)
        if not isinstance(seq, int):
            raise ValueError("head.seq must be an integer")
        return Anchor(
            digest,
            seq,
            str(head.get("hash", "")),
            str(status.get("writer", "")),
            str(status.get("updatedAt", "")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an audit anchor: {type(exc).__name__} {exc}") from None


class AnchorGatewayLike(Protocol):
    """The trusted anchor's storage (`kustos.kube.audit_anchor.AnchorGateway`)."""

    @property
    def ref(self) -> str: ...

    def read(self) -> StoredAnchor | None: ...
    def create(self) -> StoredAnchor: ...
    def write_status(self, status: dict[str, Any], resource_version: str) -> None: ...


class Witness(Protocol):
    """An extra, untrusted copy of each published anchor; must not block for long."""

    def offer(self, anchor: Anchor) -> None: ...


class FileWitness:
    """Appends each published anchor as one JSON line (open, append, fsync, close)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def offer(self, anchor: Anchor) -> None:
        line = json.dumps(anchor.as_status(), sort_keys=True, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())


def read_file_witness(path: str | Path) -> Anchor | None:
    """The newest anchor a `FileWitness` wrote (None: empty file); ValueError if unreadable."""
    newest: Anchor | None = None
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            anchor = anchor_of(json.loads(line))
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        if newest is None or anchor.head_seq >= newest.head_seq:
            newest = anchor
    return newest


class WebhookWitness:
    """POSTs each published anchor as JSON; failures are logged (host only), never raised."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("the anchor webhook must be an http(s) URL")
        self.url = url
        self.host = urllib.parse.urlsplit(url).hostname or "?"
        self.timeout = timeout

    def offer(self, anchor: Anchor) -> None:
        data = json.dumps(anchor.as_status(), sort_keys=True).encode()
        request = urllib.request.Request(  # noqa: S310
            self.url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout):  # noqa: S310
                pass
        except (urllib.error.URLError, OSError) as exc:
            log.warning("audit anchor: webhook %s failed: %s", self.host, type(exc).__name__)


class AnchorPublisher:
    """Publishes the store's newest digest and head to the anchor and the witnesses."""

    def __init__(
        self,
        store: AuditStore,
        gateway: AnchorGatewayLike,
        *,
        writer: str = "",
        witnesses: Sequence[Witness] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._gateway = gateway
        self._writer = writer
        self._witnesses = list(witnesses)
        self._clock = clock
        self._last: Anchor | None = None  # what this publisher last saw anchored
        self._last_at = 0.0  # when (monotonic); the object is re-read now and then anyway
        self._lock = threading.Lock()

    @property
    def ref(self) -> str:
        return self._gateway.ref

    def publish(self) -> Anchor | None:
        """One round: the anchor as it stands afterwards (None: it could not be read).
        Raises KustosError when the Kubernetes API fails."""
        with self._lock:
            digest = self._store.newest_digest()
            seq, head = self._store.tail()
            candidate = Anchor(digest, seq, head if seq else "", self._writer)
            if (
                self._last is not None
                and candidate.same_as(self._last)
                and time.monotonic() - self._last_at < RECHECK_SECONDS
            ):
                return self._last
            for _ in range(3):
                try:
                    anchored = self._publish_once(candidate)
                except ConflictError:
                    continue  # another replica published meanwhile: read again
                self._last_at = time.monotonic()
                return anchored
            return None

    def _publish_once(self, candidate: Anchor) -> Anchor:
        stored = self._gateway.read()
        if stored is None:
            try:
                stored = self._gateway.create()
            except ConflictError:
                stored = self._gateway.read()
                if stored is None:
                    raise
        try:
            current = anchor_of(stored.status) if stored.status else Anchor()
        except ValueError as exc:
            log.error(
                "audit anchor: %s holds no valid anchor (%s); it is left alone", self.ref, exc
            )
            return Anchor()
        if not current.empty:
            problem = self.store_lost(current)
            if problem:
                log.error(
                    "audit anchor: the store no longer holds what %s anchors (%s): "
                    "records or digests were deleted; the anchor is kept so that "
                    "`kustos audit verify` reports it",
                    self.ref,
                    problem,
                )
                self._last = None
                return current
        merged = self._merge(current, candidate)
        if merged.same_as(current):
            self._last = current
            return current
        merged = replace(
            merged, updated_at=self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        self._gateway.write_status(merged.as_status(), stored.resource_version)
        self._last = merged
        if merged.digest is not None and _digest_key(merged.digest) != _digest_key(current.digest):
            d = merged.digest
            log.info(
                "audit anchor: %s %s seq %d..%d chain %s signature %s (key %s) anchored in %s",
                d.kind,
                d.created_at,
                d.first_seq,
                d.last_seq,
                d.chain_hash,
                d.signature,
                d.key_id,
                self.ref,
            )
        else:
            log.debug("audit anchor: head seq %d anchored in %s", merged.head_seq, self.ref)
        for witness in self._witnesses:
            try:
                witness.offer(merged)
            except Exception as exc:  # a witness never stops the trusted anchor
                log.warning(
                    "audit anchor: witness %s failed: %s",
                    type(witness).__name__,
                    type(exc).__name__,
                )
        return merged

    @staticmethod
    def _merge(current: Anchor, candidate: Anchor) -> Anchor:
        """Only forward: the newer head and the newer digest of the two."""
        head = candidate if candidate.head_seq >= current.head_seq else current
        digest = candidate.digest
        if current.digest is not None and (
            digest is None or digest.last_seq < current.digest.last_seq
        ):
            digest = current.digest
        return Anchor(digest, head.head_seq, head.head_hash, candidate.writer)

    def store_lost(self, anchor: Anchor) -> str:
        """What of `anchor` the store no longer holds ('' when it holds everything)."""
        if anchor.digest is not None:
            found = self._store.digest_by_signature(anchor.digest.signature)
            if found is None or _digest_key(found) != _digest_key(anchor.digest):
                return f"the {anchor.digest.kind} through seq {anchor.digest.last_seq} is missing"
        if anchor.head_seq:
            pruned = self._store.pruned_through()
            if (
                anchor.head_seq > pruned
                and self._store.hash_at(anchor.head_seq) != anchor.head_hash
            ):
                return f"record seq {anchor.head_seq} is missing or different"
        return ""


def publish_safely(publisher: AnchorPublisher) -> None:
    """One publishing round that logs instead of raising (for background loops)."""
    try:
        publisher.publish()
    except KustosError as exc:
        log.warning("audit anchor: not published: %s", exc.message)
    except Exception:
        log.exception("audit anchor: not published")
