"""The audit record: one CloudTrail-shaped event per API call or lifecycle action.

Never holds secret values: `request_parameters` and `response_elements` are built by the
callers from names, ids, stages and flags only (SecretString/SecretBinary are never copied).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kustos.models.identity import Principal
from kustos.models.ids import random_uuid

__all__ = ["AuditEvent"]

EVENT_SOURCE = "secretsmanager.kustos.io"


@dataclass(frozen=True)
class AuditEvent:
    event_name: str  # e.g. GetSecretValue, RotationSucceeded, DriftCorrected
    principal: Principal
    #: "AwsApiCall" for API requests, "AwsServiceEvent" for lifecycle actions by Kustos.
    event_type: str = "AwsApiCall"
    read_only: bool = False
    namespace: str = ""  # the secret's namespace ("recipientAccountId")
    secret_arn: str | None = None
    secret_name: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str = field(default_factory=random_uuid)
    event_id: str = field(default_factory=random_uuid)
    event_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    additional: dict[str, Any] = field(default_factory=dict)

    @property
    def denied(self) -> bool:
        return self.error_code == "AccessDeniedException"
