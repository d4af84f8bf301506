"""`kustos api`: serve the Secrets Manager API on its own (to scale it out), and the hook that
serves it inside the operator process (`kustos run`, on Kopf's event loop).

HTTPS by default, with the certificate from the Secret `kustos-api-tls` (generated with its
own CA on first start and renewed before it expires, or supplied by the user, e.g. by
cert-manager: then never overwritten); a changed certificate is served from the next TLS
handshake on, without a restart (`kustos.api.tls.ServingTls`); plain HTTP only
with `--insecure`, meant for tests. Metrics never share the API port: the standalone server
serves its request metrics on `--metrics-port` (default `$KUSTOS_METRICS_PORT` or 9090; 0
disables), the operator on `$KUSTOS_METRICS_PORT`. In the operator, `$KUSTOS_API_PORT`
(default 8443) picks the port and 0 disables the API; `$KUSTOS_API_HOST` the address
(default 0.0.0.0).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from typing import Any

import click
from aiohttp import web

from kustos import metrics
from kustos.api.server import ApiBackend, build_app
from kustos.api.tls import CHECK_SECONDS, DEFAULT_SECRET, ServingTls, default_hosts
from kustos.config import Settings
from kustos.kube.secrets import SecretGateway
from kustos.services.factory import Services

__all__ = ["api", "make_app", "serve_in_operator", "start_site"]

log = logging.getLogger("kustos.api")


def make_app(services: Services) -> web.Application:
    """The API app on `services`: access for authentication, the audited operations, and
    the container-credentials endpoint."""
    from kustos.api.credentials import add_credentials_routes
    from kustos.services.container_credentials import ContainerCredentials

    backend = ApiBackend(services.access, services.secrets_api)
    issuer = ContainerCredentials(services.access, services.audit)
    return build_app(backend, extra_routes=lambda app: add_credentials_routes(app, issuer))


def serving_tls(services: Services, secret: str) -> ServingTls:
    """The serving certificate from `secret`, loaded (generated when absent)."""
    settings = services.settings
    tls = ServingTls(SecretGateway(services.api), settings.namespace, secret,
                     default_hosts(settings.namespace))  # fmt: skip
    tls.start()
    return tls


def tls_check_seconds() -> float:
    """Seconds between looks at the TLS Secret ($KUSTOS_API_TLS_CHECK_SECONDS, default 300)."""
    return float(os.environ.get("KUSTOS_API_TLS_CHECK_SECONDS", CHECK_SECONDS))


async def start_site(
    app: web.Application, host: str, port: int, context: ssl.SSLContext | None
) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=context, backlog=1024).start()
    log.info("Secrets Manager API on %s://%s:%d", "https" if context else "http", host, port)
    return runner


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=int, help="Port to listen on.")
@click.option("--tls-secret", default=DEFAULT_SECRET, show_default=True,
              help="kubernetes.io/tls Secret in Kustos's namespace (generated if absent).")
@click.option("--insecure", is_flag=True, help="Plain HTTP, no TLS (for tests only).")
@click.option("--metrics-port", type=int, default=None,
              help="Port of /metrics, never the API port  [default: $KUSTOS_METRICS_PORT or "
                   "9090; 0 disables]")
@click.option("--verbose", is_flag=True, help="Debug logging.")
def api(host: str, port: int, tls_secret: str, insecure: bool, metrics_port: int | None,
        verbose: bool) -> None:  # fmt: skip
    """Serve the Secrets Manager API (AWS JSON protocol) in the foreground."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services = Services.build(Settings.from_env())
    try:
        services.keys.keyring()  # fail fast on a missing keyring
        if metrics_port is None:
            metrics_port = int(os.environ.get("KUSTOS_METRICS_PORT", "9090"))
        metrics.start_metrics_server(metrics_port)
        tls = None if insecure else serving_tls(services, tls_secret)
        asyncio.run(_serve(make_app(services), host, port, tls))
    finally:
        services.close()


async def _serve(app: web.Application, host: str, port: int, tls: ServingTls | None) -> None:
    runner = await start_site(app, host, port, tls.context if tls else None)
    renewal = asyncio.create_task(tls.run(tls_check_seconds())) if tls else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if renewal is not None:
            renewal.cancel()
        await runner.cleanup()


def serve_in_operator() -> None:
    """Register Kopf startup/cleanup handlers that serve the API on Kopf's event loop."""
    import kopf

    @kopf.on.startup()
    async def start_api(memo: kopf.Memo, **_: Any) -> None:
        port = int(os.environ.get("KUSTOS_API_PORT", "8443"))
        if port == 0:
            return
        if "services" not in memo:
            raise kopf.TemporaryError("waiting for the services", delay=0.5)
        services: Services = memo["services"]
        host = os.environ.get("KUSTOS_API_HOST", "0.0.0.0")  # noqa: S104 (a pod's service)
        insecure = os.environ.get("KUSTOS_API_INSECURE", "") == "1"
        tls = None if insecure else await asyncio.to_thread(
            serving_tls, services, os.environ.get("KUSTOS_API_TLS_SECRET", DEFAULT_SECRET))
        memo["api_runner"] = await start_site(make_app(services), host, port,
                                              tls.context if tls else None)  # fmt: skip
        if tls is not None:
            memo["api_tls_renewal"] = asyncio.create_task(tls.run(tls_check_seconds()))

    @kopf.on.cleanup()
    async def stop_api(memo: kopf.Memo, **_: Any) -> None:
        renewal = memo.get("api_tls_renewal")
        if renewal is not None:
            renewal.cancel()
        runner = memo.get("api_runner")
        if runner is not None:
            await runner.cleanup()
