"""`kustos access-key create|list|delete`: long-term SigV4 keys bound to a ServiceAccount;
`kustos access revoke|revocations`: cut a principal off (`kustos.services.access.revocations`).

`create` prints the secret access key once (as `aws iam create-access-key` does); Kustos keeps
it only sealed by the keyring. Prefer the container-credentials endpoint for pods: it needs
no static key at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click

from kustos.config import Settings
from kustos.errors import InvalidParameterError, ResourceNotFoundError
from kustos.kube.access import AccessGateway
from kustos.models.access_keys import AccessKeyRecord
from kustos.models.identity import Principal
from kustos.services.factory import Services

__all__ = ["access", "access_key", "cli_principal", "services_from_env"]


@contextmanager
def services_from_env() -> Iterator[Services]:
    services = Services.build(Settings.from_env())
    try:
        yield services
    finally:
        services.close()


def cli_principal(services: Services) -> Principal:
    """Who runs this CLI, for audit records: the kubeconfig's identity (SelfSubjectReview)."""
    who = AccessGateway(services.api).whoami()
    if who is None:
        return Principal(
            arn="arn:kustos:iam::cluster:user/unknown", username="unknown", auth_method="Kubernetes"
        )
    return Principal.user(who[0], groups=who[1], auth_method="Kubernetes")


def _metadata(record: AccessKeyRecord) -> dict[str, str]:
    return {
        "AccessKeyId": record.access_key_id,
        "ServiceAccount": f"{record.namespace}/{record.service_account}",
        "PrincipalArn": f"arn:kustos:iam::{record.namespace}:serviceaccount/"
        f"{record.service_account}",
        "Status": record.status,
        "CreateDate": record.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@click.group("access-key")
def access_key() -> None:
    """Manage SigV4 access keys that authenticate as a ServiceAccount."""


@access_key.command("create")
@click.option(
    "--service-account",
    "service_account",
    required=True,
    metavar="NS/NAME",
    help="The ServiceAccount the key authenticates as.",
)
@click.option("--no-verify", is_flag=True, help="Do not check that the ServiceAccount exists.")
def create(service_account: str, no_verify: bool) -> None:
    """Create a key and print its secret, once."""
    namespace, _, name = service_account.partition("/")
    if not namespace or not name or "/" in name:
        raise InvalidParameterError("--service-account must be NAMESPACE/NAME")
    with services_from_env() as services:
        if not no_verify and not AccessGateway(services.api).service_account_exists(
            namespace, name
        ):
            raise ResourceNotFoundError(f"ServiceAccount {namespace}/{name} not found")
        issued = services.access.keys.create(namespace, name)
    body = _metadata(issued.record)
    body["SecretAccessKey"] = issued.secret_access_key.reveal()
    click.echo(json.dumps({"AccessKey": body}, indent=4))


@access_key.command("list")
@click.option("--namespace", default=None, help="Only keys of this namespace.")
def list_keys(namespace: str | None) -> None:
    """List keys (never their secrets)."""
    with services_from_env() as services:
        records = services.access.keys.list(namespace)
    click.echo(json.dumps({"AccessKeyMetadata": [_metadata(r) for r in records]}, indent=4))


@access_key.command("delete")
@click.option("--access-key-id", required=True)
def delete(access_key_id: str) -> None:
    """Delete a key; it stops working within seconds on every API replica."""
    with services_from_env() as services:
        services.access.keys.delete(access_key_id)


@click.group("access")
def access() -> None:
    """Emergency controls over who can use the API."""


@access.command("revoke")
@click.option(
    "--principal",
    required=True,
    metavar="ARN",
    help="arn:kustos:iam::<namespace>:serviceaccount/<name> or arn:kustos:iam::cluster:user/<name>",
)
@click.option("--reason", default="", help="Why (kept in the revocation and the audit log).")
def revoke(principal: str, reason: str) -> None:
    """Cut PRINCIPAL off: every access key, session credential and Kubernetes token it was
    issued until now stops working on every API replica within 10 seconds."""
    from kustos.models.audit import AuditEvent
    from kustos.services.access.revocations import BOUND_SECONDS, RevocationService

    with services_from_env() as services:
        caller = cli_principal(services)
        revocation, deactivated = RevocationService(services.store.revocations).revoke(
            principal, by=caller.arn, reason=reason
        )
        services.audit.record(
            AuditEvent(
                "RevokePrincipal",
                caller,
                event_type="AwsServiceEvent",
                request_parameters={"principalArn": revocation.principal_arn, "reason": reason},
                response_elements={
                    "revokedAt": revocation.revoked_at,
                    "accessKeysDeactivated": deactivated,
                },
            )
        )
    click.echo(
        json.dumps(
            {
                "PrincipalArn": revocation.principal_arn,
                "RevokedAt": revocation.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "AccessKeysDeactivated": deactivated,
                "InForceWithinSeconds": BOUND_SECONDS,
            },
            indent=4,
        )
    )


@access.command("revocations")
def revocations() -> None:
    """List revoked principals."""
    from kustos.services.access.revocations import RevocationService

    with services_from_env() as services:
        rows = RevocationService(services.store.revocations).list()
    click.echo(
        json.dumps(
            {
                "Revocations": [
                    {
                        "PrincipalArn": r.principal_arn,
                        "RevokedAt": r.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "RevokedBy": r.revoked_by,
                        "Reason": r.reason,
                    }
                    for r in rows
                ]
            },
            indent=4,
        )
    )
