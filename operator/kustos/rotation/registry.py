"""Rotators by name.

Rotators are discovered through the Python entry-point group `kustos.rotators` (name =
`module:Class`), so a plugin distribution adds one by declaring an entry point. The built-ins
are declared in Kustos's own pyproject.toml and also listed here, so that a source checkout
with stale distribution metadata still finds them. `register_rotator` adds one in-process
(tests, embedding).
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points

from kustos.errors import InvalidParameterError
from kustos.rotation.rotator import Rotator

__all__ = ["ENTRY_POINT_GROUP", "get_rotator", "known_rotators", "register_rotator"]

ENTRY_POINT_GROUP = "kustos.rotators"

_BUILTINS = {
    "generated": "kustos.rotation.rotators.generated:GeneratedRotator",
    "postgresql": "kustos.rotation.rotators.postgresql:PostgresRotator",
    "mysql": "kustos.rotation.rotators.mysql:MySQLRotator",
    "webhook": "kustos.rotation.rotators.webhook:WebhookRotator",
}

_lock = threading.Lock()
_targets: dict[str, str] | None = None
_instances: dict[str, Rotator] = {}


def _discover() -> dict[str, str]:
    global _targets
    with _lock:
        if _targets is None:
            found = dict(_BUILTINS)
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                found[ep.name] = ep.value
            _targets = found
        return _targets


def known_rotators() -> list[str]:
    """Names of every rotator that `get_rotator` can return, sorted."""
    return sorted(set(_discover()) | set(_instances))


def register_rotator(rotator: Rotator) -> None:
    """Make `rotator` available under `rotator.name` (replacing any with that name)."""
    with _lock:
        _instances[rotator.name] = rotator


def get_rotator(name: str) -> Rotator:
    """The rotator called `name`; InvalidParameterError listing the known ones if none is."""
    if name in _instances:
        return _instances[name]
    target = _discover().get(name)
    if target is None:
        raise InvalidParameterError(
            f"unknown rotator {name!r}; known rotators: {', '.join(known_rotators())}"
        )
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    rotator = factory()
    if not isinstance(rotator, Rotator) or rotator.name != name:
        raise InvalidParameterError(f"entry point {target!r} is not a Kustos rotator {name!r}")
    with _lock:
        return _instances.setdefault(name, rotator)
