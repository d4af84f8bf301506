"""The record of an access key that Kustos issued: who it belongs to, and its sealed secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kustos.models.records import SealedPayload

__all__ = ["ACTIVE", "INACTIVE", "AccessKeyRecord"]

ACTIVE = "Active"
INACTIVE = "Inactive"


@dataclass(frozen=True)
class AccessKeyRecord:
    """A long-term access key bound to one ServiceAccount.

    `sealed` holds the secret access key, envelope-encrypted and bound (as associated data)
    to the access key id, so a row copied under another id does not open.
    """

    access_key_id: str
    namespace: str
    service_account: str
    created_at: datetime
    sealed: SealedPayload
    status: str = ACTIVE
