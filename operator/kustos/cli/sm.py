"""`kustos <verb>`: the Secrets Manager API from the command line, as `aws secretsmanager`.

One click command per operation, generated from the service model botocore ships, so flag
names, types and validation are the AWS CLI's (see `sm_args`). Each verb also takes the
global options ``--endpoint-url`` (default ``$KUSTOS_ENDPOINT`` or https://127.0.0.1:8443),
``--ca-bundle``, ``--region``, ``--token-file``, ``--no-verify-ssl``, ``--output
json|text|table``, ``--query`` and, where the service paginates, ``--max-items``,
``--starting-token``, ``--page-size``, ``--no-paginate``. Service errors print as the AWS CLI
does and exit 254; anything else (bad arguments, no connection) exits 255.

`rotate-secret --namespace NS` asks the operator to rotate now and waits (`kustos.cli.rotate`);
without ``--namespace`` it calls the API's RotateSecret.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import botocore.exceptions
import botocore.session
import click
from botocore import xform_name

from kustos.cli import rotate as rotate_cli
from kustos.cli.sm_args import ArgvError, flag_name, parse_argv
from kustos.cli.sm_output import FORMATS, format_output
from kustos.config import client_environment

__all__ = ["OPERATIONS", "register", "run_operation"]

OPERATIONS = (
    "GetSecretValue",
    "BatchGetSecretValue",
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecret",
    "DescribeSecret",
    "ListSecrets",
    "ListSecretVersionIds",
    "UpdateSecretVersionStage",
    "RotateSecret",
    "CancelRotateSecret",
    "DeleteSecret",
    "RestoreSecret",
    "TagResource",
    "UntagResource",
    "GetRandomPassword",
    "GetResourcePolicy",
    "PutResourcePolicy",
    "DeleteResourcePolicy",
    "ValidateResourcePolicy",
)
GLOBAL_FLAGS = {
    "endpoint-url": False,
    "ca-bundle": False,
    "region": False,
    "output": False,
    "query": False,
    "token-file": False,
    "no-verify-ssl": True,
}
PAGING_FLAGS = {
    "max-items": False,
    "starting-token": False,
    "page-size": False,
    "no-paginate": True,
}
IGNORED: dict[str, str] = {}  # members accepted and dropped with a note (none today)
EXIT_SERVICE_ERROR, EXIT_OTHER_ERROR = 254, 255

_model_cache: dict[str, Any] = {}


def service_model() -> Any:
    if "model" not in _model_cache:
        _model_cache["model"] = botocore.session.get_session().get_service_model("secretsmanager")
    return _model_cache["model"]


def _has_paginator(operation: str) -> bool:
    return operation == "ListSecrets"  # the only paginated operation Kustos serves


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def run_operation(operation: str, argv: list[str]) -> None:
    """Parse `argv` against `operation`'s input shape, call it, print the answer."""
    from kustos.client import connect

    op_model = service_model().operation_model(operation)
    flags = dict(GLOBAL_FLAGS, **(PAGING_FLAGS if _has_paginator(operation) else {}))
    if operation == "RotateSecret":
        flags["namespace"] = False
    try:
        params, extra = parse_argv(argv, op_model.input_shape, flags)
    except ArgvError as exc:
        _fail(f"{exc}\nSee 'kustos {flag_name(operation)} --help'.", EXIT_OTHER_ERROR)
    if operation == "RotateSecret" and "namespace" in extra:
        return _rotate_in_process(params, extra["namespace"])
    for member, note in IGNORED.items():
        if params.pop(member, None) is not None:
            click.echo(f"Note: {note}", err=True)
    output = extra.get("output") or client_environment().output or "json"
    if output not in FORMATS:
        _fail(
            f"argument --output: invalid choice: {output!r} (choose from {', '.join(FORMATS)})",
            EXIT_OTHER_ERROR,
        )
    ca_bundle: str | bool | None = False if extra.get("no-verify-ssl") else extra.get("ca-bundle")
    try:
        client = connect(
            extra.get("endpoint-url"),
            ca_bundle=ca_bundle,
            region=extra.get("region"),
            token_file=extra.get("token-file"),
        )
        response = _call(client, operation, params, extra)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        _fail(
            f"\nAn error occurred ({error.get('Code', 'Unknown')}) when calling the "
            f"{operation} operation: {error.get('Message', '')}",
            EXIT_SERVICE_ERROR,
        )
    except botocore.exceptions.ParamValidationError as exc:
        _fail(f"\n{exc}", EXIT_OTHER_ERROR)
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        _fail(f"\n{exc}", EXIT_OTHER_ERROR)
    text = format_output(operation, response, output, extra.get("query"))
    if text:
        click.echo(text, nl=False)


def _call(client: Any, operation: str, params: dict[str, Any], extra: dict[str, Any]) -> Any:
    method = xform_name(operation)
    paginate = (
        _has_paginator(operation)
        and not extra.get("no-paginate")
        and "NextToken" not in params
        and "MaxResults" not in params
    )
    if not paginate:
        return getattr(client, method)(**params)
    config: dict[str, Any] = {}
    for flag, key in (
        ("max-items", "MaxItems"),
        ("page-size", "PageSize"),
        ("starting-token", "StartingToken"),
    ):
        if flag in extra:
            config[key] = extra[flag] if flag == "starting-token" else int(extra[flag])
    pages = client.get_paginator(method).paginate(**params, PaginationConfig=config)
    return pages.build_full_result()


def _rotate_in_process(params: dict[str, Any], namespace: str) -> None:
    callback = rotate_cli.rotate_secret.callback
    assert callback is not None
    callback(secret_id=params.get("SecretId", ""), namespace=namespace, wait_seconds=300.0)


def _first_sentence(html: str) -> str:
    text = re.sub(r"<[^>]+>", "", html or "").strip()
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0] if text else ""


class _VerbCommand(click.Command):
    """A verb whose arguments are parsed from the service model, not by click."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        op_model = service_model().operation_model(operation)
        super().__init__(
            name=flag_name(operation),
            callback=self._invoke,
            params=[click.Argument(["argv"], nargs=-1, type=click.UNPROCESSED)],
            context_settings={
                "ignore_unknown_options": True,
                "allow_extra_args": True,
                "help_option_names": ["-h", "--help"],
            },
            help=_first_sentence(op_model.documentation),
        )

    def _invoke(self, argv: tuple[str, ...]) -> None:
        run_operation(self.operation, list(argv))

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS]")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        shape = service_model().operation_model(self.operation).input_shape
        rows = []
        for name, member in shape.members.items() if shape is not None else []:
            required = " (required)" if name in shape.required_members else ""
            kind = "flag" if member.type_name == "boolean" else member.type_name
            note = " Ignored by Kustos." if name in IGNORED else ""
            rows.append(
                (
                    f"--{flag_name(name)} <{kind}>",
                    f"{_first_sentence(member.documentation)}{required}{note}",
                )
            )
        with formatter.section("Options (as `aws secretsmanager`)"):
            formatter.write_dl(rows)
        glob = [
            (
                "--endpoint-url URL",
                "Kustos API (default $KUSTOS_ENDPOINT or https://127.0.0.1:8443).",
            ),
            ("--ca-bundle FILE", "CA to verify the server with."),
            ("--no-verify-ssl", "Do not verify the server's certificate."),
            ("--region NAME", "SigV4 region: the Kustos cluster name."),
            (
                "--token-file FILE",
                "Authenticate with a ServiceAccount token "
                "(Bearer; default $KUSTOS_TOKEN_FILE), else the AWS credential chain.",
            ),
            ("--output json|text|table", "Output format (default json)."),
            ("--query JMESPATH", "Filter the answer, as the AWS CLI."),
        ]
        if _has_paginator(self.operation):
            glob += [
                (
                    "--max-items N / --starting-token T / --page-size N / --no-paginate",
                    "Client-side pagination, as the AWS CLI.",
                )
            ]
        if self.operation == "RotateSecret":
            glob += [
                (
                    "--namespace NS",
                    "Rotate in this process (store and cluster from "
                    "the environment), not through the API.",
                )
            ]
        with formatter.section("Global options"):
            formatter.write_dl(glob)


def register(group: click.Group) -> None:
    """Add every verb to `group` (replacing a command of the same name)."""
    for operation in OPERATIONS:
        group.add_command(_VerbCommand(operation))
