"""Kopf handlers for ManagedSecret: reconcile on create/update/resume; a resync loop after."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import kopf

from kustos.config import Settings
from kustos.errors import KustosError
from kustos.operator.resync import Resyncer
from kustos.services.factory import Services
from kustos.services.managed import ManagedObject, Reconciled

GROUP, VERSION, PLURAL = "kustos.io", "v1alpha1", "managedsecrets"
RESOURCE = (GROUP, VERSION, PLURAL)
SETTINGS = Settings.from_env()

log = logging.getLogger("kustos.operator")
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf's defaults that could carry values out: no log lines posted as Events (Kustos
    # posts its own, with fixed reasons); bookkeeping keeps only the spec, which holds none.
    settings.posting.enabled = False
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kustos.io", key="last-handled-configuration"
    )
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 16
    services = Services.build(SETTINGS)
    try:
        services.keys.keyring()  # fail fast on a missing or inconsistent keyring
    except KustosError as exc:
        services.close()
        log.error("cannot start: %s", exc.message)
        raise kopf.PermanentError(exc.message) from None
    memo["services"] = services
    resyncer = Resyncer(
        services.managed_objects.list_all,
        lambda obj: resync_object(services, obj),
        SETTINGS.resync_seconds,
    )
    memo["resyncer"] = resyncer
    resyncer.start()


@kopf.on.cleanup()
def close(memo: kopf.Memo, **_: Any) -> None:
    resyncer = memo.get("resyncer")
    if resyncer is not None:
        resyncer.stop()
    services = memo.get("services")
    if services is not None:
        services.close()


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
def reconcile(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    _reconcile(body, status, patch, memo)


def _reconcile(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo) -> None:
    result = reconcile_object(memo["services"], body)
    for key, value in status_changes(dict(status or {}), result.status).items():
        patch.status[key] = value
    if result.error is not None:
        raise to_kopf(result.error)


def reconcile_object(services: Services, body: Mapping[str, Any]) -> Reconciled:
    meta = body["metadata"]
    obj = ManagedObject(
        namespace=meta["namespace"], name=meta["name"], uid=meta["uid"],
        generation=int(meta.get("generation", 0)), spec=dict(body.get("spec") or {}),
        status=dict(body.get("status") or {}),
    )
    with _locks[obj.uid]:
        return services.managed.reconcile(obj)


def resync_object(services: Services, body: dict[str, Any]) -> None:
    """The periodic check of one object (outside Kopf): patch the status only if changed."""
    result = reconcile_object(services, body)
    changes = status_changes(dict(body.get("status") or {}), result.status)
    if changes:
        meta = body["metadata"]
        services.managed_objects.patch_status(meta["namespace"], meta["name"], changes)


def status_changes(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in desired.items() if current.get(key) != value}


def to_kopf(error: KustosError) -> Exception:
    if error.retryable:
        return kopf.TemporaryError(error.message, delay=error.retry_delay)
    return kopf.PermanentError(error.message)
