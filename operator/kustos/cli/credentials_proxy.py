"""`kustos credentials-proxy`: the credentials sidecar the pod-credentials webhook injects.

Serves the AWS container-credentials protocol (``GET /v1/credentials``) on the pod's
loopback, where the unchanged AWS SDKs fetch from (``AWS_CONTAINER_CREDENTIALS_FULL_URI``),
and forwards each request, with the caller's Authorization header (the pod's projected
ServiceAccount token, which the SDK reads from ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``),
to the Kustos API's container-credentials endpoint over TLS. It holds no credential: a
process without the token gets nothing. Answers pass through unchanged and are never logged
or cached; when the API cannot be reached the SDK gets a 503 with a JSON error.

At start it writes Kustos's CA (``$KUSTOS_API_CA``) to ``--ca-out`` (the app's
``AWS_CA_BUNDLE``), then, once listening, touches ``--ready-file`` (the sidecar's startup
probe: the app containers start after it). Listens on loopback addresses only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import click
from aiohttp import web

from kustos.config import client_environment

__all__ = ["credentials_proxy", "make_proxy_app"]

log = logging.getLogger("kustos.credentials_proxy")
_PATH = "/v1/credentials"
_UPSTREAM = web.AppKey("kustos_upstream", str)
_SESSION = web.AppKey("kustos_upstream_session", aiohttp.ClientSession)
_NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=_NO_STORE)


async def _credentials(request: web.Request) -> web.Response:
    authorization = request.headers.get("Authorization")
    if not authorization:
        return _error(
            401,
            "UnrecognizedClientException",
            "No Authorization header: set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE "
            "to the pod's Kustos token.",
        )
    headers = {
        "Authorization": authorization,
        "User-Agent": request.headers.get("User-Agent", "kustos-credentials-proxy"),
    }
    try:
        async with request.app[_SESSION].get(
            request.app[_UPSTREAM] + _PATH, headers=headers
        ) as upstream:
            body = await upstream.read()
            status = upstream.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("Kustos API unreachable: %s", type(exc).__name__)
        return _error(503, "ServiceUnavailable", "The Kustos API cannot be reached.")
    return web.Response(
        status=status, body=body, content_type="application/json", headers=_NO_STORE
    )


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def make_proxy_app(upstream: str, context: ssl.SSLContext | None) -> web.Application:
    """The proxy's app, forwarding to ``upstream`` (``https://host:port``)."""
    app = web.Application()
    app[_UPSTREAM] = upstream.rstrip("/")

    async def session(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=10, connect=3)
        connector = aiohttp.TCPConnector(ssl=context if context is not None else True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as s:
            app[_SESSION] = s
            yield

    app.cleanup_ctx.append(session)
    app.router.add_get(_PATH, _credentials)
    app.router.add_get("/healthz", _health)
    return app


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(app: web.Application, host: str, port: int, ready: Path | None) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("container credentials on http://%s:%d%s", host, port, _PATH)
    if ready is not None:
        await asyncio.to_thread(ready.touch)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command("credentials-proxy")
@click.option(
    "--listen",
    default="127.0.0.1:8139",
    show_default=True,
    help="Loopback address:port to serve on.",
)
@click.option(
    "--upstream",
    required=True,
    help="The Kustos API, e.g. https://kustos-api.kustos-system.svc:8443.",
)
@click.option(
    "--ca-out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the CA of $KUSTOS_API_CA here (the app's AWS_CA_BUNDLE).",
)
@click.option(
    "--ready-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Touched once serving (the sidecar's startup probe).",
)
def credentials_proxy(
    listen: str, upstream: str, ca_out: Path | None, ready_file: Path | None
) -> None:
    """Serve container credentials on loopback, from the Kustos API (the pod sidecar)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not _loopback(host) or not port.isdigit():
        raise click.BadParameter(
            "a loopback address:port (the credentials are for this pod only)", param_hint="--listen"
        )
    if not upstream.startswith("https://"):
        raise click.BadParameter("an https:// URL", param_hint="--upstream")
    ca = client_environment().api_ca or ""
    context = ssl.create_default_context(cadata=ca) if ca else None
    if ca_out is not None:
        if not ca:
            raise click.UsageError("--ca-out needs the CA in $KUSTOS_API_CA")
        tmp = ca_out.with_name(ca_out.name + ".tmp")
        tmp.write_text(ca)
        tmp.chmod(0o644)
        tmp.replace(ca_out)
    asyncio.run(_serve(make_proxy_app(upstream, context), host, int(port), ready_file))
