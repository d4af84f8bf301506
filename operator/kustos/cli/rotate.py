"""`kustos rotate-secret --namespace NS`: have the operator rotate a secret now, and wait.

The operator is the one process that runs rotations (two processes stepping the same
rotation would race). This command sets the ManagedSecret's `kustos.io/rotate-now`
annotation to a fresh value, as `kubectl annotate` would, then waits until the rotation it
caused has succeeded or failed. Prints AWS RotateSecret's answer (ARN, Name, VersionId);
fails with the rotation's sanitized error when it failed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from kustos.config import Settings
from kustos.errors import InvalidRequestError, ResourceNotFoundError, ServerError

__all__ = ["rotate_secret"]

ANNOTATION = "kustos.io/rotate-now"


@click.command("rotate-secret")
@click.option("--secret-id", required=True, help="The secret's name or ARN.")
@click.option(
    "--namespace",
    "-n",
    default="default",
    show_default=True,
    help="The namespace (account) of the secret.",
)
@click.option(
    "--wait",
    "wait_seconds",
    default=300.0,
    show_default=True,
    help="Seconds to wait for the rotation to finish.",
)
def rotate_secret(secret_id: str, namespace: str, wait_seconds: float = 300.0) -> None:
    """Rotate a secret now (its ManagedSecret's rotation section says how)."""
    from kustos.services.factory import Services

    services = Services.build(Settings.from_env())
    try:
        record = (
            services.store.get_secret_by_arn(secret_id)
            if secret_id.startswith("arn:")
            else services.store.get_secret(namespace, secret_id)
        )
        if record is None:
            raise ResourceNotFoundError(
                f"Secrets Manager can't find the specified secret: {namespace}/{secret_id}"
            )
        objects = services.managed_objects
        body = objects.get(record.namespace, record.object_name) if record.object_name else None
        if body is None:
            raise InvalidRequestError(f"secret {record.name} has no ManagedSecret to rotate")
        if not (body.get("spec") or {}).get("rotation"):
            raise InvalidRequestError(f"secret {record.name} has no rotation configured")
        before = _rotation(body).get("token")
        stamp = f"cli-{time.time_ns()}"
        objects.merge_patch(
            record.namespace,
            body["metadata"]["name"],
            {"metadata": {"annotations": {ANNOTATION: stamp}}},
        )
        deadline = time.monotonic() + wait_seconds
        while True:
            current = objects.get(record.namespace, body["metadata"]["name"]) or {}
            rotation = _rotation(current)
            if rotation.get("token") not in (None, before):
                if rotation.get("state") == "Succeeded" and (
                    current.get("status", {}).get("currentVersionId") == rotation["token"]
                ):
                    break
                if rotation.get("state") in ("Failed", "Held"):
                    raise ServerError(
                        f"rotation {rotation['token']} {rotation['state'].lower()}: "
                        f"{rotation.get('lastError') or 'see the Events'}"
                    )
            if time.monotonic() > deadline:
                raise ServerError(
                    f"rotation of {record.name} did not finish within "
                    f"{wait_seconds:g}s; is the operator running?"
                )
            time.sleep(0.5)
    finally:
        services.close()
    click.echo(json.dumps({"ARN": record.arn, "Name": record.name, "VersionId": rotation["token"]}))


def _rotation(obj: dict[str, Any]) -> dict[str, Any]:
    return dict((obj.get("status") or {}).get("rotation") or {})
