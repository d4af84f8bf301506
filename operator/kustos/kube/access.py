"""Cluster I/O for access control: TokenReview, the policy CRs, object uids for Events.

Thin gateways: no caching and no decisions here (`kustos.services.access.authorize` decides). Errors
become Kustos errors that name objects and HTTP statuses, never tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ServerError

__all__ = [
    "CLUSTER_POLICY_PLURAL",
    "GROUP",
    "POLICY_PLURAL",
    "VERSION",
    "AccessGateway",
    "TokenReviewResult",
]

GROUP, VERSION = "kustos.io", "v1alpha1"
POLICY_PLURAL = "secretaccesspolicies"
CLUSTER_POLICY_PLURAL = "clustersecretaccesspolicies"
MANAGED_PLURAL = "managedsecrets"

Obj = dict[str, Any]


@dataclass(frozen=True)
class TokenReviewResult:
    authenticated: bool
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    extra: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""


class AccessGateway:
    def __init__(self, api: client.ApiClient) -> None:
        self._auth = client.AuthenticationV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)

    def review_token(self, token: str, audiences: list[str]) -> TokenReviewResult:
        """Ask the API server who `token` belongs to (TokenReview, for `audiences`)."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        }
        try:
            resp = self._auth.create_token_review(body, _preload_content=False)
        except ApiException as exc:
            raise ServerError(f"TokenReview failed: HTTP {exc.status} {exc.reason}") from None
        status: Obj = json.loads(resp.data).get("status") or {}
        user: Obj = status.get("user") or {}
        return TokenReviewResult(
            authenticated=bool(status.get("authenticated")),
            username=str(user.get("username") or ""),
            uid=str(user.get("uid") or ""),
            groups=tuple(user.get("groups") or ()),
            audiences=tuple(status.get("audiences") or ()),
            extra={k: list(v) for k, v in (user.get("extra") or {}).items()},
            error=str(status.get("error") or ""),
        )

    def _list(self, plural: str) -> list[Obj]:
        try:
            if plural == CLUSTER_POLICY_PLURAL:
                resp = self._custom.list_cluster_custom_object(
                    GROUP, VERSION, plural, _preload_content=False
                )
            else:
                resp = self._custom.list_custom_object_for_all_namespaces(
                    GROUP, VERSION, plural, _preload_content=False
                )
        except ApiException as exc:
            if exc.status == 404:  # the CRD is not installed: no policies of this kind
                return []
            raise ServerError(f"cannot list {plural}: HTTP {exc.status} {exc.reason}") from None
        items: list[Obj] = json.loads(resp.data).get("items") or []
        return items

    def list_policies(self) -> tuple[list[Obj], list[Obj]]:
        """(SecretAccessPolicies in all namespaces, ClusterSecretAccessPolicies)."""
        return self._list(POLICY_PLURAL), self._list(CLUSTER_POLICY_PLURAL)

    def managed_secret_uid(self, namespace: str, name: str) -> str | None:
        try:
            obj: Obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, MANAGED_PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ServerError(
                f"cannot read ManagedSecret {namespace}/{name}: HTTP {exc.status}"
            ) from None
        uid = obj.get("metadata", {}).get("uid")
        return str(uid) if uid else None

    def service_account_exists(self, namespace: str, name: str) -> bool:
        try:
            self._core.read_namespaced_service_account(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise ServerError(
                f"cannot read ServiceAccount {namespace}/{name}: HTTP {exc.status}"
            ) from None
        return True

    def whoami(self) -> tuple[str, tuple[str, ...]] | None:
        """(username, groups) of the credentials this client uses (SelfSubjectReview), or
        None when the API server cannot say (before Kubernetes 1.28, or not allowed)."""
        try:
            review = self._auth.create_self_subject_review(client.V1SelfSubjectReview())
        except (ApiException, ValueError):
            return None
        info = review.status.user_info if review.status else None
        if info is None or not info.username:
            return None
        return str(info.username), tuple(info.groups or ())
