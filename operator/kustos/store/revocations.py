"""`RevocationStore`: the `revocations` table (migration 0006) on the SQL store's engine.

One row per revoked principal ARN with the moment of revocation: credentials of that
principal issued at or before it are no longer accepted. Rows are only added or moved
forward, never removed by Kustos (so a revocation cannot be undone by a stale replica).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from kustos.models.access_keys import ACTIVE, INACTIVE
from kustos.store.access_keys import access_keys
from kustos.store.schema import UTCDateTime, metadata
from kustos.store.tx import Tables

__all__ = ["Revocation", "RevocationStore", "revocations"]

revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("principal_arn", sa.Text, primary_key=True),
    sa.Column("revoked_at", UTCDateTime, nullable=False),
    sa.Column("revoked_by", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class Revocation:
    principal_arn: str
    revoked_at: datetime
    revoked_by: str
    reason: str = ""


class RevocationStore(Tables):
    def revoke(self, revocation: Revocation, service_account: tuple[str, str] | None) -> int:
        """Record `revocation` (moving an earlier one forward) and, for a ServiceAccount
        (namespace, name), mark its access keys Inactive, in one transaction. Returns how
        many keys were deactivated."""
        row = {
            "principal_arn": revocation.principal_arn,
            "revoked_at": revocation.revoked_at,
            "revoked_by": revocation.revoked_by,
            "reason": revocation.reason,
        }
        try:
            return self._revoke(row, service_account)
        except IntegrityError:  # a concurrent first revocation of the same principal
            return self._revoke(row, service_account)

    def _revoke(self, row: dict[str, object], service_account: tuple[str, str] | None) -> int:
        with self._tx("revoke a principal", write=True) as conn:
            arn = revocations.c.principal_arn == row["principal_arn"]
            before = conn.execute(sa.select(revocations.c.revoked_at).where(arn)).scalar()
            if before is None:
                conn.execute(sa.insert(revocations).values(**row))
            elif before < row["revoked_at"]:
                conn.execute(sa.update(revocations).where(arn).values(**row))
            if service_account is None:
                return 0
            namespace, name = service_account
            query = (
                sa.update(access_keys)
                .where(
                    access_keys.c.namespace == namespace,
                    access_keys.c.service_account == name,
                    access_keys.c.status == ACTIVE,
                )
                .values(status=INACTIVE)
            )
            return int(conn.execute(query).rowcount)

    def all(self) -> dict[str, datetime]:
        """{principal ARN: revoked at}: the whole table (one row per revoked principal)."""
        query = sa.select(revocations.c.principal_arn, revocations.c.revoked_at)
        with self._tx("read revocations") as conn:
            return {arn: at for arn, at in conn.execute(query).all()}

    def list(self) -> list[Revocation]:
        query = sa.select(revocations).order_by(revocations.c.revoked_at)
        with self._tx("list revocations") as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Revocation(r["principal_arn"], r["revoked_at"], r["revoked_by"], r["reason"])
            for r in rows
        ]
