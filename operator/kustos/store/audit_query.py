"""Lookup filters of the audit log, as SQL conditions that keep newest-first lookups on
one (column, seq) index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from kustos.store.audit_tables import audit_log

__all__ = ["AuditQuery", "where_clause"]


@dataclass(frozen=True)
class AuditQuery:
    secret_arn: str | None = None
    secret_name: str | None = None
    namespace: str | None = None
    event_name: str | None = None
    user: str | None = None  # principal ARN (arn:...) or user name
    denied: bool | None = None
    since: str | None = None  # event_time bounds, same text format as the column
    until: str | None = None
    before_seq: int | None = None  # paging: newest first, strictly older than this
    limit: int = 50


def where_clause(q: AuditQuery) -> list[Any]:
    """Filters. Newest-first is fastest driven by one (column, seq) index, so only the
    most selective filter present stays indexable; the others are written as
    expressions (``col || ''``) that SQLite's planner (no statistics) cannot pick."""
    c = audit_log.c
    user_col = c.principal_arn if (q.user or "").startswith("arn:") else c.user_name
    text_filters = [
        (c.secret_arn, q.secret_arn),
        (c.secret_name, q.secret_name),
        (c.namespace, q.namespace),
        (user_col, q.user),
        (c.event_name, q.event_name),
    ]
    where: list[Any] = []
    driving = next((col for col, value in text_filters if value is not None), None)
    if driving is c.secret_name:  # the (namespace, secret_name, seq) index
        driving = c.namespace if q.namespace is not None else driving
    for col, value in text_filters:
        if value is None:
            continue
        keep = col is driving or (driving is c.namespace and col is c.secret_name)
        where.append((col if keep else col.concat("")) == value)
    if q.denied is not None:
        where.append(
            c.denied == q.denied
            if driving is None
            else sa.cast(c.denied, sa.Integer) == int(q.denied)
        )
    when = c.event_time.concat("") if where else c.event_time
    if q.since is not None:
        where.append(when >= q.since)
    if q.until is not None:
        where.append(when < q.until)
    if q.before_seq is not None:
        where.append(c.seq < q.before_seq)
    return where
