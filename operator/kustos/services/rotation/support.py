"""What the rotation use case needs around the engine: the secret's versions as a `Vault`,
Secret references resolved in the ManagedSecret's own namespace, and concurrency limits.

References never leave their namespace: a `masterSecretRef`, `signingKeySecretRef` or
`tls.caSecretRef` naming another namespace is refused (the ManagedSecret's author must not be
able to make Kustos read a Secret they could not read themselves). For the same reason the
Secrets holding credentials — the master user's and the webhook's signing key — must consent
to serve this ManagedSecret (`kustos.services.core.opt_in`); a signing key Secret registered
as a rotation function of its namespace (label `kustos.io/rotation-function=webhook`, set by
whoever may write it) serves every ManagedSecret there. A CA certificate is public and needs
no consent. Resolved values are `SecretValue`s and are never stored: the rotation row keeps
only the references.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kustos.errors import (
    InvalidParameterError,
    ResourceExistsError,
    SourceError,
    SourceNotAllowedError,
    SourceNotFoundError,
)
from kustos.kube.secrets import SecretGateway
from kustos.models.records import AWSPENDING, SecretRecord
from kustos.models.rotation_spec import parse_ref
from kustos.models.sensitive import SecretValue
from kustos.services.core.opt_in import import_allowed, opt_in_command
from kustos.services.core.secrets import SecretService

__all__ = ["REF_KEYS", "RotationLimits", "SecretVault", "resolve_refs"]

#: Config keys holding Secret references, resolved before a rotation runs.
REF_KEYS = ("masterSecretRef", "signingKeySecretRef")
#: The label registering a Secret as a rotation webhook of its namespace (see
#: `kustos.services.api.rotation`): such a signing key serves every ManagedSecret there.
FUNCTION_LABEL, FUNCTION_WEBHOOK = "kustos.io/rotation-function", "webhook"


class SecretVault:
    """The engine's `Vault` over one secret, through `SecretService` (which seals)."""

    def __init__(self, secrets: SecretService, record: SecretRecord, fingerprint: str) -> None:
        self._secrets, self._record, self._fingerprint = secrets, record, fingerprint

    def read(
        self, *, version_id: str | None = None, stage: str | None = None
    ) -> SecretValue | None:
        found = self._secrets.store.get_version(
            self._record.arn, version_id=version_id, stage=stage
        )
        return None if found is None else self._secrets.open(found)

    def add_pending(self, version_id: str, value: SecretValue) -> None:
        try:
            # The current version's fingerprint travels on, so the declared value source
            # is not mistaken for changed once this version becomes AWSCURRENT.
            self._secrets.add_version(
                self._record,
                value,
                stages=(AWSPENDING,),
                version_id=version_id,
                fingerprint=self._fingerprint,
            )
        except ResourceExistsError:  # a concurrent run of the same step stored it first
            self.label_pending(version_id)

    def label_pending(self, version_id: str) -> None:
        found = self._secrets.store.get_version(self._record.arn, stage=AWSPENDING)
        holder = found.version_id if found is not None else None
        if holder != version_id:
            self._secrets.store.move_stage(
                self._record.arn, AWSPENDING, to_version=version_id, from_version=holder
            )


def _secret_data(
    gateway: SecretGateway,
    namespace: str,
    name: str,
    what: str,
    importer: str | None = None,
    *,
    registered_function: bool = False,
) -> dict[str, str]:
    """The Secret's data; with `importer`, only when the Secret consents to serve it (or,
    with `registered_function`, is registered as its namespace's rotation function)."""
    obj = gateway.get(namespace, name)
    if obj is None:
        raise SourceNotFoundError(f"rotation {what}: Secret {namespace}/{name} not found")
    if importer is not None and not _serves(obj, importer, registered_function):
        raise SourceNotAllowedError(
            f"rotation {what}: Secret {namespace}/{name} does not allow use by ManagedSecret "
            f"{importer}; whoever may write that Secret opts in with "
            f"{opt_in_command(name, importer)}"
        )
    return dict(obj.get("data") or {})


def _serves(secret: Mapping[str, Any], importer: str, registered_function: bool) -> bool:
    if import_allowed(secret, importer):
        return True
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return registered_function and labels.get(FUNCTION_LABEL) == FUNCTION_WEBHOOK


def _decode(data: dict[str, str], key: str, namespace: str, name: str, what: str) -> str:
    try:
        return base64.b64decode(data[key], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise SourceError(
            f"rotation {what}: key {key!r} of Secret {namespace}/{name} is not UTF-8 text"
        ) from None


def check_refs(config: Mapping[str, Any], namespace: str) -> None:
    """Refuse references into other namespaces (no I/O)."""
    for key in REF_KEYS:
        if key in config:
            parse_ref(config[key], key).check_namespace(namespace, key)
    tls = config.get("tls")
    if isinstance(tls, Mapping) and "caSecretRef" in tls:
        parse_ref(tls["caSecretRef"], "tls.caSecretRef").check_namespace(
            namespace, "tls.caSecretRef"
        )


def resolve_refs(
    gateway: SecretGateway, config: Mapping[str, Any], namespace: str, importer: str
) -> tuple[dict[str, Any], SecretValue | None]:
    """(config with `signingKey` resolved, master credentials) for a rotation of the
    ManagedSecret `importer` in `namespace`.

    The master Secret must hold keys `username` and `password` (kubernetes.io/basic-auth);
    it and the signing key Secret must consent to serve `importer` (SourceNotAllowedError).
    """
    check_refs(config, namespace)
    resolved = dict(config)
    master = None
    if "masterSecretRef" in config:
        ref = parse_ref(config["masterSecretRef"], "masterSecretRef")
        data = _secret_data(gateway, namespace, ref.name, "masterSecretRef", importer)
        missing = [k for k in ("username", "password") if k not in data]
        if missing:
            raise SourceError(
                f"rotation masterSecretRef: Secret {namespace}/{ref.name} lacks keys {missing} "
                "(it needs username and password)"
            )
        master = SecretValue.from_mapping(
            {
                k: _decode(data, k, namespace, ref.name, "masterSecretRef")
                for k in ("username", "password")
            }
        )
    if "signingKeySecretRef" in config:
        ref = parse_ref(config["signingKeySecretRef"], "signingKeySecretRef")
        data = _secret_data(
            gateway, namespace, ref.name, "signingKeySecretRef", importer, registered_function=True
        )
        key = ref.key or "signingKey"
        if key not in data:
            raise SourceError(
                f"rotation signingKeySecretRef: Secret {namespace}/{ref.name} lacks key {key!r}"
            )
        resolved["signingKey"] = SecretValue(
            _decode(data, key, namespace, ref.name, "signingKeySecretRef")
        )
    tls = config.get("tls")
    if isinstance(tls, Mapping) and "caSecretRef" in tls:
        ref = parse_ref(tls["caSecretRef"], "tls.caSecretRef")
        data = _secret_data(gateway, namespace, ref.name, "tls.caSecretRef")
        key = ref.key or "ca.crt"
        if key not in data:
            raise SourceError(
                f"rotation tls.caSecretRef: Secret {namespace}/{ref.name} lacks key {key!r}"
            )
        ca = _decode(data, key, namespace, ref.name, "tls.caSecretRef")
        if "BEGIN CERTIFICATE" not in ca:
            raise SourceError(
                f"rotation tls.caSecretRef: key {key!r} of Secret "
                f"{namespace}/{ref.name} holds no PEM certificate"
            )
        resolved["tls"] = {**{k: v for k, v in tls.items() if k != "caSecretRef"}, "caData": ca}
    return resolved, master


class RotationLimits:
    """At most `total` rotations at once, and at most `per_host` against one target host.

    `slot` waits up to `wait` seconds for room, then gives up (yields False): the rotation is
    deferred to its next tick, so no thread waits for long behind a slow database.
    """

    def __init__(self, total: int, per_host: int, wait: float = 10.0) -> None:
        if total < 1 or per_host < 1:
            raise InvalidParameterError("rotation limits must be at least 1")
        self._total, self._per_host, self._wait = total, per_host, wait
        self._running = 0
        self._hosts: dict[str, int] = {}
        self._cond = threading.Condition()

    def _free(self, host: str | None) -> bool:
        return self._running < self._total and (
            host is None or self._hosts.get(host, 0) < self._per_host
        )

    @contextmanager
    def slot(self, host: str | None) -> Iterator[bool]:
        with self._cond:
            if not self._cond.wait_for(lambda: self._free(host), timeout=self._wait):
                got = False
            else:
                got = True
                self._running += 1
                if host is not None:
                    self._hosts[host] = self._hosts.get(host, 0) + 1
        if not got:
            yield False
            return
        try:
            yield True
        finally:
            with self._cond:
                self._running -= 1
                if host is not None:
                    self._hosts[host] -= 1
                    if not self._hosts[host]:
                        del self._hosts[host]
                self._cond.notify_all()
