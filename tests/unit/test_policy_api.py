"""The public surface of kustos.policy and the shape of its modules."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import kustos.policy

MODULES = [info.name for info in pkgutil.iter_modules(kustos.policy.__path__)]


def test_all_names_exist_and_are_sorted() -> None:
    names = kustos.policy.__all__
    assert names == sorted(names)
    missing = [name for name in names if not hasattr(kustos.policy, name)]
    assert missing == []
    for expected in (
        "parse_policy",
        "evaluate",
        "Decision",
        "is_public",
        "validate_resource_policy",
    ):
        assert expected in names


def test_every_module_says_what_it_owns_and_stays_small() -> None:
    assert len(MODULES) >= 8
    for name in MODULES:
        module = importlib.import_module(f"kustos.policy.{name}")
        assert len((module.__doc__ or "").strip()) > 40, name
        assert module.__file__ is not None
        assert len(Path(module.__file__).read_text().splitlines()) < 300, name


def test_the_package_does_no_io() -> None:
    forbidden = {
        "os",
        "socket",
        "subprocess",
        "pathlib",
        "kopf",
        "kubernetes",
        "aiohttp",
        "sqlalchemy",
    }
    for name in MODULES:
        module = importlib.import_module(f"kustos.policy.{name}")
        assert module.__file__ is not None
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert not imported & forbidden, (name, imported & forbidden)
