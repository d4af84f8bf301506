#!/usr/bin/env python3
"""Print constraints.txt: the runtime dependency closure of pyproject.toml's dependencies
(extras followed, dev extras not), pinned at the versions installed in the virtualenv.

Run with the project's virtualenv: ``.venv/bin/python tools/images/constraints.py``.
"""

from __future__ import annotations

import importlib.metadata as md
import tomllib
from pathlib import Path

from packaging.requirements import Requirement


def _key(name: str) -> str:
    return name.lower().replace("_", "-")


PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def closure() -> dict[str, str]:
    seen: dict[str, str] = {}

    def walk(name: str, extras: tuple[str, ...]) -> None:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            return
        seen[_key(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras):
                continue
            if _key(req.name) not in seen:
                walk(req.name, (*req.extras, ""))

    for line in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        walk(req.name, (*req.extras, ""))
    return seen


def main() -> None:
    print("# The Kustos image's pinned dependencies (the runtime closure of pyproject.toml's")
    print("# dependencies, at the versions the test suite runs with). The Dockerfile installs with")
    print("# --constraint constraints.txt; regenerate after changing dependencies:")
    print("#   .venv/bin/python tools/images/constraints.py > constraints.txt")
    for name, version in sorted(closure().items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
