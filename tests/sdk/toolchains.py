"""The AWS SDKs of other languages, fetched once from their registries into a cache.

Each SDK is pinned and prepared under `~/.cache/kustos/sdk/<lang>-<version>/` (override the
root with `KUSTOS_SDK_CACHE`), so CI downloads each once: the AWS SDK for JavaScript v3
(npm), Go v2 (the Go module proxy) and Java 2.x (Maven Central). `prepare(lang)` builds what
is missing and returns a `Toolchain` that runs a program written in that language;
`missing(lang)` names the tool the machine lacks (node, go, javac/mvn), for a clear skip.

    python -m tests.sdk.toolchains [javascript go java]   # prepare (make test does this)

`tests/sdk/ensure-packages.sh` installs Node, a JDK and Maven from Debian when missing; Go
is the one `tools/controlplane` fetches when none is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LANGS", "PINS", "Toolchain", "cache_root", "missing", "prepare"]

PINS = {
    "javascript": "3.1164.0",  # @aws-sdk/client-secrets-manager
    "go": "v1.51.0",  # github.com/aws/aws-sdk-go-v2/service/secretsmanager
    "java": "2.59.1",  # software.amazon.awssdk:secretsmanager
}
LANGS = tuple(PINS)
_TOOLS = {"javascript": ("node", "npm"), "go": ("go",), "java": ("java", "javac", "mvn")}
_GO_MAIN = """package main

func main() {}
"""
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.kustos.test</groupId><artifactId>sdk</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>software.amazon.awssdk</groupId><artifactId>secretsmanager</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId>
      <version>2.0.16</version></dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    return Path(os.environ.get("KUSTOS_SDK_CACHE") or Path.home() / ".cache/kustos/sdk")


def _path() -> str:
    """PATH, plus the Go toolchain the control-plane build fetched (tools/controlplane) when
    no go is installed."""
    path = os.environ.get("PATH", "")
    if shutil.which("go", path=path) is None:
        fetched = sorted(Path.home().glob(".cache/kustos/go1.*.linux-*/bin/go"))
        if fetched:
            path = f"{fetched[-1].parent}{os.pathsep}{path}"
    return path


def missing(lang: str) -> str | None:
    """The first tool `lang` needs that is not on PATH, or None."""
    return next((tool for tool in _TOOLS[lang] if shutil.which(tool, path=_path()) is None), None)


@dataclass(frozen=True)
class Toolchain:
    lang: str
    home: Path

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PATH": _path()}
        if self.lang == "go":
            env.update(
                GOMODCACHE=str(self.home / "modcache"),
                GOFLAGS="-mod=mod",
                GOCACHE=str(self.home / "gocache"),
            )
        return env

    def build(self, source: str, workdir: Path) -> list[str]:
        """Write `source` as this language's program in `workdir`; the command running it."""
        workdir.mkdir(parents=True, exist_ok=True)
        if self.lang == "javascript":
            (workdir / "node_modules").unlink(missing_ok=True)
            (workdir / "node_modules").symlink_to(self.home / "node_modules")
            (workdir / "main.mjs").write_text(source)
            return ["node", str(workdir / "main.mjs")]
        if self.lang == "go":
            for name in ("go.mod", "go.sum"):
                shutil.copy(self.home / name, workdir / name)
            (workdir / "main.go").write_text(source)
            binary = workdir / "main"
            _run(["go", "build", "-o", str(binary), "."], workdir, self.env())
            return [str(binary)]
        classpath = f"{self.home / 'lib'}/*"
        (workdir / "GetKustosSecret.java").write_text(source)
        _run(
            ["javac", "-cp", classpath, "-d", str(workdir), "GetKustosSecret.java"],
            workdir,
            self.env(),
        )
        return ["java", "-cp", f"{workdir}{os.pathsep}{classpath}", "GetKustosSecret"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout}\n{done.stderr}")


def prepare(lang: str) -> Toolchain:
    """The SDK for `lang`, downloaded and built into the cache unless it is there."""
    version = PINS[lang]
    home = cache_root() / f"{lang}-{version}"
    chain = Toolchain(lang, home)
    stamp = home / ".ready"
    if stamp.exists():
        return chain
    home.mkdir(parents=True, exist_ok=True)
    if lang == "javascript":
        (home / "package.json").write_text(
            '{"name": "kustos-sdk-test", "private": true, "type": "module", "dependencies": '
            f'{{"@aws-sdk/client-secrets-manager": "{version}"}}}}\n'
        )
        _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], home, chain.env())
    elif lang == "go":
        (home / "go.mod").write_text("module kustos.io/sdktest\n\ngo 1.22\n")
        (home / "main.go").write_text(_GO_MAIN)
        env = chain.env()
        for module in (
            f"github.com/aws/aws-sdk-go-v2/service/secretsmanager@{version}",
            "github.com/aws/aws-sdk-go-v2/config",
            "github.com/aws/aws-sdk-go-v2",
        ):
            _run(["go", "get", module], home, env)
        _run(["go", "mod", "download", "all"], home, env)
    else:
        (home / "pom.xml").write_text(_POM.format(version=version))
        _run(
            [
                "mvn",
                "-q",
                "-B",
                f"-Dmaven.repo.local={home / 'm2'}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={home / 'lib'}",
                "-DincludeScope=runtime",
            ],
            home,
            chain.env(),
        )
    stamp.write_text(version + "\n")
    return chain


def main(argv: list[str]) -> int:
    failed = 0
    for lang in argv or LANGS:
        tool = missing(lang)
        if tool is not None:
            print(f"{lang}: skipped, {tool} is not installed", file=sys.stderr)
            continue
        try:
            print(f"{lang}: ready in {prepare(lang).home}")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{lang}: {exc}", file=sys.stderr)
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
