"""Verifies the audit log: the hash chain, the signed digests, the pruning checkpoint.

One pass over the log in seq order, in constant memory while the log is intact. Each row's
hash is recomputed at its seq; a row whose hash only matches at another seq was renumbered,
and that "as written" seq tells what happened around it:

- contents no longer match the hash at any nearby seq   -> ``modified``
- a seq written once is missing                         -> ``deleted``
- a seq written once appears twice (the extra row does not chain) -> ``inserted``
- a row that sits out of order among its neighbours     -> ``reordered``: a row is named
  when its neighbours are in order with each other but it fits between neither (so a swap
  names both rows, a row moved far names that row only, never the untouched ones between)
- a row that verifies alone but does not chain to its predecessor -> ``broken-link``
- a digest whose signature fails, whose key is unknown, whose predecessor is missing, or
  whose signed chain hash differs from the log's        -> ``digest``

- the store lacks what an anchor outside it records (`kustos.services.audit.anchor`): the
  anchored digest is gone or differs -> ``anchor``; the chain at the anchored head or digest
  differs -> ``anchor``; records up to the anchored head are missing -> ``deleted`` (each
  seq); no record and no digest left although the anchor records some -> ``emptied``; the
  store holds digests but the anchor does not exist -> ``anchor``

Findings name the record (seq and eventID). Rows appended after the newest anchored head are
held only by the chain: someone able to write the database could delete or append
well-formed rows there until the next head is anchored (seconds) or digest signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kustos.crypto import Keyring, derive_key
from kustos.errors import KeyringError
from kustos.services.audit.anchor import Anchor
from kustos.store.audit import GENESIS, AuditStore, DigestRow, chain_hash

__all__ = ["DIGEST_PURPOSE", "Finding", "VerifyReport", "digest_message", "sign", "verify"]

DIGEST_PURPOSE = "kustos-audit-digest-v1"
_SEARCH = 64  # how far (in seq) a renumbered row is looked for
_MAX_FINDINGS = 100


@dataclass(frozen=True)
class Finding:
    kind: str  # modified | deleted | inserted | reordered | broken-link | digest | anchor | emptied
    seq: int | None
    event_id: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass
class VerifyReport:
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    digests: int = 0
    signed_through: int = 0  # newest seq covered by a valid digest
    checkpoint_seq: int = 0
    signatures_checked: bool = False
    #: The anchors compared (e.g. "AuditAnchor kustos-system/kustos-audit").
    anchors: list[str] = field(default_factory=list)
    anchored_through: int = 0  # newest seq an anchor vouches for, when all is well
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "digests": self.digests,
            "signedThrough": self.signed_through,
            "checkpointSeq": self.checkpoint_seq,
            "signaturesChecked": self.signatures_checked,
            "anchors": self.anchors,
            "anchoredThrough": self.anchored_through,
            "findings": [
                {"kind": f.kind, "seq": f.seq, "eventID": f.event_id, "message": f.message}
                for f in self.findings
            ],
        }


def digest_message(row: DigestRow) -> bytes:
    return "\n".join(
        [
            DIGEST_PURPOSE,
            row.kind,
            row.created_at,
            str(row.first_seq),
            str(row.last_seq),
            row.chain_hash,
            row.prev_signature,
            row.key_id,
        ]
    ).encode()


def sign(row: DigestRow, keyring: Keyring) -> DigestRow:
    """`row` signed with the digest subkey of the keyring's newest key."""
    key_id, key = derive_key(keyring, DIGEST_PURPOSE)
    unsigned = DigestRow(**{**row.__dict__, "key_id": key_id, "signature": ""})
    mac = hmac.new(key, digest_message(unsigned), hashlib.sha256).hexdigest()
    return DigestRow(**{**unsigned.__dict__, "signature": mac})


def _check_digests(digests: list[DigestRow], keyring: Keyring | None, report: VerifyReport) -> None:
    prev_sig = ""
    for row in digests:
        label = f"{row.kind} #{row.id} (seq {row.first_seq}..{row.last_seq})"
        if row.prev_signature != prev_sig:
            report.findings.append(
                Finding(
                    "digest",
                    row.last_seq,
                    None,
                    f"{label} does not follow the previous digest: a digest was deleted, "
                    "inserted or altered",
                )
            )
        prev_sig = row.signature
        if keyring is None:
            continue
        try:
            _, key = derive_key(keyring, DIGEST_PURPOSE, row.key_id)
        except KeyringError:
            report.findings.append(
                Finding(
                    "digest",
                    row.last_seq,
                    None,
                    f"{label} is signed with key {row.key_id!r}, which the keyring lacks",
                )
            )
            continue
        mac = hmac.new(
            key, digest_message(DigestRow(**{**row.__dict__, "signature": ""})), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(mac, row.signature):
            report.findings.append(
                Finding(
                    "digest",
                    row.last_seq,
                    None,
                    f"{label}: the signature does not match (the digest was altered)",
                )
            )


class _Walk:
    """State of the single pass; anomalies only are remembered."""

    def __init__(
        self,
        store: AuditStore,
        start_seq: int,
        start_hash: str,
        signed: dict[int, DigestRow],
        anchored: dict[int, tuple[str, str]],
        report: VerifyReport,
    ) -> None:
        self.store, self.report, self.signed, self.anchored = store, report, signed, anchored
        self.start_seq = start_seq
        self.running = start_hash
        self.expected = start_seq + 1
        self.max_orig = start_seq
        self.gaps: dict[int, int] = {}  # missing original seqs seen so far -> seq after it
        self.recent: deque[tuple[int, str, str, str, int]] = deque(maxlen=_SEARCH + 1)
        self.flagged_prev = False
        self.pending_dup: tuple[int, str, str, int] | None = None  # seq, eid, hash, orig
        #: The last two rows as (seq, eventID, original seq), to judge the middle one.
        self.order: deque[tuple[int, str, int]] = deque([(start_seq, "", start_seq)], maxlen=2)

    def add(self, f: Finding) -> None:
        self.flagged_prev = True
        if len(self.report.findings) < _MAX_FINDINGS:
            self.report.findings.append(f)

    def original_seq(
        self, seq: int, cols: tuple[Any, ...], record: str, prev: str, digest: str
    ) -> int | None:
        if chain_hash(prev, seq, cols, record) == digest:
            return seq
        guesses = [seq + d for k in range(1, _SEARCH + 1) for d in (k, -k)]
        pred = self.store.find_seq_by_hash(prev) if prev != GENESIS else 0
        if pred is not None:
            guesses.insert(0, pred + 1)
        return next(
            (g for g in guesses if g > 0 and chain_hash(prev, g, cols, record) == digest), None
        )

    def row(self, row: tuple[Any, ...]) -> None:
        seq, cols, record, prev, digest = row[0], row[1:-3], row[-3], row[-2], row[-1]
        eid = str(cols[0])
        flagged_before, self.flagged_prev = self.flagged_prev, False
        if seq <= self.start_seq:
            self.add(
                Finding(
                    "inserted",
                    seq,
                    eid,
                    f"record seq {seq} (eventID {eid}) predates "
                    f"the pruning checkpoint at seq {self.start_seq}",
                )
            )
            return
        if self.pending_dup is not None:
            self._settle_duplicate(prev)
        orig = self.original_seq(seq, cols, record, prev, digest)
        if orig is None:
            self.add(
                Finding(
                    "modified",
                    seq,
                    eid,
                    f"record seq {seq} (eventID {eid}) was "
                    "modified: its contents do not match its hash",
                )
            )
            orig = seq
        elif orig > self.max_orig + 1:
            self.flagged_prev = True  # the gap explains the broken link; reported at the end
            for missing in range(self.max_orig + 1, orig):
                self.gaps[missing] = seq
        elif orig <= self.max_orig:
            if orig in self.gaps:
                del self.gaps[orig]  # a moved row, named by `_judge_order`
                self.flagged_prev = True
            else:
                self.flagged_prev = True
                self.pending_dup = (seq, eid, digest, orig)
        if not self.flagged_prev and not flagged_before and orig == seq and prev != self.running:
            last = self.recent[-1] if self.recent else None
            named = f"seq {last[0]} (eventID {last[1]})" if last else "the checkpoint"
            self.add(
                Finding(
                    "broken-link",
                    seq,
                    eid,
                    f"record seq {seq} (eventID {eid}) does "
                    f"not chain to {named}: that record was altered and rehashed, or "
                    "one was inserted or deleted between them",
                )
            )
        check = self.signed.get(orig)
        if check is not None and check.chain_hash != digest:
            self.add(
                Finding(
                    "digest",
                    seq,
                    eid,
                    f"the chain at seq {seq} differs from "
                    f"{check.kind} #{check.id}: records up to it were rewritten",
                )
            )
        pin = self.anchored.get(orig)
        if pin is not None and pin[0] != digest:
            self.add(
                Finding(
                    "anchor",
                    seq,
                    eid,
                    f"the chain at seq {seq} differs from {pin[1]}:"
                    " records up to it were rewritten",
                )
            )
        self.max_orig = max(self.max_orig, orig)
        self.running = digest
        self.recent.append((seq, eid, prev, digest, orig))
        self._judge_order(orig)
        self.order.append((seq, eid, orig))

    def _judge_order(self, next_orig: float) -> None:
        """Name the previous row if it moved: its neighbours' original seqs are in order
        but its own lies outside them."""
        if len(self.order) < 2:
            return
        (_, _, before), (seq, eid, orig) = self.order
        if before < next_orig and not before <= orig <= next_orig:
            keep = self.flagged_prev  # that flag concerns the current row, not this one
            self.add(
                Finding(
                    "reordered",
                    seq,
                    eid,
                    f"record seq {seq} (eventID {eid}) was written as seq {orig}: it was moved",
                )
            )
            self.flagged_prev = keep

    def _settle_duplicate(self, next_prev: str) -> None:
        """Two rows claim one original seq; the one the next row chains to is genuine."""
        assert self.pending_dup is not None
        seq, eid, digest, orig = self.pending_dup
        self.pending_dup = None
        twin = next((r for r in reversed(self.recent) if r[4] == orig and r[0] != seq), None)
        fake = (twin[0], twin[1]) if next_prev == digest and twin else (seq, eid)
        self.add(
            Finding(
                "inserted",
                fake[0],
                fake[1],
                f"record seq {fake[0]} (eventID "
                f"{fake[1]}) was inserted: it is not part of the chain written as "
                f"seq {orig}",
            )
        )

    def finish(self) -> None:
        self._judge_order(float("inf"))
        if self.pending_dup is not None:
            self._settle_duplicate("")
        for missing, after in sorted(self.gaps.items()):
            where = (
                f"before seq {after}"
                if after > 0
                else f"at the end of the log, which was signed or anchored through seq {-after}"
            )
            self.add(
                Finding(
                    "deleted",
                    missing,
                    None,
                    f"the record written as seq {missing} was deleted (missing {where})",
                )
            )


def _check_anchors(
    store: AuditStore,
    digests: list[DigestRow],
    anchors: Sequence[tuple[str, Anchor | None]],
    report: VerifyReport,
) -> dict[int, tuple[str, str]] | None:
    """Compare the store with each anchor; the (seq -> hash, what) pins for the walk, or
    None when the log was emptied (nothing left to walk)."""
    pins: dict[int, tuple[str, str]] = {}
    by_signature = {d.signature: d for d in digests}
    emptied = not digests and store.tail() == (0, GENESIS)
    for source, anchor in anchors:
        report.anchors.append(source)
        if anchor is None or anchor.empty:
            if digests:
                report.findings.append(
                    Finding(
                        "anchor",
                        None,
                        None,
                        f"{source} anchors nothing, but the store holds {len(digests)} signed "
                        "digest(s): the anchor was deleted, or it anchors another store",
                    )
                )
            continue
        if emptied:
            report.findings.append(
                Finding(
                    "emptied",
                    None,
                    None,
                    f"the audit log is empty, but {source} records {anchor.describe()}: "
                    "every record and digest was deleted",
                )
            )
            return None
        d = anchor.digest
        if d is not None:
            found = by_signature.get(d.signature)
            label = f"the {d.kind} (seq {d.first_seq}..{d.last_seq}, signed {d.created_at})"
            if found is None:
                report.findings.append(
                    Finding(
                        "anchor",
                        d.last_seq,
                        None,
                        f"{label} anchored in {source} is missing from the store: signed digests "
                        "were deleted",
                    )
                )
            elif (
                found.kind,
                found.first_seq,
                found.last_seq,
                found.chain_hash,
                found.created_at,
            ) != (d.kind, d.first_seq, d.last_seq, d.chain_hash, d.created_at):
                report.findings.append(
                    Finding(
                        "anchor",
                        d.last_seq,
                        None,
                        f"{label} anchored in {source} differs from the store's copy",
                    )
                )
            if d.kind == "digest":
                pins.setdefault(d.last_seq, (d.chain_hash, f"the digest anchored in {source}"))
        if anchor.head_seq:
            pins.setdefault(anchor.head_seq, (anchor.head_hash, f"the head anchored in {source}"))
    return pins


def verify(
    store: AuditStore, keyring: Keyring | None, anchors: Sequence[tuple[str, Anchor | None]] = ()
) -> VerifyReport:
    """Verify the log; `anchors` are (source, anchor) pairs to compare the store with, the
    anchor None when its source holds none (the Kubernetes object does not exist)."""
    report = VerifyReport(signatures_checked=keyring is not None)
    digests = store.digests()
    report.digests = len(digests)
    _check_digests(digests, keyring, report)
    pins = _check_anchors(store, digests, anchors, report)
    if pins is None:
        return report
    checkpoints = [d for d in digests if d.kind == "checkpoint"]
    start = checkpoints[-1] if checkpoints else None
    start_seq, start_hash = (start.last_seq, start.chain_hash) if start else (0, GENESIS)
    report.checkpoint_seq = start_seq
    signed = {d.last_seq: d for d in digests if d.kind == "digest" and d.last_seq > start_seq}
    pins = {seq: pin for seq, pin in pins.items() if seq > start_seq}
    walk = _Walk(store, start_seq, start_hash, signed, pins, report)
    for row in store.iter_chain():
        if report.first_seq is None:
            report.first_seq = row[0]
        report.last_seq = row[0]
        report.records += 1
        walk.row(row)
    newest = max(signed, default=start_seq)
    anchored = max(pins, default=start_seq)
    expected = max(newest, anchored)
    if expected > walk.max_orig:
        walk.gaps.update({s: -expected for s in range(walk.max_orig + 1, expected + 1)})
    walk.finish()
    if report.ok:
        report.signed_through = newest
        report.anchored_through = anchored if pins else 0
    return report
