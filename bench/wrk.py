"""Drive an HTTP(S) endpoint with `wrk` (Debian package `wrk`), a C load generator.

`run_wrk` writes a small Lua script (`lua_script`: method, headers, body; a `done` hook that
prints the request count, errors and latency percentiles as JSON), runs wrk with one
connection per unit of concurrency (closed loop, keep-alive) and returns rps, p50 and p99 in
ms, errors (non-2xx answers and socket errors) and the count (`parse_wrk`). `wrk_argv` and
`parse_wrk` also serve a wrk run elsewhere (in a pod: `bench/pod_load.py`). wrk verifies no
certificates; the bench points it at its own servers only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

__all__ = ["lua_script", "parse_wrk", "run_wrk", "wrk_argv", "wrk_available"]

_DONE = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.status + summary.errors.timeout
  io.write("KUSTOS-WRK ", string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}',
    summary.requests, summary.duration, errors, latency:percentile(50),
    latency:percentile(99)), "\\n")
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lua_script(method: str, headers: dict[str, str], body: bytes) -> str:
    """The request (method, headers, body) and the `done` hook that prints the figures."""
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body:
        lines.append(f"wrk.body = {_lua_string(body.decode())}")
    for name, value in headers.items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    return "\n".join(lines) + "\n" + _DONE


def wrk_argv(url: str, script: str, concurrency: int, seconds: float, threads: int) -> list[str]:
    """wrk's command line: `concurrency` keep-alive connections over `threads` threads."""
    threads = max(1, min(threads, concurrency))
    return [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(concurrency),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        script,
        url,
    ]


def parse_wrk(stdout: str, stderr: str = "") -> dict[str, float]:
    """rps, p50/p99 (ms), the count and errors from the output of a `lua_script` run."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith("KUSTOS-WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {stdout[-500:]} {stderr[-500:]}")
    got = json.loads(line.removeprefix("KUSTOS-WRK "))
    duration = got["duration_us"] / 1e6
    return {
        "rps": got["requests"] / duration,
        "p50": got["p50_us"] / 1000,
        "p99": got["p99_us"] / 1000,
        "n": got["requests"],
        "errors": got["errors"],
    }


def run_wrk(
    url: str,
    method: str,
    headers: dict[str, str],
    body: bytes,
    concurrency: int,
    seconds: float,
    workdir: Path,
    *,
    threads: int = 1,
) -> dict[str, float]:
    script = workdir / f"wrk-{abs(hash((url, method, body))) % 10**8}.lua"
    script.write_text(lua_script(method, headers, body))
    proc = subprocess.run(
        wrk_argv(url, str(script), concurrency, seconds, threads),
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    return parse_wrk(proc.stdout, proc.stderr)
