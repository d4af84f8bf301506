"""The one exception tree of Kustos.

Every error knows the HTTP status and AWS error code it is answered with on the API, and
whether the operator should retry (Kopf's TemporaryError) or give up (PermanentError). The
adapters translate; nothing below them imports Kopf or HTTP. Messages never contain secret
values: build them from names, ids and codes only.

    KustosError
    ├── ClientError                      4xx, not retried
    │   ├── InvalidParameterError        InvalidParameterException
    │   ├── InvalidRequestError          InvalidRequestException
    │   │   └── RollbackRefusedError     a rollback that would lock out AWSCURRENT's users
    │   ├── ValidationError              ValidationException
    │   ├── ResourceNotFoundError        ResourceNotFoundException
    │   ├── ResourceExistsError          ResourceExistsException
    │   ├── LimitExceededError           LimitExceededException
    │   ├── MalformedPolicyError         MalformedPolicyDocumentException
    │   ├── PublicPolicyError            PublicPolicyException
    │   ├── PreconditionNotMetError      PreconditionNotMetException
    │   ├── AccessDeniedError            AccessDeniedException
    │   ├── AuthenticationError          UnrecognizedClientException (and friends)
    │   └── ConflictError                target collides with an object Kustos does not own
    └── ServerError                      5xx, retried
        ├── DecryptionFailure            DecryptionFailure (wrong/missing key, tampered data)
        ├── EncryptionFailure            EncryptionFailure
        ├── KeyringError                 the keyring cannot be loaded or is inconsistent
        ├── StoreError                   the store failed or holds a corrupted row
        │   └── FencedError              a write by an operator that is no longer the leader
        └── AuditUnavailableError        the audit record could not be made durable (fail closed)
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AuditUnavailableError",
    "AuthenticationError",
    "ClientError",
    "ConflictError",
    "DecryptionFailure",
    "EncryptionFailure",
    "FencedError",
    "InvalidParameterError",
    "InvalidRequestError",
    "KeyringError",
    "KustosError",
    "LimitExceededError",
    "MalformedPolicyError",
    "PreconditionNotMetError",
    "PublicPolicyError",
    "ResourceExistsError",
    "ResourceNotFoundError",
    "RollbackRefusedError",
    "ServerError",
    "StoreError",
    "ValidationError",
]


class KustosError(Exception):
    """Base of every error Kustos raises on purpose."""

    http_status: int = 500
    aws_code: str = "InternalServiceError"
    #: Whether a controller should try again later (a transient condition).
    retryable: bool = True
    #: Seconds a controller should wait before retrying, when it does.
    retry_delay: float = 30.0

    def __init__(self, message: str, *, retry_delay: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_delay is not None:
            self.retry_delay = retry_delay


class ClientError(KustosError):
    """The request or spec is wrong; retrying the same input cannot help."""

    http_status = 400
    aws_code = "InvalidRequestException"
    retryable = False


class InvalidParameterError(ClientError):
    aws_code = "InvalidParameterException"


class InvalidRequestError(ClientError):
    aws_code = "InvalidRequestException"


class RollbackRefusedError(InvalidRequestError):
    """A rollback refused because it would break what AWSCURRENT's holders log in with
    (alternating users, a version of AWSCURRENT's own user); forcing it is the caller's call."""


class ValidationError(ClientError):
    aws_code = "ValidationException"


class ResourceNotFoundError(ClientError):
    aws_code = "ResourceNotFoundException"


class ResourceExistsError(ClientError):
    aws_code = "ResourceExistsException"


class LimitExceededError(ClientError):
    aws_code = "LimitExceededException"


class MalformedPolicyError(ClientError):
    aws_code = "MalformedPolicyDocumentException"


class PublicPolicyError(ClientError):
    aws_code = "PublicPolicyException"


class PreconditionNotMetError(ClientError):
    aws_code = "PreconditionNotMetException"


class AccessDeniedError(ClientError):
    http_status = 400
    aws_code = "AccessDeniedException"


class AuthenticationError(ClientError):
    """The caller could not be authenticated (bad, expired or forged credentials)."""

    http_status = 400
    aws_code = "UnrecognizedClientException"

    def __init__(self, message: str, *, aws_code: str | None = None) -> None:
        super().__init__(message)
        if aws_code is not None:
            self.aws_code = aws_code


class ConflictError(ClientError):
    """The object Kustos should write exists and belongs to someone else; never overwritten.

    Retried slowly: the owner may rename or delete their object.
    """

    aws_code = "ResourceExistsException"
    retryable = True
    retry_delay = 60.0


class SourceError(ClientError):
    """A ManagedSecret's value source cannot be used (other namespace, bad content). Retried
    slowly, since the user can fix it by creating or fixing the Secret."""

    retryable = True
    retry_delay = 30.0


class SourceNotFoundError(SourceError):
    """The Secret a value source (or a rotation's secretRef) names does not exist (yet)."""


class SourceNotAllowedError(SourceError):
    """The source Secret does not name this ManagedSecret in its opt-in annotation."""


class TemplateError(InvalidParameterError):
    """A template could not be rendered (syntax, missing key, refused operation, limits)."""


class ServerError(KustosError):
    """Something on Kustos's side failed; the same request may succeed later."""

    http_status = 500
    aws_code = "InternalServiceError"


class DecryptionFailure(ServerError):
    """Deliberately generic: says that decryption failed, never why in detail."""

    http_status = 400
    aws_code = "DecryptionFailure"
    retry_delay = 120.0


class EncryptionFailure(ServerError):
    http_status = 400
    aws_code = "EncryptionFailure"


class KeyringError(ServerError):
    retry_delay = 60.0


class StoreError(ServerError):
    pass


class FencedError(StoreError):
    """The operator replica lost (or never held) the leader Lease, or a newer leader has
    written already: the write is refused, nothing of it lands. Not retried by this
    replica; the leader does the work (kustos.kube.lease)."""

    retryable = False


class AuditUnavailableError(ServerError):
    http_status = 503
    aws_code = "InternalServiceError"
    retry_delay = 5.0
