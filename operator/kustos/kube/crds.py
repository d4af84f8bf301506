"""The CustomResourceDefinitions shipped inside the package, and applying them.

The files are the repository's ``crds/*.yaml`` (``kustos/crds`` links to them, and the wheel
carries copies as package data), so ``pip install kustos`` alone is enough to install the
CRDs: ``kustos crds`` prints them, ``kustos install`` applies them (server-side apply, field
manager ``kustos``) and waits until the apiserver serves them.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import yaml
from kubernetes import client

__all__ = ["FIELD_MANAGER", "apply_crds", "crd_documents", "crds_yaml"]

FIELD_MANAGER = "kustos"


def crd_documents() -> list[dict[str, Any]]:
    """Every CRD in the package, sorted by file name."""
    folder = resources.files("kustos") / "crds"
    docs = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml") or entry.name == "kustomization.yaml":
            continue
        doc = yaml.safe_load(entry.read_text())
        if doc and doc.get("kind") == "CustomResourceDefinition":
            docs.append(doc)
    return docs


def crds_yaml() -> str:
    """The CRDs as one multi-document YAML stream (what ``kubectl apply -f -`` reads)."""
    return "".join(f"---\n{yaml.safe_dump(d, sort_keys=False)}" for d in crd_documents())


def apply_crds(api: client.ApiClient, timeout: float = 60.0) -> list[str]:
    """Server-side apply every CRD, wait until each is Established; return their names."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for doc in crd_documents():
        name = doc["metadata"]["name"]
        ext.patch_custom_resource_definition(
            name,
            doc,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout:.0f}s")
            time.sleep(0.2)
    return names
