"""`kustos audit lookup|verify|export|prune` and `kustos usage`: the audit log from a shell.

They open the store at ``$KUSTOS_STORE_URL`` directly (read-only use, except prune) and, for
digest signatures, the keyring from its Kubernetes Secret as `kustos keys rotate` does;
`verify` also reads the chain's `AuditAnchor` (``$KUSTOS_NAMESPACE``/``$KUSTOS_AUDIT_ANCHOR``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from kustos.config import Settings
from kustos.crypto import Keyring
from kustos.errors import KeyringError, KustosError
from kustos.services.audit.anchor import Anchor, anchor_of, read_file_witness
from kustos.services.audit.event import parse_when, time_text
from kustos.services.audit.service import AuditService
from kustos.services.audit.usage import usage_by_namespace
from kustos.store import Store, open_store
from kustos.store.audit import AuditQuery

__all__ = ["audit", "usage"]


class _When(click.ParamType):  # type: ignore[type-arg]
    name = "when"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


WHEN = _When()


def _open() -> tuple[Store, AuditService, Settings]:
    settings = Settings.from_env()
    store = open_store(settings.store_url)
    return store, AuditService(store.audit, settings.cluster_name), settings


def _keyring(settings: Settings) -> Keyring:
    from kustos.kube.client import api_client
    from kustos.kube.keyring_secret import KeyringSecret

    api = api_client(settings.kubeconfig)
    try:
        stored = KeyringSecret(api, settings.namespace, settings.keyring_secret).load()
    finally:
        api.close()
    if stored is None:
        raise KeyringError(
            f"keyring Secret {settings.namespace}/{settings.keyring_secret} not found"
        )
    return Keyring.from_secret_data(stored.data)


def _kube_anchor(settings: Settings) -> tuple[str, Anchor | None]:
    from kustos.kube.audit_anchor import AnchorGateway
    from kustos.kube.client import api_client

    api = api_client(settings.kubeconfig)
    try:
        gateway = AnchorGateway(api, settings.namespace, settings.audit.anchor_name)
        stored = gateway.read()
    finally:
        api.close()
    try:
        return gateway.ref, anchor_of(stored.status) if stored and stored.status else None
    except ValueError as exc:
        raise KustosError(f"{gateway.ref}: {exc}") from None


@click.group()
def audit() -> None:
    """Query, export and verify the audit log."""


def _query(
    secret_id: str | None,
    event_name: str | None,
    user: str | None,
    namespace: str | None,
    denied: bool,
    since: datetime | None,
    until: datetime | None,
    limit: int = 50,
    before: int | None = None,
) -> AuditQuery:
    arn = secret_id if secret_id and secret_id.startswith("arn:") else None
    return AuditQuery(
        secret_arn=arn,
        secret_name=None if arn else secret_id,
        namespace=namespace,
        event_name=event_name,
        user=user,
        denied=True if denied else None,
        since=time_text(since) if since else None,
        until=time_text(until) if until else None,
        limit=limit,
        before_seq=before,
    )


def _filters(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--secret-id", help="Secret name or ARN."),
            click.option("--event-name", help="e.g. GetSecretValue, RotationSucceeded."),
            click.option("--user", help="Principal ARN or user name."),
            click.option("--namespace", help="The secret's namespace (account)."),
            click.option("--denied", is_flag=True, help="Only AccessDenied records."),
            click.option("--since", type=WHEN, help="24h, 7d, or an ISO time."),
            click.option("--until", type=WHEN, help="24h, 7d, or an ISO time (exclusive)."),
        ]
    ):
        fn = option(fn)
    return fn


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "ReadOnly": str(record.get("readOnly")).lower(),
        "EventTime": record["eventTime"],
        "EventSource": record["eventSource"],
        "Username": record.get("userIdentity", {}).get("userName"),
        "Resources": [
            {"ResourceType": r["type"], "ResourceName": r["ARN"]}
            for r in record.get("resources") or []
        ],
        "CloudTrailEvent": json.dumps(record, sort_keys=True),
    }


@audit.command()
@_filters
@click.option("--max-items", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--starting-token", type=int, help="NextToken of a previous page.")
@click.option("--output", type=click.Choice(["json", "table"]), default="json")
def lookup(
    secret_id: str | None,
    event_name: str | None,
    user: str | None,
    namespace: str | None,
    denied: bool,
    since: datetime | None,
    until: datetime | None,
    max_items: int,
    starting_token: int | None,
    output: str,
) -> None:
    """Find audit records, newest first (like `aws cloudtrail lookup-events`)."""
    store, service, _ = _open()
    try:
        found = service.lookup(
            _query(
                secret_id,
                event_name,
                user,
                namespace,
                denied,
                since,
                until,
                max_items + 1,
                starting_token,
            )
        )
    finally:
        store.close()
    page, more = found[:max_items], len(found) > max_items
    records = [json.loads(text) for _, text in page]
    if output == "json":
        doc: dict[str, Any] = {"Events": [_summary(r) for r in records]}
        if more:
            doc["NextToken"] = str(page[-1][0])
        click.echo(json.dumps(doc, indent=2))
        return
    rows = [("TIME", "EVENT", "USER", "NAMESPACE", "SECRET", "RESULT")]
    for r in records:
        secret = (r.get("additionalEventData") or {}).get("secretName") or "-"
        rows.append(
            (
                r["eventTime"],
                r["eventName"],
                r["userIdentity"].get("userName", ""),
                r.get("recipientAccountId") or "-",
                secret,
                r.get("errorCode") or "OK",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@audit.command()
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option("--no-signatures", is_flag=True, help="Check the chain only (no keyring).")
@click.option("--no-anchor", is_flag=True, help="Do not compare with the AuditAnchor.")
@click.option(
    "--witness",
    "witnesses",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Also compare with this anchor file (KUSTOS_AUDIT_ANCHOR_FILE).",
)
def verify(output: str, no_signatures: bool, no_anchor: bool, witnesses: tuple[str, ...]) -> None:
    """Check the hash chain, the signed digests and the anchor outside the store; exit 1
    naming any altered, deleted or reordered record."""
    store, service, settings = _open()
    keyring = None
    notes: list[str] = []
    if no_signatures:
        notes.append("digest signatures NOT checked (--no-signatures)")
    else:
        try:
            keyring = _keyring(settings)
        except (KustosError, OSError) as exc:
            notes.append(f"digest signatures NOT checked: {getattr(exc, 'message', exc)}")
    anchors: list[tuple[str, Anchor | None]] = []
    if no_anchor:
        notes.append("the AuditAnchor NOT checked (--no-anchor): truncation can go unseen")
    else:
        try:
            anchors.append(_kube_anchor(settings))
        except (KustosError, OSError) as exc:
            notes.append(f"the AuditAnchor NOT checked: {getattr(exc, 'message', exc)}")
    for path in witnesses:
        try:
            anchors.append((f"witness {path}", read_file_witness(path)))
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"cannot read witness {path}: {exc}") from None
    try:
        report = service.verify(keyring, anchors)
    finally:
        store.close()
    if output == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif report.ok:
        click.echo(
            f"OK: {report.records} records (seq {report.first_seq}..{report.last_seq}), "
            f"{report.digests} digests, signed through seq {report.signed_through}, "
            f"anchored through seq {report.anchored_through}"
        )
    else:
        click.echo(f"FAILED: {len(report.findings)} finding(s)")
        for finding in report.findings:
            click.echo(f"  {finding}")
    for note in notes:
        click.echo(note, err=True)
    sys.exit(0 if report.ok else 1)


@audit.command()
@_filters
def export(
    secret_id: str | None,
    event_name: str | None,
    user: str | None,
    namespace: str | None,
    denied: bool,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Write matching records as JSON lines, oldest first (for a SIEM)."""
    store, service, _ = _open()
    try:
        query = _query(secret_id, event_name, user, namespace, denied, since, until)
        for line in service.export(query):
            sys.stdout.write(f"{line}\n")
    finally:
        store.close()


@audit.command()
@click.option("--older-than", type=WHEN, required=True, help="e.g. 400d, or an ISO time.")
def prune(older_than: datetime) -> None:
    """Delete older records, keeping a signed checkpoint so the rest still verifies."""
    store, _, settings = _open()
    keyring = _keyring(settings)
    service = AuditService(store.audit, settings.cluster_name, lambda: keyring)
    try:
        click.echo(json.dumps({"Pruned": service.prune(older_than)}))
    finally:
        store.close()


@click.command()
@click.option("--by", type=click.Choice(["namespace"]), default="namespace", show_default=True)
@click.option("--since", type=WHEN, default="30d", show_default=True)
@click.option("--until", type=WHEN)
@click.option("--output", type=click.Choice(["json", "table"]), default="table")
def usage(by: str, since: datetime, until: datetime | None, output: str) -> None:
    """Secrets, secret-hours and API calls per namespace in a period (for chargeback)."""
    store, service, _ = _open()
    try:
        rows = usage_by_namespace(
            store.list_secrets(), service.store, since, until or datetime.now(UTC)
        )
    finally:
        store.close()
    docs = [r.as_dict() for r in rows]
    if output == "json":
        click.echo(json.dumps({"Usage": docs, "Since": time_text(since)}, indent=2))
        return
    head = ["Namespace", "Secrets", "SecretHours", "ApiCalls", "DeniedApiCalls"]
    table = [head] + [[str(d[h]) for h in head] for d in docs]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
