"""Kopf handlers for ManagedSecret: reconcile on create/update/resume and on a timer."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

import kopf

from kustos.config import Settings
from kustos.errors import KustosError
from kustos.services.factory import Services
from kustos.services.managed import ManagedObject

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
    services.keys.keyring()  # fail fast on a missing or inconsistent keyring
    memo["services"] = services


@kopf.on.cleanup()
def close(memo: kopf.Memo, **_: Any) -> None:
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


@kopf.timer(*RESOURCE, interval=SETTINGS.resync_seconds, initial_delay=SETTINGS.resync_seconds)
def resync(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """Periodic check: restores an edited or deleted projected Secret, follows sources."""
    _reconcile(body, status, patch, memo)


def _reconcile(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo) -> None:
    services: Services = memo["services"]
    meta = body["metadata"]
    obj = ManagedObject(
        namespace=meta["namespace"], name=meta["name"], uid=meta["uid"],
        generation=int(meta.get("generation", 0)), spec=dict(body.get("spec") or {}),
        status=dict(status or {}),
    )
    with _locks[obj.uid]:
        result = services.managed.reconcile(obj)
    for key, value in result.status.items():
        if status.get(key) != value:
            patch.status[key] = value
    if result.error is not None:
        raise to_kopf(result.error)


def to_kopf(error: KustosError) -> Exception:
    if error.retryable:
        return kopf.TemporaryError(error.message, delay=error.retry_delay)
    return kopf.PermanentError(error.message)
