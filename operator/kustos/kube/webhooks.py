"""What the pod-credentials webhook needs from the API server: the API Service's ClusterIP
(pods reach Kustos by it: there may be no cluster DNS) and the webhook configuration's
``caBundle`` (set by Kustos to the CA of its own serving certificate).

Both by name only (RBAC: ``get`` on the Service ``kustos-api``; ``get``/``patch`` on the one
MutatingWebhookConfiguration). Errors become Kustos errors naming the object.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ServerError

__all__ = ["WebhookGateway"]


class WebhookGateway:
    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._admission = client.AdmissionregistrationV1Api(api)

    def cluster_ip(self, namespace: str, service: str) -> str | None:
        """The Service's ClusterIP; None when it has none (headless) or does not exist."""
        try:
            resp = self._core.read_namespaced_service(service, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ServerError(
                f"reading Service {namespace}/{service} failed ({exc.status} {exc.reason})"
            ) from None
        ip = (json.loads(resp.data).get("spec") or {}).get("clusterIP")
        return ip if ip and ip != "None" else None

    def set_ca_bundle(self, name: str, ca_pem: bytes) -> bool:
        """Set every webhook's ``clientConfig.caBundle`` of the MutatingWebhookConfiguration
        ``name`` to ``ca_pem``; False when it does not exist. Unchanged bundles are not
        written again."""
        try:
            resp = self._admission.read_mutating_webhook_configuration(name, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise ServerError(
                f"reading MutatingWebhookConfiguration {name} failed ({exc.status} {exc.reason})"
            ) from None
        config: dict[str, Any] = json.loads(resp.data)
        bundle = base64.b64encode(ca_pem).decode()
        hooks = config.get("webhooks") or []
        if all((h.get("clientConfig") or {}).get("caBundle") == bundle for h in hooks):
            return True
        patch = [
            {
                "op": "replace" if "caBundle" in (h.get("clientConfig") or {}) else "add",
                "path": f"/webhooks/{i}/clientConfig/caBundle",
                "value": bundle,
            }
            for i, h in enumerate(hooks)
        ]
        # Guarded by the resourceVersion read above: a concurrent edit fails the patch.
        patch.insert(
            0,
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": config["metadata"]["resourceVersion"],
            },
        )
        try:
            self._admission.patch_mutating_webhook_configuration(name, patch)
        except ApiException as exc:
            raise ServerError(
                f"patching MutatingWebhookConfiguration {name} failed ({exc.status} {exc.reason})",
                retry_delay=5.0,
            ) from None
        return True
