"""The container-credentials endpoint: `GET /v1/credentials` on the API server.

A pod sets ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` to this URL and
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` to a projected ServiceAccount token with audience
``kustos``; the AWS SDKs' container provider sends the token as the Authorization header and
receives short-lived SigV4 credentials bound to that ServiceAccount (the shape ECS and EKS Pod
Identity answer with), never valid past that token's own expiry. Thin adapter:
`ContainerCredentials.issue` decides, and audits each issue (who, which pod) before answering.

The answer holds a secret access key, so it is never logged or cached (``no-store``).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from kustos.errors import KustosError
from kustos.services.access.container_credentials import ContainerCredentials

__all__ = ["CREDENTIALS_PATH", "add_credentials_routes"]

CREDENTIALS_PATH = "/v1/credentials"
_ISSUER = web.AppKey("kustos_container_credentials", ContainerCredentials)
log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": message}, status=status, headers={"Cache-Control": "no-store"}
    )


async def credentials(request: web.Request) -> web.Response:
    issuer = request.app[_ISSUER]
    header = request.headers.get("Authorization", "")
    try:
        issued = await asyncio.to_thread(
            issuer.issue,
            header,
            source_ip=request.remote or None,
            user_agent=request.headers.get("User-Agent"),
        )
    except KustosError as exc:
        status = 401 if exc.http_status < 500 else 503
        return _error(status, exc.aws_code, exc.message)
    except Exception:
        log.exception("container credentials failed")
        return _error(500, "InternalServiceError", "internal error")
    return web.json_response(issued.to_container_response(), headers={"Cache-Control": "no-store"})


def add_credentials_routes(app: web.Application, issuer: ContainerCredentials) -> None:
    """Mount `GET /v1/credentials` on `app`, answered with `issuer`'s session credentials."""
    app[_ISSUER] = issuer
    app.router.add_get(CREDENTIALS_PATH, credentials)
