"""Shared fixtures: the real control plane, the real operator process, real databases.

Run in parallel (`pytest -n N --dist loadgroup`, as `make test` does), every module is one
unit of work (or one per value of the parameter a module names in `PARALLEL_BY`), so its module-scoped fixtures (an operator, an API server) start once; every
e2e module shares one unit, because the node is machine-wide and the first e2e module to
ask for it keeps it for the session (tests/cluster_fixture.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.cluster_fixture", "tests.operator_fixture", "tests.db_fixture"]

_E2E = Path(__file__).parent / "e2e"


# tryfirst: xdist's worker turns the marks into work units in its own modifyitems hook,
# which otherwise runs before this one and sees no marks.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = "node" if _E2E in Path(item.path).parents else item.nodeid.split("::")[0]
        # A long module may split into one unit per value of a parameter it names in
        # PARALLEL_BY (its module fixtures then start once per unit).
        by = getattr(getattr(item, "module", None), "PARALLEL_BY", None)
        callspec = getattr(item, "callspec", None)
        if by and callspec is not None and by in callspec.params:
            group = f"{group}[{callspec.params[by]}]"
        item.add_marker(pytest.mark.xdist_group(group))
