"""`AccessKeyStore`: the `access_keys` table (migration 0003) on the SQL store's engine.

Holds only sealed secret access keys (`kustos.crypto.seal`); the caller seals and opens.
Errors name access key ids, never key material.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from kustos.errors import ResourceExistsError
from kustos.models.access_keys import AccessKeyRecord
from kustos.models.records import SealedPayload
from kustos.store.schema import UTCDateTime, metadata
from kustos.store.tx import Tables

__all__ = ["AccessKeyStore", "access_keys"]

access_keys = sa.Table(
    "access_keys",
    metadata,
    sa.Column("access_key_id", sa.Text, primary_key=True),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.Column("service_account", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Index("ix_access_keys_namespace_service_account", "namespace", "service_account"),
)


def _from_row(row: RowMapping) -> AccessKeyRecord:
    sealed = SealedPayload(
        key_id=row["key_id"],
        wrapped_key=bytes(row["wrapped_key"]),
        nonce=bytes(row["nonce"]),
        ciphertext=bytes(row["ciphertext"]),
    )
    return AccessKeyRecord(
        access_key_id=row["access_key_id"],
        namespace=row["namespace"],
        service_account=row["service_account"],
        created_at=row["created_at"],
        sealed=sealed,
        status=row["status"],
    )


class AccessKeyStore(Tables):
    def create(self, record: AccessKeyRecord) -> None:
        row = {
            "access_key_id": record.access_key_id,
            "namespace": record.namespace,
            "service_account": record.service_account,
            "status": record.status,
            "created_at": record.created_at,
            "key_id": record.sealed.key_id,
            "wrapped_key": record.sealed.wrapped_key,
            "nonce": record.sealed.nonce,
            "ciphertext": record.sealed.ciphertext,
        }
        try:
            with self._tx("create an access key", write=True) as conn:
                conn.execute(sa.insert(access_keys).values(**row))
        except IntegrityError:
            raise ResourceExistsError(f"access key {record.access_key_id} exists") from None

    def get(self, access_key_id: str) -> AccessKeyRecord | None:
        query = sa.select(access_keys).where(access_keys.c.access_key_id == access_key_id)
        with self._tx("read an access key") as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _from_row(row)

    def list(self, namespace: str | None = None) -> list[AccessKeyRecord]:
        query = sa.select(access_keys).order_by(
            access_keys.c.namespace, access_keys.c.service_account, access_keys.c.created_at
        )
        if namespace is not None:
            query = query.where(access_keys.c.namespace == namespace)
        with self._tx("list access keys") as conn:
            rows = conn.execute(query).mappings().all()
        return [_from_row(row) for row in rows]

    def delete(self, access_key_id: str) -> bool:
        query = sa.delete(access_keys).where(access_keys.c.access_key_id == access_key_id)
        with self._tx("delete an access key", write=True) as conn:
            return bool(conn.execute(query).rowcount)

    def replace_sealed(self, access_key_id: str, sealed: SealedPayload) -> None:
        """Store a rewrapped secret (keyring rotation); the payload itself is unchanged."""
        query = (
            sa.update(access_keys)
            .where(access_keys.c.access_key_id == access_key_id)
            .values(key_id=sealed.key_id, wrapped_key=sealed.wrapped_key)
        )
        with self._tx("rewrap an access key", write=True) as conn:
            conn.execute(query)
