"""The pod-credentials webhook's API-server side against the real kube-apiserver: Kustos sets
the MutatingWebhookConfiguration's caBundle (once; unchanged bundles are not rewritten) and
reads the API Service's ClusterIP. The webhook under test matches no namespace (and would
be ignored on failure), so it cannot affect other tests sharing the control plane."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
import yaml
from tests.kube_helpers import get, new_namespace

from kustos.kube.webhooks import WebhookGateway

pytestmark = pytest.mark.cluster


def _webhook(name: str) -> str:
    hook = {
        "name": "pod-credentials.kustos.io",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "clientConfig": {
            "service": {
                "name": "kustos-api",
                "namespace": "kustos-system",
                "path": "/v1/webhooks/pod-credentials",
            }
        },
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
        "namespaceSelector": {"matchLabels": {f"kustos-test-{name}": "never"}},
    }
    return yaml.safe_dump(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [hook, {**hook, "name": "second.kustos.io"}],
        }
    )


def test_the_ca_bundle_is_set_on_every_webhook_once(kube_cluster: Any) -> None:
    name = f"kustos-test-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("apply", "-f", "-", input=_webhook(name))
    try:
        gateway = WebhookGateway(kube_cluster.api_client())
        ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        assert gateway.set_ca_bundle(name, ca) is True
        config = get(kube_cluster, "mutatingwebhookconfiguration", name, "default") or {}
        bundles = [h["clientConfig"]["caBundle"] for h in config["webhooks"]]
        assert bundles == [base64.b64encode(ca).decode()] * 2
        version = config["metadata"]["resourceVersion"]
        assert gateway.set_ca_bundle(name, ca) is True  # unchanged: not written again
        again = get(kube_cluster, "mutatingwebhookconfiguration", name, "default") or {}
        assert again["metadata"]["resourceVersion"] == version
        other = b"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
        gateway.set_ca_bundle(name, other)
        changed = get(kube_cluster, "mutatingwebhookconfiguration", name, "default") or {}
        assert {h["clientConfig"]["caBundle"] for h in changed["webhooks"]} == {
            base64.b64encode(other).decode()
        }
        assert gateway.set_ca_bundle(f"{name}-missing", ca) is False
    finally:
        kube_cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found")


def test_the_api_services_cluster_ip(kube_cluster: Any) -> None:
    ns = new_namespace(kube_cluster)
    kube_cluster.kubectl(
        "-n", ns, "create", "service", "clusterip", "kustos-api", "--tcp=8443:8443"
    )
    service = get(kube_cluster, "service", "kustos-api", ns) or {}
    gateway = WebhookGateway(kube_cluster.api_client())
    assert gateway.cluster_ip(ns, "kustos-api") == service["spec"]["clusterIP"]
    assert gateway.cluster_ip(ns, "absent") is None
