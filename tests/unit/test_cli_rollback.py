"""`kustos rollback`: the request it writes (`--force` prefixes `force:`) and how it ends on
the operator's answer: a refusal (a version of AWSCURRENT's own user, alternating users)
exits non-zero with the operator's message, which says why and what to do instead. The
services are a stand-in whose ManagedSecret answers as the operator would (the operator's
side: tests/unit/test_rollback_lockout.py)."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

from kustos.cli import main as cli_main
from kustos.services import factory

REFUSAL = (
    "rollback to version v1 refused: it is a version of user app, the user AWSCURRENT logs in "
    "as. To keep them logging in, roll back to a version of the other user instead: "
    "AWSPREVIOUS (version v2, user app_clone)"
)


class Objects:
    """The ManagedSecret gateway; a patch of the annotation is answered at once."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.requests: list[str] = []
        self.body: dict[str, Any] = {"metadata": {"name": "db"}, "status": {}}

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.body

    def merge_patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        request = patch["metadata"]["annotations"]["kustos.io/rollback"]
        self.requests.append(request)
        answer: dict[str, Any] = {"request": request, "state": self.state}
        if self.state == "Refused":
            answer["message"] = REFUSAL
        else:
            answer.update(fromVersion="v3", toVersion="v1", message="rolled back (forced)")
        self.body["status"]["rollback"] = answer


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], state: str, *args: str
) -> tuple[int, str, str, Objects]:
    objects = Objects(state)
    record = SimpleNamespace(
        arn="arn:kustos:secretsmanager:test:team-a:secret:prod/db-abcdef",
        name="prod/db",
        namespace="team-a",
        object_name="db",
    )
    services = SimpleNamespace(
        store=SimpleNamespace(get_secret=lambda ns, name: record),
        managed_objects=objects,
        close=lambda: None,
    )
    monkeypatch.setattr(factory.Services, "build", classmethod(lambda cls, settings: services))
    argv = ["kustos", "rollback", "--secret-id", "prod/db", "-n", "team-a", *args]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        cli_main.main()
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err, objects


def test_a_refused_rollback_exits_non_zero_with_the_operators_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, objects = _run(monkeypatch, capsys, "Refused", "--version-id", "v1")
    assert code != 0 and out == ""
    assert "(InvalidRequestException)" in err and REFUSAL in err
    (request,) = objects.requests
    assert request.startswith("v1#cli-")


def test_force_prefixes_the_request_and_prints_the_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, objects = _run(
        monkeypatch, capsys, "Succeeded", "--version-id", "v1", "--force"
    )
    assert code == 0, err
    (request,) = objects.requests
    assert request.startswith("force:v1#cli-")
    assert '"VersionId": "v1"' in out and '"PreviousVersionId": "v3"' in out
    code, _, _, objects = _run(monkeypatch, capsys, "Succeeded", "--force")
    assert objects.requests[0].startswith("force:previous#cli-")


def test_the_help_says_what_force_overrides(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["kustos", "rollback", "--help"])
    with pytest.raises(SystemExit):
        cli_main.main()
    text = " ".join(capsys.readouterr().out.split())
    assert "--force" in text and "refused" in text and "AWSPREVIOUS" in text
