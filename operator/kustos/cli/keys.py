"""`kustos keys list|create|rotate|retire`: the keyring's key-encryption keys.

`rotate` adds a version to a key and rewraps every data key to the newest version of its own
key (payloads untouched); it never stops half-way: whatever it cannot rewrap is listed (by
secret ARN and version id, or access key id; never a value) and the exit status is 1.
`retire` removes a key version once nothing needs it. Each change to the keyring is an audit
record (`KeyCreated`, `KeyRotated`, `KeyRetired`) naming who ran the command.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from kustos.cli.access import cli_principal, services_from_env
from kustos.crypto import key_of
from kustos.models.audit import AuditEvent
from kustos.services.factory import Services

__all__ = ["keys"]


def _audit(
    services: Services, name: str, request: dict[str, Any], response: dict[str, Any]
) -> None:
    services.audit.record(
        AuditEvent(
            name,
            cli_principal(services),
            event_type="AwsServiceEvent",
            request_parameters=request,
            response_elements=response,
        )
    )


@click.group()
def keys() -> None:
    """Manage the keyring (key-encryption keys)."""


@keys.command("list")
def list_keys() -> None:
    """Key versions, the key each belongs to, and what in the store needs each."""
    with services_from_env() as services:
        keyring = services.keys.reload()
        usage = services.keys.usage()
    rows = []
    for key_id in keyring.ids:
        key = key_of(key_id)
        rows.append(
            {
                "KeyId": key_id,
                "Key": key or "aws/secretsmanager",
                "KmsKeyId": f"alias/{key}" if key else "",
                "Newest": key_id == keyring.newest_of(key),
                "UsedBy": {
                    kind: ids[key_id] for kind, ids in sorted(usage.items()) if ids.get(key_id)
                },
            }
        )
    click.echo(json.dumps({"Keys": rows}, indent=4))


@keys.command("create")
@click.argument("name")
def create_key(name: str) -> None:
    """Add the customer key NAME, for secrets created with `KmsKeyId` NAME (or alias/NAME)."""
    with services_from_env() as services:
        key_id = services.keys.create_key(name)
        _audit(services, "KeyCreated", {"key": name}, {"keyId": key_id})
    click.echo(json.dumps({"KeyId": key_id, "KmsKeyId": f"alias/{name}"}))


@keys.command("rotate")
@click.option(
    "--key",
    "key",
    default="",
    metavar="NAME",
    help="Rotate this customer key (default: the default key).",
)
def rotate(key: str) -> None:
    """Add a new version to a key and rewrap every data key to its key's newest version."""
    with services_from_env() as services:
        result = services.keys.rotate(key)
        click.echo(
            json.dumps(
                {
                    "NewKeyId": result.new_key_id,
                    "Rewrapped": result.rewrapped,
                    "Skipped": result.skipped,
                    "SkippedItems": [item.to_json() for item in result.skipped_items],
                },
                indent=4,
            )
        )
        _audit(
            services,
            "KeyRotated",
            {"key": key or "aws/secretsmanager"},
            {
                "newKeyId": result.new_key_id,
                "rewrapped": result.rewrapped,
                "skipped": result.skipped,
            },
        )
    if result.skipped:
        click.echo(
            f"{result.skipped} item(s) could not be rewrapped and still need their old "
            "key; see SkippedItems",
            err=True,
        )
        sys.exit(1)


@keys.command("retire")
@click.argument("key_id")
def retire(key_id: str) -> None:
    """Remove the key version KEY_ID from the keyring, once nothing needs it."""
    with services_from_env() as services:
        services.keys.retire(key_id)
        _audit(services, "KeyRetired", {"keyId": key_id}, {})
    click.echo(json.dumps({"RetiredKeyId": key_id}))
