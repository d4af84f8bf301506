"""Kopf handlers for ManagedSecret: start the runtime, feed it the watch, stop it.

Thin by design. ManagedSecrets are watched with one `on.event` handler (no finalizers, no
progress or last-handled-configuration annotations: no writes of Kopf's own on the
objects); each event goes to `OperatorRuntime.observe`, which turns it into a trigger for
the per-object controller. The settings arrive in Kopf's memo (read once by the CLI), with
the rotation step hook the crash-safety tests inject (none in production).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kustos import metrics
from kustos.config import Settings
from kustos.errors import KustosError
from kustos.operator.runtime import OperatorRuntime
from kustos.services.factory import Services

GROUP, VERSION, PLURAL = "kustos.io", "v1alpha1", "managedsecrets"
RESOURCE = (GROUP, VERSION, PLURAL)

log = logging.getLogger("kustos.operator")


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
    config: Settings = memo.get("settings") or Settings.from_env()
    services = Services.build(config, step_hook=memo.get("step_hook"))
    try:
        services.keys.keyring()  # fail fast on a missing or inconsistent keyring
    except KustosError as exc:
        services.close()
        log.error("cannot start: %s", exc.message)
        raise kopf.PermanentError(exc.message) from None
    memo["services"] = services
    services.audit.start_maintenance()  # signed digests, retention
    metrics.register_store_collector(services.store.list_secrets)
    metrics.start_metrics_server(config.metrics_port)
    runtime = OperatorRuntime(services, config)
    memo["runtime"] = runtime
    runtime.start()


@kopf.on.cleanup()
def close(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("runtime") is not None:
        memo["runtime"].stop()
    services = memo.get("services")
    if services is not None:
        services.close()


@kopf.on.event(*RESOURCE)
def observe(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: OperatorRuntime | None = memo.get("runtime")
    if runtime is not None:
        runtime.observe(type, body)
