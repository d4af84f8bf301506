"""`SqlStore`: the `Store` on SQLAlchemy Core, for SQLite (embedded) and PostgreSQL.

Thread-safe: every call takes its own pooled connection and transaction. Writers lock the
secret they change first (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on
PostgreSQL), so label moves are read and written atomically. The schema is migrated to the
newest revision when the store opens. Errors name ARNs, ids and labels, never row contents.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from kustos.errors import (
    InvalidParameterError,
    InvalidRequestError,
    ResourceExistsError,
    ResourceNotFoundError,
    StoreError,
)
from kustos.models.records import (
    AWSCURRENT,
    SPEC_FIELDS,
    SealedPayload,
    SecretRecord,
    VersionRecord,
)
from kustos.store import migrate
from kustos.store.access_keys import AccessKeyStore
from kustos.store.audit import AuditStore
from kustos.store.key_usage import KeyUsage
from kustos.store.labels import attach, holder_of, lock_secret, version_exists
from kustos.store.read_cache import ReadCache
from kustos.store.revocations import RevocationStore
from kustos.store.rotations import RotationStore
from kustos.store.rows import (
    secret_from_row,
    secret_to_row,
    secret_to_row_fields,
    version_from_row,
)
from kustos.store.schema import changes, fence, secrets, versions
from kustos.store.schema import stages as stage_rows
from kustos.store.tx import Tables

__all__ = ["SqlStore"]

# The hot read paths (every GetSecretValue) as statements built once with bind parameters:
# building SQL expressions per call costs more than SQLite's own work.
_P = sa.bindparam
_SECRET_BY_ARN = sa.select(secrets).where(secrets.c.arn == _P("arn"))
_SECRET_BY_NAME = sa.select(secrets).where(
    secrets.c.namespace == _P("namespace"), secrets.c.name == _P("name")
)
_SECRET_BY_OBJECT = (
    sa.select(secrets)
    .where(secrets.c.namespace == _P("namespace"), secrets.c.object_name == _P("object_name"))
    .limit(1)
)
_HOLDER = sa.select(stage_rows.c.version_id).where(
    stage_rows.c.arn == _P("arn"), stage_rows.c.stage == _P("stage")
)
_VERSION = sa.select(versions).where(
    versions.c.arn == _P("arn"), versions.c.version_id == _P("vid")
)
_LABELS = sa.select(stage_rows.c.stage).where(
    stage_rows.c.arn == _P("arn"), stage_rows.c.version_id == _P("vid")
)

log = logging.getLogger(__name__)
_BATCH = 500


def _note(conn: sa.Connection, arn: str, kind: str) -> None:
    """Append to the change feed inside the caller's transaction (atomic with the change)."""
    conn.execute(sa.insert(changes).values(arn=arn, kind=kind, at=datetime.now(UTC)))


class SqlStore(Tables):
    """A `Store` on the database at `url` (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, url: str, *, read_cache: bool = True) -> None:
        super().__init__(migrate.make_engine(url))
        self._dialect = self._engine.dialect.name
        database = self._engine.url.database
        #: Reads served from memory while the read epoch stands (SQLite files only).
        self.read_cache: ReadCache | None = (
            ReadCache(Path(database))
            if read_cache and self._dialect == "sqlite" and database not in (None, "", ":memory:")
            else None
        )
        try:
            migrate.upgrade(self._engine)
        except migrate.MigrationError as exc:
            self._engine.dispose()
            raise StoreError(f"cannot migrate the store schema: {exc}") from None
        except DBAPIError as exc:
            self._engine.dispose()
            raise StoreError(f"cannot open the store: {exc.orig}") from None
        # The parts, on this engine (making them runs no SQL and opens nothing).
        self._rotations = RotationStore(self._engine)
        self._audit = AuditStore(self._engine)
        self._access_keys = AccessKeyStore(self._engine)
        self._revocations = RevocationStore(self._engine)
        self._key_usage = KeyUsage(self._engine)

    def __repr__(self) -> str:
        return f"SqlStore({self._engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> sa.engine.Engine:
        """The engine, for the store's own modules and tests (not part of `Store`)."""
        return self._engine

    @property
    def rotations(self) -> RotationStore:
        return self._rotations

    @property
    def audit(self) -> AuditStore:
        return self._audit

    @property
    def access_keys(self) -> AccessKeyStore:
        return self._access_keys

    @property
    def revocations(self) -> RevocationStore:
        return self._revocations

    @property
    def key_usage(self) -> KeyUsage:
        return self._key_usage

    def schema_version(self) -> str | None:
        return migrate.schema_version(self._engine)

    def close(self) -> None:
        self._audit.close()  # its raw append connection and lock file; idempotent
        if self.read_cache is not None:
            self.read_cache.close()
        self._engine.dispose()

    # -- plumbing -----------------------------------------------------------------------
    # -- secrets ------------------------------------------------------------------------
    def create_secret(self, record: SecretRecord) -> None:
        try:
            with self._tx("create a secret", write=True) as conn:
                conn.execute(sa.insert(secrets).values(**secret_to_row(record)))
        except IntegrityError:
            raise ResourceExistsError(
                f"secret {record.name!r} in namespace {record.namespace!r} "
                f"or ARN {record.arn!r} exists already"
            ) from None

    def update_secret(self, record: SecretRecord) -> None:
        """Every column except the spec-owned ones (`SPEC_FIELDS`, `spec_generation`): those
        change only through `apply_spec`, so a writer holding a stale record cannot undo a
        newer spec."""
        row = secret_to_row(record)
        for column in (*SPEC_FIELDS, "spec_generation", "spec_uid"):
            del row[column]
        try:
            with self._tx("update a secret", write=True) as conn:
                query = sa.update(secrets).where(secrets.c.arn == record.arn).values(**row)
                if conn.execute(query).rowcount == 0:
                    raise ResourceNotFoundError(f"secret {record.arn!r} not found")
        except IntegrityError:
            raise ResourceExistsError(
                f"secret {record.name!r} in namespace {record.namespace!r} exists already"
            ) from None

    def apply_spec(
        self,
        arn: str,
        generation: int,
        fields: dict[str, Any],
        updated_at: datetime,
        uid: str | None = None,
    ) -> bool:
        """Compare-and-set in one statement: write `fields` (spec-owned columns) and
        `generation` unless the stored generation of the same object (`uid`) is newer.
        False when it was (or the secret is gone)."""
        unknown = set(fields) - set(SPEC_FIELDS)
        if unknown:
            raise ValueError(f"not spec-owned: {sorted(unknown)}")
        row = secret_to_row_fields(fields)
        newer: sa.ColumnElement[bool] = secrets.c.spec_generation <= generation
        if uid is not None:  # another incarnation of the object: its generations start over
            newer = sa.or_(newer, secrets.c.spec_uid.is_(None), secrets.c.spec_uid != uid)
            row["spec_uid"] = uid
        query = (
            sa.update(secrets)
            .where(secrets.c.arn == arn, newer)
            .values(**row, spec_generation=generation, updated_at=updated_at)
        )
        with self._tx("update a secret", write=True) as conn:
            return bool(conn.execute(query).rowcount)

    def merge_extra(self, arn: str, items: dict[str, Any]) -> None:
        """Set keys of the record's `extra` (None removes one), read and written under the
        secret's lock: other keys, and every other column, are left as they are."""
        with self._tx("update a secret", write=True) as conn:
            lock_secret(conn, arn)
            _merge_extra(conn, arn, items)

    def _one_secret(
        self, query: sa.Select[Any], params: dict[str, str], kind: str = "secret"
    ) -> SecretRecord | None:
        cache = self.read_cache
        if cache is not None:
            key = (kind, *params.values())
            epoch, hit, found = cache.get(key)
            if found:
                return hit  # type: ignore[no-any-return]
        with self._tx("read a secret") as conn:
            row = conn.execute(query, params).mappings().first()
        record = None if row is None else secret_from_row(row)
        if cache is not None:
            cache.put(key, epoch, record)
        return record

    def pinned_reads(self) -> AbstractContextManager[None]:
        cache = self.read_cache
        return cache.pinned() if cache is not None else nullcontext()

    def get_secret(self, namespace: str, name: str) -> SecretRecord | None:
        return self._one_secret(_SECRET_BY_NAME, {"namespace": namespace, "name": name})

    def get_secret_by_arn(self, arn: str) -> SecretRecord | None:
        return self._one_secret(_SECRET_BY_ARN, {"arn": arn})

    def get_secret_by_object(self, namespace: str, object_name: str) -> SecretRecord | None:
        # The common case first: a secret named as its object (the indexed name lookup).
        named = self.get_secret(namespace, object_name)
        if named is not None and named.object_name == object_name:
            return named
        return self._one_secret(
            _SECRET_BY_OBJECT,
            {"namespace": namespace, "object_name": object_name},
            kind="secret-by-object",
        )

    def list_secrets(self, namespace: str | None = None) -> list[SecretRecord]:
        """Healthy secrets ordered by (namespace, name); corrupted rows are logged, skipped."""
        query = sa.select(secrets).order_by(secrets.c.namespace, secrets.c.name)
        if namespace is not None:
            query = query.where(secrets.c.namespace == namespace)
        with self._tx("list secrets") as conn:
            rows = conn.execute(query).mappings().all()
        return _healthy(rows)

    def secrets_deleted_by(self, moment: datetime) -> list[SecretRecord]:
        query = sa.select(secrets).where(
            secrets.c.deletion_date.is_not(None), secrets.c.deletion_date <= moment
        )
        with self._tx("list secrets due for purge") as conn:
            rows = conn.execute(query).mappings().all()
        return _healthy(rows)

    def purge_secret(self, arn: str) -> None:
        with self._tx("purge a secret", write=True) as conn:
            conn.execute(sa.delete(stage_rows).where(stage_rows.c.arn == arn))
            conn.execute(sa.delete(versions).where(versions.c.arn == arn))
            conn.execute(sa.delete(secrets).where(secrets.c.arn == arn))

    # -- change feed --------------------------------------------------------------------
    def note_change(self, arn: str, kind: str) -> None:
        with self._tx("note a change", write=True) as conn:
            _note(conn, arn, kind)

    def changes_since(self, seq: int, limit: int = 500) -> list[tuple[int, str, str]]:
        query = (
            sa.select(changes.c.seq, changes.c.arn, changes.c.kind)
            .where(changes.c.seq > seq)
            .order_by(changes.c.seq)
            .limit(limit)
        )
        with self._tx("read the change feed") as conn:
            return [(int(r.seq), str(r.arn), str(r.kind)) for r in conn.execute(query)]

    def last_change(self) -> int:
        with self._tx("read the change feed") as conn:
            value = conn.execute(sa.select(sa.func.max(changes.c.seq))).scalar_one_or_none()
        return int(value or 0)

    def leader_term(self) -> int:
        with self._tx("read the fencing term") as conn:
            term = conn.execute(
                sa.select(fence.c.term).where(fence.c.name == "operator")
            ).scalar_one_or_none()
        return -1 if term is None else int(term)

    def prune_changes(self, before: datetime) -> int:
        with self._tx("prune the change feed", write=True) as conn:
            return int(conn.execute(sa.delete(changes).where(changes.c.at < before)).rowcount)

    # -- versions -----------------------------------------------------------------------
    def add_version(
        self,
        arn: str,
        version_id: str,
        sealed: SealedPayload,
        stages: Sequence[str],
        created_at: datetime,
        fingerprint: str = "",
        extra: dict[str, Any] | None = None,
    ) -> VersionRecord:
        labels = tuple(dict.fromkeys(stages))
        try:
            with self._tx("add a version", write=True) as conn:
                lock_secret(conn, arn)
                if version_exists(conn, arn, version_id):
                    raise ResourceExistsError(f"version {version_id!r} of {arn!r} exists already")
                last = sa.select(sa.func.max(versions.c.seq)).where(versions.c.arn == arn)
                seq = (conn.execute(last).scalar_one_or_none() or 0) + 1
                conn.execute(
                    sa.insert(versions).values(
                        arn=arn,
                        version_id=version_id,
                        seq=seq,
                        created_at=created_at,
                        fingerprint=fingerprint,
                        key_id=sealed.key_id,
                        wrapped_key=sealed.wrapped_key,
                        nonce=sealed.nonce,
                        ciphertext=sealed.ciphertext,
                        is_binary=sealed.binary,
                    )
                )
                for stage in labels:
                    attach(conn, arn, stage, version_id)
                if extra:
                    _merge_extra(conn, arn, extra)
                _note(conn, arn, "version")
        except IntegrityError:
            raise ResourceExistsError(f"version {version_id!r} of {arn!r} exists already") from None
        labels = tuple(sorted(labels))
        return VersionRecord(arn, version_id, created_at, labels, sealed, fingerprint)

    def get_version(
        self, arn: str, *, version_id: str | None = None, stage: str | None = None
    ) -> VersionRecord | None:
        if version_id is None and stage is None:
            stage = AWSCURRENT
        cache = self.read_cache
        if cache is None:
            return self._load_version(arn, version_id, stage)
        key = ("version", arn, version_id, stage)
        epoch, hit, found = cache.get(key)
        if found:
            return hit  # type: ignore[no-any-return]
        version = self._load_version(arn, version_id, stage)
        cache.put(key, epoch, version)
        return version

    def _load_version(
        self, arn: str, version_id: str | None, stage: str | None
    ) -> VersionRecord | None:
        with self._tx("read a version") as conn:
            if stage is not None:
                holder = conn.execute(_HOLDER, {"arn": arn, "stage": stage}).scalar_one_or_none()
                if holder is None or (version_id is not None and holder != version_id):
                    return None
                version_id = holder
            params = {"arn": arn, "vid": version_id}
            row = conn.execute(_VERSION, params).mappings().first()
            if row is None:
                if stage is not None:
                    raise StoreError(f"secret {arn!r}: label {stage!r} is on a missing version")
                return None
            found = tuple(conn.execute(_LABELS, params).scalars())
        return version_from_row(row, found)

    def list_versions(self, arn: str) -> list[VersionRecord]:
        query = (
            sa.select(versions)
            .where(versions.c.arn == arn)
            .order_by(versions.c.created_at.desc(), versions.c.seq.desc())
        )
        with self._tx("list versions") as conn:
            rows = conn.execute(query).mappings().all()
            labels = conn.execute(sa.select(stage_rows).where(stage_rows.c.arn == arn)).all()
        by_version: dict[str, list[str]] = {}
        for label in labels:
            by_version.setdefault(label.version_id, []).append(label.stage)
        if set(by_version) - {row["version_id"] for row in rows}:
            raise StoreError(f"secret {arn!r}: a label is on a missing version")
        return [version_from_row(r, tuple(by_version.get(r["version_id"], ()))) for r in rows]

    def move_stage(
        self, arn: str, stage: str, *, to_version: str | None, from_version: str | None
    ) -> None:
        """As AWS UpdateSecretVersionStage: a label held elsewhere moves only when
        `from_version` names its holder; AWSCURRENT can be moved, never removed."""
        with self._tx("move a label", write=True) as conn:
            lock_secret(conn, arn)
            _note(conn, arn, "label")
            holder = holder_of(conn, arn, stage)
            if from_version is not None and holder != from_version:
                raise InvalidParameterError(
                    f"label {stage!r} is not on version {from_version!r} of {arn!r}"
                )
            if to_version is None:
                if from_version is None:
                    raise InvalidParameterError(f"removing label {stage!r} needs from_version")
                if stage == AWSCURRENT:
                    raise InvalidParameterError("AWSCURRENT can be moved, not removed")
                conn.execute(
                    sa.delete(stage_rows).where(
                        stage_rows.c.arn == arn, stage_rows.c.stage == stage
                    )
                )
                return
            if not version_exists(conn, arn, to_version):
                raise ResourceNotFoundError(f"version {to_version!r} of {arn!r} not found")
            if holder not in (None, to_version) and from_version is None:
                raise InvalidParameterError(
                    f"label {stage!r} is on version {holder!r} of {arn!r}; "
                    "name it as from_version to move the label"
                )
            attach(conn, arn, stage, to_version)

    def delete_versions(self, arn: str, version_ids: Sequence[str]) -> None:
        """Unknown ids are ignored; a labelled version refuses the whole call."""
        ids = list(version_ids)
        if not ids:
            return
        with self._tx("delete versions", write=True) as conn:
            query = sa.select(stage_rows).where(
                stage_rows.c.arn == arn, stage_rows.c.version_id.in_(ids)
            )
            labelled = conn.execute(query).first()
            if labelled is not None:
                raise InvalidRequestError(
                    f"version {labelled.version_id!r} of {arn!r} carries "
                    f"label {labelled.stage!r} and cannot be deleted"
                )
            conn.execute(
                sa.delete(versions).where(versions.c.arn == arn, versions.c.version_id.in_(ids))
            )

    # -- keys ---------------------------------------------------------------------------
    def iter_sealed(self) -> Iterator[tuple[str, str, SealedPayload]]:
        """In (arn, version_id) order, in batches; no connection is held between batches."""
        last: tuple[str, str] | None = None
        while True:
            query = sa.select(versions).order_by(versions.c.arn, versions.c.version_id)
            if last is not None:
                query = query.where(
                    sa.or_(
                        versions.c.arn > last[0],
                        sa.and_(versions.c.arn == last[0], versions.c.version_id > last[1]),
                    )
                )
            with self._tx("list versions") as conn:
                rows = conn.execute(query.limit(_BATCH)).mappings().all()
            for row in rows:
                yield row["arn"], row["version_id"], version_from_row(row, ()).sealed
            if len(rows) < _BATCH:
                return
            last = (rows[-1]["arn"], rows[-1]["version_id"])

    def replace_wrapped_key(
        self, arn: str, version_id: str, old_key_id: str, new_key_id: str, wrapped_key: bytes
    ) -> bool:
        with self._tx("replace a wrapped key", write=True) as conn:
            query = (
                sa.update(versions)
                .where(
                    versions.c.arn == arn,
                    versions.c.version_id == version_id,
                    versions.c.key_id == old_key_id,
                )
                .values(key_id=new_key_id, wrapped_key=wrapped_key)
            )
            return bool(conn.execute(query).rowcount == 1)


def _merge_extra(conn: sa.Connection, arn: str, items: dict[str, Any]) -> None:
    """`merge_extra` inside a transaction that holds the secret's lock."""
    text = conn.execute(sa.select(secrets.c.extra).where(secrets.c.arn == arn)).scalar_one_or_none()
    if text is None:
        raise ResourceNotFoundError(f"secret {arn!r} not found")
    extra = json.loads(text)
    for key, value in items.items():
        if value is None:
            extra.pop(key, None)
        else:
            extra[key] = value
    conn.execute(
        sa.update(secrets)
        .where(secrets.c.arn == arn)
        .values(extra=json.dumps(extra, separators=(",", ":"), sort_keys=True))
    )


def _healthy(rows: Sequence[Mapping[Any, Any]]) -> list[SecretRecord]:
    """The rows' records; a corrupted row is logged and skipped."""
    records = []
    for row in rows:
        try:
            records.append(secret_from_row(row))
        except StoreError as exc:
            log.error("skipping a corrupted secret: %s", exc.message)
    return records
