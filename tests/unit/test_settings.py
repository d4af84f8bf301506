"""Settings are read once, into `Settings` (and the client's variables into
`ClientEnvironment`), and passed down: no module of the package but `kustos.config` reads the
environment (the rule below); the modules that used to take what they need as arguments.
Click options' `envvar=` (CLI defaults) is click reading, not the package."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

import kustos
from kustos import metrics
from kustos.api.tls import default_hosts
from kustos.config import ClientEnvironment, Settings, client_environment
from kustos.models.records import SecretRecord

CANARY = "canary-env-value-7f3a"


def test_the_api_and_metrics_settings_are_read_with_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "KUSTOS_API_PORT": "0",
        "KUSTOS_API_HOST": "127.0.0.1",
        "KUSTOS_API_INSECURE": "1",
        "KUSTOS_API_TLS_SECRET": "my-tls",
        "KUSTOS_API_PROCESSES": "0",
        "KUSTOS_API_HOSTS": " kustos.example.com, ,10.0.0.7 ",
        "KUSTOS_API_TLS_CHECK_SECONDS": "1.5",
        "KUSTOS_METRICS_PER_SECRET": "1",
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings.from_env()
    assert (s.api_port, s.api_host, s.api_insecure, s.api_tls_secret) == (
        0,
        "127.0.0.1",
        True,
        "my-tls",
    )
    assert s.api_processes == 1  # at least one
    assert s.api_hosts == ("kustos.example.com", "10.0.0.7")
    assert (s.api_tls_check_seconds, s.metrics_per_secret) == (1.5, True)


def test_the_defaults_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KUSTOS_API_PORT",
        "KUSTOS_API_HOSTS",
        "KUSTOS_METRICS_PER_SECRET",
        "KUSTOS_API_INSECURE",
    ):
        monkeypatch.delenv(name, raising=False)
    s = Settings.from_env()
    assert (s.api_port, s.api_hosts, s.metrics_per_secret, s.api_insecure) == (
        8443,
        (),
        False,
        False,
    )


def test_the_environment_snapshot_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", CANARY)
    s = Settings.from_env()
    assert s.environ["HOOK_TOKEN"] == CANARY
    assert CANARY not in repr(s) and CANARY not in str(s)
    monkeypatch.setenv("HOOK_TOKEN", "changed later")
    assert s.environ["HOOK_TOKEN"] == CANARY  # read once
    with pytest.raises(TypeError):
        s.environ["HOOK_TOKEN"] = "x"  # type: ignore[index]  # what the test shows fails


def test_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUSTOS_ENDPOINT", "https://kustos:8443")
    monkeypatch.setenv("KUSTOS_CA_BUNDLE", "")
    monkeypatch.setenv("KUSTOS_TOKEN_FILE", "/var/run/token")
    monkeypatch.setenv("KUSTOS_OUTPUT", "table")
    monkeypatch.setenv("AWS_REGION", "prod")
    assert client_environment() == ClientEnvironment(
        endpoint="https://kustos:8443",
        ca_bundle=None,
        token_file="/var/run/token",
        output="table",
        region="prod",
    )


def test_generated_certificate_names_come_from_the_caller() -> None:
    hosts = default_hosts("kustos-system", ("kustos.example.com",))
    assert "kustos-api.kustos-system.svc" in hosts and hosts[-1] == "kustos.example.com"
    assert "kustos.example.com" not in default_hosts("kustos-system")


def test_per_secret_gauges_only_when_the_settings_ask() -> None:
    now = datetime.now(UTC)
    records = [
        SecretRecord(
            "arn:1", "team-a", "payments-db", now, now, rotation_enabled=True, last_rotated_at=now
        )
    ]
    metrics.register_store_collector(lambda: records)
    assert 'secret="payments-db"' not in metrics.render_metrics().decode()
    metrics.register_store_collector(lambda: records, per_secret=True)
    assert 'secret="payments-db"' in metrics.render_metrics().decode()


# -- the rule: only kustos/config.py reads the environment ---------------------------------
PACKAGE = Path(kustos.__file__).resolve().parent
_ENV = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def env_reads(source: str) -> list[int]:
    """Lines of `source` that touch the process environment through `os`."""

    def reads(node: ast.Attribute | ast.ImportFrom) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr in _ENV and isinstance(node.value, ast.Name) and node.value.id == "os"
        return node.module == "os" and any(alias.name in _ENV for alias in node.names)

    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute | ast.ImportFrom) and reads(node)
    ]


def test_only_the_config_module_reads_the_environment() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 100  # the package, not an empty folder
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sources
        if path != PACKAGE / "config.py"
        for line in env_reads(path.read_text())
    ]
    assert offenders == [], "read it into kustos.config.Settings (or client_environment())"


@pytest.mark.parametrize(
    "source",
    [
        "import os\nx = os.environ.get('A')",
        "import os\nx = os.environ['A']",
        "import os\nx = os.getenv('A')",
        "from os import environ\nx = environ['A']",
        "from os import getenv as g\nx = g('A')",
        "import os\nos.putenv('A', 'b')",
    ],
)
def test_the_rule_sees_each_way_of_reading(source: str) -> None:
    assert env_reads(source)


def test_the_rule_lets_other_uses_of_os_pass() -> None:
    assert env_reads("import os\nos.path.join('a', 'b')\nos.kill(1, 9)") == []
