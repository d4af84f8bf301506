"""`RequestView`: the parts of an HTTP request that services (authentication, audit) read.

A plain value, so services never see aiohttp: the API server builds one per request. It
lives in `models` so services may import it without reaching up into the `api` adapter;
`kustos.api.request` re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RequestView"]


@dataclass(frozen=True)
class RequestView:
    method: str
    #: The path exactly as sent (percent-encoding preserved), without the query string.
    path: str
    #: The raw query string (no leading "?"), as sent.
    query: str
    #: Case-insensitive (e.g. multidict.CIMultiDictProxy); repeated headers via `getall`.
    headers: Mapping[str, str]
    body: bytes
    remote_addr: str
    scheme: str  # "https" or "http"

    def __repr__(self) -> str:  # headers carry credentials; bodies may carry values
        return f"RequestView({self.method} {self.path} from {self.remote_addr})"
