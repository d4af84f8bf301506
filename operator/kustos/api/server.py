"""The HTTP server of the Secrets Manager API (aiohttp): `POST /` with `X-Amz-Target`.

A thin adapter. Per request, on a worker thread (the services block on the store and the
Kubernetes API) — or, for the read-only operations in `NONBLOCKING` when the audit sink can
take records without waiting, first on the event loop itself (`kustos.models.nonblocking`):
an attempt that would block is dropped and the request runs on a thread as usual; one that
finishes has its audit records committed (awaited, never blocking the loop) before its
answer is sent, so the value still leaves only after its record is durable. Both ways:
authenticate (`Authenticator`, e.g. AccessService), check content type and
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
import functools
import gc
import itertools
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
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
from kustos.errors import AuditUnavailableError, KustosError
from kustos.models.identity import Principal
from kustos.models.nonblocking import WouldBlock, nonblocking
from kustos.models.request import RequestView
from kustos.services.api.call import AuditQueue, CallMeta
from kustos.services.api.service import NONBLOCKING, SecretsApi

__all__ = [
    "GIL_SWITCH_SECONDS",
    "MAX_BODY_BYTES",
    "ApiBackend",
    "Authenticator",
    "Readiness",
    "build_app",
    "readiness_of",
    "settle_heap",
    "tune_interpreter",
]

log = logging.getLogger(__name__)
#: Largest request body accepted: a 64 KiB value base64-encoded, plus the rest of a request.
MAX_BODY_BYTES = 256 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: CPython's GIL switch interval in a process serving the API. The event loop answers most
#: calls while the audit writer thread commits their records: each batch hands the GIL to
#: the writer a few times (the driver releases it per statement), and with the default
#: 5 ms interval each hand-off waits up to 5 ms behind the busy loop, which holds every
#: caller of the batch (docs/benchmarks.md measured the difference).
GIL_SWITCH_SECONDS = 0.0005


#: Request ids are UUID-shaped, as AWS's: a random prefix per process, then a counter (from
#: a random start), so they are unique across processes and restarts without drawing 16
#: random bytes per request.
_ID_PREFIX = str(uuid.uuid4())[:24]
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(5), "big"))


def _request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


def tune_interpreter() -> None:
    """Set the process-wide GIL switch interval for serving the API (`GIL_SWITCH_SECONDS`)."""
    sys.setswitchinterval(GIL_SWITCH_SECONDS)


def settle_heap() -> int:
    """Once a process serves: collect what startup left, then move every object still alive
    (modules, classes, the services' graph) out of the collector's reach (`gc.freeze`).

    A full collection walks every tracked object: in a process with the operator's imports,
    about 133,000 built by startup that will never be freed, 55 ms on an idle machine and
    15-120 ms measured in API processes on a busy one (docs/benchmarks.md), and each one
    holds every request in flight. Frozen objects are still freed by reference counting;
    only cycles among them would outlive their use, and what startup builds lives as long
    as the process.
    Returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class Authenticator(Protocol):
    def authenticate(self, req: RequestView) -> Principal: ...


@dataclass
class ApiBackend:
    authenticator: Authenticator
    api: SecretsApi
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(32, thread_name_prefix="kustos-api")
    )
    #: `api.audit_queue`, looked up once (a Protocol check is too slow for every request).
    audit_queue: AuditQueue | None = field(init=False)
    wakeups: _Wakeups = field(init=False, default_factory=lambda: _Wakeups())

    def __post_init__(self) -> None:
        self.audit_queue = self.api.audit_queue


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
        status=status, body=_encode(body), headers=headers, content_type=CONTENT_TYPE
    )


def _encode(body: dict[str, Any]) -> bytes:
    """The answer as JSON (UTF-8); orjson, or the standard library for what it does not take
    (integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body).encode()


def handle(backend: ApiBackend, view: RequestView, request_id: str) -> tuple[int, dict[str, Any]]:
    """One API request, start to end (runs on a worker thread), counted in the metrics."""
    started = time.perf_counter()
    status, body = _handle(backend, view, request_id)
    _observe(backend, view, body, started)
    return status, body


def _observe(backend: ApiBackend, view: RequestView, body: dict[str, Any], started: float) -> None:
    target = view.headers.get("X-Amz-Target") or ""
    name = target.rpartition(".")[2]
    operation = name if name in backend.api.operations else "Unknown"
    metrics.observe_api(
        operation, str(body.get("__type", "success")), time.perf_counter() - started
    )


async def _handle_on_loop(
    backend: ApiBackend, queue: AuditQueue, view: RequestView, request_id: str
) -> tuple[int, dict[str, Any]] | None:
    """The request on the event loop; None if it would have blocked (nothing happened)."""
    started = time.perf_counter()
    with nonblocking() as deferred:
        try:
            status, body = _handle(backend, view, request_id)
        except WouldBlock as would:
            log.debug("request %s continues on a thread: %s", request_id, would.what)
            return None
    if deferred.events:
        try:
            await _commit(queue, backend.wakeups, deferred.events)
        except KustosError as exc:  # AuditUnavailableError: fail closed, the answer is lost
            status, code, message = error_of(exc)
            body = error_body(code, message)
            deferred.callbacks.clear()
    for callback in deferred.callbacks:
        callback()
    _observe(backend, view, body, started)
    return status, body


async def _commit(queue: AuditQueue, wakeups: _Wakeups, events: list[Any]) -> None:
    """Make `events` durable without blocking the loop (the writer thread wakes it)."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[bool] = loop.create_future()
    try:
        ticket = queue.submit(events, functools.partial(wakeups.wake, loop, woken))
    except KustosError:
        raise
    except Exception as exc:  # a record the log refuses to build: as Call._record does
        log.error("audit failed on the event loop: %s", type(exc).__name__)
        raise AuditUnavailableError("the audit record could not be written") from None
    timer = loop.call_later(queue.first_wait_seconds, _set_result, woken, False)
    in_time = await woken
    timer.cancel()
    if not in_time:  # as AuditService.record_many: withdrawn, or wait for the verdict
        waiting = True
        while not queue.settled(ticket):
            waiting = waiting and queue.keep_waiting(ticket)  # raises once withdrawn
            await asyncio.sleep(0.05)
    queue.settle(ticket)


def _set_result(future: asyncio.Future[bool], result: bool) -> None:
    if not future.done():
        future.set_result(result)


class _Wakeups:
    """Hands the futures the audit writer settles to their event loop, one loop call per
    batch (not one self-pipe write per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = {}

    def wake(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[bool]) -> None:
        """In the writer thread: `future` is settled; its loop learns so soon."""
        with self._lock:
            ready = self._ready.setdefault(loop, [])
            ready.append(future)
            first = len(ready) == 1
        if first:
            try:
                loop.call_soon_threadsafe(self._drain, loop)
            except RuntimeError:  # the loop has closed: nobody waits any more
                with self._lock:
                    self._ready.pop(loop, None)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            ready = self._ready.pop(loop, [])
        for future in ready:
            _set_result(future, True)


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


def _target(view: RequestView) -> str:
    target = view.headers.get("X-Amz-Target") or ""
    return target.rpartition(".")[2] if target.startswith("secretsmanager.") else ""


async def _dispatch(request: web.Request) -> web.Response:
    backend = request.app[_BACKEND]
    request_id = _request_id()
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        message = f"The request body exceeds {MAX_BODY_BYTES} bytes."
        return _answer(413, error_body("RequestEntityTooLargeException", message), request_id)
    view = view_of(request, body)
    queue = backend.audit_queue
    outcome = None
    if queue is not None and _target(view) in NONBLOCKING:
        outcome = await _handle_on_loop(backend, queue, view, request_id)
    if outcome is None:
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(backend.executor, handle, backend, view, request_id)
    status, answer = outcome
    response = _answer(status, answer, request_id)
    if request.app[_READINESS].draining:
        response.force_close()
    return response


async def _not_found(request: web.Request) -> web.Response:
    request_id = _request_id()
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
        return _answer(exc.status, body, _request_id())
    except Exception as exc:
        log.error("unexpected %s in the HTTP layer", type(exc).__name__)
        status, code, message = error_of(exc)
        return _answer(status, error_body(code, message), _request_id())


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
