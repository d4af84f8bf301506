"""Fixtures of the rotator conformance suite (the harness is in `rotation_harness`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.db_fixture import mariadb_server, pg_server  # noqa: F401
from tests.integration.rotators.rotation_harness import (
    ALL_CASES,
    DB_CASES,
    Engine,
    RotationCase,
    build_case,
)
from tests.integration.rotators.webhook_server import WebhookServer, make_cert


@pytest.fixture(scope="session")
def webhook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookServer]:
    crt, key = make_cert(tmp_path_factory.mktemp("hook"))
    server = WebhookServer(crt, key)
    yield server
    server.close()


@pytest.fixture
def hook(webhook_server: WebhookServer) -> Iterator[WebhookServer]:
    webhook_server.mode = "ok"
    yield webhook_server
    webhook_server.mode = "ok"


@pytest.fixture(params=ALL_CASES)
def case(request: pytest.FixtureRequest) -> RotationCase:
    return build_case(request, request.param)


@pytest.fixture(params=[pytest.param(c, marks=pytest.mark.db) for c in DB_CASES])
def db_case(request: pytest.FixtureRequest) -> RotationCase:
    return build_case(request, request.param)


@pytest.fixture(params=[pytest.param(c, marks=pytest.mark.db) for c in DB_CASES[::2]])
def single_case(request: pytest.FixtureRequest) -> RotationCase:
    return build_case(request, request.param)


@pytest.fixture(params=[pytest.param(c, marks=pytest.mark.db) for c in DB_CASES[1::2]])
def alternating_case(request: pytest.FixtureRequest) -> RotationCase:
    return build_case(request, request.param)


@pytest.fixture
def engine(case: RotationCase) -> Engine:
    return Engine(case, case.current)
