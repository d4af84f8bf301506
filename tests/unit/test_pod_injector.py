"""The pod-credentials webhook's mutation (a JSON Patch applied with the jsonpatch library,
as the API server applies it) and the credentials sidecar's forwarding, against a real
HTTPS upstream. On the node: tests/e2e/test_pod_credentials.py."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web

from kustos.api.injector import (
    ANNOTATION,
    SIDECAR,
    CachedInjection,
    Injection,
    InjectionRefused,
    patch_for,
    review_response,
)
from kustos.cli.credentials_proxy import make_proxy_app
from kustos.crypto.certs import issue_serving_cert

INJ = Injection(
    image="kustos:0.1.0",
    service_host="kustos-api.kustos-system.svc",
    api_port=8443,
    cluster_ip="10.0.0.42",
    ca_pem="-----CA-----\n",
    region="local",
)


def _pod(annotated: bool = True, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p"}
    if annotated:
        meta["annotations"] = {ANNOTATION: "true"}
    return {"metadata": meta, "spec": {"containers": [{"name": "app", "image": "app"}], **spec}}


def _apply(pod: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 as the API server applies it (a small interpreter for add)."""
    doc: dict[str, Any] = json.loads(json.dumps(pod))
    for op in ops:
        assert op["op"] == "add", op
        *parents, last = op["path"].lstrip("/").split("/")
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), op["value"])
        else:
            assert last not in target, op  # add on an existing member would replace it
            target[last] = op["value"]
    return doc


def test_an_unannotated_pod_is_left_alone() -> None:
    assert patch_for(_pod(annotated=False), INJ) == []
    other = _pod(annotated=False)
    other["metadata"]["annotations"] = {ANNOTATION: "yes"}
    assert patch_for(other, INJ) == []


def test_an_annotated_pod_gets_the_sidecar_env_volumes_and_host_alias() -> None:
    pod = _apply(_pod(), patch_for(_pod(), INJ))
    spec = pod["spec"]
    sidecar = spec["initContainers"][0]
    assert sidecar["name"] == SIDECAR and sidecar["restartPolicy"] == "Always"
    assert "--listen" in sidecar["command"] and "127.0.0.1:8139" in sidecar["command"]
    assert {"name": "KUSTOS_API_CA", "value": "-----CA-----\n"} in sidecar["env"]
    app = spec["containers"][0]
    env = {e["name"]: e["value"] for e in app["env"]}
    assert env == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:8139/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/secrets/kustos/token",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": "https://kustos-api.kustos-system.svc:8443",
        "AWS_REGION": "local",
        "AWS_DEFAULT_REGION": "local",
        "AWS_CA_BUNDLE": "/var/run/kustos/ca.crt",
        "NODE_EXTRA_CA_CERTS": "/var/run/kustos/ca.crt",
    }
    token = next(v for v in spec["volumes"] if v["name"] == "kustos-token")
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "kustos"
    assert spec["hostAliases"] == [
        {"ip": "10.0.0.42", "hostnames": ["kustos-api.kustos-system.svc"]}
    ]
    # Injected once: a second pass (reinvocation, a second webhook) changes nothing.
    assert patch_for(pod, INJ) == []


def test_existing_lists_and_settings_are_kept() -> None:
    pod = _pod(
        initContainers=[{"name": "migrate", "image": "m"}],
        volumes=[{"name": "data", "emptyDir": {}}],
        hostAliases=[{"ip": "10.0.0.9", "hostnames": ["db"]}],
    )
    pod["spec"]["containers"].append(
        {
            "name": "second",
            "image": "s",
            "env": [{"name": "AWS_REGION", "value": "mine"}],
            "volumeMounts": [{"name": "data", "mountPath": "/var/run/secrets/kustos"}],
        }
    )
    spec = _apply(pod, patch_for(pod, INJ))["spec"]
    assert [c["name"] for c in spec["initContainers"]] == [SIDECAR, "migrate"]
    assert [v["name"] for v in spec["volumes"]] == ["data", "kustos-token", "kustos-ca"]
    assert len(spec["hostAliases"]) == 2
    second = spec["containers"][1]
    assert [e["value"] for e in second["env"] if e["name"] == "AWS_REGION"] == ["mine"]
    assert [m["name"] for m in second["volumeMounts"]] == ["data", "kustos-ca"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"hostNetwork": True}, "hostNetwork"),
        ({"volumes": [{"name": "kustos-token", "emptyDir": {}}]}, "kustos-token"),
    ],
)
def test_pods_that_cannot_have_it_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InjectionRefused, match=message):
        patch_for(_pod(**spec), INJ)
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "request": {"uid": "u1", "kind": {"kind": "Pod"}, "object": _pod(**spec)},
    }
    response = review_response(review, lambda: INJ)["response"]
    assert response["uid"] == "u1" and response["allowed"] is False
    assert response["status"]["code"] == 403 and message in response["status"]["message"]


def test_review_answers_with_a_base64_json_patch_and_fails_closed() -> None:
    review: dict[str, Any] = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u2", "kind": {"kind": "Pod"}, "object": _pod()},
    }
    answer = review_response(review, lambda: INJ)
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["allowed"] is True and response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == patch_for(_pod(), INJ)

    def broken() -> Injection:
        raise RuntimeError("apiserver down")

    failed = review_response(review, broken)["response"]
    assert failed["allowed"] is False and failed["status"]["code"] == 500
    plain = {**review, "request": {**review["request"], "object": _pod(annotated=False)}}
    assert review_response(plain, broken)["response"] == {"uid": "u2", "allowed": True}


def test_the_injection_is_cached_for_its_ttl() -> None:
    now = [0.0]
    loads: list[int] = []

    def load() -> Injection:
        loads.append(1)
        return INJ

    cached = CachedInjection(load, ttl=30, clock=lambda: now[0])
    cached(), cached()
    now[0] = 31
    cached()
    assert len(loads) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _site(
    app: web.Application, port: int, ssl_context: Any = None
) -> AsyncIterator[web.AppRunner]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    yield runner
    await runner.cleanup()


def test_the_sidecar_forwards_the_token_over_tls_and_holds_nothing(tmp_path: Any) -> None:
    import ssl

    issued = issue_serving_cert(["127.0.0.1"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    (tmp_path / "c.pem").write_bytes(issued.cert_pem)
    (tmp_path / "k.pem").write_bytes(issued.key_pem)
    server_ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    seen: list[str] = []

    async def upstream(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "tok":
            return web.json_response({"code": "UnrecognizedClientException"}, status=401)
        return web.json_response(
            {
                "AccessKeyId": "ASIAX",
                "SecretAccessKey": "s",
                "Token": "t",
                "Expiration": "2030-01-01T00:00:00Z",
            }
        )

    async def main() -> None:
        up_port, proxy_port = _free_port(), _free_port()
        up = web.Application()
        up.router.add_get("/v1/credentials", upstream)
        client_ctx = ssl.create_default_context(cadata=issued.ca_pem.decode())
        proxy = make_proxy_app(f"https://127.0.0.1:{up_port}", client_ctx)
        async for _ in _site(up, up_port, server_ctx):
            async for _ in _site(proxy, proxy_port):
                url = f"http://127.0.0.1:{proxy_port}/v1/credentials"
                async with ClientSession() as s:
                    async with s.get(url, headers={"Authorization": "tok"}) as r:
                        assert r.status == 200
                        assert (await r.json())["AccessKeyId"] == "ASIAX"
                        assert r.headers["Cache-Control"] == "no-store"
                    async with s.get(url, headers={"Authorization": "other"}) as r:
                        assert r.status == 401
                    async with s.get(url) as r:  # no token: not even forwarded
                        assert r.status == 401
                    assert seen == ["tok", "other"]
            # Upstream gone: a JSON 503, which the SDKs retry.
            gone = make_proxy_app(f"https://127.0.0.1:{_free_port()}", client_ctx)
            async for _ in _site(gone, proxy_port):
                async with (
                    ClientSession() as s,
                    s.get(
                        f"http://127.0.0.1:{proxy_port}/v1/credentials",
                        headers={"Authorization": "tok"},
                    ) as r,
                ):
                    assert r.status == 503
                    assert (await r.json())["code"] == "ServiceUnavailable"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "0.0.0.0:8139", "--upstream", "https://x:1"], "loopback"),
        (["--listen", "127.0.0.1:8139", "--upstream", "http://x:1"], "https://"),
    ],
)
def test_the_sidecar_serves_loopback_only_and_talks_tls_only(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from kustos.cli.credentials_proxy import credentials_proxy

    result = CliRunner().invoke(credentials_proxy, args)
    assert result.exit_code == 2 and message in result.output
