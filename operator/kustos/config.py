"""Runtime settings, read once from the environment (12-factor); no I/O beyond `os.environ`.

The one module of the package that reads the environment (tests/unit/test_settings_rule.py
holds every other module to it): the operator, the API server and the CLI read `Settings`
once, where they start, and pass it down; the client library and the CLI's option defaults
read the client's standard variables through `client_environment()`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

__all__ = ["AuditSettings", "ClientEnvironment", "Settings", "client_environment"]


@dataclass(frozen=True)
class AuditSettings:
    """The audit log's settings (`kustos.services.audit.service`)."""

    #: How long record() waits for its commit before failing closed.
    commit_timeout: float = 10.0
    #: A commit running (or waiting for the store's lock) longer than this means the store
    #: stopped answering; how often a down store is probed.
    stall_seconds: float = 3.0
    probe_seconds: float = 0.5
    max_batch: int = 2000
    #: A digest is signed when this much time passed or this many records were added.
    digest_seconds: float = 300.0
    digest_records: int = 50_000
    #: Records older than this are pruned (None: keep forever).
    retention: timedelta | None = None
    #: The chain's anchor: the AuditAnchor object's name (in the operator's namespace), how
    #: often the head is published, and the optional witnesses (a file, a webhook URL).
    anchor_name: str = "kustos-audit"
    anchor_seconds: float = 5.0
    anchor_file: str | None = None
    anchor_webhook: str | None = None
    #: The audit hub's socket (`kustos.services.audit.hub`): set for the API processes
    #: that commit through another process's group commit (`kustos api --audit-hub`).
    hub: str | None = None

    @classmethod
    def from_env(cls) -> AuditSettings:
        env = os.environ
        days = env.get("KUSTOS_AUDIT_RETENTION_DAYS")
        return cls(
            digest_seconds=float(env.get("KUSTOS_AUDIT_DIGEST_SECONDS", cls.digest_seconds)),
            digest_records=int(env.get("KUSTOS_AUDIT_DIGEST_RECORDS", cls.digest_records)),
            retention=timedelta(days=float(days)) if days else None,
            stall_seconds=float(env.get("KUSTOS_AUDIT_STALL_SECONDS", cls.stall_seconds)),
            anchor_name=env.get("KUSTOS_AUDIT_ANCHOR", cls.anchor_name),
            anchor_seconds=float(env.get("KUSTOS_AUDIT_ANCHOR_SECONDS", cls.anchor_seconds)),
            anchor_file=env.get("KUSTOS_AUDIT_ANCHOR_FILE") or None,
            anchor_webhook=env.get("KUSTOS_AUDIT_ANCHOR_WEBHOOK") or None,
        )


@dataclass(frozen=True)
class Settings:
    #: SQLAlchemy URL of the store: sqlite:///path (embedded) or postgresql+psycopg://...
    store_url: str = "sqlite:///kustos.db"
    #: Namespace Kustos runs in; its keyring Secret lives there.
    namespace: str = "kustos-system"
    keyring_secret: str = "kustos-keyring"
    #: The "region" part of ARNs.
    cluster_name: str = "local"
    #: Seconds between the periodic safety-net passes over every ManagedSecret (store state,
    #: source Secrets, due purges). Changes reach the operator at once without it (watch and
    #: change feed); the pass trusts the status for the projected Secret (no read).
    resync_seconds: float = 30.0
    #: Seconds between the passes that compare each projected Secret with what it should
    #: hold and restore it if edited: against the watched cache where a namespace grants
    #: the watch (`kustos-projection-watch`), else read by name (docs/security.md).
    drift_check_seconds: float = 300.0
    #: Watch the projected Secrets (label-selected, per namespace with ManagedSecrets, where
    #: a RoleBinding grants it): an edit or deletion is restored at once, and the drift
    #: pass reads no Secret. Off: every drift pass reads each one by name.
    secret_watch: bool = True
    #: Seconds between the paged LISTs that find objects deleted while the operator was down.
    orphan_sweep_seconds: float = 300.0
    #: Seconds between looks at the store's change feed (values written by any replica).
    feed_poll_seconds: float = 0.1
    #: Worker threads of the per-object queue (objects handled at once).
    workers: int = 16
    metrics_port: int = 9090
    #: Window over which successful reads are folded into one `Accessed` Event.
    read_events_seconds: float = 60.0
    kubeconfig: str | None = None
    #: Rotation: the longest time between looks at an object with rotation work (due times
    #: and backoffs are timers of their own); concurrency
    #: limits (all rotations, rotations against one database host); failure backoff
    #: (first delay, doubling up to the maximum).
    rotation_tick_seconds: float = 10.0
    rotation_max_concurrent: int = 8
    rotation_max_per_host: int = 2
    rotation_backoff_seconds: float = 30.0
    rotation_backoff_max_seconds: float = 3600.0
    #: After a rotation held (consumers did not roll out), no scheduled rotation for this long.
    rotation_hold_seconds: float = 3600.0
    #: spec.target.template: wall-clock seconds one render may take, and the address space
    #: of the sandboxed renderer process (MiB).
    template_timeout_seconds: float = 2.0
    template_memory_mib: int = 512
    #: Restarts of consuming workloads: the window that folds changes of several Secrets
    #: into one restart, and the cluster-wide limit of restarts per minute.
    rollout_debounce_seconds: float = 10.0
    rollout_max_per_minute: int = 10
    #: Seconds between verifications of the whole audit log by the operator leader (the
    #: `kustos_audit_verify_ok` metric and its alert; 0: never). `kustos audit verify` too.
    audit_verify_seconds: float = 3600.0
    #: Leader election of operator replicas on the Lease `lease_name` in `namespace`
    #: (kustos.kube.lease): off only for a single replica that needs no Lease rights.
    #: Timings in seconds: the claim's length, the leader's renew deadline, the retry.
    leader_election: bool = True
    lease_name: str = "kustos-operator"
    lease_seconds: float = 6.0
    lease_renew_deadline_seconds: float = 4.0
    lease_retry_seconds: float = 1.0
    #: The Secrets Manager API served inside the operator: port (0: not served), address,
    #: plain HTTP (tests only), the serving certificate's Secret, processes sharing the port;
    #: extra names for a generated certificate; seconds between looks at the TLS Secret.
    api_port: int = 8443
    api_host: str = "0.0.0.0"  # noqa: S104 (a pod's service)
    api_insecure: bool = False
    api_tls_secret: str = "kustos-api-tls"
    api_processes: int = 1
    api_hosts: tuple[str, ...] = ()
    api_tls_check_seconds: float = 300.0
    #: On SIGTERM the API answers not-ready and keeps serving this long before it stops.
    api_drain_seconds: float = 5.0
    #: Pod credentials: the sidecar image the webhook injects (None: kustos:<version>) and
    #: the MutatingWebhookConfiguration whose caBundle Kustos keeps ("": none).
    injector_image: str | None = None
    injector_webhook: str = "kustos-pod-credentials"
    #: Per-secret gauges (secret names as metric labels); off by default.
    metrics_per_secret: bool = False
    audit: AuditSettings = field(default_factory=AuditSettings)
    #: Who gets audit records by webhook (a YAML list; see services/audit/notify.py).
    notifications_file: str | None = None
    #: The process environment as read, for values the configuration names indirectly (a
    #: notification subscriber's `secretHeader.env`); never printed.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            store_url=env.get("KUSTOS_STORE_URL", cls.store_url),
            namespace=env.get("KUSTOS_NAMESPACE", cls.namespace),
            keyring_secret=env.get("KUSTOS_KEYRING_SECRET", cls.keyring_secret),
            cluster_name=env.get("KUSTOS_CLUSTER_NAME", cls.cluster_name),
            resync_seconds=float(env.get("KUSTOS_RESYNC_SECONDS", cls.resync_seconds)),
            drift_check_seconds=float(
                env.get("KUSTOS_DRIFT_CHECK_SECONDS", cls.drift_check_seconds)
            ),
            orphan_sweep_seconds=float(
                env.get("KUSTOS_ORPHAN_SWEEP_SECONDS", cls.orphan_sweep_seconds)
            ),
            feed_poll_seconds=float(env.get("KUSTOS_FEED_POLL_SECONDS", cls.feed_poll_seconds)),
            workers=int(env.get("KUSTOS_WORKERS", cls.workers)),
            secret_watch=env.get("KUSTOS_SECRET_WATCH", "1") != "0",
            metrics_port=int(env.get("KUSTOS_METRICS_PORT", cls.metrics_port)),
            read_events_seconds=float(
                env.get("KUSTOS_READ_EVENTS_SECONDS", cls.read_events_seconds)
            ),
            kubeconfig=env.get("KUBECONFIG") or None,
            rotation_tick_seconds=float(
                env.get("KUSTOS_ROTATION_TICK_SECONDS", cls.rotation_tick_seconds)
            ),
            rotation_max_concurrent=int(
                env.get("KUSTOS_ROTATION_MAX_CONCURRENT", cls.rotation_max_concurrent)
            ),
            rotation_max_per_host=int(
                env.get("KUSTOS_ROTATION_MAX_PER_HOST", cls.rotation_max_per_host)
            ),
            rotation_backoff_seconds=float(
                env.get("KUSTOS_ROTATION_BACKOFF_SECONDS", cls.rotation_backoff_seconds)
            ),
            rotation_backoff_max_seconds=float(
                env.get("KUSTOS_ROTATION_BACKOFF_MAX_SECONDS", cls.rotation_backoff_max_seconds)
            ),
            rotation_hold_seconds=float(
                env.get("KUSTOS_ROTATION_HOLD_SECONDS", cls.rotation_hold_seconds)
            ),
            template_timeout_seconds=float(
                env.get("KUSTOS_TEMPLATE_TIMEOUT_SECONDS", cls.template_timeout_seconds)
            ),
            template_memory_mib=int(env.get("KUSTOS_TEMPLATE_MEMORY_MIB", cls.template_memory_mib)),
            rollout_debounce_seconds=float(
                env.get("KUSTOS_ROLLOUT_DEBOUNCE_SECONDS", cls.rollout_debounce_seconds)
            ),
            rollout_max_per_minute=int(
                env.get("KUSTOS_ROLLOUT_MAX_PER_MINUTE", cls.rollout_max_per_minute)
            ),
            audit_verify_seconds=float(
                env.get("KUSTOS_AUDIT_VERIFY_SECONDS", cls.audit_verify_seconds)
            ),
            leader_election=env.get("KUSTOS_LEADER_ELECTION", "1") != "0",
            lease_name=env.get("KUSTOS_LEASE_NAME", cls.lease_name),
            lease_seconds=float(env.get("KUSTOS_LEASE_SECONDS", cls.lease_seconds)),
            lease_renew_deadline_seconds=float(
                env.get("KUSTOS_LEASE_RENEW_DEADLINE_SECONDS", cls.lease_renew_deadline_seconds)
            ),
            lease_retry_seconds=float(
                env.get("KUSTOS_LEASE_RETRY_SECONDS", cls.lease_retry_seconds)
            ),
            api_port=int(env.get("KUSTOS_API_PORT", cls.api_port)),
            api_host=env.get("KUSTOS_API_HOST", cls.api_host),
            api_insecure=env.get("KUSTOS_API_INSECURE", "") == "1",
            api_tls_secret=env.get("KUSTOS_API_TLS_SECRET", cls.api_tls_secret),
            api_processes=max(1, int(env.get("KUSTOS_API_PROCESSES", cls.api_processes))),
            api_hosts=tuple(
                h.strip() for h in env.get("KUSTOS_API_HOSTS", "").split(",") if h.strip()
            ),
            api_tls_check_seconds=float(
                env.get("KUSTOS_API_TLS_CHECK_SECONDS", cls.api_tls_check_seconds)
            ),
            api_drain_seconds=float(env.get("KUSTOS_API_DRAIN_SECONDS", cls.api_drain_seconds)),
            injector_image=env.get("KUSTOS_INJECTOR_IMAGE") or None,
            injector_webhook=env.get("KUSTOS_INJECTOR_WEBHOOK", cls.injector_webhook),
            metrics_per_secret=env.get("KUSTOS_METRICS_PER_SECRET") == "1",
            audit=AuditSettings.from_env(),
            notifications_file=env.get("KUSTOS_NOTIFICATIONS_FILE") or None,
            environ=MappingProxyType(dict(env)),
        )


@dataclass(frozen=True)
class ClientEnvironment:
    """The client's standard variables: where the API is, which CA verifies it, the token
    file that authenticates, the CLI's output format, the region (AWS_REGION), and the PEM
    CA the pod-credentials sidecar trusts the API with."""

    endpoint: str | None = None
    ca_bundle: str | None = None
    token_file: str | None = None
    output: str | None = None
    region: str | None = None
    api_ca: str | None = None


def client_environment() -> ClientEnvironment:
    """$KUSTOS_ENDPOINT, $KUSTOS_CA_BUNDLE, $KUSTOS_TOKEN_FILE, $KUSTOS_OUTPUT, $AWS_REGION,
    $KUSTOS_API_CA (empty counts as unset), read when a client or a CLI default needs them."""
    env = os.environ
    return ClientEnvironment(
        endpoint=env.get("KUSTOS_ENDPOINT") or None,
        ca_bundle=env.get("KUSTOS_CA_BUNDLE") or None,
        token_file=env.get("KUSTOS_TOKEN_FILE") or None,
        output=env.get("KUSTOS_OUTPUT") or None,
        region=env.get("AWS_REGION") or None,
        api_ca=env.get("KUSTOS_API_CA") or None,
    )
