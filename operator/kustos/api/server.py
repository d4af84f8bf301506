"""The HTTP server of the Secrets Manager API (aiohttp): `POST /` with `X-Amz-Target`.

A thin adapter. Per request, on a worker thread (the services block on the store and the
Kubernetes API): authenticate (`Authenticator`, e.g. AccessService), check content type and
target, parse and validate the body against botocore's model (`protocol`), then run the
operation (`SecretsApi.call`, which authorizes and audits). Requests refused before an
operation runs are audited through `SecretsApi.reject`. Every answer carries
`x-amzn-RequestId`; errors have AWS's shape (`errors_map`) and never a stack trace.

Also serves `GET /healthz` (alive), `GET /readyz` (ready for traffic: 503 from the moment a
shutdown begins, see `Readiness`) and extra routes (the container-credentials endpoint). Metrics
(`kustos.metrics`, which counts every request by operation and outcome) are *not* served
here: the API port is open to every caller, so they have their own port
(`kustos.metrics.start_metrics_server`); `GET /metrics` on this port is not found.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from kustos import metrics
from kustos.api.errors_map import error_body, error_of
from kustos.api.protocol import (
    CONTENT_TYPE,
    check_content_type,
    operation_for,
    parse_params,
    to_wire,
)
from kustos.api.request import view_of
from kustos.errors import KustosError
from kustos.models.identity import Principal
from kustos.models.request import RequestView
from kustos.services.api.call import CallMeta
from kustos.services.api.service import SecretsApi

__all__ = [
    "MAX_BODY_BYTES",
    "ApiBackend",
    "Authenticator",
    "Readiness",
    "build_app",
    "readiness_of",
]

log = logging.getLogger(__name__)
#: Largest request body accepted: a 64 KiB value base64-encoded, plus the rest of a request.
MAX_BODY_BYTES = 256 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Authenticator(Protocol):
    def authenticate(self, req: RequestView) -> Principal: ...


@dataclass
class ApiBackend:
    authenticator: Authenticator
    api: SecretsApi
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(32, thread_name_prefix="kustos-api")
    )


@dataclass
class Readiness:
    """Whether this server should get new traffic. A graceful shutdown first marks it
    draining: `/readyz` answers 503 (the Service stops sending new connections here), and
    every answer carries `Connection: close` (clients reconnect, through the Service, to
    another replica) while in-flight and still-arriving requests are served as usual."""

    draining: bool = False


_BACKEND = web.AppKey("kustos_api_backend", ApiBackend)
_READINESS = web.AppKey("kustos_api_readiness", Readiness)


def readiness_of(app: web.Application) -> Readiness:
    return app[_READINESS]


def _answer(status: int, body: dict[str, Any], request_id: str) -> web.Response:
    headers = {"x-amzn-RequestId": request_id}
    if "__type" in body:
        headers["x-amzn-ErrorType"] = str(body["__type"])
    return web.Response(
        status=status, body=json.dumps(body).encode(), headers=headers, content_type=CONTENT_TYPE
    )


def handle(backend: ApiBackend, view: RequestView, request_id: str) -> tuple[int, dict[str, Any]]:
    """One API request, start to end (runs on a worker thread), counted in the metrics."""
    started = time.perf_counter()
    status, body = _handle(backend, view, request_id)
    target = view.headers.get("X-Amz-Target") or ""
    name = target.rpartition(".")[2]
    operation = name if name in backend.api.operations else "Unknown"
    metrics.observe_api(
        operation, str(body.get("__type", "success")), time.perf_counter() - started
    )
    return status, body


def _handle(backend: ApiBackend, view: RequestView, request_id: str) -> tuple[int, dict[str, Any]]:
    meta = CallMeta(
        request_id=request_id,
        source_ip=view.remote_addr or None,
        user_agent=view.headers.get("User-Agent"),
        secure=view.scheme == "https",
    )
    target = view.headers.get("X-Amz-Target") or ""
    operation = target.rpartition(".")[2][:64] if target.startswith("secretsmanager.") else ""
    principal: Principal | None = None
    try:
        try:
            principal = backend.authenticator.authenticate(view)
            check_content_type(view.headers.get("Content-Type"))
            model = operation_for(target, backend.api.operations)
            params = parse_params(model, view.body)
        except KustosError as exc:
            backend.api.reject(operation, exc, meta, principal)
            raise
        return 200, to_wire(backend.api.call(model.name, params, principal, meta))
    except KustosError as exc:  # AuditUnavailableError included: fail closed
        status, code, message = error_of(exc)
        return status, error_body(code, message)
    except Exception as exc:
        log.error("unexpected %s answering request %s", type(exc).__name__, request_id)
        status, code, message = error_of(exc)
        return status, error_body(code, message)


async def _dispatch(request: web.Request) -> web.Response:
    backend = request.app[_BACKEND]
    request_id = str(uuid.uuid4())
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        message = f"The request body exceeds {MAX_BODY_BYTES} bytes."
        return _answer(413, error_body("RequestEntityTooLargeException", message), request_id)
    view = view_of(request, body)
    loop = asyncio.get_running_loop()
    status, answer = await loop.run_in_executor(backend.executor, handle, backend, view, request_id)
    response = _answer(status, answer, request_id)
    if request.app[_READINESS].draining:
        response.force_close()
    return response


async def _not_found(request: web.Request) -> web.Response:
    request_id = str(uuid.uuid4())
    body = error_body("UnknownOperationException", "Send Secrets Manager requests as POST /.")
    return _answer(404, body, request_id)


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _ready(request: web.Request) -> web.Response:
    if request.app[_READINESS].draining:
        response = web.Response(status=503, text="draining\n")
        response.force_close()
        return response
    return web.Response(text="ok\n")


@web.middleware
async def _no_traces(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Whatever escapes a handler is answered in AWS's shape, without details."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = error_body(
            "UnknownOperationException" if exc.status in (404, 405) else "InvalidRequestException",
            exc.reason,
        )
        return _answer(exc.status, body, str(uuid.uuid4()))
    except Exception as exc:
        log.error("unexpected %s in the HTTP layer", type(exc).__name__)
        status, code, message = error_of(exc)
        return _answer(status, error_body(code, message), str(uuid.uuid4()))


def build_app(
    backend: ApiBackend,
    *,
    extra_routes: Callable[[web.Application], None] | None = None,
    max_body: int = MAX_BODY_BYTES,
) -> web.Application:
    app = web.Application(client_max_size=max_body, middlewares=[_no_traces])
    app[_BACKEND] = backend
    app[_READINESS] = Readiness()
    app.router.add_post("/", _dispatch)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/readyz", _ready)
    if extra_routes is not None:
        extra_routes(app)
    app.router.add_route("*", "/{tail:.*}", _not_found)

    async def _shutdown(app: web.Application) -> None:
        backend.executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(_shutdown)
    return app
