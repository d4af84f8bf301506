"""The container-credentials endpoint: `GET /v1/credentials` on the API server.

A pod sets ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` to this URL and
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` to a projected ServiceAccount token with audience
``kustos``; the AWS SDKs' container provider sends the token as the Authorization header and
receives short-lived SigV4 credentials bound to that ServiceAccount (the shape ECS and EKS Pod
Identity answer with). Thin adapter: `AccessService.credentials_for` decides.

The answer holds a secret access key, so it is never logged or cached (``no-store``).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from kustos.errors import KustosError
from kustos.services.access import AccessService

__all__ = ["CREDENTIALS_PATH", "add_credentials_routes"]

CREDENTIALS_PATH = "/v1/credentials"
_ACCESS_KEY = web.AppKey("kustos_access_service", AccessService)
log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status,
                             headers={"Cache-Control": "no-store"})  # fmt: skip


async def credentials(request: web.Request) -> web.Response:
    access = request.app[_ACCESS_KEY]
    header = request.headers.get("Authorization", "")
    try:
        issued = await asyncio.to_thread(access.credentials_for, header)
    except KustosError as exc:
        status = 401 if exc.http_status < 500 else 503
        return _error(status, exc.aws_code, exc.message)
    except Exception:
        log.exception("container credentials failed")
        return _error(500, "InternalServiceError", "internal error")
    return web.json_response(issued.to_container_response(),
                             headers={"Cache-Control": "no-store"})  # fmt: skip


def add_credentials_routes(app: web.Application, access: AccessService) -> None:
    """Mount `GET /v1/credentials` on `app`, answered with `access`'s session credentials."""
    app[_ACCESS_KEY] = access
    app.router.add_get(CREDENTIALS_PATH, credentials)
