"""One Secrets Manager API call in progress: who calls, authorization, and its audit record.

Owns the audit rule of the API: every call produces one `AuditEvent` before its answer is
sent, and it is written *before* the call changes anything or hands out a value (the
operation calls `commit_point()` right before its first durable write or before returning a
value). If the record cannot be written, the call fails with InternalServiceError and
nothing was changed or revealed (fail closed). A call that fails after its commit point gets
a second, best-effort record with the error. Denied calls are audited here like any failed
call (error code AccessDeniedException); the authorizer posts the AccessDenied Event.

Request parameters in audit records never hold values: SecretString, SecretBinary and
passwords are dropped by `safe_parameters`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from kustos.errors import AuditUnavailableError, InvalidRequestError
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.models.nonblocking import defer_audit
from kustos.models.records import SecretRecord
from kustos.services.audit.reads import ReadEvents
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.store.base import Store
from kustos.store.rotations import RotationStore

__all__ = [
    "ANONYMOUS",
    "AuditQueue",
    "AuditSink",
    "Authorizer",
    "Call",
    "CallMeta",
    "Deps",
    "safe_parameters",
]

log = logging.getLogger(__name__)

#: The principal of a request that could not be authenticated (for its audit record).
ANONYMOUS = Principal(arn="anonymous", username="anonymous", kind="Anonymous")
_VALUE_KEYS = frozenset({"SecretString", "SecretBinary", "RandomPassword"})
_READ_ONLY = frozenset(
    {
        "GetSecretValue",
        "BatchGetSecretValue",
        "DescribeSecret",
        "ListSecrets",
        "ListSecretVersionIds",
        "GetResourcePolicy",
        "ValidateResourcePolicy",
        "GetRandomPassword",
    }
)


class Authorizer(Protocol):
    def authorize(
        self,
        principal: Principal,
        action: str,
        record: SecretRecord | None,
        context: dict[str, Any],
    ) -> object:
        """Raise AccessDeniedError unless `principal` may do `action` on `record`.

        `context` holds the request's condition keys (aws:SourceIp, secretsmanager:Name,
        secretsmanager:VersionStage, ...) plus `kustos:Namespace`, the namespace the action
        targets. `record` is None for actions on no secret (ListSecrets, GetRandomPassword);
        for CreateSecret and for a SecretId that names no secret it is a provisional record
        (the ARN to be created, or the ARN without its suffix; `object_name` None).""
        """


class AuditSink(Protocol):
    def record(self, event: AuditEvent) -> None:
        """Make `event` durable; AuditUnavailableError when it cannot."""


@runtime_checkable
class AuditQueue(AuditSink, Protocol):
    """An audit sink that can also take records without waiting for their commit (for
    calls answered on an event loop; `kustos.services.audit.service.AuditService`)."""

    @property
    def first_wait_seconds(self) -> float: ...

    def submit(self, events: Sequence[AuditEvent], on_done: Callable[[], None]) -> Any: ...

    def keep_waiting(self, ticket: Any) -> bool: ...

    def settled(self, ticket: Any) -> bool: ...

    def settle(self, ticket: Any) -> None: ...


@dataclass(frozen=True)
class CallMeta:
    """What the adapter knows about the request besides its parameters."""

    request_id: str
    source_ip: str | None = None
    user_agent: str | None = None
    secure: bool = True


def safe_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Request parameters fit for an audit record: values and binary blobs removed."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in _VALUE_KEYS:
            continue
        if isinstance(value, bytes):
            continue
        out[key] = value
    return out


@dataclass
class Call:
    operation: str
    params: dict[str, Any]
    principal: Principal
    meta: CallMeta
    authorizer: Authorizer
    audit: AuditSink
    secret_arn: str | None = None
    secret_name: str | None = None
    namespace: str = ""
    response_elements: dict[str, Any] | None = None
    audited: bool = False

    # -- who -----------------------------------------------------------------------------
    def caller_namespace(self) -> str:
        """The namespace a bare secret name refers to: the caller's own."""
        if not self.principal.namespace:
            raise InvalidRequestError(
                f"caller {self.principal.username} belongs to no namespace: name secrets by "
                "their full ARN"
            )
        return self.principal.namespace

    def about(self, record: SecretRecord) -> None:
        self.secret_arn, self.secret_name, self.namespace = (
            record.arn,
            record.name,
            record.namespace,
        )

    # -- authorization -------------------------------------------------------------------
    def context(self, namespace: str, keys: Mapping[str, Any] | None = None) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "aws:SecureTransport": self.meta.secure,
            "kustos:Namespace": namespace,
        }
        if self.meta.source_ip:
            ctx["aws:SourceIp"] = self.meta.source_ip
        if self.meta.user_agent:
            ctx["aws:UserAgent"] = self.meta.user_agent
        ctx.update({k: v for k, v in (keys or {}).items() if v is not None})
        return ctx

    def authorize(
        self,
        action: str,
        record: SecretRecord | None,
        namespace: str,
        keys: Mapping[str, Any] | None = None,
    ) -> None:
        """Authorize `secretsmanager:<action>` with the given condition keys."""
        merged = dict(keys or {})
        if record is not None:
            merged.setdefault("secretsmanager:Name", record.name)
            merged.setdefault("secretsmanager:SecretId", record.arn)
        self.authorizer.authorize(
            self.principal, f"secretsmanager:{action}", record, self.context(namespace, merged)
        )

    @property
    def read_only(self) -> bool:
        """Whether the operation only reads (its record's readOnly; it may pin its reads)."""
        return self.operation in _READ_ONLY

    # -- audit ---------------------------------------------------------------------------
    def event(self, error: Exception | None = None) -> AuditEvent:
        code = getattr(error, "aws_code", None) if error is not None else None
        message = getattr(error, "message", None) if error is not None else None
        return AuditEvent(
            event_name=self.operation,
            principal=self.principal,
            read_only=self.read_only,
            namespace=self.namespace,
            secret_arn=self.secret_arn,
            secret_name=self.secret_name,
            source_ip=self.meta.source_ip,
            user_agent=self.meta.user_agent,
            request_id=self.meta.request_id,
            request_parameters=safe_parameters(self.params),
            response_elements=None if error else self.response_elements,
            error_code=code if error is not None else None,
            error_message=message if error is not None else None,
        )

    def commit_point(self, **response_elements: Any) -> None:
        """Write the audit record of a successful call; must precede changes and values."""
        if self.audited:
            return
        if response_elements:
            self.response_elements = {**(self.response_elements or {}), **response_elements}
        self._record(self.event())
        self.audited = True

    def failed(self, error: Exception) -> None:
        """Audit a failed call (if a commit point already recorded it as successful, a
        best-effort second record says that the change did not complete). A call that
        failed because its audit record could not be written is not retried here: the
        audit log just refused it (or is down), and waiting again only delays the answer."""
        if isinstance(error, AuditUnavailableError) and not self.audited:
            self.audited = True
            return
        if not self.audited:
            self._record(self.event(error))
            self.audited = True
            return
        event = self.event(error)
        if defer_audit(event):
            return
        try:
            self.audit.record(event)
        except Exception:  # best effort: the call has failed anyway
            log.error("could not audit the failure of %s %s", self.operation, self.meta.request_id)

    def _record(self, event: AuditEvent) -> None:
        if defer_audit(event):  # on the event loop: the adapter commits it before answering
            return
        try:
            self.audit.record(event)
        except AuditUnavailableError:
            raise
        except Exception as exc:
            log.error("audit failed for %s: %s", self.operation, type(exc).__name__)
            raise AuditUnavailableError("the audit record could not be written") from None


@dataclass
class Deps:
    """What the operations use: the secret service (store + sealing), the ManagedSecret and
    Secret gateways, the deletion lifecycle, and settings. Built once by `SecretsApi`."""

    secrets: SecretService
    objects: ManagedObjectGateway
    projected: SecretGateway
    cluster: str
    #: The one DeletionService (the same as `kubectl delete ms` uses: Events, audit records
    #: and notifications for DeletionScheduled / Restored).
    deletion: DeletionService
    #: Counts successful reads for the aggregated `Accessed` Events (None: no Events).
    reads: ReadEvents | None = None
    #: The rotation rows, for DescribeSecret's `KustosRotation` (None: not shown).
    rotations: RotationStore | None = None

    @property
    def store(self) -> Store:
        return self.secrets.store
