"""Consent of a Secret to be read on a ManagedSecret's behalf.

The operator may read every Secret it is pointed at; the author of a ManagedSecret may not
(creating a ManagedSecret is a weaker right than reading Secrets). So that a ManagedSecret is
never a way to use a Secret its author could not read (a confused deputy), a Secret that a
ManagedSecret imports (`valueFrom.secretRef`) or whose credentials a rotation uses
(`masterSecretRef`, `signingKeySecretRef`) must opt in: its annotation
`kustos.io/allow-import-by` lists the ManagedSecrets (names in the same namespace, comma
separated, or `*` for all) it serves. Only someone who may write that Secret can set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ANNOTATION_ALLOW_IMPORT", "import_allowed", "opt_in_command"]

#: On a Secret: the ManagedSecrets (comma-separated names, or `*`) that may use it.
ANNOTATION_ALLOW_IMPORT = "kustos.io/allow-import-by"


def import_allowed(secret: Mapping[str, Any], importer: str) -> bool:
    """Whether the Secret's opt-in annotation names ManagedSecret `importer` (or `*`)."""
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    names = {n.strip() for n in str(annotations.get(ANNOTATION_ALLOW_IMPORT, "")).split(",")}
    return importer in names or "*" in names


def opt_in_command(secret: str, importer: str) -> str:
    """The command with which whoever may write Secret `secret` lets `importer` use it."""
    return f"kubectl annotate secret {secret} {ANNOTATION_ALLOW_IMPORT}={importer}"
