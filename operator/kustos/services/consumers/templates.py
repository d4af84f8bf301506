"""Renders `spec.target.template` into the projected Secret's data.

The templates are Jinja2, rendered in a sandboxed child process (`template_worker`) under
limits: a wall-clock deadline per render (the child is killed and replaced when it runs
over), an address-space limit, and a cap on the rendered size. The child is started once
and reused; it sees only what a render needs (the secret's keys and the static data), not
the operator's environment.

What a template sees:
  `secret`  the version's keys (a JSON-object value; fields keep their JSON types), or
            `secret.value` for any other value
  `static`  `target.staticData`
  filters   Jinja2's own, plus `urlencode` (every reserved character), `b64encode`,
            `b64decode`, `tojson`, `fromjson`

A failed render raises `TemplateError` (an InvalidParameterError: not retried until the
spec or the value changes). Its message names the key, line and kind of failure and never
carries a value; the caller writes nothing, so the last good Secret stays.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kustos.errors import TemplateError
from kustos.models.sensitive import SecretValue
from kustos.models.spec import TemplateSpec

__all__ = ["TemplateError", "TemplateLimits", "TemplateRenderer", "template_data"]

_HEADER = struct.Struct(">I")
_WORKER = "kustos.services.consumers.template_worker"
#: The directory that holds the `kustos` package, for the child's import path.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


@dataclass(frozen=True)
class TemplateLimits:
    #: Wall-clock seconds one render may take before the child is killed.
    timeout_seconds: float = 2.0
    #: The rendered keys together (a Secret holds at most 1 MiB).
    max_output_bytes: int = 512 * 1024
    #: Address space of the child process.
    memory_bytes: int = 512 * 1024 * 1024
    #: Seconds the child may take to start (import Jinja2) before it counts as broken.
    start_timeout_seconds: float = 60.0


class TemplateRenderer:
    """Renders templates in one reusable child process; safe to call from many threads
    (renders are serialized: they take milliseconds)."""

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self.limits = limits or TemplateLimits()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def render(
        self, templates: dict[str, str], secret: dict[str, Any], static: dict[str, str]
    ) -> dict[str, str]:
        request = {
            "templates": templates,
            "secret": secret,
            "static": static,
            "maxOutput": self.limits.max_output_bytes,
        }
        with self._lock:
            proc = self._ensure()
            try:
                _send(proc, request)
                answer = _receive(proc, time.monotonic() + self.limits.timeout_seconds)
            except TimeoutError:
                self._stop()
                raise TemplateError(
                    f"target.template: rendering took longer than "
                    f"{self.limits.timeout_seconds:g} s and was stopped"
                ) from None
            except (OSError, EOFError, ValueError):
                self._stop()
                raise TemplateError(
                    "target.template: the renderer stopped (its memory limit of "
                    f"{self.limits.memory_bytes // (1024 * 1024)} MiB or a crash); "
                    "rendering was abandoned"
                ) from None
        if "error" in answer:
            err = answer["error"]
            where = f"data[{err['key']}]" + (f", line {err['line']}" if err.get("line") else "")
            raise TemplateError(f"target.template {where}: {err['kind']}: {err['message']}")
        data: dict[str, str] = answer["data"]
        return data

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        env = {
            "PYTHONPATH": _PACKAGE_ROOT,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "random",
            "LC_ALL": "C.UTF-8",
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-c",
                f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
                f"from {_WORKER} import main; main()",
                str(self.limits.memory_bytes),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            close_fds=True,
        )
        try:
            ready = _receive(proc, time.monotonic() + self.limits.start_timeout_seconds)
        except (TimeoutError, OSError, EOFError, ValueError):
            _kill(proc)
            raise TemplateError("target.template: the renderer could not start") from None
        if not ready.get("ready"):
            _kill(proc)
            raise TemplateError("target.template: the renderer could not start")
        self._proc = proc
        return proc

    def _stop(self) -> None:
        if self._proc is not None:
            _kill(self._proc)
            self._proc = None


def template_data(
    renderer: TemplateRenderer,
    template: TemplateSpec,
    value: SecretValue,
    static: dict[str, str],
    plain: dict[str, bytes],
) -> dict[str, bytes]:
    """The projected Secret's data under `template`: its rendered keys, on top of the
    secret's own keys and the static data when mergePolicy is Merge."""
    mapping = value.as_mapping()
    if mapping is not None:
        secret: dict[str, Any] = dict(mapping)
    else:
        try:
            secret = {"value": value.reveal_bytes().decode("utf-8")}
        except UnicodeDecodeError:
            raise TemplateError(
                "target.template: the secret's value is binary, not UTF-8 text; templates "
                "render text"
            ) from None
    rendered = renderer.render(dict(template.data), secret, dict(static))
    data = dict(plain) if template.merge_policy == "Merge" else {}
    data.update({k: v.encode("utf-8") for k, v in rendered.items()})
    return data


def _send(proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    body = json.dumps(message).encode("utf-8")
    proc.stdin.write(_HEADER.pack(len(body)) + body)
    proc.stdin.flush()


def _receive(proc: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    assert proc.stdout is not None
    (size,) = _HEADER.unpack(_read_exact(proc.stdout, _HEADER.size, deadline))
    loaded: dict[str, Any] = json.loads(_read_exact(proc.stdout, size, deadline))
    return loaded


def _read_exact(stream: IO[bytes], size: int, deadline: float) -> bytes:
    fd, parts, need = stream.fileno(), [], size
    while need:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            raise TimeoutError
        chunk = os.read(fd, need)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        need -= len(chunk)
    return b"".join(parts)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
