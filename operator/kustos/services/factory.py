"""Builds the services from settings, wiring store, keyring, cluster gateways and events."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

from kubernetes import client

from kustos.config import Settings
from kustos.kube.audit_anchor import AnchorGateway
from kustos.kube.client import api_client
from kustos.kube.events import EventRecorder, EventSink
from kustos.kube.keyring_secret import KeyringSecret
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.namespaces import NamespaceGateway
from kustos.kube.secret_watch import SecretWatch, WatchedSecretGateway
from kustos.kube.secrets import SecretGateway
from kustos.kube.workloads import WorkloadGateway
from kustos.models.records import SecretRecord
from kustos.rotation.engine import RotationEngine, StepHook
from kustos.services.access.authorize import AccessService, build_access_service
from kustos.services.api.service import SecretsApi
from kustos.services.audit.anchor import AnchorPublisher, FileWitness, WebhookWitness, Witness
from kustos.services.audit.hub import HubAppender
from kustos.services.audit.notify import Notifier, load_subscribers
from kustos.services.audit.reads import ReadEvents
from kustos.services.audit.service import AuditService
from kustos.services.audit.sink import AuditingEventSink
from kustos.services.consumers.rollouts import RolloutCoordinator, RolloutLimits
from kustos.services.consumers.sharing import SharingService
from kustos.services.consumers.templates import TemplateLimits, TemplateRenderer
from kustos.services.controller.projection import Projection, ProjectionService
from kustos.services.controller.reconcile import ManagedSecretService
from kustos.services.controller.sources import SourceService
from kustos.services.core.deletion import DeletionService
from kustos.services.core.keys import KeyService, SealedItem
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.service import RotationService
from kustos.services.rotation.support import RotationLimits
from kustos.store import open_store
from kustos.store.access_keys import AccessKeyStore
from kustos.store.base import Store

__all__ = ["Services"]


@dataclass
class Services:
    settings: Settings
    api: client.ApiClient
    store: Store
    keys: KeyService
    secrets: SecretService
    managed: ManagedSecretService
    events: EventRecorder
    managed_objects: ManagedObjectGateway
    audit: AuditService
    notifier: Notifier | None = None
    #: Watches each rotation step (the crash-safety tests inject one); None in production.
    step_hook: StepHook | None = None
    #: Restarts of consuming workloads (the projection's; awaitRollout asks it again).
    rollouts: RolloutCoordinator | None = None
    #: The watched cache of projected Secrets the projection reads (the operator runtime
    #: starts it and names the namespaces); None: `secret_watch` is off.
    secret_watch: SecretWatch | None = None

    @classmethod
    def build(cls, settings: Settings, *, step_hook: StepHook | None = None) -> Services:
        api = api_client(settings.kubeconfig)
        store = open_store(settings.store_url)
        keyring_secret = KeyringSecret(api, settings.namespace, settings.keyring_secret)
        keys = KeyService(store, keyring_secret, usage=store.key_usage.counts)
        keys.add_sealed_source(_access_key_payloads(store.access_keys))
        secrets = SecretService(store, keys.keyring, settings.cluster_name, reload=keys.reload)
        gateway = SecretGateway(api)
        events = EventRecorder(api)
        audit, notifier = build_audit(settings, store, keys, api)
        lifecycle = AuditingEventSink(events, audit, _object_resolver(store))
        watch = SecretWatch(api) if settings.secret_watch else None
        projected = WatchedSecretGateway(api, watch) if watch is not None else gateway
        projection, rollouts = _projection(settings, api, projected, lifecycle)
        managed = ManagedSecretService(
            secrets,
            SourceService(gateway),
            projection,
            lifecycle,
            sharing=SharingService(gateway, NamespaceGateway(api)),
            unwatched=watch.refused if watch is not None else None,
        )
        return cls(
            settings,
            api,
            store,
            keys,
            secrets,
            managed,
            events,
            ManagedObjectGateway(api),
            audit=audit,
            notifier=notifier,
            step_hook=step_hook,
            rollouts=rollouts,
            secret_watch=watch,
        )

    @cached_property
    def access(self) -> AccessService:
        """Authentication and authorization of API callers (built on first use)."""
        return build_access_service(
            self.api, self.store, self.keys.keyring, self.events, self.settings.cluster_name
        )

    @cached_property
    def deletion(self) -> DeletionService:
        """Scheduled deletion, restore and purge (API and `kubectl delete ms`)."""
        events = AuditingEventSink(self.events, self.audit, _object_resolver(self.store))
        return DeletionService(self.secrets, self.managed_objects, SecretGateway(self.api), events)

    @cached_property
    def secrets_api(self) -> SecretsApi:
        """The Secrets Manager operations, authorized by `access`, audited by `audit`."""
        api = SecretsApi(
            self.secrets,
            self.managed_objects,
            SecretGateway(self.api),
            self.access,
            self.audit,
            self.deletion,
            self.reads,
            rotations=self.store.rotations,
        )
        self.audit.add_flusher(lambda final: api.flush_refusals(everything=final))
        return api

    @cached_property
    def reads(self) -> ReadEvents:
        """Aggregated `Accessed` Events for successful reads (one per secret and caller)."""
        return ReadEvents(
            self.events, _uid_of(self.managed_objects), self.settings.read_events_seconds
        )

    @cached_property
    def rotation(self) -> RotationService:
        """Rotation (engine, limits, Events that are also audit records), built on first use."""
        return build_rotation(self)

    def close(self) -> None:
        if "reads" in self.__dict__:
            self.reads.close()  # posts the last window's reads before the audit log closes
        self.audit.close()
        if self.notifier is not None:
            self.notifier.close()
        if "access" in self.__dict__:
            self.access.close()
        self.store.close()
        self.api.close()


def build_audit(
    settings: Settings, store: Store, keys: KeyService, api: client.ApiClient
) -> tuple[AuditService, Notifier | None]:
    """The audit log on the store's database, anchored in an AuditAnchor object (plus the
    configured witnesses), with webhook notifications if configured."""
    audit_settings = settings.audit
    audit_store = store.audit
    witnesses: list[Witness] = []
    if audit_settings.anchor_file:
        witnesses.append(FileWitness(audit_settings.anchor_file))
    if audit_settings.anchor_webhook:
        witnesses.append(WebhookWitness(audit_settings.anchor_webhook))
    anchor = AnchorPublisher(
        audit_store,
        AnchorGateway(api, settings.namespace, audit_settings.anchor_name),
        writer=socket.gethostname(),
        witnesses=witnesses,
    )
    # An API process that commits through another's hub notifies nothing: the hub does.
    appender = HubAppender(Path(audit_settings.hub)) if audit_settings.hub else None
    audit = AuditService(
        audit_store, settings.cluster_name, keys.keyring, audit_settings, anchor, appender
    )
    notifier = (
        Notifier(load_subscribers(settings.notifications_file, settings.environ))
        if settings.notifications_file and appender is None
        else None
    )
    if notifier is not None:
        audit.add_listener(notifier.offer)
    return audit, notifier


def build_rotation(services: Services) -> RotationService:
    store, settings = services.store, services.settings
    base, cap = settings.rotation_backoff_seconds, settings.rotation_backoff_max_seconds
    engine = RotationEngine(
        store.rotations,
        clock=services.secrets.clock,
        backoff=lambda attempt, _error: min(cap, base * 2 ** max(0, attempt - 1)),
        hook=services.step_hook,
    )
    limits = RotationLimits(settings.rotation_max_concurrent, settings.rotation_max_per_host)
    events = AuditingEventSink(services.events, services.audit, _object_resolver(store))
    return RotationService(
        services.secrets,
        store.rotations,
        SecretGateway(services.api),
        events,
        engine,
        limits,
        workloads=WorkloadGateway(services.api),
        hold_seconds=settings.rotation_hold_seconds,
        restart=services.rollouts.secret_changed if services.rollouts is not None else None,
    )


def _object_resolver(store: Store) -> Callable[[str, str], SecretRecord | None]:
    # One indexed lookup: a listing of the namespace here made creating n objects O(n^2)
    # (bench/scale.py: 1,000 objects took minutes).
    return store.get_secret_by_object


def _access_key_payloads(store: AccessKeyStore) -> Callable[[], list[SealedItem]]:
    """The sealed secrets of issued access keys, so `kustos keys rotate` rewraps them too."""

    def items() -> list[SealedItem]:
        return [
            SealedItem(
                "access-key",
                record.access_key_id,
                record.sealed,
                partial(store.replace_sealed, record.access_key_id),
            )
            for record in store.list()
        ]

    return items


def _uid_of(objects: ManagedObjectGateway) -> Callable[[str, str], str | None]:
    def uid(namespace: str, name: str) -> str | None:
        obj = objects.get(namespace, name)
        return None if obj is None else str(obj["metadata"]["uid"])

    return uid


def _projection(
    settings: Settings,
    api: client.ApiClient,
    gateway: SecretGateway,
    events: EventSink,
) -> tuple[ProjectionService, RolloutCoordinator]:
    """The projection, with its template renderer and the restarts of consuming workloads."""
    renderer = TemplateRenderer(
        TemplateLimits(
            timeout_seconds=settings.template_timeout_seconds,
            memory_bytes=settings.template_memory_mib * 1024 * 1024,
        )
    )
    rollouts = RolloutCoordinator(
        WorkloadGateway(api),
        RolloutLimits(
            debounce_seconds=settings.rollout_debounce_seconds,
            max_restarts=settings.rollout_max_per_minute,
            per_seconds=60.0,
        ),
        events=events,
    )
    rollouts.autostart = True

    def changed(p: Projection) -> None:
        rollouts.secret_changed(
            p.owner.namespace, p.target_name, p.version_id, p.restart_on_change, owner=p.owner
        )

    return ProjectionService(gateway, renderer, on_change=changed), rollouts
