"""Kopf handlers for ManagedSecret: start the runtime, feed it the watch, stop it.

Thin by design. ManagedSecrets are watched with one `on.event` handler (no finalizers, no
progress or last-handled-configuration annotations: no writes of Kopf's own on the
objects); each event goes to `OperatorRuntime.observe`, which turns it into a trigger for
the per-object controller. The settings arrive in Kopf's memo (read once by the CLI), with
the rotation step hook the crash-safety tests inject (none in production).

Replicas: every replica watches and serves the API; only the holder of the leader Lease
(kustos.kube.lease) starts its runtime. A replica that loses the Lease stops writing at
once (its fence) and then shuts down as on SIGTERM; restarted, it rejoins as a follower.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from typing import Any

import kopf
from kubernetes import client

from kustos import metrics
from kustos.config import Settings
from kustos.errors import KustosError
from kustos.kube.lease import LeaseElector
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
        memo["startup_failed"] = True  # the API's startup handler stops waiting for services
        raise kopf.PermanentError(exc.message) from None
    memo["services"] = services
    services.audit.start_maintenance()  # signed digests, retention
    metrics.register_store_collector(
        services.store.list_secrets, per_secret=config.metrics_per_secret
    )
    metrics.start_metrics_server(config.metrics_port)
    if not config.leader_election:
        runtime = OperatorRuntime(services, config)
        memo["runtime"] = runtime
        runtime.start()
        return
    elector = _elector(services, config, lambda: memo["runtime"])
    memo["runtime"] = OperatorRuntime(services, config, fence=elector)
    memo["elector"] = elector
    elector.start()


def _elector(services: Services, config: Settings, runtime: Any) -> LeaseElector:
    identity = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"  # a new one per process

    def started() -> None:
        metrics.LEADER.set(1)
        runtime().lead()

    def stopped() -> None:
        metrics.LEADER.set(0)
        # The fence already refuses every write; stop as on SIGTERM (API drained too).
        os.kill(os.getpid(), signal.SIGTERM)

    return LeaseElector(
        client.CoordinationV1Api(services.api),
        config.namespace,
        config.lease_name,
        identity,
        on_started=started,
        on_stopped=stopped,
        floor=services.store.leader_term,
        lease=config.lease_seconds,
        renew_deadline=config.lease_renew_deadline_seconds,
        retry=config.lease_retry_seconds,
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Shutdown, in order: stop leading (the runtime, then the Lease is released for a fast
    handover), drain the API (it keeps serving meanwhile: `memo["api_stop"]`, set by the
    API's own startup handler), close the services."""
    if memo.get("runtime") is not None:
        await asyncio.to_thread(memo["runtime"].stop)
    if memo.get("elector") is not None:
        await asyncio.to_thread(memo["elector"].stop)
        metrics.LEADER.set(0)
    if memo.get("api_stop") is not None:
        await memo["api_stop"]()
    services = memo.get("services")
    if services is not None:
        services.close()


@kopf.on.event(*RESOURCE)
def observe(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime: OperatorRuntime | None = memo.get("runtime")
    if runtime is not None:
        runtime.observe(type, body)
