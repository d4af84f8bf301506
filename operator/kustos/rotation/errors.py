"""Errors a rotator raises, placed in the Kustos error tree (`kustos.errors`).

    ServerError
    ├── TargetUnreachableError     the database / webhook cannot be reached (retried soon)
    └── TargetError                it answered with a failure or garbage (retried)
    ClientError
    ├── CredentialsRejectedError   a login was refused (wrong current/master/pending creds);
    │                              retried slowly: someone may fix the master secret
    ├── TargetUserMissingError     the database user to rotate does not exist (retried slowly)
    └── WebhookRejectedError       the webhook answered 4xx (retried slowly)

Messages name hosts, ports, users, steps and error codes, never values; a `TargetError`
also carries the driver's code as `driver_code`, for callers that branch on it. Driver
messages are passed through `sanitize`, which removes every secret the rotator held, because
drivers sometimes echo connection strings. Raise these `from None` so that the driver's
exception (and whatever it captured) does not ride along as `__cause__`.
"""

from __future__ import annotations

from collections.abc import Iterable

from kustos.errors import ClientError, ServerError
from kustos.models import SecretValue

__all__ = [
    "CredentialsRejectedError",
    "TargetError",
    "TargetUnreachableError",
    "TargetUserMissingError",
    "WebhookRejectedError",
    "sanitize",
]

_MAX_DETAIL = 300


class TargetUnreachableError(ServerError):
    retry_delay = 60.0


class TargetError(ServerError):
    retry_delay = 60.0

    def __init__(
        self,
        message: str,
        *,
        driver_code: int | str | None = None,
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(message, retry_delay=retry_delay)
        #: The driver's own code for the failure, when a database answered with one: MySQL's
        #: error number (``1141``), PostgreSQL's SQLSTATE (``"42501"``). Decide by this,
        #: never by the message, whose wording belongs to the server and its version.
        self.driver_code = driver_code


class CredentialsRejectedError(ClientError):
    retryable = True
    retry_delay = 300.0


class TargetUserMissingError(ClientError):
    retryable = True
    retry_delay = 300.0


class WebhookRejectedError(ClientError):
    retryable = True
    retry_delay = 300.0


def sanitize(text: str, secrets: Iterable[str | SecretValue | None]) -> str:
    """`text` with every non-trivial secret string masked, cut to one short line."""
    for secret in secrets:
        if secret is None:
            continue
        raw = secret.reveal() if isinstance(secret, SecretValue) else secret
        if len(raw) >= 4:
            text = text.replace(raw, "**********")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."
