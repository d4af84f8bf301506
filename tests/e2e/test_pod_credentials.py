"""Pods that consume Kustos with the unchanged AWS SDKs and no static key, on the node:
the pod-credentials webhook (served by Kustos installed in the cluster) injects the
credentials sidecar into annotated pods; boto3 in example 05 trades the pod's ServiceAccount
token for session credentials through it and reads its secret. Faults: no annotation, no
sidecar; no policy, AccessDenied (not a 5xx); a hostNetwork pod is refused; Kustos down,
pods without the annotation still schedule. And `kustos snippet --lang pod-yaml` applies
and works as printed."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.kube_helpers import get, new_namespace, ready, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "05-boto3-no-static-key"
JS_EXAMPLE = REPO / "examples" / "06-javascript-no-static-key"
SYSTEM = "kustos-system"
WEBHOOK = "kustos-pod-credentials"
IMAGE = "orders-reader:0.1.0"


@pytest.fixture(scope="module")
def kustos(installed: Any, example_image: Callable[..., str]) -> Any:
    example_image("05-boto3-no-static-key", IMAGE)

    def ca_set() -> bool:
        config = get(installed, "mutatingwebhookconfiguration", WEBHOOK, SYSTEM) or {}
        return all(h.get("clientConfig", {}).get("caBundle") for h in config["webhooks"])

    wait_for(ca_set, timeout=120, what="Kustos set the webhook's caBundle")
    return installed


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def _password(cluster: Any, name: str, ns: str) -> str:
    secret = get(cluster, "secret", name, ns) or {}
    return base64.b64decode(secret["data"]["password"]).decode()


def _pod(cluster: Any, ns: str, selector: str) -> dict[str, Any]:
    pods = json.loads(
        cluster.kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "json").stdout
    )["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    found: dict[str, Any] = pods[0]
    return found


def _logs(cluster: Any, ns: str, pod: str, container: str = "app") -> str:
    return str(cluster.kubectl("-n", ns, "logs", pod, "-c", container, check=False).stdout)


def _rollout(cluster: Any, ns: str, deploy: str) -> None:
    try:
        cluster.kubectl(
            "-n", ns, "rollout", "status", f"deploy/{deploy}", "--timeout=240s", timeout=260
        )
    except AssertionError as e:
        described = cluster.kubectl("-n", ns, "describe", "pods", check=False).stdout
        events = cluster.kubectl("-n", ns, "get", "events", check=False).stdout
        raise AssertionError(
            f"{deploy} not rolled out:\n{described[-4000:]}\n{events[-2000:]}"
        ) from e


def test_05_boto3_reads_its_secret_with_no_static_key(kustos: Any) -> None:
    ns = new_namespace(kustos)
    kustos.kubectl("apply", "-n", ns, "-f", str(EXAMPLE))
    wait_for(lambda: ready(kustos, "orders-api-key", ns), timeout=120, what="orders-api-key Ready")
    _rollout(kustos, ns, "orders-reader")
    pod = _pod(kustos, ns, "app.kubernetes.io/name=orders-reader")
    spec = pod["spec"]
    sidecar = next(c for c in spec["initContainers"] if c["name"] == "kustos-credentials")
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["command"][1:3] == ["credentials-proxy", "--listen"]
    app = next(c for c in spec["containers"] if c["name"] == "app")
    env = {e["name"]: e.get("value") for e in app["env"]}
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:8139/v1/credentials"
    assert env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == "https://kustos-api.kustos-system.svc:8443"
    # No static key anywhere: no key in the environment, no Secret mounted.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert not [v for v in spec["volumes"] if "secret" in v]
    service_ip = (get(kustos, "service", "kustos-api", SYSTEM) or {})["spec"]["clusterIP"]
    assert {"ip": service_ip, "hostnames": ["kustos-api.kustos-system.svc"]} in spec["hostAliases"]

    password = _password(kustos, "orders-api-key", ns)
    line = f"orders-reader: read prod/orders/api-key (password sha256 {_fingerprint(password)})"
    name = pod["metadata"]["name"]
    wait_for(
        lambda: line in _logs(kustos, ns, name),
        timeout=120,
        what="boto3 in the pod read the secret",
    )
    for container in ("app", "kustos-credentials"):
        assert password not in _logs(kustos, ns, name, container)
    # The sidecar holds nothing: without the pod's token, loopback gives no credentials.
    probe = (
        "import urllib.request, urllib.error\n"
        "try:\n    urllib.request.urlopen('http://127.0.0.1:8139/v1/credentials')\n"
        "except urllib.error.HTTPError as e:\n    print(e.code)"
    )
    out = kustos.kubectl(
        "-n", ns, "exec", name, "-c", "app", "--", "/opt/app/bin/python", "-c", probe
    ).stdout
    assert out.strip() == "401"


def test_06_the_javascript_sdk_reads_its_secret_with_no_static_key(
    kustos: Any,
    example_image: Callable[..., str],
) -> None:
    example_image("06-javascript-no-static-key", "orders-reader-js:0.1.0", "nodejs")
    ns = new_namespace(kustos)
    kustos.kubectl(
        "apply",
        "-n",
        ns,
        "-f",
        str(EXAMPLE / "managedsecret.yaml"),
        "-f",
        str(JS_EXAMPLE / "app.yaml"),
    )
    wait_for(lambda: ready(kustos, "orders-api-key", ns), timeout=120, what="orders-api-key Ready")
    _rollout(kustos, ns, "orders-reader-js")
    pod = _pod(kustos, ns, "app.kubernetes.io/name=orders-reader-js")
    env = {e["name"] for c in pod["spec"]["containers"] for e in c.get("env") or []}
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & env
    password = _password(kustos, "orders-api-key", ns)
    line = (
        f"orders-reader-js: read prod/orders/api-key (password sha256 "
        f"{_fingerprint(password)}) with node v18."
    )  # Debian's Node.js
    name = pod["metadata"]["name"]
    wait_for(
        lambda: line in _logs(kustos, ns, name),
        timeout=120,
        what="the JavaScript SDK in the pod read the secret",
    )
    assert password not in _logs(kustos, ns, name)


def test_a_service_account_without_a_policy_gets_access_denied_not_a_5xx(kustos: Any) -> None:
    ns = new_namespace(kustos)
    kustos.kubectl("apply", "-n", ns, "-f", str(EXAMPLE / "managedsecret.yaml"))
    docs = [d for d in yaml.safe_load_all((EXAMPLE / "app.yaml").read_text()) if d]
    for doc in docs:  # the same app under a ServiceAccount no policy names
        if doc["kind"] == "SecretAccessPolicy":
            continue
        if doc["kind"] == "ServiceAccount":
            doc["metadata"]["name"] = "stranger"
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"]["serviceAccountName"] = "stranger"
    kustos.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))
    _rollout(kustos, ns, "orders-reader")
    name = _pod(kustos, ns, "app.kubernetes.io/name=orders-reader")["metadata"]["name"]
    denied = "orders-reader: prod/orders/api-key: AccessDeniedException (HTTP 400)"
    wait_for(
        lambda: denied in _logs(kustos, ns, name),
        timeout=120,
        what="AccessDeniedException in the app's log",
    )
    assert "read prod/orders/api-key" not in _logs(kustos, ns, name)


def _plain_pod(name: str, image: str, annotated: bool = False, host_network: bool = False) -> str:
    meta: dict[str, Any] = {"name": name}
    if annotated:
        meta["annotations"] = {"kustos.io/inject-credentials": "true"}
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}],
    }
    if host_network:
        spec["hostNetwork"] = True
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})


def test_a_pod_without_the_annotation_gets_no_sidecar_and_host_network_is_refused(
    kustos: Any,
) -> None:
    ns = new_namespace(kustos)
    kustos.kubectl("apply", "-n", ns, "-f", "-", input=_plain_pod("plain", kustos.base_image))
    pod = get(kustos, "pod", "plain", ns) or {}
    assert not pod["spec"].get("initContainers")
    assert "hostAliases" not in pod["spec"]
    refused = kustos.kubectl(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        check=False,
        input=_plain_pod("host", kustos.base_image, annotated=True, host_network=True),
    )
    assert refused.returncode != 0
    assert "hostNetwork pod shares the node's loopback" in refused.stderr
    assert get(kustos, "pod", "host", ns) is None


def test_kustos_generated_snippet_pod_yaml_applies_and_works_as_printed(kustos: Any) -> None:
    ns = new_namespace(kustos)
    kustos.kubectl("apply", "-n", ns, "-f", str(EXAMPLE / "managedsecret.yaml"))
    wait_for(lambda: ready(kustos, "orders-api-key", ns), timeout=120, what="orders-api-key Ready")
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "kustos.cli.main",
            "snippet",
            "--secret-id",
            "prod/orders/api-key",
            "--lang",
            "pod-yaml",
            "-n",
            ns,
            "--service-account",
            "reader",
            "--image",
            IMAGE,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    kustos.kubectl("apply", "-f", "-", input=printed)
    _rollout(kustos, ns, "prod-orders-api-key")
    name = _pod(kustos, ns, "app=prod-orders-api-key")["metadata"]["name"]
    password = _password(kustos, "orders-api-key", ns)
    line = f"read prod/orders/api-key (password sha256 {_fingerprint(password)})"
    wait_for(
        lambda: line in _logs(kustos, ns, name),
        timeout=120,
        what="the snippet's pod read the secret",
    )


def test_with_kustos_down_pods_without_the_annotation_still_schedule(kustos: Any) -> None:
    """Last in the module: it scales Kustos to 0 (and back)."""
    ns = new_namespace(kustos)
    kustos.kubectl("-n", SYSTEM, "scale", "deploy/kustos-operator", "--replicas=0")
    try:

        def no_endpoints() -> bool:
            eps = get(kustos, "endpoints", "kustos-api", SYSTEM) or {}
            return not any(s.get("addresses") for s in eps.get("subsets") or [])

        wait_for(no_endpoints, timeout=120, what="kustos-api without endpoints")

        def no_pods() -> bool:
            # Out of the endpoints is not down: a terminating replica drains (serves for
            # KUSTOS_API_DRAIN_SECONDS after readiness goes false), webhook calls included.
            names = kustos.kubectl(
                "-n",
                SYSTEM,
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/name=kustos-operator",
                "-o",
                "name",
            ).stdout
            return not names.strip()

        wait_for(no_pods, timeout=180, what="no Kustos pod left")
        kustos.kubectl("apply", "-n", ns, "-f", "-", input=_plain_pod("plain", kustos.base_image))
        kustos.kubectl(
            "-n", ns, "wait", "--for=condition=Ready", "pod/plain", "--timeout=120s", timeout=130
        )
        refused = kustos.kubectl(
            "apply",
            "-n",
            ns,
            "-f",
            "-",
            check=False,
            input=_plain_pod("annotated", kustos.base_image, annotated=True),
        )
        assert refused.returncode != 0
        assert 'failed calling webhook "pod-credentials.kustos.io"' in refused.stderr
    finally:
        kustos.kubectl("-n", SYSTEM, "scale", "deploy/kustos-operator", "--replicas=1")
        _rollout(kustos, SYSTEM, "kustos-operator")
