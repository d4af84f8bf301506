"""Apply crds/*.yaml to the cluster of the kubeconfig given as argv[1], wait until they are
served, and create the operator's namespace (argv[2], if given) when it is missing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

CRDS = Path(__file__).resolve().parent.parent / "crds"


def main() -> int:
    api = config.new_client_from_config(config_file=sys.argv[1] if len(sys.argv) > 1 else None)
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(p for p in CRDS.glob("*.yaml") if p.name != "kustomization.yaml"):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        names.append(name)
        try:
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                print(f"CRD {name} not established", file=sys.stderr)
                return 1
            time.sleep(0.2)
    print(f"applied {len(names)} CRDs: {', '.join(names)}")
    if len(sys.argv) > 2:
        ensure_namespace(api, sys.argv[2])
    return 0


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    try:
        core.read_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        print(f"created namespace {name}")


if __name__ == "__main__":
    sys.exit(main())
