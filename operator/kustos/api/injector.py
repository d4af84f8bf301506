"""The pod-credentials webhook: a mutating admission webhook that gives annotated pods
AWS credentials from their ServiceAccount, with no static key.

A pod annotated ``kustos.io/inject-credentials: "true"`` gets, at creation:

* a *native sidecar* (an init container with ``restartPolicy: Always``, so it starts first
  and runs beside the app), ``kustos-credentials``: ``kustos credentials-proxy`` from the
  Kustos image, serving the AWS container-credentials protocol on the pod's loopback
  (``127.0.0.1:8139``; the AWS SDKs fetch container credentials only from loopback or
  link-local addresses). It forwards the caller's Authorization header (the pod's projected
  ServiceAccount token) to the Kustos API's ``/v1/credentials`` over TLS and holds no
  credential itself; it writes Kustos's CA to a shared in-memory volume before it reports
  started, so the app starts only once both are there;
* in every app container (unless already set): ``AWS_CONTAINER_CREDENTIALS_FULL_URI``,
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (a projected token, audience ``kustos``),
  ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` (the Service ``kustos-api``), ``AWS_CA_BUNDLE`` and
  ``NODE_EXTRA_CA_CERTS`` (the CA), ``AWS_REGION``/``AWS_DEFAULT_REGION`` (the cluster name);
* ``hostAliases`` mapping the Service's name to its ClusterIP, so the name resolves (and the
  certificate, which names the Service, verifies) without any cluster DNS.

Pods without the annotation are left alone (the webhook configuration does not even send
them: its ``matchConditions`` select annotated pods, so ``failurePolicy: Fail`` binds only
those). A ``hostNetwork`` pod is refused: its loopback is the node's.

`patch_for` is the pure mutation (a JSON Patch); `add_injector_routes` serves it as
``POST /v1/webhooks/pod-credentials`` (AdmissionReview v1) on the API server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "ANNOTATION",
    "CA_FILE",
    "PROXY_PORT",
    "SIDECAR",
    "TOKEN_FILE",
    "WEBHOOK_PATH",
    "CachedInjection",
    "Injection",
    "InjectionRefused",
    "add_injector_routes",
    "patch_for",
    "review_response",
]

log = logging.getLogger(__name__)
ANNOTATION = "kustos.io/inject-credentials"
SIDECAR = "kustos-credentials"
WEBHOOK_PATH = "/v1/webhooks/pod-credentials"
PROXY_PORT = 8139
TOKEN_DIR = "/var/run/secrets/kustos"
TOKEN_FILE = f"{TOKEN_DIR}/token"
CA_DIR = "/var/run/kustos"
CA_FILE = f"{CA_DIR}/ca.crt"
READY_FILE = f"{CA_DIR}/ready"
TOKEN_VOLUME = "kustos-token"
CA_VOLUME = "kustos-ca"
_KUSTOS = "/opt/kustos/bin/kustos"
_PYTHON = "/opt/kustos/bin/python"


class InjectionRefused(Exception):
    """The annotated pod cannot get the sidecar (the message says why)."""


@dataclass(frozen=True)
class Injection:
    """What goes into a pod: the sidecar's image, where the API is, its CA."""

    image: str
    service_host: str  # kustos-api.<namespace>.svc
    api_port: int
    cluster_ip: str | None
    ca_pem: str
    region: str

    @property
    def endpoint(self) -> str:
        return f"https://{self.service_host}:{self.api_port}"


def _sidecar(inj: Injection) -> dict[str, Any]:
    args = [
        _KUSTOS,
        "credentials-proxy",
        "--listen",
        f"127.0.0.1:{PROXY_PORT}",
        "--upstream",
        inj.endpoint,
        "--ready-file",
        READY_FILE,
    ]
    env = []
    if inj.ca_pem:
        args += ["--ca-out", CA_FILE]
        env.append({"name": "KUSTOS_API_CA", "value": inj.ca_pem})
    ready = f"import os, sys; sys.exit(not os.path.exists({READY_FILE!r}))"
    return {
        "name": SIDECAR,
        "image": inj.image,
        "imagePullPolicy": "IfNotPresent",
        "restartPolicy": "Always",
        "command": args,
        "env": env,
        "startupProbe": {
            "exec": {"command": [_PYTHON, "-I", "-c", ready]},
            "periodSeconds": 1,
            "failureThreshold": 120,
        },
        "resources": {"requests": {"cpu": "10m", "memory": "48Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": CA_VOLUME, "mountPath": CA_DIR}],
    }


def _app_env(inj: Injection) -> list[dict[str, str]]:
    env = [
        {
            "name": "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "value": f"http://127.0.0.1:{PROXY_PORT}/v1/credentials",
        },
        {"name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "value": TOKEN_FILE},
        {"name": "AWS_ENDPOINT_URL_SECRETS_MANAGER", "value": inj.endpoint},
        {"name": "AWS_REGION", "value": inj.region},
        {"name": "AWS_DEFAULT_REGION", "value": inj.region},
    ]
    if inj.ca_pem:
        env += [
            {"name": "AWS_CA_BUNDLE", "value": CA_FILE},
            {"name": "NODE_EXTRA_CA_CERTS", "value": CA_FILE},
        ]
    return env


_VOLUMES = [
    {
        "name": TOKEN_VOLUME,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "audience": "kustos",
                        "expirationSeconds": 3600,
                        "path": "token",
                    }
                }
            ]
        },
    },
    {"name": CA_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
]
_MOUNTS = [
    {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
    {"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True},
]


def _append(
    ops: list[dict[str, Any]], path: str, present: list[Any] | None, items: list[Any]
) -> None:
    """JSON Patch ops appending ``items`` to the list at ``path`` (created when absent)."""
    if not items:
        return
    if present is None:
        ops.append({"op": "add", "path": path, "value": items})
    else:
        ops.extend({"op": "add", "path": f"{path}/-", "value": item} for item in items)


def patch_for(pod: dict[str, Any], inj: Injection) -> list[dict[str, Any]]:
    """The JSON Patch that injects the sidecar into ``pod``; [] when the pod is not
    annotated or already has it. Raises `InjectionRefused` for a pod that cannot have it."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ANNOTATION) != "true":
        return []
    spec = pod.get("spec") or {}
    inits = spec.get("initContainers")
    containers = spec.get("containers") or []
    if any(c.get("name") == SIDECAR for c in [*(inits or []), *containers]):
        return []
    if spec.get("hostNetwork"):
        raise InjectionRefused(
            f"{ANNOTATION}: a hostNetwork pod shares the node's loopback, where the "
            "credentials sidecar would serve every process of the node; not injected"
        )
    taken = {v.get("name") for v in spec.get("volumes") or []}
    clash = taken & {TOKEN_VOLUME, CA_VOLUME}
    if clash:
        raise InjectionRefused(
            f"{ANNOTATION}: the pod already has a volume named {sorted(clash)[0]!r}; not injected"
        )
    ops: list[dict[str, Any]] = []
    _append(ops, "/spec/volumes", spec.get("volumes"), _VOLUMES)
    # First of the init containers: later init containers may use the credentials too.
    if inits is None:
        ops.append({"op": "add", "path": "/spec/initContainers", "value": [_sidecar(inj)]})
    else:
        ops.append({"op": "add", "path": "/spec/initContainers/0", "value": _sidecar(inj)})
    env = _app_env(inj)
    for i, container in enumerate(containers):
        have = {e.get("name") for e in container.get("env") or []}
        _append(
            ops,
            f"/spec/containers/{i}/env",
            container.get("env"),
            [e for e in env if e["name"] not in have],
        )
        paths = {m.get("mountPath") for m in container.get("volumeMounts") or []}
        _append(
            ops,
            f"/spec/containers/{i}/volumeMounts",
            container.get("volumeMounts"),
            [m for m in _MOUNTS if m["mountPath"] not in paths],
        )
    if inj.cluster_ip:
        alias = {"ip": inj.cluster_ip, "hostnames": [inj.service_host]}
        _append(ops, "/spec/hostAliases", spec.get("hostAliases"), [alias])
    return ops


def review_response(review: dict[str, Any], inject: Callable[[], Injection]) -> dict[str, Any]:
    """The AdmissionReview answer to ``review`` (a pod CREATE)."""
    request = review.get("request") or {}
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": True}
    pod = request.get("object") or {}
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if request.get("kind", {}).get("kind") == "Pod" and annotated == "true":
        try:
            ops = patch_for(pod, inject())
        except InjectionRefused as exc:
            response.update(allowed=False, status={"code": 403, "message": str(exc)})
            return _review(review, response)
        except Exception as exc:  # the pod asked for credentials: no sidecar, no pod
            log.error("pod-credentials webhook failed: %s", type(exc).__name__)
            response.update(
                allowed=False,
                status={
                    "code": 500,
                    "message": f"{ANNOTATION}: Kustos could not prepare the "
                    "credentials sidecar; try again",
                },
            )
            return _review(review, response)
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    return _review(review, response)


def _review(review: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": response,
    }


class CachedInjection:
    """An `Injection` from ``load`` (which reads the Service and the CA), cached for
    ``ttl`` seconds so admission does not ask the API server for every pod."""

    def __init__(
        self,
        load: Callable[[], Injection],
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._cached: tuple[float, Injection] | None = None

    def __call__(self) -> Injection:
        now = self._clock()
        if self._cached is None or now - self._cached[0] > self._ttl:
            self._cached = (now, self._load())
        return self._cached[1]


_INJECT = web.AppKey("kustos_pod_injection", CachedInjection)


async def _webhook(request: web.Request) -> web.Response:
    try:
        review = await request.json()
    except ValueError:
        return web.json_response({"message": "not an AdmissionReview"}, status=400)
    if not isinstance(review, dict):
        return web.json_response({"message": "not an AdmissionReview"}, status=400)
    answer = await asyncio.to_thread(review_response, review, request.app[_INJECT])
    return web.json_response(answer)


def add_injector_routes(app: web.Application, inject: CachedInjection) -> None:
    """Mount ``POST /v1/webhooks/pod-credentials`` on ``app``."""
    app[_INJECT] = inject
    app.router.add_post(WEBHOOK_PATH, _webhook)
