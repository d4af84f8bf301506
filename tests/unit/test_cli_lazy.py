"""`kustos`: every command is reachable, and a Secrets Manager verb imports no more than it
needs (the store, the Kubernetes client and the services load only for commands that use
them)."""

from __future__ import annotations

import subprocess
import sys

import click

from kustos.cli.main import LAZY_COMMANDS, cli


def test_every_lazy_command_resolves_to_a_command_of_that_name() -> None:
    ctx = click.Context(cli)
    for name in LAZY_COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
    listed = cli.list_commands(ctx)
    assert set(LAZY_COMMANDS) <= set(listed)
    assert {"run", "get-secret-value", "rotate-secret"} <= set(listed)


def test_a_verb_does_not_import_the_store_or_the_kubernetes_client() -> None:
    probe = (
        "import sys\n"
        "from kustos.cli.main import cli\n"
        "cli.main(['get-secret-value', '--help'], standalone_mode=False)\n"
        "heavy = sorted(m for m in ('kustos.store', 'kubernetes', 'kustos.services.factory',"
        " 'sqlalchemy', 'aiohttp') if m in sys.modules)\n"
        "print('heavy=' + ','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip().splitlines()[-1] == "heavy="
