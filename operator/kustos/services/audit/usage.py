"""Usage per namespace for chargeback: secrets, secret-hours and API calls in a period.

In the spirit of AWS's pricing (per secret-month, per 10,000 API calls). Secret-hours come
from each secret's lifetime overlapped with the period: creation from the store (or the
audit log for secrets since purged), end at the first deletion record (DeleteSecret or
DeletionScheduled; a secret pending deletion is not billed, as on AWS) or the period's end.
API calls are the audit log's AwsApiCall records in the period, by the secret's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kustos.models.records import SecretRecord
from kustos.services.audit.event import time_text
from kustos.store.audit import AuditQuery, AuditStore

__all__ = ["CREATED_EVENTS", "DELETED_EVENTS", "NamespaceUsage", "usage_by_namespace"]

CREATED_EVENTS = ("CreateSecret", "Created")
DELETED_EVENTS = ("DeleteSecret", "DeletionScheduled", "Deleted")


@dataclass
class NamespaceUsage:
    namespace: str
    secrets: int = 0  # existing (not pending deletion) at the period's end
    secret_hours: float = 0.0
    api_calls: int = 0
    denied_calls: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "Namespace": self.namespace,
            "Secrets": self.secrets,
            "SecretHours": round(self.secret_hours, 6),
            "SecretMonths": round(self.secret_hours / 730.0, 8),
            "ApiCalls": self.api_calls,
            "DeniedApiCalls": self.denied_calls,
            "ApiCallUnits10k": round(self.api_calls / 10_000.0, 4),
        }


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _overlap(start: datetime, end: datetime, since: datetime, until: datetime) -> float:
    seconds = (min(end, until) - max(start, since)).total_seconds()
    return max(seconds, 0.0) / 3600.0


def usage_by_namespace(
    secrets: list[SecretRecord], audit: AuditStore, since: datetime, until: datetime
) -> list[NamespaceUsage]:
    out: dict[str, NamespaceUsage] = {}

    def get(ns: str) -> NamespaceUsage:
        return out.setdefault(ns, NamespaceUsage(ns))

    created = audit.secret_spans(CREATED_EVENTS)
    deleted = audit.secret_spans(DELETED_EVENTS)
    alive = {s.arn for s in secrets}
    for rec in secrets:
        end = _parse(deleted[rec.arn][1]) if rec.arn in deleted else until
        if rec.deletion_date is None and end >= until and rec.created_at <= until:
            get(rec.namespace).secrets += 1
        get(rec.namespace).secret_hours += _overlap(rec.created_at, end, since, until)
    for arn, (ns, first, _) in created.items():
        if arn not in alive and arn in deleted:  # purged since: the audit log remembers it
            get(ns).secret_hours += _overlap(_parse(first), _parse(deleted[arn][1]), since, until)
    window = AuditQuery(since=time_text(since), until=time_text(until))
    for ns, n in audit.count_by("namespace", window, event_type="AwsApiCall").items():
        get(ns).api_calls += n
    for ns, n in audit.count_by("namespace", window, event_type="AwsApiCall", denied=True).items():
        get(ns).denied_calls += n
    return [out[ns] for ns in sorted(out) if ns]
