"""spec.target.template: keys rendered from the secret's keys, the static data and a few
helpers, in a sandboxed child process that refuses injection and runaway templates with a
TemplateError that never carries a value."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from tests.unit.fakes import FakeEvents, FakeSecrets, stand_in

from kustos.crypto import Keyring
from kustos.kube.secrets import SecretGateway
from kustos.models.sensitive import SecretValue
from kustos.models.spec import ManagedSecretSpec, TemplateSpec
from kustos.services.consumers.templates import (
    TemplateError,
    TemplateLimits,
    TemplateRenderer,
    template_data,
)
from kustos.services.controller.projection import ProjectionService
from kustos.services.controller.reconcile import ManagedSecretService
from kustos.services.controller.sources import SourceService
from kustos.services.core.objects import ManagedObject
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore

CANARY = "KUSTOS-CANARY-tmpl-p@ss/w:rd#9"
SECRET = {"username": "orders_app", "password": CANARY, "port": 5432}
STATIC = {"host": "db.shop.svc", "dbname": "orders"}
DATABASE_URL = (
    "postgresql://{{ secret.username }}:{{ secret.password | urlencode }}"
    "@{{ static.host }}:{{ secret.port }}/{{ static.dbname }}"
)


@pytest.fixture(scope="module")
def renderer() -> Iterator[TemplateRenderer]:
    r = TemplateRenderer()
    yield r
    r.close()


def render(r: TemplateRenderer, source: str, secret: dict[str, Any] | None = None) -> str:
    return r.render({"k": source}, SECRET if secret is None else secret, STATIC)["k"]


def refused(r: TemplateRenderer, source: str) -> str:
    with pytest.raises(TemplateError) as info:
        render(r, source)
    message = info.value.message
    assert CANARY not in message and "p@ss" not in message
    return message


# -- rendering -------------------------------------------------------------------------
def test_database_url_percent_encodes_the_password(renderer: TemplateRenderer) -> None:
    assert render(renderer, DATABASE_URL) == (
        "postgresql://orders_app:KUSTOS-CANARY-tmpl-p%40ss%2Fw%3Ard%239@db.shop.svc:5432/orders"
    )


def test_jdbc_url_and_a_whole_config_file(renderer: TemplateRenderer) -> None:
    jdbc = (
        "jdbc:postgresql://{{ static.host }}:{{ secret.port }}/{{ static.dbname }}"
        "?user={{ secret.username | urlencode }}&password={{ secret.password | urlencode }}"
    )
    assert render(renderer, jdbc).endswith("&password=KUSTOS-CANARY-tmpl-p%40ss%2Fw%3Ard%239")
    config = (
        "[database]\n"
        "{% for key, value in secret | dictsort %}{{ key }} = {{ value }}\n{% endfor %}"
        "auth = {{ (secret.username ~ ':' ~ secret.password) | b64encode }}\n"
        "json = {{ secret | tojson }}\n"
    )
    out = render(renderer, config)
    lines = out.splitlines()
    assert lines[:4] == [
        "[database]",
        f"password = {CANARY}",
        "port = 5432",
        "username = orders_app",
    ]
    assert base64.b64decode(lines[4].split(" = ")[1]).decode() == f"orders_app:{CANARY}"
    assert json.loads(lines[5].split(" = ", 1)[1]) == SECRET


def test_fromjson_and_b64decode_and_plain_values(renderer: TemplateRenderer) -> None:
    nested = {"config": json.dumps({"user": "u1"}), "blob": base64.b64encode(b"hi").decode()}
    assert (
        render(
            renderer, "{{ (secret.config | fromjson).user }}-{{ secret.blob | b64decode }}", nested
        )
        == "u1-hi"
    )
    data = template_data(
        renderer,
        TemplateSpec(data={"token.txt": "Bearer {{ secret.value }}"}),
        SecretValue("abc"),
        {},
        {"value": b"abc"},
    )
    assert data == {"token.txt": b"Bearer abc"}


def test_merge_keeps_the_secrets_keys_replace_does_not(renderer: TemplateRenderer) -> None:
    value = SecretValue.from_mapping(SECRET)
    plain = {"password": CANARY.encode(), "host": b"db.shop.svc"}
    replace = template_data(
        renderer, TemplateSpec(data={"URL": DATABASE_URL}), value, STATIC, plain
    )
    assert sorted(replace) == ["URL"]
    merged = template_data(
        renderer,
        TemplateSpec(data={"URL": DATABASE_URL, "host": "x"}, merge_policy="Merge"),
        value,
        STATIC,
        plain,
    )
    assert sorted(merged) == ["URL", "host", "password"] and merged["host"] == b"x"


# -- errors name the place, never the value ---------------------------------------------
def test_a_missing_key_names_the_key_and_line(renderer: TemplateRenderer) -> None:
    message = refused(renderer, "line one\n{{ secret.pasword }}")
    assert "line 2" in message and "UndefinedError" in message and "pasword" in message


def test_a_key_computed_from_a_value_is_not_named(renderer: TemplateRenderer) -> None:
    message = refused(renderer, "{{ secret[secret.password] }}")
    assert "withheld" in message


def test_a_syntax_error_says_so(renderer: TemplateRenderer) -> None:
    assert "TemplateSyntaxError" in refused(renderer, "{{ secret.password ")


# -- injection attempts -------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ secret.__class__ }}",
        "{{ secret.items.__self__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ range.__init__.__globals__['os'] }}",
        "{{ (secret | attr('__class__')) }}",
        "{{ '{0.__class__}'.format(secret) }}",
    ],
)
def test_python_internals_are_out_of_reach(renderer: TemplateRenderer, source: str) -> None:
    assert "SecurityError" in refused(renderer, source)


@pytest.mark.parametrize(
    "source",
    [
        "{% include '/etc/passwd' %}",
        "{% import '/etc/hostname' as h %}",
        "{% extends '/proc/self/environ' %}",
    ],
)
def test_files_cannot_be_read(renderer: TemplateRenderer, source: str) -> None:
    assert "no loader" in refused(renderer, source)


@pytest.mark.parametrize(
    "name",
    [
        "environ",
        "os",
        "config",
        "cycler",
        "joiner",
        "lipsum",
        "namespace",
        "request",
        "self.__dict__",
    ],
)
def test_no_globals_besides_range(renderer: TemplateRenderer, name: str) -> None:
    refused(renderer, "{{ " + name + " }}")


def test_the_child_holds_none_of_the_operators_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Even if a way out of the sandbox existed, the renderer's process has no credentials
    of the operator's in its environment to find."""
    monkeypatch.setenv("KUSTOS_TEST_PLANTED", CANARY)
    fresh = TemplateRenderer()
    try:
        assert render(fresh, "{{ range(3) | list | length }}") == "3"
        assert fresh._proc is not None
        environ = Path(f"/proc/{fresh._proc.pid}/environ").read_bytes()
        assert CANARY.encode() not in environ and b"KUBECONFIG" not in environ
        assert b"PYTHONPATH=" in environ  # what it was given, and nothing else
    finally:
        fresh.close()


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 100000000 }}",
        "{{ [1] * 100000000 }}",
        "{{ 2 ** 100000 }}",
        "{% for i in range(100000) %}{{ 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }}{% endfor %}",
    ],
)
def test_huge_outputs_are_refused(renderer: TemplateRenderer, source: str) -> None:
    message = refused(renderer, source)
    assert "SecurityError" in message and (
        "output" in message or "bytes" in message or "exponent" in message
    )


def test_memory_is_bounded() -> None:
    small = TemplateRenderer(TemplateLimits(memory_bytes=256 * 1024 * 1024))
    try:
        # Each step doubles; 2**30 bytes is over the address-space limit.
        steps = "".join(f"{{% set s{i + 1} = s{i} ~ s{i} %}}" for i in range(30))
        with pytest.raises(TemplateError, match="memory"):
            render(small, "{% set s0 = 'ab' %}" + steps + "{{ s30 | length }}")
        assert render(small, "{{ secret.username }}") == "orders_app"  # and it recovers
    finally:
        small.close()


def test_long_loops_are_stopped_and_the_renderer_recovers() -> None:
    quick = TemplateRenderer(TemplateLimits(timeout_seconds=0.5))
    try:
        with pytest.raises(TemplateError, match=r"longer than 0\.5 s"):
            render(
                quick,
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            )
        assert render(quick, "{{ secret.username }}") == "orders_app"
    finally:
        quick.close()


def test_endless_recursion_is_refused(renderer: TemplateRenderer) -> None:
    assert "RecursionError" in refused(renderer, "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")


# -- the spec ------------------------------------------------------------------------------
def test_the_spec_refuses_bad_keys_and_oversized_templates() -> None:
    with pytest.raises(pydantic.ValidationError):
        TemplateSpec(data={"bad key": "x"})
    with pytest.raises(pydantic.ValidationError):
        TemplateSpec(data={"a": "x" * (64 * 1024 + 1)})
    with pytest.raises(pydantic.ValidationError):
        TemplateSpec(data={})
    with pytest.raises(pydantic.ValidationError):
        TemplateSpec.model_validate({"data": {"a": "x"}, "mergePolicy": "Append"})
    spec = ManagedSecretSpec.model_validate(
        {"target": {"template": {"data": {"DATABASE_URL": DATABASE_URL}}}}
    )
    assert spec.target.template is not None and spec.target.template.merge_policy == "Replace"


# -- the controller: a broken template keeps the last good Secret ----------------------------
def _raw(status: Any) -> dict[str, Any]:
    return status if isinstance(status, dict) else status.to_raw()


def test_a_broken_template_keeps_the_last_good_secret(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")
    events, kube = FakeEvents(), FakeSecrets()
    keyring = Keyring.generate()
    secrets = SecretService(store, lambda: keyring, "test")
    kube.create(
        "shop",
        {
            "metadata": {"name": "src", "annotations": {"kustos.io/allow-import-by": "db"}},
            "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in SECRET.items()},
        },
    )
    renderer = TemplateRenderer()
    managed = ManagedSecretService(
        secrets,
        SourceService(stand_in(SecretGateway, kube)),
        ProjectionService(stand_in(SecretGateway, kube), renderer),
        events,
    )
    spec: dict[str, Any] = {
        "valueFrom": {"secretRef": {"name": "src"}},
        "target": {"staticData": STATIC, "template": {"data": {"DATABASE_URL": DATABASE_URL}}},
    }
    try:
        good = managed.reconcile(ManagedObject("shop", "db", "uid-db", 1, spec))
        assert good.error is None
        projected = kube.get("shop", "db")
        assert projected is not None
        assert (
            base64.b64decode(projected["data"]["DATABASE_URL"])
            .decode()
            .startswith("postgresql://orders_app:KUSTOS-CANARY-tmpl-p%40ss")
        )
        assert sorted(projected["data"]) == ["DATABASE_URL"]

        spec["target"]["template"]["data"]["DATABASE_URL"] = "{{ secret[secret.password] }}"
        bad = managed.reconcile(ManagedObject("shop", "db", "uid-db", 2, spec, _raw(good.status)))
        assert bad.error is not None and not bad.error.retryable
        ready = next(c for c in _raw(bad.status)["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "TemplateFailed")
        assert "data[DATABASE_URL], line 1" in ready["message"]
        assert "TemplateFailed" in events.reasons()
        assert kube.get("shop", "db") == projected  # the last good Secret, untouched
        assert CANARY not in repr(_raw(bad.status)) + repr(events.emitted)
        assert "p%40ss" not in repr(_raw(bad.status)) + repr(events.emitted)
    finally:
        renderer.close()
        store.close()
