"""Builds the `RequestView` (defined in `kustos.models.request`) from an aiohttp request.

Services import `RequestView` from `kustos.models.request` (layers point down); adapters may
import it from here as well.
"""

from __future__ import annotations

from aiohttp import web

from kustos.models.request import RequestView

__all__ = ["RequestView", "view_of"]


def view_of(request: web.Request, body: bytes) -> RequestView:
    """The request as services see it: raw path and query (SigV4 signs them as sent)."""
    path, _, query = request.raw_path.partition("?")
    return RequestView(
        method=request.method,
        path=path,
        query=query,
        headers=request.headers,
        body=body,
        remote_addr=request.remote or "",
        scheme=request.scheme,
    )
