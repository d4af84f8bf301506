"""Kopf side of the deletion lifecycle: `kubectl delete ms` schedules the secret's deletion,
and a periodic pass purges secrets whose recovery window has ended.

ManagedSecrets carry no finalizer (see `resync`), so the deletion is seen as the watch's
DELETED event (an `on.event` handler, which Kopf calls without a finalizer), with the
object's last spec. An object the API deleted (DeleteSecret) is recognised by the record's
deletion date being set already, and left alone. A deletion the operator missed (it was
down) is caught by `sweep_orphans` in the periodic pass.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kustos.errors import KustosError
from kustos.services.deletion import sweep_orphans
from kustos.services.factory import Services

__all__ = ["deletion_pass", "object_deleted"]

log = logging.getLogger("kustos.operator")
RESOURCE = ("kustos.io", "v1alpha1", "managedsecrets")


@kopf.on.event(*RESOURCE)
def object_deleted(type: str, event: Any, memo: kopf.Memo, **_: Any) -> None:
    if type != "DELETED" or "services" not in memo:
        return
    services: Services = memo["services"]
    obj: dict[str, Any] = event["object"]  # the raw object as the watch delivered it
    try:
        record = services.deletion.object_deleted(obj)
    except KustosError as exc:
        log.error("could not schedule the deletion of %s/%s: %s",
                  obj["metadata"]["namespace"], obj["metadata"]["name"], exc.message)
        return
    if record is not None:
        log.info("ManagedSecret %s/%s deleted: secret %s scheduled for deletion",
                 record.namespace, record.object_name, record.arn)


def deletion_pass(services: Services) -> None:
    """Purge secrets past their recovery window; schedule deletion of orphaned ones."""
    purged = services.deletion.purge_due()
    if purged:
        log.info("purged %d secret(s) whose recovery window ended", purged)
    objects = services.managed_objects.list_all()
    sweep_orphans(services.deletion, services.secrets, objects)
