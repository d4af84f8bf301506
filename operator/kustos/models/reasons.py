"""Fixed reasons for status conditions and Kubernetes Events.

One vocabulary for both, so a condition and the Event that announced it always agree, and
tools can match on them. Never build a reason from data.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConditionType", "EventType", "Reason"]


class ConditionType(StrEnum):
    READY = "Ready"
    VALID = "Valid"
    ROTATION_FAILED = "RotationFailed"
    RESOURCE_POLICY_IN_FORCE = "ResourcePolicyInForce"
    SOURCE_OPTED_IN = "SourceOptedIn"
    TLS_VERIFIED = "TLSVerified"
    #: The projected Secret is watched (False: its namespace does not bind
    #: kustos-projection-watch, so edits are found only by the periodic drift pass).
    DRIFT_WATCHED = "DriftWatched"
    #: The last kustos.io/rollback request was refused: it would lock out AWSCURRENT's
    #: holders (alternating users); dropped when a later request is handled.
    ROLLBACK_REFUSED = "RollbackRefused"


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(StrEnum):
    # lifecycle
    CREATED = "Created"
    VERSION_ADDED = "VersionAdded"
    PROJECTED = "Projected"
    DRIFT_CORRECTED = "DriftCorrected"
    DRIFT_NOT_WATCHED = "DriftNotWatched"
    STAGE_MOVED = "StageMoved"
    RECONCILED = "Reconciled"
    RECONCILE_FAILED = "ReconcileFailed"
    # problems a user can fix
    INVALID_SPEC = "InvalidSpec"
    SOURCE_NOT_FOUND = "SourceNotFound"
    SOURCE_INVALID = "SourceInvalid"
    SOURCE_NOT_ALLOWED = "SourceNotAllowed"
    TARGET_CONFLICT = "TargetConflict"
    TEMPLATE_FAILED = "TemplateFailed"
    # consumers
    WORKLOAD_RESTARTED = "WorkloadRestarted"
    WORKLOAD_RESTART_FAILED = "WorkloadRestartFailed"
    SHARED = "Shared"
    SHARE_REMOVED = "ShareRemoved"
    SHARE_FAILED = "ShareFailed"
    NO_VALUE = "NoValue"
    # problems on Kustos's side
    DECRYPTION_FAILED = "DecryptionFailed"
    STORE_ERROR = "StoreError"
    KEYRING_ERROR = "KeyringError"
    # keys
    KEY_ROTATED = "KeyRotated"
    # rotation
    ROTATION_STARTED = "RotationStarted"
    ROTATION_STEP = "RotationStep"
    ROTATION_SUCCEEDED = "RotationSucceeded"
    ROTATION_FAILED = "RotationFailed"
    ROTATION_ABANDONED = "RotationAbandoned"
    AWAITING_ROLLOUT = "AwaitingRollout"
    CREDENTIALS_RETIRED = "CredentialsRetired"
    ROTATION_HELD = "RotationHeld"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_FAILED = "RollbackFailed"
    ROLLBACK_REFUSED = "RollbackRefused"
    ROLLBACK_FORCED = "RollbackForced"
    TLS_NOT_VERIFIED = "TLSNotVerified"
    # deletion
    DELETION_SCHEDULED = "DeletionScheduled"
    DELETION_CANCELLED = "DeletionCancelled"
    DELETED = "Deleted"
    RESTORED = "Restored"
    # access
    ACCESS_DENIED = "AccessDenied"
    ACCESSED = "Accessed"
    POLICY_CHANGED = "PolicyChanged"
    RESOURCE_POLICY_REJECTED = "ResourcePolicyRejected"
