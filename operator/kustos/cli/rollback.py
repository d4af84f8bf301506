"""`kustos rollback --secret-id ID [--version-id V] [--force]`: have the operator move
AWSCURRENT back.

As `rotate-secret --namespace`, the operator does the work (it owns the labels and the
rotators): this command sets the ManagedSecret's `kustos.io/rollback` annotation to
`previous#cli-<time>` (or `<version-id>#cli-<time>`; `--force` prefixes `force:`), waits
until the status's `rollback` answers that request, and prints ARN, Name, VersionId (now
AWSCURRENT) and the version it replaced; it fails with the operator's message when the
rollback failed or was refused. See services/rollback for what the operator does (for a
database rotator: setSecret and testSecret with the version's credentials first; with
alternating users, a version of AWSCURRENT's own user is refused unless forced).
"""

from __future__ import annotations

import json
import time

import click

from kustos.config import Settings
from kustos.errors import (
    InvalidRequestError,
    ResourceNotFoundError,
    RollbackRefusedError,
    ServerError,
)

__all__ = ["rollback"]

ANNOTATION = "kustos.io/rollback"
#: services/rotation/rollback's FORCE_PREFIX (the CLI does not import the services' modules).
FORCE_PREFIX = "force:"


@click.command("rollback")
@click.option("--secret-id", required=True, help="The secret's name or ARN.")
@click.option(
    "--version-id",
    default=None,
    help="The version to make AWSCURRENT again (default: AWSPREVIOUS).",
)
@click.option(
    "--force",
    is_flag=True,
    default=False,
    help=(
        "Roll back even when it locks out the running pods: with alternating users, a "
        "version of AWSCURRENT's own user (two rotations back) gets that user's old password "
        "set, so pods on AWSCURRENT fail new logins until restarted. Without --force such a "
        "rollback is refused; roll back to the other user's version (AWSPREVIOUS) instead."
    ),
)
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
    default=120.0,
    show_default=True,
    help="Seconds to wait for the operator to answer.",
)
def rollback(
    secret_id: str,
    version_id: str | None,
    namespace: str,
    wait_seconds: float = 120.0,
    force: bool = False,
) -> None:
    """Move AWSCURRENT back to AWSPREVIOUS (or --version-id) and restart the consumers.

    With alternating users, a rollback to a version of AWSCURRENT's own user is refused
    (it would lock out the pods running on AWSCURRENT) unless --force is given.
    """
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
            raise InvalidRequestError(f"secret {record.name} has no ManagedSecret")
        request = f"{FORCE_PREFIX if force else ''}{version_id or 'previous'}#cli-{time.time_ns()}"
        name = body["metadata"]["name"]
        objects.merge_patch(
            record.namespace, name, {"metadata": {"annotations": {ANNOTATION: request}}}
        )
        deadline = time.monotonic() + wait_seconds
        while True:
            current = objects.get(record.namespace, name) or {}
            answer = dict((current.get("status") or {}).get("rollback") or {})
            if answer.get("request") == request:
                break
            if time.monotonic() > deadline:
                raise ServerError(
                    f"rollback of {record.name} not answered within "
                    f"{wait_seconds:g}s; is the operator running?"
                )
            time.sleep(0.5)
    finally:
        services.close()
    if answer.get("state") == "Refused":  # the message says why and what to do instead
        raise RollbackRefusedError(str(answer.get("message") or "rollback refused"))
    if answer.get("state") != "Succeeded":
        raise InvalidRequestError(f"rollback failed: {answer.get('message') or 'see the Events'}")
    click.echo(
        json.dumps(
            {
                "ARN": record.arn,
                "Name": record.name,
                "VersionId": answer.get("toVersion"),
                "PreviousVersionId": answer.get("fromVersion"),
            }
        )
    )
