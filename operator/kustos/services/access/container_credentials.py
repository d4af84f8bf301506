"""Issuing session credentials to pods (the container-credentials endpoint), audited.

`ContainerCredentials.issue` authenticates the Kubernetes token (`AccessService`: TokenReview,
revocation), issues session credentials that never outlive that token, and writes one audit
record naming who received them and for which pod (``IssueContainerCredentials``) *before*
they are handed out: if the record cannot be written, nothing is issued (fail closed). The
record holds the access key id and the expiry, never the secret access key or the token.
A refusal of an authenticated caller (e.g. a revoked principal) is audited too; a token
that does not authenticate at all is not (it names nobody, and would let a flood of junk
tokens write to the store).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kustos.errors import AuthenticationError
from kustos.models.audit import AuditEvent
from kustos.services.access.authorize import AccessService
from kustos.services.access.keys import SessionCredentials
from kustos.services.audit.service import AuditService

__all__ = ["EVENT_NAME", "ContainerCredentials"]

EVENT_NAME = "IssueContainerCredentials"


class ContainerCredentials:
    def __init__(
        self,
        access: AccessService,
        audit: AuditService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._access = access
        self._audit = audit
        self._clock = clock

    def issue(
        self,
        authorization: str,
        *,
        source_ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
    ) -> SessionCredentials:
        """Session credentials for the token in `authorization`, once audited."""
        extra: dict[str, Any] = {"request_id": request_id} if request_id else {}
        who, token = self._access.container_caller(authorization, source=source_ip)
        try:
            issued = self._access.session_for(who, token)
        except AuthenticationError as exc:
            self._audit.record(
                AuditEvent(
                    EVENT_NAME,
                    who,
                    namespace=who.namespace,
                    source_ip=source_ip,
                    user_agent=user_agent,
                    error_code=exc.aws_code,
                    error_message=exc.message,
                    request_parameters={"podName": who.pod_name},
                    **extra,
                )
            )
            raise
        lifetime = (issued.expiration - self._clock()).total_seconds()
        self._audit.record(
            AuditEvent(
                EVENT_NAME,
                who,
                namespace=who.namespace,
                source_ip=source_ip,
                user_agent=user_agent,
                request_parameters={"podName": who.pod_name},
                response_elements={
                    "accessKeyId": issued.access_key_id,
                    "expiration": issued.expiration,
                },
                additional={"lifetimeSeconds": max(0, int(lifetime))},
                **extra,
            )
        )
        return issued
