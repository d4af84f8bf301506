"""`Store` holds: its parts are members of the protocol, and nothing outside `kustos.store`
reaches around it to the SQL implementation or its engine.

mypy (strict) checks that `SqlStore` satisfies `Store` where `open_store` returns it, and
that the composition root builds every service from `Store` members alone; these tests
keep the runtime side and the boundary honest.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import kustos
from kustos.crypto import Keyring, seal
from kustos.models.records import AWSCURRENT, SecretRecord
from kustos.store import SqlStore, Store, open_store
from kustos.store.access_keys import AccessKeyStore
from kustos.store.audit import GENESIS, AuditStore
from kustos.store.key_usage import KIND_VERSION, KeyUsage
from kustos.store.revocations import RevocationStore
from kustos.store.rotations import RotationStore

PACKAGE = Path(kustos.__file__).resolve().parent
ARN = "arn:kustos:secretsmanager:c1:team-a:secret:prod/db-AbCdEf"
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
KEYRING = Keyring.generate()
PARTS = {
    "rotations": RotationStore,
    "audit": AuditStore,
    "access_keys": AccessKeyStore,
    "revocations": RevocationStore,
    "key_usage": KeyUsage,
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'kustos.db'}")
    yield opened
    opened.close()


def test_the_protocol_declares_the_parts() -> None:
    declared = {name for name in vars(Store) if not name.startswith("_")}
    assert set(PARTS) <= declared
    assert all(hasattr(SqlStore, name) for name in declared), declared - set(dir(SqlStore))


@pytest.mark.parametrize(("name", "kind"), PARTS.items())
def test_each_part_is_made_once(store: Store, name: str, kind: type) -> None:
    part = getattr(store, name)
    assert isinstance(part, kind)
    assert getattr(store, name) is part


def test_the_parts_work_on_the_stores_database(store: Store) -> None:
    store.create_secret(
        SecretRecord(arn=ARN, namespace="team-a", name="prod/db", created_at=T0, updated_at=T0)
    )
    sealed = seal(b"value", arn=ARN, version_id="v1", keyring=KEYRING)
    store.add_version(ARN, "v1", sealed, [AWSCURRENT], T0)
    assert store.key_usage.counts() == {KIND_VERSION: {sealed.key_id: 1}}
    assert store.rotations.active(ARN) is None
    assert store.audit.tail() == (0, GENESIS)
    assert store.access_keys.list() == []
    assert store.revocations.all() == {}


def _reaches_around(tree: ast.AST) -> list[str]:
    """Uses of the SQL implementation in `tree`: the name `SqlStore`, the module
    `kustos.store.sql`, or `.engine` of something called a store."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "SqlStore":
            found.append(f"line {node.lineno}: SqlStore")
        elif isinstance(node, ast.ImportFrom):
            names = {alias.name for alias in node.names}
            if node.module == "kustos.store.sql" or "SqlStore" in names:
                found.append(f"line {node.lineno}: import from {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr == "engine":
            owner = node.value
            label = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if "store" in label.lower():
                found.append(f"line {node.lineno}: {label}.engine")
    return found


def test_the_scan_sees_a_reach_around() -> None:
    source = (
        "from kustos.store import SqlStore\n"
        "if isinstance(services.store, SqlStore):\n"
        "    RotationStore(services.store.engine)\n"
    )
    assert len(_reaches_around(ast.parse(source))) == 3


def test_nothing_outside_the_store_reaches_around_the_protocol() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "store":
            continue
        found = _reaches_around(ast.parse(path.read_text(), str(path)))
        if found:
            offenders[str(relative)] = found
    assert offenders == {}
