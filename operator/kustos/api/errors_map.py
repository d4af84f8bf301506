"""Errors as AWS answers them: `{"__type": code, "message": ...}` with the right status.

Owns the mapping from Kustos's exception tree to the wire. Never a stack trace, never an
exception's text for errors Kustos did not raise on purpose: those become a generic
InternalFailure. `x-amzn-ErrorType` is set as AWS does, so every SDK finds the code.
"""

from __future__ import annotations

from typing import Any

from kustos.errors import KustosError

__all__ = ["INTERNAL", "error_body", "error_of"]

INTERNAL = (500, "InternalServiceError", "An internal error occurred; the request can be retried.")


def error_of(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, AWS error code, message) for an exception."""
    if isinstance(exc, KustosError):
        status = exc.http_status if 400 <= exc.http_status < 600 else 500
        if status >= 500 and exc.aws_code == "InternalServiceError":
            return status, exc.aws_code, INTERNAL[2]  # server-side detail stays in our logs
        return status, exc.aws_code, exc.message[:1024]
    return INTERNAL


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message, "Message": message}
