"""Kopf handlers for ManagedSecret: reconcile on create/update/resume; a resync loop after."""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import kopf

from kustos import metrics
from kustos.config import Settings
from kustos.errors import KustosError
from kustos.operator.deletion import deletion_pass
from kustos.operator.resync import Resyncer
from kustos.operator.rotation_loop import RotationLoop
from kustos.services.factory import Services
from kustos.services.managed import ManagedObject, Reconciled
from kustos.services.rotation import ANNOTATION_ROTATE_NOW

GROUP, VERSION, PLURAL = "kustos.io", "v1alpha1", "managedsecrets"
RESOURCE = (GROUP, VERSION, PLURAL)
SETTINGS = Settings.from_env()

log = logging.getLogger("kustos.operator")
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
#: The newest metadata.generation reconciled per object uid.
_generations: dict[str, int] = {}


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
    services.audit.start_maintenance()  # signed digests, retention
    metrics.register_store_collector(services.store.list_secrets)
    metrics.start_metrics_server(int(os.environ.get("KUSTOS_METRICS_PORT", "9090")))
    resyncer = Resyncer(
        services.managed_objects.list_all,
        lambda obj: resync_object(services, obj),
        SETTINGS.resync_seconds,
    )
    resyncer.add_hook("deletion", lambda: deletion_pass(services))
    memo["resyncer"] = resyncer
    resyncer.start()
    rotation = RotationLoop(services.managed_objects.list_all,
                            lambda obj: rotate_object(services, obj),
                            SETTINGS.rotation_tick_seconds, SETTINGS.rotation_max_concurrent)
    memo["rotation_loop"] = rotation
    rotation.start()  # its first pass resumes rotations left in progress


@kopf.on.cleanup()
def close(memo: kopf.Memo, **_: Any) -> None:
    for loop in ("rotation_loop", "resyncer"):
        if memo.get(loop) is not None:
            memo[loop].stop()
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
    if result is None:  # a newer generation was reconciled already; Kopf will see it too
        return
    for key, value in status_changes(dict(status or {}), result.status).items():
        patch.status[key] = value
    if result.error is not None:
        raise to_kopf(result.error)


def reconcile_object(services: Services, body: Mapping[str, Any]) -> Reconciled | None:
    """Reconcile one object; None when `body` is a stale snapshot (the resync and rotation
    loops work from a list taken earlier: a spec newer than theirs was handled meanwhile,
    and acting on the older one would undo it)."""
    meta = body["metadata"]
    obj = ManagedObject(
        namespace=meta["namespace"], name=meta["name"], uid=meta["uid"],
        generation=int(meta.get("generation", 0)), spec=dict(body.get("spec") or {}),
        status=dict(body.get("status") or {}),
    )
    with _locks[obj.uid]:
        if obj.generation < _generations.get(obj.uid, 0):
            return None
        _generations[obj.uid] = obj.generation
        return services.managed.reconcile(obj)


def resync_object(services: Services, body: dict[str, Any]) -> None:
    """The periodic check of one object (outside Kopf): patch the status only if changed."""
    result = reconcile_object(services, body)
    if result is None:
        return
    changes = status_changes(dict(body.get("status") or {}), result.status)
    if changes:
        meta = body["metadata"]
        services.managed_objects.patch_status(meta["namespace"], meta["name"], changes)


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", ANNOTATION_ROTATE_NOW))
def rotate_now(body: kopf.Body, new: Any, memo: kopf.Memo, **_: Any) -> None:
    """`kubectl annotate ms NAME kustos.io/rotate-now=<anything new>`: rotate at once."""
    if new and memo.get("rotation_loop") is not None:
        memo["rotation_loop"].submit(dict(body))


def rotate_object(services: Services, body: dict[str, Any]) -> None:
    """One rotation tick of one object (outside Kopf); re-projects when AWSCURRENT moved."""
    meta = body["metadata"]
    obj = ManagedObject(
        namespace=meta["namespace"], name=meta["name"], uid=meta["uid"],
        generation=int(meta.get("generation", 0)), spec=dict(body.get("spec") or {}),
        status=dict(body.get("status") or {}),
    )
    annotations = meta.get("annotations") or {}
    result = services.rotation.tick(obj, rotate_now=annotations.get(ANNOTATION_ROTATE_NOW))
    desired = {**obj.status, **result.status}
    if result.rotated:  # project the new AWSCURRENT now, not at the next resync
        projected = reconcile_object(services, {**body, "status": desired})
        if projected is not None:
            desired.update(projected.status)
    changes = status_changes(obj.status, desired)
    if changes:
        services.managed_objects.patch_status(obj.namespace, obj.name, changes)


def status_changes(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in desired.items() if current.get(key) != value}


def to_kopf(error: KustosError) -> Exception:
    if error.retryable:
        return kopf.TemporaryError(error.message, delay=error.retry_delay)
    return kopf.PermanentError(error.message)
