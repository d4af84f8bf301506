"""Who is calling: the authenticated identity behind an API request or a lifecycle action."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KUSTOS_SYSTEM", "Principal"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    `arn` is the policy principal: `arn:kustos:iam::<namespace>:serviceaccount/<name>` for a
    ServiceAccount, `arn:kustos:iam::cluster:user/<username>` for another Kubernetes user.
    `namespace` is the caller's "account" (the ServiceAccount's namespace; empty for users).
    """

    arn: str
    username: str
    namespace: str = ""
    kind: str = "User"  # ServiceAccount | User | System
    groups: tuple[str, ...] = ()
    uid: str = ""
    #: How the caller proved who it is: ServiceAccountToken | SigV4 | Kubernetes | Internal.
    auth_method: str = ""
    access_key_id: str | None = None
    pod_name: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def service_account(cls, namespace: str, name: str, **kw: object) -> Principal:
        return cls(
            arn=f"arn:kustos:iam::{namespace}:serviceaccount/{name}",
            username=f"system:serviceaccount:{namespace}:{name}",
            namespace=namespace,
            kind="ServiceAccount",
            **kw,  # type: ignore[arg-type]
        )

    @classmethod
    def user(cls, username: str, groups: tuple[str, ...] = (), **kw: object) -> Principal:
        if username.startswith("system:serviceaccount:"):
            _, _, namespace, name = username.split(":", 3)
            return cls.service_account(namespace, name, groups=groups, **kw)
        return cls(
            arn=f"arn:kustos:iam::cluster:user/{username}",
            username=username,
            groups=groups,
            **kw,  # type: ignore[arg-type]
        )


#: Kustos itself, for lifecycle actions no caller asked for (rotation, drift, purge).
KUSTOS_SYSTEM = Principal(
    arn="arn:kustos:iam::cluster:user/system:kustos",
    username="system:kustos",
    kind="System",
    auth_method="Internal",
)
