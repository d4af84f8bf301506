"""Builds the services from settings, wiring store, keyring, cluster gateways and events."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client

from kustos.config import Settings
from kustos.kube.client import api_client
from kustos.kube.events import EventRecorder
from kustos.kube.keyring_secret import KeyringSecret
from kustos.kube.managed import ManagedSecretGateway
from kustos.kube.secrets import SecretGateway
from kustos.services.keys import KeyService
from kustos.services.managed import ManagedSecretService
from kustos.services.projection import ProjectionService
from kustos.services.secrets import SecretService
from kustos.services.sources import SourceService
from kustos.store import open_store
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
    managed_objects: ManagedSecretGateway

    @classmethod
    def build(cls, settings: Settings) -> Services:
        api = api_client(settings.kubeconfig)
        store = open_store(settings.store_url)
        keys = KeyService(store, KeyringSecret(api, settings.namespace, settings.keyring_secret))
        secrets = SecretService(store, keys.keyring, settings.cluster_name, reload=keys.reload)
        gateway = SecretGateway(api)
        events = EventRecorder(api)
        managed = ManagedSecretService(
            secrets, SourceService(gateway), ProjectionService(gateway), events
        )
        return cls(settings, api, store, keys, secrets, managed, events,
                   ManagedSecretGateway(api))

    def close(self) -> None:
        self.store.close()
        self.api.close()
