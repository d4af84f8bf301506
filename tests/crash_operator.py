"""`kustos run` with a rotation step hook that SIGKILLs the operator at one point.

For the crash-safety tests only (tests/integration/test_rotation_crash.py):

    python -m tests.crash_operator POINT run --verbose ...

POINT is `<step>:before` (the step's start persisted, nothing done), `<step>:after` (the
step's work done, not yet marked done) or `setSecret:mid` (inside a database rotator, right
after the statement that changed the password and before the rotator returns). The product
knows nothing of this: the hook reaches the engine the way any `StepHook` does, through the
CLI's context object, Kopf's memo and `Services.build`.
"""

from __future__ import annotations

import copy
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kustos.cli.main import cli
from kustos.rotation.engine import RotationJob, StepHook
from kustos.rotation.rotator import Rotator

SET = "setSecret"


def reached(point: str) -> str:
    """The line the operator writes just before it dies (the tests look for it)."""
    return f"crash point {point} reached: killing the operator"


class CrashAt(StepHook):
    def __init__(self, point: str) -> None:
        self.point = point

    def before(self, step: str, job: RotationJob) -> None:
        self._crash(f"{step}:before")

    def after(self, step: str, job: RotationJob) -> None:
        self._crash(f"{step}:after")

    def rotator(self, step: str, rotator: Rotator) -> Rotator:
        """The rotator, wrapped to crash mid-setSecret when that point is armed."""
        if self.point != f"{SET}:mid" or step != SET or not hasattr(rotator, "connect"):
            return rotator
        armed = copy.copy(rotator)
        inner = rotator.connect
        crash = self._crash

        @contextmanager
        def connect(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with inner(*args, **kwargs) as session:
                yield _CrashAfterChange(session, lambda: crash(f"{SET}:mid"))

        armed.connect = connect
        return armed

    def _crash(self, point: str) -> None:
        if point == self.point:
            sys.stderr.write(reached(point) + "\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)


class _CrashAfterChange:
    """A database session that dies right after a statement changed a password."""

    _CHANGES = frozenset({"set_password", "set_own_password", "create_clone"})

    def __init__(self, session: Any, crash: Callable[[], None]) -> None:
        self._session, self._crash_now = session, crash

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._session, name)
        if name not in self._CHANGES:
            return attr

        def changed(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self._crash_now()
            return result

        return changed


def main() -> None:
    point, args = sys.argv[1], sys.argv[2:]
    cli.main(args, prog_name="kustos", obj={"step_hook": CrashAt(point)})


if __name__ == "__main__":
    main()
