"""Runtime settings, read once from the environment (12-factor); no I/O beyond `os.environ`."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    #: SQLAlchemy URL of the store: sqlite:///path (embedded) or postgresql+psycopg://...
    store_url: str = "sqlite:///kustos.db"
    #: Namespace Kustos runs in; its keyring Secret lives there.
    namespace: str = "kustos-system"
    keyring_secret: str = "kustos-keyring"
    #: The "region" part of ARNs.
    cluster_name: str = "local"
    #: Seconds between periodic checks of each ManagedSecret (drift, source changes).
    resync_seconds: float = 30.0
    kubeconfig: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            store_url=env.get("KUSTOS_STORE_URL", cls.store_url),
            namespace=env.get("KUSTOS_NAMESPACE", cls.namespace),
            keyring_secret=env.get("KUSTOS_KEYRING_SECRET", cls.keyring_secret),
            cluster_name=env.get("KUSTOS_CLUSTER_NAME", cls.cluster_name),
            resync_seconds=float(env.get("KUSTOS_RESYNC_SECONDS", cls.resync_seconds)),
            kubeconfig=env.get("KUBECONFIG") or None,
        )
