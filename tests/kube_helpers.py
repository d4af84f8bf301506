"""Small helpers for integration tests: JSON from kubectl, waiting, decoding Secrets; and
`present`, which narrows an Optional in any tier."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.3,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except AssertionError as exc:
            last = exc
        else:
            last = found
            if found:
                return found
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def present(value: T | None) -> T:
    """`value`, which the caller knows is there (a failed assertion if it is not)."""
    assert value is not None
    return value


def get(cluster: Any, kind: str, name: str, ns: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def apply(cluster: Any, manifest: dict[str, Any] | str) -> None:
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    cluster.kubectl("apply", "-f", "-", input=text)


def new_namespace(cluster: Any, prefix: str = "t") -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    return ns


def managed_secret(name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kustos.io/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def ready(cluster: Any, name: str, ns: str) -> dict[str, Any] | None:
    obj = get(cluster, "managedsecret", name, ns)
    if obj is None:
        return None
    conds = obj.get("status", {}).get("conditions", [])
    ok = any(
        c["type"] == "Ready"
        and c["status"] == "True"
        and c.get("observedGeneration") == obj["metadata"]["generation"]
        for c in conds
    )
    return obj if ok else None


def condition(obj: dict[str, Any], ctype: str = "Ready") -> dict[str, Any] | None:
    return next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), None
    )


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def events(cluster: Any, name: str, ns: str) -> list[dict[str, Any]]:
    proc = cluster.kubectl(
        "get", "events", "-n", ns, "-o", "json", f"--field-selector=involvedObject.name={name}"
    )
    found: list[dict[str, Any]] = json.loads(proc.stdout)["items"]
    return found


def event_reasons(cluster: Any, name: str, ns: str) -> list[str]:
    return [e["reason"] for e in events(cluster, name, ns)]
