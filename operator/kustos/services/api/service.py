"""The Secrets Manager API as a use case: one entry point per call, for any adapter.

`SecretsApi.call(operation, params, principal, meta)` runs one operation with parameters
already validated against the service model (the HTTP adapter does that), under the
authorization and audit rules of `kustos.services.api.call`. The operations live in
`write` (values, metadata, tags, labels), `read` (values and listings),
`lifecycle` (delete, restore), `rotation` (rotate, cancel) and `policy`
(resource policies, passwords).
`reject` audits a request that failed before reaching an operation (authentication,
protocol errors). Unauthenticated refusals are bounded per source address
(`kustos.services.access.refusals`): past the budget they are counted, and each source's count
is written as one ``UnauthenticatedRequests`` record per window (`flush_refusals`).

Unexpected exceptions become a generic InternalServiceError: their messages, which might
quote input, are neither returned nor logged (only their type and traceback lines are).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from kustos.errors import AuditUnavailableError, KustosError, ServerError
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.models.nonblocking import must_not_block
from kustos.services.access.refusals import OTHER_SOURCES, RefusalBudget, Suppressed
from kustos.services.api import lifecycle, policy, read, rotation, write
from kustos.services.api.call import (
    ANONYMOUS,
    AuditQueue,
    AuditSink,
    Authorizer,
    Call,
    CallMeta,
    Deps,
)
from kustos.services.audit.reads import ReadEvents
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.store.rotations import RotationStore

__all__ = ["NONBLOCKING", "OPERATIONS", "SecretsApi"]

log = logging.getLogger(__name__)

Operation = Callable[[Deps, Call, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Operation] = {
    "CreateSecret": write.create_secret,
    "PutSecretValue": write.put_secret_value,
    "UpdateSecret": write.update_secret,
    "UpdateSecretVersionStage": write.update_secret_version_stage,
    "TagResource": write.tag_resource,
    "UntagResource": write.untag_resource,
    "GetSecretValue": read.get_secret_value,
    "BatchGetSecretValue": read.batch_get_secret_value,
    "DescribeSecret": read.describe_secret,
    "ListSecrets": read.list_secrets,
    "ListSecretVersionIds": read.list_secret_version_ids,
    "DeleteSecret": lifecycle.delete_secret,
    "RestoreSecret": lifecycle.restore_secret,
    "RotateSecret": rotation.rotate_secret,
    "CancelRotateSecret": rotation.cancel_rotate_secret,
    "PutResourcePolicy": policy.put_resource_policy,
    "GetResourcePolicy": policy.get_resource_policy,
    "DeleteResourcePolicy": policy.delete_resource_policy,
    "ValidateResourcePolicy": policy.validate_resource_policy_op,
    "GetRandomPassword": policy.get_random_password,
}


#: Read-only operations an adapter may attempt without blocking (`kustos.models.nonblocking`):
#: from warm caches they need no store transaction, no Kubernetes request and no wait.
NONBLOCKING = frozenset({"GetSecretValue", "BatchGetSecretValue", "DescribeSecret"})


class SecretsApi:
    def __init__(
        self,
        secrets: SecretService,
        objects: ManagedObjectGateway,
        projected: SecretGateway,
        authorizer: Authorizer,
        audit: AuditSink,
        deletion: DeletionService,
        reads: ReadEvents | None = None,
        refusals: RefusalBudget | None = None,
        rotations: RotationStore | None = None,
    ) -> None:
        self._deps = Deps(secrets, objects, projected, secrets.cluster, deletion, reads, rotations)
        self._authorizer = authorizer
        self._audit = audit
        self._refusals = refusals if refusals is not None else RefusalBudget()

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(OPERATIONS)

    @property
    def audit_queue(self) -> AuditQueue | None:
        """The audit sink, if it takes records without waiting (then the adapter may
        attempt `NONBLOCKING` operations on its event loop and commit their records)."""
        return self._audit if isinstance(self._audit, AuditQueue) else None

    def call(
        self, operation: str, params: dict[str, Any], principal: Principal, meta: CallMeta
    ) -> dict[str, Any]:
        """Run `operation`; KustosError (with its AWS code) on failure, after auditing."""
        call = Call(operation, params, principal, meta, self._authorizer, self._audit)
        try:
            handler = OPERATIONS[operation]
            # A read-only call's lookups (the secret, then its version) share one check of
            # the store's read epoch, taken as the call starts (kustos.store.read_cache).
            with self._deps.secrets.store.pinned_reads() if call.read_only else nullcontext():
                result = handler(self._deps, call, params)
            call.commit_point()
            return result
        except KustosError as exc:
            call.failed(exc)
            raise
        except Exception as exc:
            log.error(
                "internal error in %s (request %s): %s\n%s",
                operation,
                meta.request_id,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            error = ServerError("An internal error occurred; the request can be retried.")
            call.failed(error)
            raise error from None

    def reject(
        self,
        operation: str,
        error: KustosError,
        meta: CallMeta,
        principal: Principal | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Audit a request refused before any operation ran (AuditUnavailableError if the
        record cannot be written). Unauthenticated ones past their source's budget are
        only counted, for an aggregate record."""
        if principal is None:
            must_not_block("counting unauthenticated refusals")  # may write an aggregate
            admitted = self._refusals.admit(meta.source_ip or "unknown", error.aws_code)
            self.flush_refusals()
            if not admitted:
                return
        call = Call(
            operation or "Unknown",
            dict(params or {}),
            principal or ANONYMOUS,
            meta,
            self._authorizer,
            self._audit,
        )
        call.failed(error)

    def flush_refusals(self, *, everything: bool = False) -> None:
        """Write one record per source whose window of suppressed refusals ended (all of
        them when `everything`, at shutdown); counts that cannot be written are logged."""
        tallies = self._refusals.drain() if everything else self._refusals.due()
        for tally in tallies:
            try:
                self._audit.record(_aggregate(tally))
            except AuditUnavailableError as exc:
                log.error(
                    "audit: %d refused requests from %s not recorded: %s",
                    tally.count,
                    tally.source,
                    exc.message,
                )


def _aggregate(tally: Suppressed) -> AuditEvent:
    source = None if tally.source == OTHER_SOURCES else tally.source
    code = max(tally.codes, key=lambda c: tally.codes[c])
    return AuditEvent(
        event_name="UnauthenticatedRequests",
        principal=ANONYMOUS,
        read_only=False,
        namespace="",
        source_ip=source,
        error_code=code,
        error_message=(
            f"{tally.count} more unauthenticated requests from "
            f"{tally.source} refused (over the per-source audit budget)"
        ),
        event_time=tally.window_end,
        additional={
            "aggregated": True,
            "count": tally.count,
            "errorCodes": tally.codes,
            "windowStart": tally.window_start,
            "windowEnd": tally.window_end,
        },
    )
