"""Shared fixtures: the real control plane, the real operator process, real databases."""

from __future__ import annotations

pytest_plugins = ["tests.cluster_fixture", "tests.operator_fixture", "tests.db_fixture"]
