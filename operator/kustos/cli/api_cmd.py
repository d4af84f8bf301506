"""`kustos api`: serve the Secrets Manager API on its own (to scale it out), and the hook that
serves it inside the operator process (`kustos run`, on Kopf's event loop).

HTTPS by default, with the certificate from the Secret `kustos-api-tls` (generated with its
own CA on first start and renewed before it expires, or supplied by the user, e.g. by
cert-manager: then never overwritten); a changed certificate is served from the next TLS
handshake on, without a restart (`kustos.api.tls.ServingTls`); plain HTTP only
with `--insecure`, meant for tests. Metrics never share the API port: the standalone server
serves its request metrics on `--metrics-port` (default `$KUSTOS_METRICS_PORT` or 9090; 0
disables), the operator on `$KUSTOS_METRICS_PORT`. Every `$KUSTOS_*` here is read into
`kustos.config.Settings` once, where the process starts. In the operator, `$KUSTOS_API_PORT`
(default 8443) picks the port and 0 disables the API; `$KUSTOS_API_HOST` the address
(default 0.0.0.0).

Graceful shutdown (SIGTERM, or the operator stopping): the server first stops being ready
(`/readyz` 503, `Connection: close` on every answer) and keeps serving for
`$KUSTOS_API_DRAIN_SECONDS` (default 5), long enough for the endpoints of the Service to
drop this pod; then it stops accepting, finishes the requests in flight and exits. So a
rolling update of N replicas drops no call (tests/e2e/test_ha.py).

Several processes (`--processes N`, in the operator `$KUSTOS_API_PROCESSES`): the first
serves and starts N-1 more `kustos api --reuse-port` processes on the same address, all
bound with SO_REUSEPORT, so the kernel spreads connections over them and CPython uses more
than one core; one that exits is started again (`kustos.cli.api_processes`). They share the
store, and the read cache of each process is checked against the store's read epoch on
every read, so a write through any process is seen by all (docs/benchmarks.md). The extra
processes serve no metrics port of their own. The first process also runs the audit hub
(`kustos.services.audit.hub`): the others hand it their audit records (`--audit-hub`), so
all processes share one group commit, one fsync per batch, one hash chain.
(A first process that only commits, with N serving, was measured in session 11 and bought
nothing on two cores: docs/benchmarks.md.)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import signal
import ssl
from typing import Any

import click
from aiohttp import web

from kustos import __version__, metrics
from kustos.api.injector import CachedInjection, Injection, add_injector_routes
from kustos.api.server import (
    ApiBackend,
    build_app,
    readiness_of,
    settle_heap,
    tune_interpreter,
)
from kustos.api.tls import DEFAULT_SECRET, ServingTls, default_hosts
from kustos.cli.api_processes import ServingProcesses, serving_argv
from kustos.cli.loops import runner
from kustos.config import Settings
from kustos.errors import KustosError
from kustos.kube.secrets import SecretGateway
from kustos.kube.webhooks import WebhookGateway
from kustos.services.audit.hub import AuditHub, hub_path
from kustos.services.factory import Services

__all__ = ["api", "drain", "make_app", "serve_in_operator", "start_site"]

log = logging.getLogger("kustos.api")
API_SERVICE = "kustos-api"
#: Seconds between looks at the serving processes (one that exited is started again).
SUPERVISE_SECONDS = 1.0


def make_app(services: Services) -> web.Application:
    """The API app on `services`: access for authentication, the audited operations, and
    the container-credentials endpoint."""
    from kustos.api.credentials import add_credentials_routes
    from kustos.services.access.container_credentials import ContainerCredentials

    tune_interpreter()  # this process serves the API from now on
    backend = ApiBackend(services.access, services.secrets_api)
    issuer = ContainerCredentials(services.access, services.audit)
    inject = CachedInjection(lambda: load_injection(services))

    def routes(app: web.Application) -> None:
        add_credentials_routes(app, issuer)
        add_injector_routes(app, inject)

    return build_app(backend, extra_routes=routes)


def load_injection(services: Services) -> Injection:
    """What the pod-credentials webhook injects: the sidecar image
    ($KUSTOS_INJECTOR_IMAGE), the API Service's name and ClusterIP, the CA of the serving
    certificate (``ca.crt`` of the TLS Secret; none: the system's trust store)."""
    settings = services.settings
    tls = SecretGateway(services.api).get(settings.namespace, settings.api_tls_secret) or {}
    ca = (tls.get("data") or {}).get("ca.crt")
    return Injection(
        image=settings.injector_image or f"kustos:{__version__}",
        service_host=f"{API_SERVICE}.{settings.namespace}.svc",
        api_port=settings.api_port,
        cluster_ip=WebhookGateway(services.api).cluster_ip(settings.namespace, API_SERVICE),
        ca_pem=base64.b64decode(ca).decode() if ca else "",
        region=settings.cluster_name,
    )


def publish_webhook_ca(services: Services, ca: bytes) -> None:
    """Set the pod-credentials webhook's caBundle to the serving certificate's CA (the
    MutatingWebhookConfiguration $KUSTOS_INJECTOR_WEBHOOK); a failure is logged only (the
    API serves without it; annotated pods are refused until it is set)."""
    name = services.settings.injector_webhook
    if not name or not ca:
        return
    try:
        if WebhookGateway(services.api).set_ca_bundle(name, ca):
            log.info("pod-credentials webhook %s trusts the API's CA", name)
        else:
            log.info("no MutatingWebhookConfiguration %s: pod credentials injection off", name)
    except KustosError as exc:
        log.warning("could not set the CA of webhook %s: %s", name, exc.message)


def serving_tls(services: Services, secret: str) -> ServingTls:
    """The serving certificate from `secret`, loaded (generated when absent)."""
    settings = services.settings
    tls = ServingTls(
        SecretGateway(services.api),
        settings.namespace,
        secret,
        default_hosts(settings.namespace, settings.api_hosts),
    )
    tls.start()
    publish_webhook_ca(services, tls.ca_pem)
    return tls


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    *,
    reuse_port: bool = False,
    listeners: int = 1,
) -> web.AppRunner:
    """Serve `app`; with `reuse_port`, on `listeners` sockets of the port's SO_REUSEPORT
    group (the kernel hashes each new connection over every socket in the group, so a
    process with two gets twice the share of one with one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for _ in range(listeners if reuse_port else 1):
        await web.TCPSite(
            runner, host, port, ssl_context=context, backlog=1024, reuse_port=reuse_port or None
        ).start()
    log.info("Secrets Manager API on %s://%s:%d", "https" if context else "http", host, port)
    return runner


async def drain(runner: web.AppRunner, delay: float) -> None:
    """Not ready from now on; serve `delay` seconds more; stop accepting; finish what is in
    flight (aiohttp's shutdown waits for running handlers); done."""
    app = runner.app
    if isinstance(app, web.Application):
        readiness_of(app).draining = True
    log.info("API draining: not ready; serving %.1f s more, then the requests in flight", delay)
    await asyncio.sleep(delay)
    await runner.cleanup()
    log.info("API stopped")


def start_hub(services: Services) -> AuditHub:
    """The audit hub of this process's log, for the workers (a fresh private socket)."""
    hub = AuditHub(services.audit, hub_path())
    hub.start()
    return hub


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--tls-secret",
    default=DEFAULT_SECRET,
    show_default=True,
    help="kubernetes.io/tls Secret in Kustos's namespace (generated if absent).",
)
@click.option("--insecure", is_flag=True, help="Plain HTTP, no TLS (for tests only).")
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Port of /metrics, never the API port  [default: $KUSTOS_METRICS_PORT or "
    "9090; 0 disables]",
)
@click.option("--verbose", is_flag=True, help="Debug logging.")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (SO_REUSEPORT) and the store.",
)
@click.option("--reuse-port", is_flag=True, help="Bind with SO_REUSEPORT (set for --processes).")
@click.option(
    "--listeners",
    default=1,
    show_default=True,
    type=click.IntRange(1, 8),
    help="Sockets of the SO_REUSEPORT group this process listens on (its share of new "
    "connections).",
)
@click.option(
    "--audit-hub",
    type=click.Path(dir_okay=False),
    default=None,
    help="Commit audit records through the hub on this socket (set for the extra processes).",
)
def api(
    host: str,
    port: int,
    tls_secret: str,
    insecure: bool,
    metrics_port: int | None,
    verbose: bool,
    processes: int,
    reuse_port: bool,
    listeners: int,
    audit_hub: str | None,
) -> None:
    """Serve the Secrets Manager API (AWS JSON protocol) in the foreground."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings.from_env()  # read once, here
    if audit_hub:
        settings = dataclasses.replace(
            settings, audit=dataclasses.replace(settings.audit, hub=audit_hub)
        )
    services = Services.build(settings)
    workers: ServingProcesses | None = None
    hub: AuditHub | None = None
    try:
        services.keys.keyring()  # fail fast on a missing keyring
        metrics.start_metrics_server(
            settings.metrics_port if metrics_port is None else metrics_port
        )
        tls = None if insecure else serving_tls(services, tls_secret)
        if processes > 1:
            hub = start_hub(services)
            argv = serving_argv(host, port, tls_secret, insecure, str(hub.path))
            workers = ServingProcesses(argv, processes - 1)
            workers.start()
        with runner() as loop_runner:
            loop_runner.run(
                _serve(
                    make_app(services),
                    host,
                    port,
                    tls,
                    settings,
                    reuse_port=reuse_port or processes > 1,
                    listeners=listeners,
                    workers=workers,
                )
            )
    finally:
        if workers is not None:
            workers.stop()
        if hub is not None:
            hub.close()
        services.close()


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    tls: ServingTls | None,
    settings: Settings,
    *,
    reuse_port: bool = False,
    listeners: int = 1,
    workers: ServingProcesses | None = None,
) -> None:
    runner = await start_site(
        app, host, port, tls.context if tls else None, reuse_port=reuse_port, listeners=listeners
    )
    frozen = settle_heap()  # this process is a server from now on
    log.debug("%d objects built by startup frozen out of the collector", frozen)
    renewal = asyncio.create_task(tls.run(settings.api_tls_check_seconds)) if tls else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if workers is not None:
            await supervise(workers, stop)
        else:
            await stop.wait()
        await drain(runner, settings.api_drain_seconds)
    finally:
        if renewal is not None:
            renewal.cancel()
        await runner.cleanup()  # nothing left to do after a drain


async def supervise(workers: ServingProcesses, stop: asyncio.Event) -> None:
    """Restart exited serving processes (`ServingProcesses.supervise_once`) until `stop`."""
    while not stop.is_set():
        workers.supervise_once()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SUPERVISE_SECONDS)


def serve_in_operator() -> None:
    """Register Kopf startup/cleanup handlers that serve the API on Kopf's event loop."""
    import kopf

    @kopf.on.startup()
    async def start_api(memo: kopf.Memo, **_: Any) -> None:
        if memo.get("startup_failed"):
            return  # nothing to serve; Kopf stops on the failed startup handler
        if "services" not in memo:
            raise kopf.TemporaryError("waiting for the services", delay=0.5)
        services: Services = memo["services"]
        settings = services.settings
        if settings.api_port == 0:
            return
        host, port, insecure = settings.api_host, settings.api_port, settings.api_insecure
        secret, processes = settings.api_tls_secret, settings.api_processes
        tls = None if insecure else await asyncio.to_thread(serving_tls, services, secret)
        memo["api_runner"] = await start_site(
            make_app(services), host, port, tls.context if tls else None, reuse_port=processes > 1
        )
        if tls is not None:
            memo["api_tls_renewal"] = asyncio.create_task(tls.run(settings.api_tls_check_seconds))
        if processes > 1:
            memo["api_hub"] = hub = start_hub(services)
            workers = ServingProcesses(
                serving_argv(host, port, secret, insecure, str(hub.path)), processes - 1
            )
            workers.start()
            memo["api_workers"] = workers
            memo["api_supervisor"] = (
                (stop := asyncio.Event()),
                asyncio.create_task(supervise(workers, stop)),
            )
        frozen = settle_heap()  # the operator's process is a server from now on
        log.debug("%d objects built by startup frozen out of the collector", frozen)
        memo["api_stop"] = lambda: _stop_api(memo)  # the operator's cleanup awaits it

    @kopf.on.cleanup()
    async def stop_api(memo: kopf.Memo, **_: Any) -> None:
        await _stop_api(memo)


async def _stop_api(memo: Any) -> None:
    """Drain and stop the API in the operator (once; later calls find nothing to do)."""
    supervisor = memo.pop("api_supervisor", None)
    if supervisor is not None:
        supervisor[0].set()
        await supervisor[1]
    workers, runner = memo.pop("api_workers", None), memo.pop("api_runner", None)
    if workers is not None:  # each drains on its SIGTERM, while this one drains too
        stopping = asyncio.create_task(asyncio.to_thread(workers.stop))
    if runner is not None:
        await drain(runner, memo["services"].settings.api_drain_seconds)
    if workers is not None:
        await stopping
    hub = memo.pop("api_hub", None)
    if hub is not None:  # after the workers: they commit through it while they drain
        hub.close()
    renewal = memo.pop("api_tls_renewal", None)
    if renewal is not None:
        renewal.cancel()
